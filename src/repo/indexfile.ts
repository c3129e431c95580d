// Index files: which pack holds each blob, so a read is one ranged get. Written after the packs
// they describe are durable; named by the BLAKE3 of their bytes, so a damaged one is detected
// on load. Layout (docs/FORMAT.md):
//   magic "ckptindx" | version u32le | packCount u32le
//   per pack: name[32] (the pack's hex name as bytes) size u32le entryCount u32le, then entries
//   entry = id[32] type u8 compression u8 offset u32le storedLength u32le rawLength u32le (46 bytes)
import {IntegrityError} from '../core/errors.js'
import {ID_BYTES} from '../core/hash.js'
import {toHex} from '../core/ids.js'
import {BlobType, type PackEntry} from './pack.js'

export const INDEX_MAGIC = Buffer.from('ckptindx', 'latin1')
export const INDEX_VERSION = 1
const ENTRY_BYTES = ID_BYTES + 14
const PACK_BYTES = ID_BYTES + 8

export interface IndexedPack {
  name: string
  size: number
  entries: PackEntry[]
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const total = 16 + packs.reduce((n, p) => n + PACK_BYTES + p.entries.length * ENTRY_BYTES, 0)
  const out = Buffer.alloc(total)
  INDEX_MAGIC.copy(out, 0)
  out.writeUInt32LE(INDEX_VERSION, 8)
  out.writeUInt32LE(packs.length, 12)
  let at = 16
  for (const p of packs) {
    Buffer.from(p.name, 'hex').copy(out, at)
    out.writeUInt32LE(p.size, at + ID_BYTES)
    out.writeUInt32LE(p.entries.length, at + ID_BYTES + 4)
    at += PACK_BYTES
    for (const e of p.entries) {
      e.id.copy(out, at)
      out[at + ID_BYTES] = e.type
      out[at + ID_BYTES + 1] = e.compression
      out.writeUInt32LE(e.offset, at + ID_BYTES + 2)
      out.writeUInt32LE(e.storedLength, at + ID_BYTES + 6)
      out.writeUInt32LE(e.rawLength, at + ID_BYTES + 10)
      at += ENTRY_BYTES
    }
  }
  return out
}

/**
 * The fields forEachIndexEntry hands over for each entry, in one Uint32Array reused for every
 * entry: the tag onPack returned for the entry's pack, then offset, storedLength, rawLength and
 * type | compression << 8: the layout of a BlobIndex entry, so the loader stores the array as
 * it comes.
 */
export const INDEX_FIELD = {pack: 0, offset: 1, stored: 2, raw: 3, flags: 4} as const

/** Called for each pack of an index file; returns a tag (the caller's pack number) passed along with its entries. */
export type IndexPackVisitor = (packName: string, size: number, entryCount: number) => number
/**
 * Called for each entry. The id is `bytes[idAt .. idAt + 32]` (no view is made per entry);
 * `fields` (INDEX_FIELD) is reused: both are valid during the call only.
 */
export type IndexEntryVisitor = (bytes: Uint8Array, idAt: number, fields: Uint32Array) => void

/**
 * Walk an index file without building objects: onPack for each pack, then onEntry for each of
 * its entries (none when onEntry is left out). The whole file is checked first, exactly as
 * decodeIndex checks it and with the same errors, so a damaged file throws an IntegrityError
 * before any callback has run: a caller never has to undo half a file.
 */
export function forEachIndexEntry(bytes: Uint8Array, name: string, onPack: IndexPackVisitor, onEntry?: IndexEntryVisitor): void {
  validate(bytes, name)
  const fields = new Uint32Array(5)
  const packCount = u32(bytes, 12)
  let at = 16
  for (let p = 0; p < packCount; p++) {
    const count = u32(bytes, at + ID_BYTES + 4)
    fields[INDEX_FIELD.pack] = onPack(toHex(bytes.subarray(at, at + ID_BYTES)), u32(bytes, at + ID_BYTES), count)
    at += PACK_BYTES
    if (!onEntry) {
      at += count * ENTRY_BYTES
      continue
    }
    for (let i = 0; i < count; i++, at += ENTRY_BYTES) {
      fields[INDEX_FIELD.offset] = u32(bytes, at + ID_BYTES + 2)
      fields[INDEX_FIELD.stored] = u32(bytes, at + ID_BYTES + 6)
      fields[INDEX_FIELD.raw] = u32(bytes, at + ID_BYTES + 10)
      fields[INDEX_FIELD.flags] = bytes[at + ID_BYTES]! | (bytes[at + ID_BYTES + 1]! << 8)
      onEntry(bytes, at, fields)
    }
  }
}

