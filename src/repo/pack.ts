// Pack files: many blobs in one object, so a 1 GiB snapshot is tens of objects and fsyncs are
// per pack, not per chunk. Layout (docs/FORMAT.md):
//   blob_0 .. blob_n-1 | header: n entries | trailer (48 bytes)
//   entry   = id[32] type u8 compression u8 storedLength u32le rawLength u32le   (42 bytes)
//   trailer = BLAKE3(header)[32] entryCount u32le version u16le reserved u16le magic "ckptpack"
// Blob offsets are implied: blob i starts where blob i-1 ends. The header sits at the end so
// a pack is written in one pass; the trailer's hash makes a damaged header detectable alone.
import {IntegrityError} from '../core/errors.js'
import {blake3, ID_BYTES} from '../core/hash.js'

export const BlobType = {data: 0, tree: 1} as const
export type BlobTypeValue = (typeof BlobType)[keyof typeof BlobType]

export const PACK_MAGIC = Buffer.from('ckptpack', 'latin1')
export const PACK_VERSION = 1
export const PACK_ENTRY_BYTES = ID_BYTES + 10
export const PACK_TRAILER_BYTES = ID_BYTES + 16

export interface PackEntry {
  id: Buffer
  type: BlobTypeValue
  compression: number
  offset: number
  storedLength: number
  rawLength: number
}

/** Blobs of one pack read with one ranged read: bytes [start, end) of the pack. */
export interface ReadRange<T> {
  start: number
  end: number
  blobs: T[]
}

/**
 * Group blobs of one pack, sorted by offset, into ranged reads that each span at most `maxBytes`
 * (a larger blob is read alone). Gaps between the blobs of a range are read through.
 */
export function readRanges<T extends {offset: number; storedLength: number}>(sorted: readonly T[], maxBytes: number): ReadRange<T>[] {
  const ranges: ReadRange<T>[] = []
  for (let i = 0; i < sorted.length; ) {
    const start = sorted[i]!.offset
    let end = start + sorted[i]!.storedLength
    let j = i + 1
    for (; j < sorted.length && sorted[j]!.offset + sorted[j]!.storedLength - start <= maxBytes; j++) end = Math.max(end, sorted[j]!.offset + sorted[j]!.storedLength)
    ranges.push({start, end, blobs: sorted.slice(i, j)})
    i = j
  }
  return ranges
}

export function encodePackTail(entries: readonly PackEntry[]): Buffer {
  const header = Buffer.alloc(entries.length * PACK_ENTRY_BYTES)
  entries.forEach((e, i) => {
    const at = i * PACK_ENTRY_BYTES
    e.id.copy(header, at)
    header[at + ID_BYTES] = e.type
    header[at + ID_BYTES + 1] = e.compression
    header.writeUInt32LE(e.storedLength, at + ID_BYTES + 2)
    header.writeUInt32LE(e.rawLength, at + ID_BYTES + 6)
  })
  const trailer = Buffer.alloc(PACK_TRAILER_BYTES)
  blake3(header).copy(trailer, 0)
  trailer.writeUInt32LE(entries.length, ID_BYTES)
  trailer.writeUInt16LE(PACK_VERSION, ID_BYTES + 4)
  PACK_MAGIC.copy(trailer, ID_BYTES + 8)
  return Buffer.concat([header, trailer])
}

/** Parse a trailer; returns the header's length so the caller can fetch it. */
export function decodePackTrailer(trailer: Buffer, packSize: number, name: string): {entryCount: number; headerHash: Buffer} {
  if (trailer.length !== PACK_TRAILER_BYTES || !trailer.subarray(ID_BYTES + 8).equals(PACK_MAGIC)) {
    throw new IntegrityError(`pack ${name}: trailer is damaged (no pack magic)`, {pack: name})
  }
  const version = trailer.readUInt16LE(ID_BYTES + 4)
  if (version !== PACK_VERSION) throw new IntegrityError(`pack ${name}: unknown pack version ${version}`, {pack: name})
  if (trailer.readUInt16LE(ID_BYTES + 6) !== 0) throw new IntegrityError(`pack ${name}: trailer is damaged (reserved field set)`, {pack: name})
  const entryCount = trailer.readUInt32LE(ID_BYTES)
  if (entryCount * PACK_ENTRY_BYTES + PACK_TRAILER_BYTES > packSize) {
    throw new IntegrityError(`pack ${name}: trailer claims ${entryCount} entries, more than the pack can hold`, {pack: name})
  }
  return {entryCount, headerHash: trailer.subarray(0, ID_BYTES)}
}

/** Parse and check a header against its trailer hash and the pack size. */
export function decodePackHeader(header: Buffer, headerHash: Buffer, packSize: number, name: string): PackEntry[] {
  if (!blake3(header).equals(headerHash)) throw new IntegrityError(`pack ${name}: header does not match its hash`, {pack: name})
  const entries: PackEntry[] = []
  let offset = 0
  for (let at = 0; at < header.length; at += PACK_ENTRY_BYTES) {
    const type = header[at + ID_BYTES]!
    if (type !== BlobType.data && type !== BlobType.tree) throw new IntegrityError(`pack ${name}: unknown blob type ${type}`, {pack: name})
    const storedLength = header.readUInt32LE(at + ID_BYTES + 2)
    entries.push({
      id: Buffer.from(header.subarray(at, at + ID_BYTES)),
      type: type as BlobTypeValue,
      compression: header[at + ID_BYTES + 1]!,
      offset,
      storedLength,
      rawLength: header.readUInt32LE(at + ID_BYTES + 6),
    })
    offset += storedLength
  }
  if (offset + header.length + PACK_TRAILER_BYTES !== packSize) {
    throw new IntegrityError(`pack ${name}: blobs, header and trailer add up to ${offset + header.length + PACK_TRAILER_BYTES} bytes, the pack has ${packSize}`, {pack: name})
  }
  return entries
}
