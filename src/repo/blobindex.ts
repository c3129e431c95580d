// The in-memory index of a repository's blobs: blob id -> where it is stored, for every command
// that needs one (snapshot and restore through the Repository, verify, prune). The one place
// that knows the slot layout. Each blob is one IdMap entry of five u32s, the layout an index
// file decodes to (INDEX_FIELD), so loading stores each entry as it comes:
//   [packNo, offset, storedLength, rawLength, type | compression << 8 | MARK]
// About 32 + 20 id and value bytes per blob plus a u32 slot at most 70% full, 58 to 115 bytes
// (byteSize reports the real figure). Packs are numbered in the order they are first seen; what a
// caller keeps per pack is its own record type, P. A blob stored more than once (two writers
// racing, a crash before an index was replaced) has one chosen copy in the map; the others are
// kept, only when asked for, in a small side table: they are rare.
import {ID_BYTES} from '../core/hash.js'
import {IdMap} from '../core/idmap.js'
import {toHex} from '../core/ids.js'
import {forEachIndexEntry, INDEX_FIELD} from './indexfile.js'
import type {BlobTypeValue, PackEntry} from './pack.js'

const {pack: PACK, offset: OFFSET, stored: STORED, raw: RAW, flags: FLAGS} = INDEX_FIELD
const WIDTH = 5
/** type (8 bits) | compression (8 bits), as index files store them. */
const LOCATION_FLAGS = 0xffff
/** Set on a blob a walk reached: prune's live blobs, verify's reached ones. */
const MARK = 1 << 16

/** Where a blob lives, by pack name. */
export interface BlobLocation {
  pack: string
  offset: number
  storedLength: number
  rawLength: number
  type: BlobTypeValue
  compression: number
}

/** Where a blob lives, by pack number. */
export interface Location {
  packNo: number
  offset: number
  storedLength: number
  rawLength: number
  type: BlobTypeValue
  compression: number
}

/** An entry as forEach shows it: a chosen location, and whether the blob is marked. */
export interface BlobEntry extends Location {
  marked: boolean
}

/** What the index keeps per pack at least. */
export interface PackRef {
  name: string
  size: number
}

export interface BlobIndexOptions<P extends PackRef> {
  /** The record of a pack seen for the first time. */
  newPack?: (name: string, size: number) => P
  /** Keep every distinct location of a blob, not only the chosen one (verify and prune need them). */
  copies?: boolean
  /** Entries to allocate room for at first. */
  capacity?: number
}

/** How an entry was taken: a new blob, a further copy of a known one, or a location known already. */
export type AddResult = 'new' | 'copy' | 'known'

export class BlobIndex<P extends PackRef = PackRef> {
  readonly packs: P[] = []
  private readonly packNos = new Map<string, number>()
  private readonly map: IdMap
  private readonly newPack: (name: string, size: number) => P
  private readonly keepCopies: boolean
  /** Further locations of blobs stored more than once, by hex id (only with `copies`). */
  private readonly more = new Map<string, {id: Buffer; copies: Location[]}>()
  /** Reused for entries added one object at a time. */
  private readonly fields = new Uint32Array(WIDTH)

  constructor(opts: BlobIndexOptions<P> = {}) {
    this.map = new IdMap(WIDTH, opts.capacity)
    this.newPack = opts.newPack ?? ((name, size) => ({name, size}) as P)
    this.keepCopies = opts.copies ?? false
  }

  /** Distinct blobs. */
  get size(): number {
    return this.map.size
  }

  /** Bytes held by the map's arrays (the side table of copies is small and not counted). */
  get byteSize(): number {
    return this.map.byteSize
  }

  /** Blobs with more than one location (0 without `copies`). */
  get blobsWithCopies(): number {
    return this.more.size
  }

  /** Make room for this many blobs in all, so a load that knows its count allocates once. */
  reserve(blobs: number): void {
    this.map.reserve(blobs)
  }

  // ---- packs ----

  /** Number a pack; a pack seen before keeps its number and record. */
  addPack(name: string, size: number): {packNo: number; isNew: boolean} {
    const known = this.packNos.get(name)
    if (known !== undefined) return {packNo: known, isNew: false}
    const packNo = this.packs.push(this.newPack(name, size)) - 1
    this.packNos.set(name, packNo)
    return {packNo, isNew: true}
  }

