// Streaming zstd for tar import and export, through zstd-napi (an optional dependency: the
// repository's own blobs use the addon or @mongodb-js/zstd, which compress whole buffers only).
// Loaded with createRequire where it is installed; without it these throw the caller's message.
import {createRequire} from 'node:module'
import type {Transform} from 'node:stream'

interface ZstdNapi {
  CompressStream: new (params?: {compressionLevel?: number}) => Transform
  DecompressStream: new () => Transform
}

function zstdNapi(): ZstdNapi | undefined {
  try {
    return createRequire(import.meta.url)('zstd-napi') as ZstdNapi
  } catch {
    return undefined
  }
}

/** A zstd decompressing Transform, or undefined when zstd-napi is not installed. */
export function zstdDecompressStream(): Transform | undefined {
  const mod = zstdNapi()
  return mod ? new mod.DecompressStream() : undefined
}

/** A zstd compressing Transform at `level`, or undefined when zstd-napi is not installed. */
export function zstdCompressStream(level = 3): Transform | undefined {
  const mod = zstdNapi()
  return mod ? new mod.CompressStream({compressionLevel: level}) : undefined
}
