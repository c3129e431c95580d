// Opening and creating repositories, wherever they are: the backend comes from the location
// (src/store/registry.ts), and everything from here up is the same for every backend.
import {errnoCode, UsageError} from '../core/errors.js'
import type {Backend} from '../store/backend.js'
import {LocalBackend} from '../store/local.js'
import {openBackend, type RepoLocation} from '../store/registry.js'
import {newConfig} from './config.js'
import {Repository} from './repository.js'

export async function openRepositoryAt(location: RepoLocation): Promise<Repository> {
  return Repository.open(await openBackend(location))
}

export async function openLocalRepository(root: string): Promise<Repository> {
  return Repository.open(new LocalBackend(root))
}

export interface InitOptions {
  now: number
  zstdLevel?: number
  avgChunkSize?: number
  packSize?: number
}

/** Create a repository at an empty location (a missing or empty directory; a bucket or prefix holding nothing). */
export async function initRepository(backend: Backend, opts: InitOptions): Promise<Repository> {
  if (!(await backend.isEmpty())) {
    const what = backend.capabilities.localDirectory !== undefined ? 'the directory is not empty' : 'objects are stored under that prefix'
    throw new UsageError(`cannot create a repository at ${backend.location}: ${what}`)
  }
  const avg = opts.avgChunkSize
  const config = newConfig({
    now: opts.now,
    zstdLevel: opts.zstdLevel,
    packSize: opts.packSize,
    chunker: avg ? {minSize: avg / 4, avgSize: avg, maxSize: avg * 4} : undefined,
  })
  try {
    await backend.initLayout()
  } catch (err) {
    // The location itself refused (a path under /proc, a read-only or foreign filesystem): one line, exit 2.
    const code = errnoCode(err)
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOTDIR') {
      throw new UsageError(`cannot create a repository at ${backend.location}: ${code} (${(err as Error).message})`, {location: backend.location})
    }
    throw err
  }
  return Repository.create(backend, config)
}

export async function initRepositoryAt(location: RepoLocation, opts: InitOptions): Promise<Repository> {
  return initRepository(await openBackend(location), opts)
}

export async function initLocalRepository(root: string, opts: InitOptions): Promise<Repository> {
  return initRepository(new LocalBackend(root), opts)
}