  packNo(name: string): number | undefined {
    return this.packNos.get(name)
  }

  // ---- adding ----

  /**
   * Add the entries of a checked index file, decoded straight into the map (no object per blob).
   * `onPack` numbers each pack of the file (usually through addPack); `onAdded` sees each entry
   * that was not known already, with its pack number.
   */
  addIndexFile(bytes: Uint8Array, name: string, onPack: (packName: string, size: number) => number, onAdded?: (packNo: number) => void): void {
    forEachIndexEntry(bytes, name, onPack, (b, at, f) => {
      if (this.addFields(b, at, f) !== 'known') onAdded?.(f[PACK]!)
    })
  }

  /** Add one blob of pack `packNo`. The first location seen stays the chosen one. */
  addEntry(packNo: number, e: PackEntry): AddResult {
    const f = this.fields
    f[PACK] = packNo
    f[OFFSET] = e.offset
    f[STORED] = e.storedLength
    f[RAW] = e.rawLength
    f[FLAGS] = e.type | (e.compression << 8)
    return this.addFields(e.id, 0, f)
  }

  /** Store a blob just written at this location (replacing any location it had; its mark stays). */
  set(id: Uint8Array, packNo: number, offset: number, storedLength: number, rawLength: number, type: BlobTypeValue, compression: number): void {
    const f = this.fields
    f[PACK] = packNo
    f[OFFSET] = offset
    f[STORED] = storedLength
    f[RAW] = rawLength
    f[FLAGS] = type | (compression << 8)
    // One probe for a new blob, the writer's case.
    if (this.map.setIfAbsent(id, f)) return
    const v = this.map.get(id)!
    f[FLAGS] |= v[FLAGS]! & MARK
    v.set(f)
  }

  /** The id is `bytes[at .. at+32]`; `f` is laid out as INDEX_FIELD (the mark bit clear). */
  private addFields(bytes: Uint8Array, at: number, f: Uint32Array): AddResult {
    if (this.map.setIfAbsent(bytes, f, at)) return 'new'
    if (!this.keepCopies) return 'known'
    // Seen before (rare): a further location, unless it is one known already (the same pack listed by two index files).
    const id = bytes.subarray(at, at + ID_BYTES)
    const loc = toLocation(f)
    if (this.locations(id).some((k) => sameLocation(k, loc))) return 'known'
    const hex = toHex(id)
    const more = this.more.get(hex)
    if (more) more.copies.push(loc)
    else this.more.set(hex, {id: Buffer.from(id), copies: [loc]})
    return 'copy'
  }

  // ---- lookups ----

  has(id: Uint8Array): boolean {
    return this.map.has(id)
  }

  /** The chosen location, by pack name. */
  location(id: Uint8Array): BlobLocation | undefined {
    const v = this.map.get(id)
    if (!v) return undefined
    return {pack: this.packs[v[PACK]!]!.name, offset: v[OFFSET]!, storedLength: v[STORED]!, rawLength: v[RAW]!, type: (v[FLAGS]! & 0xff) as BlobTypeValue, compression: (v[FLAGS]! >> 8) & 0xff}
  }

  /** Every location of a blob, the chosen one (the one restore reads) first. */
  locations(id: Uint8Array): Location[] {
    const v = this.map.get(id)
    if (!v) return []
    const first = toLocation(v)
    if (this.more.size === 0) return [first]
    return [first, ...(this.more.get(toHex(id))?.copies ?? [])]
  }

  /** The location of `id` in pack `packNo`, if it has one there. */
  locationIn(id: Uint8Array, packNo: number): Location | undefined {
    return this.locations(id).find((l) => l.packNo === packNo)
  }

  /** The further copies of a blob (not the chosen one). */
  copiesOf(id: Uint8Array): readonly Location[] {
    return this.more.size === 0 ? [] : (this.more.get(toHex(id))?.copies ?? [])
  }

  // The lookups below allocate nothing: they run once per chunk reference.

  packOf(id: Uint8Array): number | undefined {
    return this.map.get(id)?.[PACK]
  }

  rawLength(id: Uint8Array): number | undefined {
    return this.map.get(id)?.[RAW]
  }

