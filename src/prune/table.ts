// Prune's view of the repository's blobs: one compact IdMap from blob id to its chosen location,
// with the mark bit of garbage collection in the same entry, plus a small table of packs.
// Memory is proportional to the number of distinct blobs: 32 id bytes + 5 x u32 per entry and
// a u32 slot at 70% load, 58 to 115 bytes per blob (IdMap.byteSize reports the real figure).
// Per-pack records and the list of duplicate copies are small next to it: packs hold many
// blobs, and a blob is stored twice only after a crash or two writers racing.
import {IdMap} from '../core/idmap.js'
import type {PackEntry, BlobTypeValue} from '../repo/pack.js'
import type {BlobLocation} from '../repo/repository.js'

// Value slots.
const PACK = 0
const OFFSET = 1
const STORED = 2
const RAW = 3
/** type | compression << 8 | MARK */
const FLAGS = 4
const MARK = 1 << 16

/** Where a pack came from: an index file (its number in the load's file list), or its own header. */
export const FROM_HEADER = -1

export interface PackRecord {
  name: string
  /** Bytes, as the index (or the listing, for a pack read from its header) gives them. */
  size: number
  /** Stored bytes of every blob the pack holds, duplicates included. */
  blobBytes: number
  blobCount: number
  /** Index files listing the pack (FROM_HEADER for a pack indexed from its own header). */
  sources: number[]
  /** Present in data/ when listed. */
  exists: boolean
  /** Stored bytes of marked blobs whose chosen copy is in this pack. */
  liveBytes: number
  liveCount: number
  /** Stored bytes of marked blobs with any copy in this pack (picks which copy of a duplicate to keep). */
  reachableBytes: number
}

export interface DuplicateCopy {
  id: Buffer
  packNo: number
  offset: number
  storedLength: number
  rawLength: number
  flags: number
}

export class BlobTable {
  readonly map: IdMap
  readonly packs: PackRecord[] = []
  private readonly packNos = new Map<string, number>()
  /** Second and later copies of a blob, in other packs. */
  readonly duplicates: DuplicateCopy[] = []

  constructor(initialCapacity = 1024) {
    this.map = new IdMap(5, initialCapacity)
  }

  get size(): number {
    return this.map.size
  }

  packNo(name: string): number | undefined {
    return this.packNos.get(name)
  }

  /** Register a pack; returns its number and whether it was new (a pack listed twice is loaded once). */
  addPack(name: string, size: number, source: number): {packNo: number; isNew: boolean} {
    const known = this.packNos.get(name)
    if (known !== undefined) {
      const p = this.packs[known]!
      if (!p.sources.includes(source)) p.sources.push(source)
      return {packNo: known, isNew: false}
    }
    const packNo = this.packs.length
    this.packs.push({name, size, blobBytes: 0, blobCount: 0, sources: [source], exists: true, liveBytes: 0, liveCount: 0, reachableBytes: 0})
    this.packNos.set(name, packNo)
    return {packNo, isNew: true}
  }

  /** Record one blob of a newly added pack. The first copy seen becomes the chosen one; later ones are duplicates. */
  addEntry(packNo: number, e: PackEntry): void {
    const pack = this.packs[packNo]!
    pack.blobBytes += e.storedLength
    pack.blobCount++
    const flags = e.type | (e.compression << 8)
    if (this.map.has(e.id)) {
      this.duplicates.push({id: e.id, packNo, offset: e.offset, storedLength: e.storedLength, rawLength: e.rawLength, flags})
    } else {
      this.map.set(e.id, [packNo, e.offset, e.storedLength, e.rawLength, flags])
    }
  }

  has(id: Uint8Array): boolean {
    return this.map.has(id)
  }

  packOf(id: Uint8Array): number | undefined {
    return this.map.get(id)?.[PACK]
  }

  location(id: Uint8Array): BlobLocation | undefined {
    const v = this.map.get(id)
    if (!v) return undefined
    return {
      pack: this.packs[v[PACK]!]!.name, offset: v[OFFSET]!, storedLength: v[STORED]!, rawLength: v[RAW]!,
      type: (v[FLAGS]! & 0xff) as BlobTypeValue, compression: (v[FLAGS]! >> 8) & 0xff,
    }
  }

  /** True when `id` is chosen to live at this pack and offset. */
  isChosenCopy(id: Uint8Array, packNo: number, offset: number): boolean {
    const v = this.map.get(id)
    return v !== undefined && v[PACK] === packNo && v[OFFSET] === offset
  }

