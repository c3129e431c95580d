// Prune's view of the repository's blobs: the repository's BlobIndex, keeping every copy of a
// blob and using its mark bit for garbage collection, with prune's record per pack. Memory is
// that of the index (BlobIndex.byteSize): the per-pack records and the copies of duplicated
// blobs are small next to it, since packs hold many blobs, and a blob is stored twice only after
// a crash or two writers racing.
import {BlobIndex} from '../repo/blobindex.js'
import type {PackEntry} from '../repo/pack.js'

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

export class BlobTable extends BlobIndex<PackRecord> {
  constructor(capacity = 1024) {
    super({newPack: (name, size) => ({name, size, blobBytes: 0, blobCount: 0, sources: [], exists: true, liveBytes: 0, liveCount: 0, reachableBytes: 0}), copies: true, capacity})
  }

  /** Register a pack listed by `source`; returns its number and whether it was new (a pack listed twice is loaded once). */
  addPackFrom(name: string, size: number, source: number): {packNo: number; isNew: boolean} {
    const added = this.addPack(name, size)
    const p = this.packs[added.packNo]!
    if (!p.sources.includes(source)) p.sources.push(source)
    return added
  }

  /** Record one blob of a newly added pack. The first copy seen becomes the chosen one; later ones are copies. */
  override addEntry(packNo: number, e: PackEntry): ReturnType<BlobIndex['addEntry']> {
    const pack = this.packs[packNo]!
    pack.blobBytes += e.storedLength
    pack.blobCount++
    return super.addEntry(packNo, e)
  }

  /**
   * Where a blob has copies in missing packs and in present ones, choose a present one, so
   * marking reads trees that exist. Returns the number of blobs moved.
   */
  preferPresentCopies(): number {
    let moved = 0
    this.forEachCopy((id, copy) => {
      const chosen = this.packOf(id)!
      if (this.packs[chosen]!.exists || !this.packs[copy.packNo]!.exists) return
      this.choose(id, copy)
      moved++
    })
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
    this.forEach((_id, e) => {
      if (e.marked) this.packs[e.packNo]!.reachableBytes += e.storedLength
    })
    this.forEachCopy((id, copy) => {
      if (this.isMarked(id)) this.packs[copy.packNo]!.reachableBytes += copy.storedLength
    })
    const ratio = (packNo: number) => {
      const p = this.packs[packNo]!
      return p.exists ? p.reachableBytes / Math.max(1, p.blobBytes) : -1
    }
    this.forEachCopy((id, copy) => {
      if (!this.isMarked(id)) return
      const chosen = this.packOf(id)!
      // Ties go to the pack whose name sorts first: the choice must not depend on load order, or
      // the next prune would pick the other copy and find more to delete (not idempotent).
      const better = ratio(copy.packNo) > ratio(chosen) || (ratio(copy.packNo) === ratio(chosen) && this.packs[copy.packNo]!.name < this.packs[chosen]!.name)
      if (better) this.choose(id, copy)
    })
    this.forEach((_id, e) => {
      if (!e.marked) return
      const p = this.packs[e.packNo]!
      p.liveBytes += e.storedLength
      p.liveCount++
    })
  }

  /** Counts over distinct blobs. */
  counts(): {blobs: number; live: number; liveBytes: number} {
    let live = 0
    let liveBytes = 0
    this.forEach((_id, e) => {
      if (e.marked) {
        live++
        liveBytes += e.storedLength
      }
    })
    return {blobs: this.size, live, liveBytes}
  }
}