  typeOf(id: Uint8Array): BlobTypeValue | undefined {
    const v = this.map.get(id)
    return v ? ((v[FLAGS]! & 0xff) as BlobTypeValue) : undefined
  }

  /** True when the chosen copy of `id` is the one at this pack and offset. */
  isChosenCopy(id: Uint8Array, packNo: number, offset: number): boolean {
    const v = this.map.get(id)
    return v !== undefined && v[PACK] === packNo && v[OFFSET] === offset
  }

  // ---- marks ----

  /** Mark a blob. 'missing' when the index does not list it, 'marked' when it was marked already. */
  mark(id: Uint8Array): 'new' | 'marked' | 'missing' {
    const v = this.map.get(id)
    if (!v) return 'missing'
    if ((v[FLAGS]! & MARK) !== 0) return 'marked'
    v[FLAGS] = v[FLAGS]! | MARK
    return 'new'
  }

  isMarked(id: Uint8Array): boolean {
    const v = this.map.get(id)
    return v !== undefined && (v[FLAGS]! & MARK) !== 0
  }

  // ---- choosing among copies ----

  /** Make `copy` (one of copiesOf(id)) the chosen location; the one it replaces becomes a copy. The mark stays. */
  choose(id: Uint8Array, copy: Location): void {
    const v = this.map.get(id)
    const list = this.more.get(toHex(id))?.copies
    const i = list?.indexOf(copy) ?? -1
    if (!v || i < 0) throw new RangeError(`blob ${toHex(id)} has no such copy`)
    list![i] = toLocation(v)
    v[PACK] = copy.packNo
    v[OFFSET] = copy.offset
    v[STORED] = copy.storedLength
    v[RAW] = copy.rawLength
    v[FLAGS] = copy.type | (copy.compression << 8) | (v[FLAGS]! & MARK)
  }

  // ---- iterating ----

  /**
   * Visit every blob's chosen location in insertion order. `id` and `entry` are reused, so a
   * pass over millions of blobs allocates nothing: valid during the call only.
   */
  forEach(fn: (id: Uint8Array, entry: BlobEntry) => void): void {
    const id = Buffer.alloc(ID_BYTES)
    const entry: BlobEntry = {packNo: 0, offset: 0, storedLength: 0, rawLength: 0, type: 0 as BlobTypeValue, compression: 0, marked: false}
    this.map.forEachAt((keys, k, v, at) => {
      for (let i = 0; i < ID_BYTES; i++) id[i] = keys[k + i]!
      const flags = v[at + FLAGS]!
      entry.packNo = v[at + PACK]!
      entry.offset = v[at + OFFSET]!
      entry.storedLength = v[at + STORED]!
      entry.rawLength = v[at + RAW]!
      entry.type = (flags & 0xff) as BlobTypeValue
      entry.compression = (flags >> 8) & 0xff
      entry.marked = (flags & MARK) !== 0
      fn(id, entry)
    })
  }

  /** Visit every further copy (blobs stored more than once). Copies chosen meanwhile are seen in their new place. */
  forEachCopy(fn: (id: Buffer, copy: Location) => void): void {
    for (const {id, copies} of this.more.values()) for (const copy of copies) fn(id, copy)
  }

  /** What the index says a pack holds, every copy included, by offset (one pass over the whole index). */
  entriesOf(packNo: number): PackEntry[] {
    const out: PackEntry[] = []
    const push = (id: Uint8Array, l: Location) => {
      if (l.packNo === packNo) out.push({id: Buffer.from(id), type: l.type, compression: l.compression, offset: l.offset, storedLength: l.storedLength, rawLength: l.rawLength})
    }
    this.forEach((id, e) => push(id, e))
    this.forEachCopy(push)
    return out.sort((a, b) => a.offset - b.offset)
  }
}

function toLocation(v: ArrayLike<number>): Location {
  const flags = v[FLAGS]! & LOCATION_FLAGS
  return {packNo: v[PACK]!, offset: v[OFFSET]!, storedLength: v[STORED]!, rawLength: v[RAW]!, type: (flags & 0xff) as BlobTypeValue, compression: flags >> 8}
}

function sameLocation(a: Location, b: Location): boolean {
  return a.packNo === b.packNo && a.offset === b.offset && a.storedLength === b.storedLength && a.rawLength === b.rawLength && a.type === b.type && a.compression === b.compression
}
