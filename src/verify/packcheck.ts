// Checking one pack: its size against the index, its trailer and header against the index
// (one ranged get of the tail), and with --read-data every blob in it: read in large ranges
// into reused buffers, then inflated and hashed in batches, each one job on the libuv thread
// pool (openBlobs) writing into another reused buffer, so the main thread only moves buffers
// around. Every problem becomes a finding; nothing here throws for damage, only for I/O
// failures that are not about the data.
import {inflateBatches, inflatedSize, openBlobs} from '../core/codec.js'
import {IntegrityError, ObjectMissingError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import type {ReadPool} from '../core/readpool.js'
import {BlobType, type PackEntry, readRanges} from '../repo/pack.js'
import {readPackHeader} from '../repo/packheader.js'
import {damagedBlob} from '../repo/repository.js'
import {chunkLengthProblem} from './bounds.js'
import type {Backend} from '../store/backend.js'
import type {IndexedPackInfo, VerifyIndex} from './blobindex.js'
import type {Findings} from './findings.js'

/** Bytes read per get when reading a pack's blobs (half a default pack): as fast as whole packs here, ~30 MB less peak memory. */
export const SEGMENT_BYTES = 2 * 1024 * 1024
/** Plain bytes inflated and hashed as one batch, and the size of the buffers they inflate into. */
export const BATCH_RAW_BYTES = 2 * 1024 * 1024

export interface PackCheckContext {
  backend: Backend
  index: VerifyIndex
  findings: Findings
  /** Record that a blob is damaged: finding `n` names it. */
  markBad(id: Uint8Array, n: number): void
  onRead(bytes: number): void
  onBlob(rawBytes: number): void
  /** Segment buffers, SEGMENT_BYTES each, one per pack being read. */
  buffers: ReadPool
  /** What batches inflate into, BATCH_RAW_BYTES each, one per pack being read. */
  inflated: ReadPool
  /** The config's maximum chunk size: a data blob claiming more is reported, never inflated (undefined: config unreadable). */
  maxChunkSize?: number
}

export interface PackStatus {
  pack: IndexedPackInfo
  packNo: number
  /** Size in the repository, or undefined when the pack is missing. */
  actualSize: number | undefined
}

/** Findings about a pack's presence and size, from the listing alone (no reads). */
export function checkPackPresence(ctx: PackCheckContext, s: PackStatus): void {
  const {pack, actualSize} = s
  if (actualSize === undefined) {
    addPackProblem(ctx, pack, ctx.findings.add({kind: 'pack-missing', object: 'pack', id: pack.name, message: `pack ${pack.name} is in the index but not in the repository`}))
  } else if (actualSize < pack.size) {
    addPackProblem(ctx, pack, ctx.findings.add({kind: 'pack-truncated', object: 'pack', id: pack.name, message: `pack ${pack.name} is truncated: ${actualSize} bytes, the index says ${pack.size}`}))
  } else if (actualSize > pack.size) {
    addPackProblem(ctx, pack, ctx.findings.add({kind: 'pack-size-mismatch', object: 'pack', id: pack.name, message: `pack ${pack.name} has ${actualSize} bytes, the index says ${pack.size}`}))
  }
}

function addPackProblem(ctx: PackCheckContext, pack: IndexedPackInfo, n: number): void {
  if (!pack.problems.includes(n)) pack.problems.push(n)
}

/**
 * Read and check the pack's trailer and header (one ranged get, sized from the index), compare
 * them with the index, and with `readData` check every blob.
 */
export async function checkPackContents(ctx: PackCheckContext, s: PackStatus, readData: boolean): Promise<void> {
  const {pack, packNo, actualSize} = s
  if (actualSize === undefined) return
  const header = await readHeader(ctx, pack, actualSize)
  if (header) compareWithIndex(ctx, pack, packNo, header)
  if (!readData) return
  // A damaged header cannot say where blobs are: use what the index says (that is what restore reads).
  const entries = header ?? ctx.index.entriesOf(packNo)
  await checkBlobs(ctx, pack, entries, actualSize)
}

async function readHeader(ctx: PackCheckContext, pack: IndexedPackInfo, actualSize: number): Promise<PackEntry[] | undefined> {
  const damaged = (message: string) => {
    addPackProblem(ctx, pack, ctx.findings.add({kind: 'pack-header-damaged', object: 'pack', id: pack.name, message}))
    return undefined
  }
  try {
    const header = await readPackHeader(ctx.backend, pack.name, actualSize, pack.claims)
    ctx.onRead(header.bytesRead)
    return header.entries
  } catch (err) {
    if (err instanceof IntegrityError) return damaged(err.message)
    if (err instanceof ObjectMissingError) return damaged(`pack ${pack.name} vanished while being checked`)
    throw err
  }
}

async function get(ctx: PackCheckContext, name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
  const bytes = await ctx.backend.get('data', name, {offset, length}, into)
  ctx.onRead(bytes.length)
  return bytes
}

/** The header must list exactly the blobs the index places in this pack, at the same offsets and sizes. */
function compareWithIndex(ctx: PackCheckContext, pack: IndexedPackInfo, packNo: number, header: PackEntry[]): void {
  const problems: string[] = []
  let matched = 0
  for (const e of header) {
    const loc = ctx.index.locationIn(e.id, packNo)
    if (!loc) {
      problems.push(`blob ${toHex(e.id)} is in the header but not in the index`)
    } else if (loc.offset !== e.offset || loc.storedLength !== e.storedLength || loc.rawLength !== e.rawLength || loc.type !== e.type || loc.compression !== e.compression) {
      problems.push(`blob ${toHex(e.id)}: header says offset ${e.offset}, ${e.storedLength} bytes stored, ${e.rawLength} raw, type ${e.type}, compression ${e.compression}; the index says offset ${loc.offset}, ${loc.storedLength}, ${loc.rawLength}, type ${loc.type}, compression ${loc.compression}`)
    } else {
      matched++
    }
  }
  if (matched < pack.claims) {
    const inHeader = new Set(header.map((e) => toHex(e.id)))
    for (const e of ctx.index.entriesOf(packNo)) {
      if (!inHeader.has(toHex(e.id))) problems.push(`blob ${toHex(e.id)} is in the index but not in the header`)
    }
  }
  if (problems.length === 0) return
  const shown = problems.slice(0, 3).join('; ') + (problems.length > 3 ? `; and ${problems.length - 3} more` : '')
  addPackProblem(ctx, pack, ctx.findings.add({kind: 'pack-header-mismatch', object: 'pack', id: pack.name, message: `pack ${pack.name}: header and index disagree: ${shown}`}))
}

/** Read blobs in ranges of up to SEGMENT_BYTES and check each against its id. */
async function checkBlobs(ctx: PackCheckContext, pack: IndexedPackInfo, entries: readonly PackEntry[], actualSize: number): Promise<void> {
  // Blobs past the end of a truncated pack are covered by its pack-truncated finding.
  // A chunk longer than the bound is reported, not inflated (that is the memory a hostile index asks for).
  const readable = entries.filter((e) => e.offset + e.storedLength <= actualSize && !tooLarge(ctx, pack, e)).sort((a, b) => a.offset - b.offset)
  for (const {start, end, blobs: segment} of readRanges(readable, SEGMENT_BYTES)) {
    // Pooled: blobs stored as they are (most large binary data) are hashed where they were read.
    // Only a single blob larger than a segment gets a buffer of its own.
    const rb = end - start <= SEGMENT_BYTES ? await ctx.buffers.acquire() : undefined
    try {
      let bytes: Buffer
      try {
        bytes = await get(ctx, pack.name, start, end - start, rb?.buf.subarray(0, end - start))
      } catch (err) {
        if (!(err instanceof IntegrityError || err instanceof ObjectMissingError)) throw err
        for (const e of segment) blobDamaged(ctx, pack, e, `blob ${toHex(e.id)} in pack ${pack.name} cannot be read: ${err.message}`)
        continue
      }
      for (const batch of inflateBatches(segment, BATCH_RAW_BYTES)) await checkBatch(ctx, pack, batch, bytes, start)
    } finally {
      rb?.retire()
    }
  }
}

/** Inflate a batch of blobs and compare each with its id (one job on the thread pool). */
async function checkBatch(ctx: PackCheckContext, pack: IndexedPackInfo, batch: readonly PackEntry[], bytes: Buffer, start: number): Promise<void> {
  const raw = inflatedSize(batch)
  // Only a single blob larger than a batch buffer gets a buffer of its own.
  const ib = raw > 0 && raw <= BATCH_RAW_BYTES ? await ctx.inflated.acquire() : undefined
  try {
    const opened = await openBlobs(bytes, batch.map((e) => ({...e, offset: e.offset - start})), ib?.buf ?? Buffer.allocUnsafe(raw))
    opened.forEach((o, i) => {
      const e = batch[i]!
      if (o.ok) ctx.onBlob(e.rawLength)
      else blobDamaged(ctx, pack, e, damagedBlob(e.id, pack.name, o.error).message)
    })
  } finally {
    ib?.retire()
  }
}

function tooLarge(ctx: PackCheckContext, pack: IndexedPackInfo, e: PackEntry): boolean {
  const problem = ctx.maxChunkSize === undefined ? undefined : chunkLengthProblem(e.type, e.rawLength, ctx.maxChunkSize)
  if (!problem) return false
  const hex = toHex(e.id)
  ctx.markBad(e.id, ctx.findings.add({kind: 'chunk-too-large', object: 'chunk', id: hex, pack: pack.name, message: `chunk ${hex} ${problem}`}))
  return true
}

function blobDamaged(ctx: PackCheckContext, pack: IndexedPackInfo, e: PackEntry, message: string): void {
  const tree = e.type === BlobType.tree
  const n = ctx.findings.add({kind: tree ? 'tree-corrupt' : 'chunk-corrupt', object: tree ? 'tree' : 'chunk', id: toHex(e.id), pack: pack.name, message})
  ctx.markBad(e.id, n)
}
