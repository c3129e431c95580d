// The repository config: the one mutable-at-init object, read first by every command.
import {randomBytes} from 'node:crypto'

import {checkChunkerParams, type ChunkerParams, DEFAULT_CHUNKER} from '../core/chunker.js'
import {IntegrityError, UnsupportedFormatError, UsageError} from '../core/errors.js'

/**
 * On-disk format version this build writes. See docs/FORMAT.md. Version 2 added tree fields
 * (hard links, holes, xattrs, flags, special files) that a version-1 reader would misread, so a
 * repository is raised to 2 before its first version-2 tree is written (upgradeFormat).
 */
export const FORMAT_VERSION = 2
/** Versions this build reads. */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2]

export interface RepoConfig {
  version: number
  /** Random id of this repository (never reused). */
  id: string
  created: string
  chunker: ChunkerParams
  compression: {algorithm: 'zstd'; level: number}
  /** Target pack size in bytes: a pack is closed once it reaches this. */
  packSize: number
}

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024
export const DEFAULT_ZSTD_LEVEL = 3

export function newConfig(opts: {now: number; chunker?: Partial<ChunkerParams>; zstdLevel?: number; packSize?: number}): RepoConfig {
  const config: RepoConfig = {
    version: FORMAT_VERSION,
    id: randomBytes(16).toString('hex'),
    created: new Date(opts.now).toISOString(),
    chunker: {...DEFAULT_CHUNKER, ...opts.chunker},
    compression: {algorithm: 'zstd', level: opts.zstdLevel ?? DEFAULT_ZSTD_LEVEL},
    packSize: opts.packSize ?? DEFAULT_PACK_SIZE,
  }
  const problem = checkConfig(config)
  if (problem) throw new UsageError(`invalid repository settings: ${problem}`)
  return config
}

function checkConfig(c: RepoConfig): string | undefined {
  const chunk = checkChunkerParams(c.chunker)
  if (chunk) return `chunker: ${chunk}`
  if (c.compression.algorithm !== 'zstd') return `compression algorithm ${String(c.compression.algorithm)} is not known`
  if (!Number.isInteger(c.compression.level) || c.compression.level < 0 || c.compression.level > 22) return 'zstd level must be 0 (off) to 22'
  if (!Number.isInteger(c.packSize) || c.packSize < 1024 * 1024 || c.packSize > 1024 * 1024 * 1024) return 'pack size must be 1 MiB to 1 GiB'
  return undefined
}

export function encodeConfig(c: RepoConfig): Buffer {
  return Buffer.from(JSON.stringify(c, null, 2) + '\n')
}

export function decodeConfig(bytes: Buffer): RepoConfig {
  let v: unknown
  try {
    v = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new IntegrityError('repository config is not valid JSON')
  }
  if (!v || typeof v !== 'object') throw new IntegrityError('repository config is not an object')
  const c = v as RepoConfig
  if (typeof c.version !== 'number') throw new IntegrityError('repository config has no format version')
  if (!READABLE_FORMAT_VERSIONS.includes(c.version)) {
    throw new UnsupportedFormatError(`repository format version ${c.version} is not supported by this ckpt (it knows versions ${READABLE_FORMAT_VERSIONS.join(' and ')})`, {version: c.version})
  }
  if (typeof c.id !== 'string' || !c.chunker || !c.compression) throw new IntegrityError('repository config is missing fields')
  const problem = checkConfig(c)
  if (problem) throw new IntegrityError(`repository config is invalid: ${problem}`)
  return c
}
