// Opening and creating repositories, wherever they are: the backend comes from the location
// (src/store/registry.ts), and everything from here up is the same for every backend.
import {UsageError} from '../core/errors.js'
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
  await backend.initLayout()
  return Repository.create(backend, config)
}

export async function initRepositoryAt(location: RepoLocation, opts: InitOptions): Promise<Repository> {
  return initRepository(await openBackend(location), opts)
}

export async function initLocalRepository(root: string, opts: InitOptions): Promise<Repository> {
  return initRepository(new LocalBackend(root), opts)
}
