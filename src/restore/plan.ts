// Where restored bytes come from, planned before anything is read: pure functions over index
// locations (tested directly in test/restore/plan.test.ts).
import type {BlobLocation} from '../repo/repository.js'
import type {Extent} from '../snapshot/tree.js'

/** One chunk of a file: its id (checked after reading) and where the index says it is stored. */
export interface Chunk {
  id: Buffer
  loc: BlobLocation
}

/** Chunks stored back to back in one pack, fetched with one ranged read. */
export interface Run {
  pack: string
  offset: number
  /** Stored bytes (the ranged read). */
  length: number
  /** Plain bytes once inflated. */
  raw: number
  chunks: Chunk[]
  /** Read from local files (a ChunkSource), not from `pack`. */
  local?: boolean
  /** Where its bytes go in the file, when runs do not follow each other (a patched clone); else after the run before. */
  at?: number
}

/**
 * Group a large file's chunks, in file order, into runs of chunks stored next to each other in
 * one pack, each at most `maxBytes` stored and `maxBytes` plain (a chunk larger than that is a
 * run of its own).
 */
export function planRuns(chunks: readonly Chunk[], maxBytes: number): Run[] {
  const runs: Run[] = []
  let run: Run | undefined
  for (const chunk of chunks) {
    const {loc} = chunk
    if (run && loc.pack === run.pack && loc.offset === run.offset + run.length && run.length + loc.storedLength <= maxBytes && run.raw + loc.rawLength <= maxBytes) {
      run.chunks.push(chunk)
      run.length += loc.storedLength
      run.raw += loc.rawLength
    } else {
      run = {pack: loc.pack, offset: loc.offset, length: loc.storedLength, raw: loc.rawLength, chunks: [chunk]}
      runs.push(run)
    }
  }
  return runs
}

/**
 * planRuns, with the chunks `isLocal` says are on this machine taken out: each stretch of them
 * is a local run (at most `maxBytes` plain, or one larger chunk), the stretches between are
 * planned as before. Runs stay in file order.
 */
export function planSourcedRuns(chunks: readonly Chunk[], maxBytes: number, isLocal: (c: Chunk) => boolean): Run[] {
  const runs: Run[] = []
  let remote: Chunk[] = []
  let local: Run | undefined
  for (const chunk of chunks) {
    if (!isLocal(chunk)) {
      local = undefined
      remote.push(chunk)
      continue
    }
    for (const run of planRuns(remote, maxBytes)) runs.push(run) // not a spread: a stretch can be 100,000s of runs
    remote = []
    const raw = chunk.loc.rawLength
    if (local && local.raw + raw <= maxBytes) {
      local.chunks.push(chunk)
      local.raw += raw
    } else {
      local = {pack: '', offset: 0, length: 0, raw, chunks: [chunk], local: true}
      runs.push(local)
    }
  }
  for (const run of planRuns(remote, maxBytes)) runs.push(run)
  return runs
}

/** One ranged read of a batch, into the batch's buffer at `at`. */
export interface RangeRead {
  pack: string
  offset: number
  length: number
  at: number
}

export interface RangePlan {
  ranges: RangeRead[]
  /** Per blob (in the order given): where its stored bytes land in the buffer. */
  at: number[]
  /** Buffer bytes used. */
  bytes: number
}

/**
 * Cover distinct blobs (the chunks of a batch of small files, from any packs, in any order) with
 * few ranged reads into one buffer of `capacity` bytes: blobs of one pack are read in one range
 * when at most `maxGap` bytes of other blobs lie between them, as long as the bytes read through
 * still leave room for every blob. Their stored lengths must add up to at most `capacity`.
 */
export function planRanges(blobs: readonly BlobLocation[], maxGap: number, capacity: number): RangePlan {
  const order = blobs.map((_, i) => i).sort((a, b) => {
    const x = blobs[a]!
    const y = blobs[b]!
    return x.pack < y.pack ? -1 : x.pack > y.pack ? 1 : x.offset - y.offset
  })
  let remaining = blobs.reduce((n, b) => n + b.storedLength, 0)
  if (remaining > capacity) throw new RangeError(`blobs of ${remaining} bytes do not fit a buffer of ${capacity}`)
  const ranges: RangeRead[] = []
  const at: number[] = new Array(blobs.length)
  let used = 0
  let range: RangeRead | undefined
  for (const i of order) {
    const loc = blobs[i]!
    remaining -= loc.storedLength
    const end = loc.offset + loc.storedLength
    if (range && range.pack === loc.pack && loc.offset - (range.offset + range.length) <= maxGap) {
      // Reading through the gap (or an overlap, in a damaged index) grows this range by `growth`.
      const growth = Math.max(0, end - (range.offset + range.length))
      if (used + growth + remaining <= capacity) {
        range.length += growth
        used += growth
        at[i] = range.at + (loc.offset - range.offset)
        continue
      }
    }
    range = {pack: loc.pack, offset: loc.offset, length: loc.storedLength, at: used}
    ranges.push(range)
    at[i] = used
    used += loc.storedLength
  }
  return {ranges, at, bytes: used}
}

/** Bytes of a file at their offset in it. */
export interface Piece {
  offset: number
  parts: Uint8Array[]
}

/**
 * Where a file's data goes: its chunks hold the data extents of a sparse file back to back, so
 * each run of plain bytes, in order, is split at extent boundaries into pieces at their file
 * offsets. A file without extents is one extent from 0. Walks the extents once per file.
 */
export class ExtentMap {
  private index = 0
  /** File offset the next byte goes to, and the bytes left in its extent. */
  private offset: number
  private left: number

  constructor(private readonly extents: readonly Extent[] | undefined) {
    this.offset = extents?.[0]?.offset ?? 0
    this.left = extents ? (extents[0]?.length ?? 0) : Number.POSITIVE_INFINITY
  }

  /** The pieces of the next `parts` of data. Throws when there is more data than extents. */
  next(parts: readonly Uint8Array[]): Piece[] {
    const pieces: Piece[] = []
    let piece: Piece | undefined
    for (let part of parts) {
      while (part.length > 0) {
        if (this.left === 0) {
          this.index++
          const e = this.extents![this.index]
          if (!e) throw new RangeError('more data than the file\'s extents hold')
          this.offset = e.offset
          this.left = e.length
          piece = undefined
        }
        const take = Math.min(part.length, this.left)
        const bytes = take === part.length ? part : part.subarray(0, take)
        if (!piece) {
          piece = {offset: this.offset, parts: []}
          pieces.push(piece)
        }
        piece.parts.push(bytes)
        this.offset += take
        this.left -= take
        part = part.subarray(take)
      }
    }
    return pieces
  }
}
