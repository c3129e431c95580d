// Blob compression: zstd. Through the native addon (src/native/zstd.c) when it is built: one
// compression and one decompression context per thread for the life of the process, frames
// written into and inflated into buffers the caller reuses, and batches of blobs inflated and
// checked against their ids in one thread-pool job (openBlobs). Without the addon, through
// @mongodb-js/zstd 1.2.2's bindings (a fresh context and buffer per blob; its top-level
// compress() drops the level argument, the bindings honour it) and hash.ts: the same frames
// are read and the same answers given, with more allocation.
import {createRequire} from 'node:module'

import {IntegrityError} from './errors.js'
import {blake3} from './hash.js'
import {nativeAddon} from './native.js'

interface ZstdBindings {
  compress(data: Buffer, level?: number): Promise<Buffer>
  decompress(data: Buffer): Promise<Buffer>
}

let fallback: ZstdBindings | undefined
function zstdPackage(): ZstdBindings {
  if (!fallback) {
    const require = createRequire(import.meta.url)
    fallback = require('@mongodb-js/zstd/bindings.js') as ZstdBindings
  }
  return fallback
}

/** How a blob's bytes are stored in a pack. The numbers are part of the on-disk format. */
export const Compression = {none: 0, zstd: 1} as const
export type CompressionValue = (typeof Compression)[keyof typeof Compression]

export interface Encoded {
  compression: CompressionValue
  data: Buffer
}

/** Blobs below this size are stored as they are: a frame header costs more than zstd can save. */
const MIN_COMPRESS = 64

/** Whether a blob of `length` bytes is worth a compression attempt at `level` (0: compression off). */
export function worthCompressing(length: number, level: number): boolean {
  return level > 0 && length >= MIN_COMPRESS
}
/** Below this, compressing on the main thread costs less than a thread-pool round trip. */
const SYNC_COMPRESS_MAX = 16 * 1024

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

/**
 * Compress `plain` with zstd at `level` into `dst`. Resolves to the frame's length, or 0 when
 * the frame would not be shorter than `plain` or not fit in `dst`: the blob is then stored as
 * it is, which makes restoring incompressible data (model weights, media) a plain copy.
 * `dst` needs plain.length - 1 bytes to take every frame worth keeping.
 */
export async function compressInto(plain: Uint8Array, level: number, dst: Uint8Array): Promise<number> {
  if (!worthCompressing(plain.length, level)) return 0
  const room = dst.subarray(0, Math.min(dst.length, plain.length - 1))
  const native = nativeAddon()
  if (native) return plain.length <= SYNC_COMPRESS_MAX ? native.zstdCompress(plain, room, level) : native.zstdCompressAsync(plain, room, level)
  const packed = await zstdPackage().compress(asBuffer(plain), level)
  if (packed.length > room.length) return 0
  room.set(packed)
  return packed.length
}

/** compressInto with a buffer of its own: for callers without one to reuse. */
export async function encodeBlob(plain: Uint8Array, level: number): Promise<Encoded> {
  if (!worthCompressing(plain.length, level)) return {compression: Compression.none, data: asBuffer(plain)}
  const dst = Buffer.allocUnsafe(plain.length - 1)
  const n = await compressInto(plain, level, dst)
  return n > 0 ? {compression: Compression.zstd, data: dst.subarray(0, n)} : {compression: Compression.none, data: asBuffer(plain)}
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
  checkFrameHeader(input, compression, rawLength)
  const native = nativeAddon()
  let plain: Buffer
  if (native) {
    plain = Buffer.allocUnsafe(rawLength)
    const n = native.zstdDecompress(input, plain)
    // Too little room for what the frame holds is a size the index got wrong, not bad bytes.
    if (n === -ZSTD_DST_TOO_SMALL) throw wrongSize(rawLength)
    if (n < 0) throw corruptFrame(native.zstdErrorName(-n))
    if (n !== rawLength) throw wrongSize(rawLength)
    return plain
  }
  try {
    plain = await zstdPackage().decompress(input)
  } catch (err) {
    throw corruptFrame((err as Error).message, err)
  }
  if (plain.length !== rawLength) throw wrongSize(rawLength)
  return plain
}

function checkFrameHeader(input: Buffer, compression: number, rawLength: number): void {
  if (compression !== Compression.zstd) throw new IntegrityError(`unknown compression ${compression}`)
  const declared = zstdContentSize(input)
  if (declared !== undefined && declared !== rawLength) {
    throw new IntegrityError(`zstd frame declares ${declared} bytes of content, index says ${rawLength}`)
  }
}

function corruptFrame(reason: string, cause?: unknown): IntegrityError {
  return new IntegrityError(`corrupt zstd frame: ${reason}`, {}, cause === undefined ? undefined : {cause})
}

function wrongSize(rawLength: number): IntegrityError {
  return new IntegrityError(`zstd frame does not inflate to the ${rawLength} bytes the index says`)
}

/** A blob as a pack stores it: where it lies in the bytes read, and what it must turn into. */
export interface StoredBlob {
  /** Offset of its stored bytes in the buffer given to openBlobs. */
  offset: number
  storedLength: number
  compression: number
  rawLength: number
  id: Uint8Array
}