  isMarked(id: Uint8Array): boolean {
    const v = this.map.get(id)
    return v !== undefined && (v[FLAGS]! & MARK) !== 0
  }

  /** Mark a blob live. 'missing' when no index lists it, 'marked' when it was marked already. */
  mark(id: Uint8Array): 'new' | 'marked' | 'missing' {
    const v = this.map.get(id)
    if (!v) return 'missing'
    if ((v[FLAGS]! & MARK) !== 0) return 'marked'
    v[FLAGS] = v[FLAGS]! | MARK
    return 'new'
  }

  typeOf(id: Uint8Array): BlobTypeValue | undefined {
    const v = this.map.get(id)
    return v ? ((v[FLAGS]! & 0xff) as BlobTypeValue) : undefined
  }

  /** Move a blob's chosen copy to a duplicate (keeping its mark). */
  choose(d: DuplicateCopy): void {
    const v = this.map.get(d.id)
    if (!v) return
    const mark = v[FLAGS]! & MARK
    v[PACK] = d.packNo
    v[OFFSET] = d.offset
    v[STORED] = d.storedLength
    v[RAW] = d.rawLength
    v[FLAGS] = d.flags | mark
  }

  /** The duplicate copy record of the current choice, so it can be swapped back into the list. */
  chosenAsCopy(id: Buffer): DuplicateCopy | undefined {
    const v = this.map.get(id)
    if (!v) return undefined
    return {id, packNo: v[PACK]!, offset: v[OFFSET]!, storedLength: v[STORED]!, rawLength: v[RAW]!, flags: v[FLAGS]! & ~MARK}
  }

  /**
   * Where a blob has copies in missing packs and in present ones, choose a present one, so
   * marking reads trees that exist. Returns the number of blobs moved.
   */
  preferPresentCopies(): number {
    let moved = 0
    for (const [i, d] of this.duplicates.entries()) {
      const chosen = this.packOf(d.id)
      if (chosen === undefined || this.packs[chosen]!.exists || !this.packs[d.packNo]!.exists) continue
      const previous = this.chosenAsCopy(d.id)!
      this.choose(d)
      this.duplicates[i] = previous
      moved++
    }
    return moved
  }

  /**
   * After marking: count live bytes per pack, choosing for every marked blob with several copies
   * the copy in the pack with the most reachable data (a fresh repack over an old pack), so the
   * other packs empty out and are deleted rather than repacked again.
   */
  tally(): void {
    for (const p of this.packs) {
      p.liveBytes = 0
      p.liveCount = 0
      p.reachableBytes = 0
    }
    this.map.forEach((_id, v) => {
      if ((v[FLAGS]! & MARK) !== 0) this.packs[v[PACK]!]!.reachableBytes += v[STORED]!
    })
    for (const d of this.duplicates) {
      if (this.isMarked(d.id)) this.packs[d.packNo]!.reachableBytes += d.storedLength
    }
    const ratio = (packNo: number) => {
      const p = this.packs[packNo]!
      return p.exists ? p.reachableBytes / Math.max(1, p.blobBytes) : -1
    }
    for (const [i, d] of this.duplicates.entries()) {
      if (!this.isMarked(d.id)) continue
      const chosen = this.packOf(d.id)!
      // Ties go to the pack whose name sorts first: the choice must not depend on load order, or
      // the next prune would pick the other copy and find more to delete (not idempotent).
      const better = ratio(d.packNo) > ratio(chosen) || (ratio(d.packNo) === ratio(chosen) && this.packs[d.packNo]!.name < this.packs[chosen]!.name)
      if (better) {
        const previous = this.chosenAsCopy(d.id)!
        this.choose(d)
        this.duplicates[i] = previous
      }
    }
    this.map.forEach((_id, v) => {
      if ((v[FLAGS]! & MARK) === 0) return
      const p = this.packs[v[PACK]!]!
      p.liveBytes += v[STORED]!
      p.liveCount++
    })
  }

  /** Counts over distinct blobs. */
  counts(): {blobs: number; live: number; liveBytes: number} {
    let live = 0
    let liveBytes = 0
    this.map.forEach((_id, v) => {
      if ((v[FLAGS]! & MARK) !== 0) {
        live++
        liveBytes += v[STORED]!
      }
    })
    return {blobs: this.map.size, live, liveBytes}
  }
}