/** Decode an index file, checking every length against the bytes actually there. */
export function decodeIndex(bytes: Buffer, name: string): IndexedPack[] {
  const packs: IndexedPack[] = []
  forEachIndexEntry(
    bytes,
    name,
    (packName, size) => packs.push({name: packName, size, entries: []}) - 1,
    (b, at, f) => {
      packs[f[INDEX_FIELD.pack]!]!.entries.push({
        id: Buffer.from(b.subarray(at, at + ID_BYTES)),
        type: (f[INDEX_FIELD.flags]! & 0xff) as PackEntry['type'],
        compression: f[INDEX_FIELD.flags]! >> 8,
        offset: f[INDEX_FIELD.offset]!,
        storedLength: f[INDEX_FIELD.stored]!,
        rawLength: f[INDEX_FIELD.raw]!,
      })
    },
  )
  return packs
}

/** A pack as checkIndex lists it: its name and how many entries the file gives it. */
export interface IndexPackCount {
  name: string
  entries: number
}

/** Check an index file as decodeIndex does (same errors), without decoding it; returns its packs. */
export function checkIndex(bytes: Uint8Array, name: string): IndexPackCount[] {
  const packs: IndexPackCount[] = []
  forEachIndexEntry(bytes, name, (pack, _size, entries) => packs.push({name: pack, entries}) - 1)
  return packs
}

/**
 * How many blobs a map of these index files needs room for: every entry, a pack listed by several
 * files counted once (a crash between writing an index file and deleting those it replaces
 * lists every pack twice, and sizing for both would double the map).
 */
export function indexedBlobCount(files: Iterable<readonly IndexPackCount[] | undefined>): number {
  const counted = new Set<string>()
  let blobs = 0
  for (const packs of files) {
    for (const p of packs ?? []) {
      if (counted.has(p.name)) continue
      counted.add(p.name)
      blobs += p.entries
    }
  }
  return blobs
}

/** Check an index file's structure: every length against the bytes actually there, every type, every blob inside its pack. */
function validate(bytes: Uint8Array, name: string): void {
  const fail = (what: string) => new IntegrityError(`index ${name}: ${what}`, {index: name})
  if (bytes.length < 16 || !INDEX_MAGIC.equals(bytes.subarray(0, 8))) throw fail('not an index file (bad magic)')
  const version = u32(bytes, 8)
  if (version !== INDEX_VERSION) throw fail(`unknown index version ${version}`)
  const packCount = u32(bytes, 12)
  let at = 16
  for (let p = 0; p < packCount; p++) {
    if (at + PACK_BYTES > bytes.length) throw fail('truncated')
    const size = u32(bytes, at + ID_BYTES)
    const count = u32(bytes, at + ID_BYTES + 4)
    const packAt = at
    at += PACK_BYTES
    if (at + count * ENTRY_BYTES > bytes.length) throw fail('truncated')
    for (let i = 0; i < count; i++, at += ENTRY_BYTES) {
      const type = bytes[at + ID_BYTES]!
      if (type !== BlobType.data && type !== BlobType.tree) throw fail(`unknown blob type ${type}`)
      if (u32(bytes, at + ID_BYTES + 2) + u32(bytes, at + ID_BYTES + 6) > size) {
        throw fail(`blob ${toHex(bytes.subarray(at, at + ID_BYTES))} lies outside pack ${toHex(bytes.subarray(packAt, packAt + ID_BYTES))}`)
      }
    }
  }
  if (at !== bytes.length) throw fail('has trailing bytes')
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0
}
