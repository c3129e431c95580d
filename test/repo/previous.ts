// The index decoder as it was before forEachIndexEntry (one object and one id copy per blob),
// kept verbatim as the reference the new decoder and loaders are checked against.
import {isDeepStrictEqual} from 'node:util'

import {expect} from 'vitest'

import {IntegrityError} from '../../src/core/errors.js'
import {ID_BYTES} from '../../src/core/hash.js'
import {toHex} from '../../src/core/ids.js'
import {checkIndex, decodeIndex, forEachIndexEntry, INDEX_FIELD, INDEX_MAGIC, INDEX_VERSION, type IndexedPack} from '../../src/repo/indexfile.js'
import {BlobType, type PackEntry} from '../../src/repo/pack.js'

const ENTRY_BYTES = ID_BYTES + 14
const PACK_BYTES = ID_BYTES + 8

export function previousDecodeIndex(bytes: Buffer, name: string): IndexedPack[] {
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

export type Outcome = {packs: IndexedPack[]} | {error: string}

/** What a decoder makes of some bytes: the packs, or the IntegrityError's message (anything else is rethrown). */
export function outcome(decode: (bytes: Buffer, name: string) => IndexedPack[], bytes: Buffer, name = 'i1'): Outcome {
  try {
    return {packs: decode(bytes, name)}
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err
    return {error: err.message}
  }
}

/**
 * decodeIndex rebuilt from nothing but forEachIndexEntry's callbacks. Tags are offset so that a
 * tag not passed through would show; a callback that runs before an error is thrown is a failure.
 */
export function viaCallbacks(bytes: Buffer, name: string): IndexedPack[] {
  const packs: IndexedPack[] = []
  const counts: number[] = []
  let calls = 0
  try {
    forEachIndexEntry(
      bytes,
      name,
      (packName, size, entryCount) => {
        calls++
        counts.push(entryCount)
        return packs.push({name: packName, size, entries: []}) + 999
      },
      (b, at, f) => {
        calls++
        expect(f.length).toBe(5)
        packs[f[INDEX_FIELD.pack]! - 1000]!.entries.push({
          id: Buffer.from(b.subarray(at, at + ID_BYTES)),
          type: (f[INDEX_FIELD.flags]! & 0xff) as PackEntry['type'],
          compression: f[INDEX_FIELD.flags]! >> 8,
          offset: f[INDEX_FIELD.offset]!,
          storedLength: f[INDEX_FIELD.stored]!,
          rawLength: f[INDEX_FIELD.raw]!,
        })
      },
    )
  } catch (err) {
    if (calls !== 0) throw new Error(`forEachIndexEntry called back ${calls} times before failing`)
    throw err
  }
  expect(packs.map((p) => p.entries.length)).toEqual(counts)
  return packs
}

/** checkIndex's view, in decodeIndex's shape without entries (so outcomes compare). */
function viaCheck(bytes: Buffer, name: string): IndexedPack[] {
  return checkIndex(bytes, name).map((p) => ({name: p.name, size: 0, entries: new Array<PackEntry>(p.entries)}))
}

/**
 * The old decoder's outcome next to the new ones', for `bytes` and damaged copies of it (cut at,
 * or with a byte changed at, every `step`th position and all of the first 64); returns the disagreements.
 */
export function disagreements(bytes: Buffer, step = 1): string[] {
  const positions: number[] = []
  for (let at = 0; at < bytes.length; at += at < 64 ? 1 : step) positions.push(at)
  const variants: [string, Buffer][] = [['as is', bytes]]
  for (const n of positions) variants.push([`first ${n} bytes`, bytes.subarray(0, n)])
  variants.push(['one byte more', Buffer.concat([bytes, Buffer.alloc(1)])], ['one entry more', Buffer.concat([bytes, Buffer.alloc(ENTRY_BYTES)])])
  for (const at of positions) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = Buffer.from(bytes)
      bad[at]! ^= mask
      variants.push([`byte ${at} ^ ${mask}`, bad])
    }
  }
  const wrong: string[] = []
  let errors = 0
  for (const [what, b] of variants) {
    const want = outcome(previousDecodeIndex, b)
    if ('error' in want) errors++
    const got = outcome(decodeIndex, b)
    const cb = outcome(viaCallbacks, b)
    const check = outcome(viaCheck, b)
    const wantCheck = 'error' in want ? want : {packs: want.packs.map((p) => ({name: p.name, size: 0, entries: new Array<PackEntry>(p.entries.length)}))}
    if (!isDeepStrictEqual(got, want)) wrong.push(`decodeIndex, ${what}`)
    if (!isDeepStrictEqual(cb, want)) wrong.push(`forEachIndexEntry, ${what}`)
    if (!isDeepStrictEqual(check, wantCheck)) wrong.push(`checkIndex, ${what}`)
  }
  // The damage must be seen, or the comparison proves little.
  if (errors === 0) wrong.push(`none of ${variants.length} variants failed to decode`)
  return wrong
}
