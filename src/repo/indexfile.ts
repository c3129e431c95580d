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

/** Decode an index file, checking every length against the bytes actually there. */
export function decodeIndex(bytes: Buffer, name: string): IndexedPack[] {
  const fail = (what: string) => new IntegrityError(`index ${name}: ${what}`, {index: name})
  if (bytes.length < 16 || !bytes.subarray(0, 8).equals(INDEX_MAGIC)) throw fail('not an index file (bad magic)')
  const version = bytes.readUInt32LE(8)
  if (version !== INDEX_VERSION) throw fail(`unknown index version ${version}`)
  const packCount = bytes.readUInt32LE(12)
  const packs: IndexedPack[] = []
  let at = 16
  for (let p = 0; p < packCount; p++) {
    if (at + PACK_BYTES > bytes.length) throw fail('truncated')
    const packName = toHex(bytes.subarray(at, at + ID_BYTES))
    const size = bytes.readUInt32LE(at + ID_BYTES)
    const count = bytes.readUInt32LE(at + ID_BYTES + 4)
    at += PACK_BYTES
    if (at + count * ENTRY_BYTES > bytes.length) throw fail('truncated')
    const entries: PackEntry[] = []
    for (let i = 0; i < count; i++, at += ENTRY_BYTES) {
      const type = bytes[at + ID_BYTES]!
      if (type !== BlobType.data && type !== BlobType.tree) throw fail(`unknown blob type ${type}`)
      const entry: PackEntry = {
        id: Buffer.from(bytes.subarray(at, at + ID_BYTES)),
        type: type as PackEntry['type'],
        compression: bytes[at + ID_BYTES + 1]!,
        offset: bytes.readUInt32LE(at + ID_BYTES + 2),
        storedLength: bytes.readUInt32LE(at + ID_BYTES + 6),
        rawLength: bytes.readUInt32LE(at + ID_BYTES + 10),
      }
      if (entry.offset + entry.storedLength > size) throw fail(`blob ${toHex(entry.id)} lies outside pack ${packName}`)
      entries.push(entry)
    }
    packs.push({name: packName, size, entries})
  }
  if (at !== bytes.length) throw fail('has trailing bytes')
  return packs
}
