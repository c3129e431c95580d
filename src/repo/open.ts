// Opening and creating repositories in local directories (the only backend so far).
import {readdir} from 'node:fs/promises'

import {UsageError} from '../core/errors.js'
import {checkRepositoryPath, LocalBackend} from '../store/local.js'
import {newConfig} from './config.js'
import {Repository} from './repository.js'

export async function openLocalRepository(root: string): Promise<Repository> {
  return Repository.open(new LocalBackend(root))
}

export interface InitOptions {
  now: number
  zstdLevel?: number
  avgChunkSize?: number
  packSize?: number
}

export async function initLocalRepository(root: string, opts: InitOptions): Promise<Repository> {
  if ((await checkRepositoryPath(root)) === 'directory') {
    if ((await readdir(root)).length > 0) {
      throw new UsageError(`cannot create a repository at ${root}: the directory is not empty`)
    }
  }
  const avg = opts.avgChunkSize
  const config = newConfig({
    now: opts.now,
    zstdLevel: opts.zstdLevel,
    packSize: opts.packSize,
    chunker: avg ? {minSize: avg / 4, avgSize: avg, maxSize: avg * 4} : undefined,
  })
  const backend = new LocalBackend(root)
  await backend.initLayout()
  return Repository.create(backend, config)
}
