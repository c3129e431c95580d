// Blob compression. zstd through @mongodb-js/zstd 1.2.2's native bindings: its top-level
// compress() drops the level argument, the bindings honour it (see test/core/codec.test.ts).
// Compression runs on libuv's thread pool, so it overlaps with hashing on the main thread.
import {createRequire} from 'node:module'

import {IntegrityError} from './errors.js'

interface ZstdBindings {
  compress(data: Buffer, level?: number): Promise<Buffer>
  decompress(data: Buffer): Promise<Buffer>
}

let zstd: ZstdBindings | undefined
function load(): ZstdBindings {
  if (!zstd) {
    const require = createRequire(import.meta.url)
    zstd = require('@mongodb-js/zstd/bindings.js') as ZstdBindings
  }
  return zstd
}

/** How a blob's bytes are stored in a pack. The numbers are part of the on-disk format. */
export const Compression = {none: 0, zstd: 1} as const
export type CompressionValue = (typeof Compression)[keyof typeof Compression]

export interface Encoded {
  compression: CompressionValue
  data: Buffer
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

/**
 * Compress with zstd at `level`; a blob that does not shrink is stored as is, which makes
 * restoring incompressible data (model weights, media) a plain copy.
 */
export async function encodeBlob(plain: Uint8Array, level: number): Promise<Encoded> {
  const input = asBuffer(plain)
  if (level <= 0 || input.length < 64) return {compression: Compression.none, data: input}
  const packed = await load().compress(input, level)
  if (packed.length >= input.length) return {compression: Compression.none, data: input}
  return {compression: Compression.zstd, data: packed}
}

/**
 * Undo encodeBlob. `rawLength` comes from the index; a frame that declares another size is
 * refused before anything is inflated, and the result must have exactly that length.
 */
export async function decodeBlob(stored: Uint8Array, compression: number, rawLength: number): Promise<Buffer> {
  const input = asBuffer(stored)
  if (compression === Compression.none) {
    if (input.length !== rawLength) throw new IntegrityError(`stored blob has ${input.length} bytes, index says ${rawLength}`)
    return input
  }
  if (compression !== Compression.zstd) throw new IntegrityError(`unknown compression ${compression}`)
  // The bindings write frames without a content size; when one is declared it must agree.
  const declared = zstdContentSize(input)
  if (declared !== undefined && declared !== rawLength) {
    throw new IntegrityError(`zstd frame declares ${declared} bytes of content, index says ${rawLength}`)
  }
  let plain: Buffer
  try {
    plain = await load().decompress(input)
  } catch (err) {
    throw new IntegrityError(`corrupt zstd frame: ${(err as Error).message}`, {}, {cause: err})
  }
  if (plain.length !== rawLength) throw new IntegrityError(`blob inflated to ${plain.length} bytes, index says ${rawLength}`)
  return plain
}

/** The content size a zstd frame header declares, or undefined if absent or unreadable. */
export function zstdContentSize(frame: Uint8Array): number | undefined {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return undefined
  const descriptor = frame[4] as number
  const fcsFlag = descriptor >> 6
  const singleSegment = (descriptor >> 5) & 1
  const dictFlag = descriptor & 3
  const pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag]!
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!
  if (fcsBytes === 0 || pos + fcsBytes > frame.length) return undefined
  const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
  switch (fcsBytes) {
    case 1: return view[pos]
    case 2: return view.readUInt16LE(pos) + 256
    case 4: return view.readUInt32LE(pos)
    default: {
      const size = view.readBigUInt64LE(pos)
      return size > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(size)
    }
  }
}