/**
 * What openBlobs made of one blob: its plain bytes (a view into the stored bytes or into dst),
 * or not. A blob that could not be read says why in `error`; one without an error read fine but
 * hashes to another id.
 */
export type OpenedBlob = {ok: true; plain: Uint8Array} | {ok: false; error?: IntegrityError}

type Sized = Pick<StoredBlob, 'compression' | 'rawLength'>

/** Bytes a blob takes in openBlobs' dst: its raw size when compressed, none when stored as is. */
function inflatedLength(b: Sized): number {
  return b.compression === Compression.none ? 0 : b.rawLength
}

/** Bytes of dst that openBlobs needs for these blobs: the raw size of the compressed ones. */
export function inflatedSize(blobs: readonly Sized[]): number {
  let n = 0
  for (const b of blobs) n += inflatedLength(b)
  return n
}

/** Split blobs, in order, into batches that each inflate to at most `maxBytes` (a larger blob alone). */
export function inflateBatches<T extends Sized>(blobs: readonly T[], maxBytes: number): T[][] {
  const batches: T[][] = []
  let batch: T[] = []
  let raw = 0
  for (const b of blobs) {
    const n = inflatedLength(b)
    if (batch.length > 0 && raw + n > maxBytes) {
      batches.push(batch)
      batch = []
      raw = 0
    }
    batch.push(b)
    raw += n
  }
  if (batch.length > 0) batches.push(batch)
  return batches
}

const SPEC_WORDS = 5
const OPEN_OK = 0
const OPEN_ID_MISMATCH = 1
const OPEN_SIZE_MISMATCH = 2
const OPEN_UNKNOWN_COMPRESSION = 3
/** zstd's error code for an output buffer too small (ZSTD_error_dstSize_tooSmall; zstd's codes are stable). */
const ZSTD_DST_TOO_SMALL = 70

/**
 * Turn stored blobs back into their plain bytes and check each against its id: the blobs
 * stored as they are where they lie in `stored`, the compressed ones inflated into `dst`
 * (inflatedSize bytes, in order). With the addon this is one job on the thread pool, which
 * reads each blob while it is still in cache; neither buffer may be touched until it settles.
 * A damaged blob is reported in its slot, never thrown.
 */
export async function openBlobs(stored: Uint8Array, blobs: readonly StoredBlob[], dst: Uint8Array): Promise<OpenedBlob[]> {
  for (const b of blobs) {
    if (b.offset < 0 || b.offset + b.storedLength > stored.length) throw new RangeError(`a blob at ${b.offset} (${b.storedLength} bytes) lies outside the ${stored.length} bytes read`)
  }
  if (dst.length < inflatedSize(blobs)) throw new RangeError(`dst holds ${dst.length} bytes, the blobs inflate to ${inflatedSize(blobs)}`)
  const native = nativeAddon()
  if (!native) return openBlobsFallback(stored, blobs)
  const specs = new Uint32Array(blobs.length * SPEC_WORDS)
  const ids = Buffer.allocUnsafe(blobs.length * 32)
  const status = new Int32Array(blobs.length)
  let at = 0
  blobs.forEach((b, i) => {
    specs.set([b.offset, b.storedLength, b.compression, b.rawLength, at], i * SPEC_WORDS)
    ids.set(b.id, i * 32)
    at += inflatedLength(b)
  })
  await native.openBlobs(stored, specs, dst, ids, status)
  const out: OpenedBlob[] = new Array(blobs.length)
  at = 0
  blobs.forEach((b, i) => {
    const inflated = inflatedLength(b)
    const s = status[i]!
    if (s === OPEN_OK) out[i] = {ok: true, plain: inflated ? dst.subarray(at, at + inflated) : stored.subarray(b.offset, b.offset + b.storedLength)}
    else if (s === OPEN_ID_MISMATCH) out[i] = {ok: false}
    else out[i] = {ok: false, error: openError(s, b, stored)}
    at += inflated
  })
  return out
}

function openError(status: number, b: StoredBlob, stored: Uint8Array): IntegrityError {
  if (status === OPEN_UNKNOWN_COMPRESSION) return new IntegrityError(`unknown compression ${b.compression}`)
  if (status === OPEN_SIZE_MISMATCH) {
    if (b.compression === Compression.none) return new IntegrityError(`stored blob has ${b.storedLength} bytes, index says ${b.rawLength}`)
    const declared = zstdContentSize(stored.subarray(b.offset, b.offset + b.storedLength))
    if (declared !== undefined && declared !== b.rawLength) return new IntegrityError(`zstd frame declares ${declared} bytes of content, index says ${b.rawLength}`)
    return wrongSize(b.rawLength)
  }
  return corruptFrame(nativeAddon()!.zstdErrorName(-status))
}

async function openBlobsFallback(stored: Uint8Array, blobs: readonly StoredBlob[]): Promise<OpenedBlob[]> {
  return Promise.all(blobs.map(async (b): Promise<OpenedBlob> => {
    let plain: Uint8Array
    try {
      plain = await decodeBlob(stored.subarray(b.offset, b.offset + b.storedLength), b.compression, b.rawLength)
    } catch (err) {
      if (err instanceof IntegrityError) return {ok: false, error: err}
      throw err
    }
    return blake3(plain).equals(b.id) ? {ok: true, plain} : {ok: false}
  }))
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
