// Writes a snapshot's tree into a fresh directory (restore's temp tree). Three lanes share the
// main thread, and the thread pool does the reading, inflating, hashing and writing:
// - The walk reads trees (the next few sibling subtrees ahead), creates directories and
//   symlinks, and hands out files in tree order.
// - Small files (under LARGE_FILE) are gathered into batches across directories. A batch's blobs
//   are read with one ranged read per stretch of a pack (not one open and read per blob),
//   then inflated and checked in one thread-pool job (openBlobs), while the walk fills the next batch and
//   the batch before is written: its files are created, written, owned, moded and timed in one
//   thread-pool job (writeNewFiles), beside the main thread (without the addon: synchronous calls).
// - Large files are written beside the walk, LARGE_LANES at a time (writes to one file take
//   turns in the kernel, writes to two files need not): runs of adjacent chunks are fetched and
//   checked RUNS_AHEAD ahead of the write, and a run stored as is is written straight from the
//   buffer it was read into. A written file is flushed in the background (fdatasync, when a flush is free),
//   so its data goes to disk while the rest is restored and the syncfs that ends the restore
//   finds little left to write.
// A directory's owner, mode and times are set once everything in it is written: its mtime would
// change otherwise, and a read-only mode would refuse its children.
//
// Nothing unverified is written: every chunk is checked against its id before the write that
// uses it. Every entry is created fresh (O_EXCL, mkdir, symlink) inside a directory this restore
// created, files with O_NOFOLLOW; names come checked from decodeTree.
//
// Memory is bounded: BATCHES_AHEAD + 1 batch buffers and LARGE_LANES x (RUNS_AHEAD + 1) run
// buffers, each with a buffer to inflate into (allocated on first need), all pooled, the
// queued large files (LARGE_QUEUE, their chunk lists resolved only when their turn comes), and
// the trees on the current path with TREES_AHEAD siblings of each.
import {closeSync, constants as fsc, fchmodSync, fchownSync, lchownSync, chmodSync, mkdirSync, openSync, promises as fsp, symlinkSync, writeSync, writevSync} from 'node:fs'

import {mapLimit} from '../core/concurrency.js'
import {inflatedSize, openBlobs} from '../core/codec.js'
import {BadPathError, IntegrityError, ObjectMissingError} from '../core/errors.js'
import {type NewFile, setTimesNs, writeNewFiles} from '../core/fsmeta.js'
import {hashBuffer} from '../core/hashpool.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import {checkBlobBound, damagedBlob, type Repository} from '../repo/repository.js'
import {ReadBuffer, ReadPool} from '../core/readpool.js'
import {childPath, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'
import type {ExcludeMatcher} from '../snapshot/exclude.js'
import {type Chunk, planRanges, planRuns, type Run} from './plan.js'
import {selects} from './select.js'

/** Files from this size up are large: written one at a time, in runs. */
const LARGE_FILE = 1024 * 1024
/** Largest run of a large file (one ranged read, one write), and the size of a run buffer. */
const MAX_RUN = 1024 * 1024
/** Large files written at once: writes to one file take turns in the kernel, to two need not. */
const LARGE_LANES = 2
/** Runs of a large file being written that are fetched and checked ahead of its write. */
const RUNS_AHEAD = 3
/** A batch of small files closes at this many files or BATCH_STORED stored bytes. */
const BATCH_FILES = 64
const BATCH_STORED = 512 * 1024
/** A batch's buffer: its blobs plus the stretches of other blobs read through between them. */
const BATCH_BUFFER = 1024 * 1024
/** A batch also closes before its files add up to more than this (what its blobs inflate to). */
const BATCH_RAW = 2 * 1024 * 1024
/** Bytes of other blobs read through rather than starting another ranged read. */
const RANGE_GAP = 64 * 1024
/** Batches being fetched while the one before them is written. */
const BATCHES_AHEAD = 2
/** Large files waiting for their turn before the walk waits, and their chunks (about 4 GiB). */
const LARGE_QUEUE = 32
const LARGE_QUEUE_CHUNKS = 32 * 1024
/** Sibling subtrees read ahead of the walk. */
const TREES_AHEAD = 4
/** Background flushes of written large files at once (each holds a thread of the pool), and the smallest file flushed. */
const FLUSHES = 2
const FLUSH_MIN = 8 * 1024 * 1024
/** Ranged reads in flight for one batch. */
const IO_AT_ONCE = 8
/** Longest path the kernel takes (Linux PATH_MAX, with its NUL). */
const PATH_MAX = 4096

export type Meta = Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>

export interface WriterProgress {
  files: number
  bytes: number
  path: string
}

/** A directory being restored: its metadata is applied once nothing in it is pending. */
class DirTask {
  /** Entries handed out and not yet written, plus one while the walk is still listing it. */
  pending = 1

  constructor(readonly abs: Buffer, readonly meta: Meta, readonly parent: DirTask | undefined) {}
}

interface FileJob {
  node: TreeNode
  abs: Buffer
  rel: string
  dir: DirTask
  /** Resolved when the file is handed out (small files) or when its turn comes (large ones). */
  chunks?: Chunk[]
}

/** Small files whose blobs are fetched together. */
class Batch {
  readonly files: FileJob[] = []
  /** Every chunk of every file, in order (a blob two files share is read through once, see planRanges). */
  readonly blobs: Chunk[] = []
  stored = 0
  raw = 0
  fetched: Promise<Uint8Array[]> | undefined
  buffer: ReadBuffer | undefined
  inflated: ReadBuffer | undefined

  add(job: FileJob, chunks: Chunk[], stored: number): void {
    this.files.push(job)
    for (const c of chunks) this.blobs.push(c)
    this.stored += stored
    this.raw += job.node.size
  }

  release(): void {
    this.buffer?.retire()
    this.inflated?.retire()
    this.buffer = this.inflated = undefined
  }
}

interface FetchedRun {
  /** The run's plain bytes in order: one buffer when stored as is, else one per chunk. */
  parts: Uint8Array[]
  release: () => void
}

export class TreeWriter {
  files = 0
  dirs = 0
  symlinks = 0
  bytes = 0
  /** File bytes handed out to be written so far: never more than the snapshot declared. */
  private planned = 0
  private failure: {error: unknown} | undefined
  private readonly owners = process.getuid?.() === 0
  private exclude: ExcludeMatcher = () => false

  private batch = new Batch()
  /** Sealed batches, fetching or fetched, oldest first. */
  private readonly batches: Batch[] = []
  private readonly batchBuffers = new ReadPool(BATCHES_AHEAD + 1, BATCH_BUFFER)
  /** What batches inflate into (allocated on first need: a repository of raw blobs needs none). */
  private readonly batchInflated = new ReadPool(BATCHES_AHEAD + 1, BATCH_RAW)

  private readonly largeQueue: FileJob[] = []
  /** Chunks of the queued large files (their lists are resolved only when their turn comes). */
  private largeQueued = 0
  private readonly largeLanes = new Set<Promise<void>>()
  private largeRoom: (() => void) | undefined
  private readonly runBuffers = new ReadPool(LARGE_LANES * (RUNS_AHEAD + 1), MAX_RUN)
  private readonly runInflated = new ReadPool(LARGE_LANES * (RUNS_AHEAD + 1), MAX_RUN)
  private readonly flushes = new Set<Promise<void>>()

  /** `maxBytes`: what the snapshot declares its files hold (its summary); writing more is refused. */
  constructor(private readonly repo: Repository, private readonly onProgress?: (p: WriterProgress) => void, private readonly maxBytes = Number.MAX_SAFE_INTEGER) {}

  /**
   * Restore tree `treeId` into the existing empty directory `root`, then give `root` the
   * metadata `rootMeta`. `includes`: path parts of each --include; undefined means everything.
   * `exclude`: paths left out (restore --exclude; select.ts).
   * On failure, returns only once nothing it started is still running.
   */
  async write(treeId: Buffer, root: Buffer, rootMeta: Meta, includes: string[][] | undefined, exclude?: ExcludeMatcher): Promise<void> {
    if (exclude) this.exclude = exclude
    const rootDir = new DirTask(root, rootMeta, undefined)
    try {
      await this.walk(this.readTree(treeId), rootDir, '', includes)
      await this.sealBatch()
      while (this.batches.length > 0) await this.writeOldestBatch()
      while (this.largeLanes.size > 0) await Promise.all(this.largeLanes)
      await Promise.all(this.flushes)
      this.check()
      if (rootDir.pending !== 0) throw new Error(`restore left ${rootDir.pending} entries of the root pending`)
    } catch (err) {
      this.fail(err)
      await this.settle()
      throw this.failure!.error
    }
  }

  private fail(err: unknown): void {
    this.failure ??= {error: err}
  }

  /** Stop at the first failure of any lane. */
  private check(): void {
    if (this.failure) throw this.failure.error
  }

  /** Wait until nothing started is running (after a failure), and give buffers back. */
  private async settle(): Promise<void> {
    for (const b of [...this.batches, this.batch]) {
      await b.fetched?.catch(() => undefined)
      b.release()
    }
    this.batches.length = 0
    this.largeQueue.length = 0
    while (this.largeLanes.size > 0) await Promise.all(this.largeLanes)
    await Promise.all(this.flushes)
  }

  private async readTree(id: Buffer): Promise<TreeNode[]> {
    return decodeTree(await this.repo.readBlob(id, BlobType.tree), toHex(id))
  }

  // ---- the walk ----

  private async walk(tree: Promise<TreeNode[]>, dir: DirTask, rel: string, includes: string[][] | undefined): Promise<void> {
    const nodes = await tree
    const subdirs: {node: TreeNode; rel: string; below: string[][] | undefined}[] = []
    for (const node of nodes) {
      this.check()
      const shown = displayName(node.name)
      const childRel = rel ? `${rel}/${shown}` : shown
      const {take, below} = selects(includes, this.exclude, childRel, shown)
      if (!take) continue
      if (dir.abs.length + 1 + node.name.length >= PATH_MAX) throw tooLong(childRel)
      if (node.type === 'dir') {
        subdirs.push({node, rel: childRel, below})
        continue
      }
      if (below) continue // an include naming something below a non-directory restores nothing
      const abs = childPath(dir.abs, node.name)
      if (node.type === 'symlink') {
        symlinkSync(node.target!, abs)
        this.applyMeta(abs, node)
        this.symlinks++
        this.onProgress?.({files: this.files, bytes: this.bytes, path: childRel})
        continue
      }
      const job: FileJob = {node, abs, rel: childRel, dir}
      this.planned += node.size
      if (this.planned > this.maxBytes) throw new IntegrityError(`the snapshot's files hold more than the ${this.maxBytes} bytes its manifest declares (at ${childRel}): refusing to write more`)
      dir.pending++
      if (node.size < LARGE_FILE) {
        const chunks = this.chunksOf(node)
        const stored = chunks.reduce((n, c) => n + c.loc.storedLength, 0)
        job.chunks = chunks
        // A small file stored in more than a batch buffer (not written by ckpt) goes the large way.
        if (stored <= BATCH_BUFFER) {
          await this.addSmall(job, chunks, stored)
          continue
        }
      }
      await this.addLarge(job)
    }
    // Subdirectories one by one, the next few subtrees read ahead.
    const ahead: Promise<TreeNode[]>[] = []
    for (let i = 0; i < subdirs.length; i++) {
      while (ahead.length < TREES_AHEAD && i + ahead.length < subdirs.length) {
        const read = this.readTree(subdirs[i + ahead.length]!.node.subtree!)
        read.catch(() => undefined) // reported when its turn comes
        ahead.push(read)
      }
      this.check()
      const {node, rel: childRel, below} = subdirs[i]!
      const abs = childPath(dir.abs, node.name)
      mkdirSync(abs, 0o700)
      dir.pending++
      await this.walk(ahead.shift()!, new DirTask(abs, node, dir), childRel, below)
    }
    this.entryDone(dir)
  }

  /** Where a file's chunks are stored; refuses a file whose chunks are missing or do not add up to its size. */
  private chunksOf(node: TreeNode): Chunk[] {
    const chunks: Chunk[] = []
    let raw = 0
    for (const id of node.chunks ?? []) {
      const loc = this.repo.lookup(id)
      if (!loc) throw new ObjectMissingError(`chunk ${toHex(id)} of ${displayName(node.name)} is not in the index`, {blob: toHex(id)})
      if (loc.type !== BlobType.data) throw new IntegrityError(`chunk ${toHex(id)} of ${displayName(node.name)} is not a data blob`, {blob: toHex(id)})
      checkBlobBound(id, loc, this.repo.config)
      chunks.push({id, loc})
      raw += loc.rawLength
    }
    // Each chunk is checked to inflate to its indexed length, so this is the file's length.
    if (raw !== node.size) throw new IntegrityError(`file ${displayName(node.name)}: chunks add up to ${raw} bytes, the tree says ${node.size}`)
    return chunks
  }

  /** One entry of `dir` is written (or the walk has listed it): when none is left, finish it. */
  private entryDone(dir: DirTask): void {
    if (--dir.pending > 0 || this.failure) return
    this.applyMeta(dir.abs, dir.meta)
    if (dir.parent) {
      this.dirs++
      this.entryDone(dir.parent)
    }
  }

  private fileDone(job: FileJob): void {
    this.files++
    this.bytes += job.node.size
    this.onProgress?.({files: this.files, bytes: this.bytes, path: job.rel})
    this.entryDone(job.dir)
  }

  /** Owner (when root), mode, then times: chown clears setuid bits, and times must come last. */
  private applyMeta(abs: Buffer, meta: Meta): void {
    if (this.owners) lchownSync(abs, meta.uid, meta.gid)
    if (meta.type !== 'symlink') chmodSync(abs, meta.mode)
    setTimesNs(abs, meta.mtimeNs, meta.mtimeNs)
  }

  // ---- small files ----

  private async addSmall(job: FileJob, chunks: Chunk[], stored: number): Promise<void> {
    if (this.batch.stored + stored > BATCH_BUFFER || this.batch.raw + job.node.size > BATCH_RAW) await this.sealBatch()
    this.batch.add(job, chunks, stored)
    if (this.batch.files.length >= BATCH_FILES || this.batch.stored >= BATCH_STORED) await this.sealBatch()
  }

  /** Start fetching the batch being filled; write the oldest once too many are ahead. */
  private async sealBatch(): Promise<void> {
    const batch = this.batch
    if (batch.files.length === 0) return
    this.batch = new Batch()
    batch.fetched = this.fetchBatch(batch)
    batch.fetched.catch(() => undefined) // reported when its turn comes
    this.batches.push(batch)
    while (this.batches.length > BATCHES_AHEAD) await this.writeOldestBatch()
  }

  private async fetchBatch(batch: Batch): Promise<Uint8Array[]> {
    if (batch.blobs.length === 0) return []
    const rb = await this.batchBuffers.acquire()
    batch.buffer = rb
    const raw = inflatedSize(batch.blobs.map((b) => b.loc))
    if (raw > 0) batch.inflated = await this.batchInflated.acquire()
    const plan = planRanges(batch.blobs.map((b) => b.loc), RANGE_GAP, rb.buf.length)
    await mapLimit(plan.ranges, IO_AT_ONCE, (r) => this.repo.backend.get('data', r.pack, {offset: r.offset, length: r.length}, rb.buf.subarray(r.at, r.at + r.length)))
    return this.open(batch.blobs, rb.buf, plan.at, batch.inflated?.buf ?? Buffer.alloc(0))
  }

  private async writeOldestBatch(): Promise<void> {
    const batch = this.batches.shift()!
    try {
      const plain = await batch.fetched!
      this.check()
      const files: NewFile[] = []
      let next = 0
      for (const {abs, node, chunks} of batch.files) {
        const n = chunks!.length
        files.push({path: abs, parts: plain.slice(next, next + n), mode: node.mode, uid: node.uid, gid: node.gid, mtimeNs: node.mtimeNs})
        next += n
      }
      // One job on the thread pool for the whole batch; without the addon, here, one call at a time.
      if (!(await writeNewFiles(files, this.owners))) batch.files.forEach((job, i) => this.writeSmallFile(job, files[i]!.parts))
      for (const job of batch.files) this.fileDone(job)
    } finally {
      batch.release()
    }
  }

  /** Create, write, own, mode and time one small file, with synchronous calls (without the addon). */
  private writeSmallFile(job: FileJob, parts: readonly Uint8Array[]): void {
    const {node, abs} = job
    const fd = openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    try {
      if (parts.length === 1) writeAllSync(fd, parts[0]!)
      else if (parts.length > 1) writevAllSync(fd, parts)
      if (this.owners) fchownSync(fd, node.uid, node.gid)
      fchmodSync(fd, node.mode)
    } finally {
      closeSync(fd)
    }
    setTimesNs(abs, node.mtimeNs, node.mtimeNs)
  }

  // ---- large files ----

  private async addLarge(job: FileJob): Promise<void> {
    this.largeQueue.push(job)
    this.largeQueued += job.node.chunks?.length ?? 0
    if (this.largeLanes.size < LARGE_LANES) {
      const lane: Promise<void> = this.runLargeLane().finally(() => {
        this.largeLanes.delete(lane)
        this.wakeWalk()
      })
      this.largeLanes.add(lane)
    }
    while (this.largeQueue.length > LARGE_QUEUE || (this.largeQueued > LARGE_QUEUE_CHUNKS && this.largeQueue.length > 1)) {
      await new Promise<void>((resolve) => (this.largeRoom = resolve))
      this.check()
    }
  }

  private async runLargeLane(): Promise<void> {
    try {
      while (this.largeQueue.length > 0 && !this.failure) {
        const job = this.largeQueue.shift()!
        this.largeQueued -= job.node.chunks?.length ?? 0
        this.wakeWalk()
        await this.writeLargeFile(job)
        this.fileDone(job)
      }
    } catch (err) {
      this.fail(err)
    }
  }

  private wakeWalk(): void {
    const wake = this.largeRoom
    this.largeRoom = undefined
    wake?.()
  }

  /**
   * Write a large file run by run; each run's chunks are checked on the hash pool while earlier
   * runs are written, so no unverified byte reaches the file. Once written, the file is handed
   * to a background flush.
   */
  private async writeLargeFile(job: FileJob): Promise<void> {
    const {node, abs} = job
    const runs = planRuns(job.chunks ?? this.chunksOf(node), MAX_RUN)
    const fh = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    const pending: Promise<FetchedRun>[] = []
    let flushing = false
    try {
      let position = 0
      for (let i = 0; i < runs.length; i++) {
        this.check() // another lane failed
        while (pending.length < RUNS_AHEAD && i + pending.length < runs.length) {
          const fetch = this.fetchRun(runs[i + pending.length]!)
          fetch.catch(() => undefined) // reported when its turn comes
          pending.push(fetch)
        }
        const run = await pending.shift()!
        try {
          position += await writeAllAt(fh, run.parts, position)
        } finally {
          run.release()
        }
      }
      if (this.owners) fchownSync(fh.fd, node.uid, node.gid)
      fchmodSync(fh.fd, node.mode)
      setTimesNs(abs, node.mtimeNs, node.mtimeNs)
      // Never waits: with both flushes busy, or for a file too small to be worth a flush of its
      // own (each is a cache flush of the device), the final syncfs writes it.
      if (node.size >= FLUSH_MIN && this.flushes.size < FLUSHES) {
        this.flushInBackground(fh)
        flushing = true
      }
    } catch (err) {
      // Reads started must finish before their buffers go back, and must not surface later.
      for (const p of pending) await p.then((r) => r.release(), () => undefined)
      throw err
    } finally {
      if (!flushing) await fh.close()
    }
  }

  /** Start writing a finished file's data to disk now, beside the rest of the restore. */
  private flushInBackground(fh: fsp.FileHandle): void {
    const flush = (async () => {
      try {
        await fh.datasync()
      } finally {
        await fh.close()
      }
    })().catch((err: unknown) => this.fail(err))
    const tracked: Promise<void> = flush.finally(() => this.flushes.delete(tracked))
    this.flushes.add(tracked)
  }

  /** Read a run into a pooled buffer, inflate and check it; the caller writes, then releases. */
  private async fetchRun(run: Run): Promise<FetchedRun> {
    // A chunk larger than a run buffer (a repository made with a large maxSize) gets buffers of its own.
    const own = run.length > MAX_RUN || run.raw > MAX_RUN
    const rb = own ? undefined : await this.runBuffers.acquire()
    const raw = inflatedSize(run.chunks.map((c) => c.loc))
    const ib = own || raw === 0 ? undefined : await this.runInflated.acquire()
    const release = () => {
      rb?.retire()
      ib?.retire()
    }
    try {
      const stored = await this.repo.backend.get('data', run.pack, {offset: run.offset, length: run.length}, rb?.buf ?? hashBuffer(run.length))
      const at = run.chunks.map((c) => c.loc.offset - run.offset)
      const plain = await this.open(run.chunks, stored, at, ib?.buf ?? Buffer.allocUnsafe(raw))
      // Chunks stored as is lie back to back in the buffer: one write for the whole run.
      return {parts: raw === 0 ? [stored.subarray(0, run.length)] : plain, release}
    } catch (err) {
      release()
      throw err
    }
  }

  // ---- shared ----

  /**
   * Plain bytes of each chunk, checked against its id (one job on the thread pool): a view of
   * the bytes read for a chunk stored as is, a view of `dst` for a compressed one. `at[i]` is
   * where chunk i's stored bytes lie in `stored`.
   */
  private async open(chunks: readonly Chunk[], stored: Buffer, at: readonly number[], dst: Buffer): Promise<Uint8Array[]> {
    const opened = await openBlobs(stored, chunks.map(({id, loc}, i) => ({offset: at[i]!, storedLength: loc.storedLength, compression: loc.compression, rawLength: loc.rawLength, id})), dst)
    return opened.map((o, i) => {
      if (o.ok) return o.plain
      throw damagedBlob(chunks[i]!.id, chunks[i]!.loc.pack, o.error)
    })
  }
}

function tooLong(rel: string): BadPathError {
  const depth = rel.split('/').length
  const shown = rel.length > 120 ? `${rel.slice(0, 60)}...${rel.slice(-60)}` : rel
  return new BadPathError(`cannot restore ${shown}: its path, ${depth} levels deep, is longer than the system allows (PATH_MAX ${PATH_MAX} bytes)`, {depth})
}

function writeAllSync(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off)
}

function writevAllSync(fd: number, parts: readonly Uint8Array[]): void {
  const total = parts.reduce((n, p) => n + p.length, 0)
  const done = writevSync(fd, parts)
  if (done < total) writeRestSync(fd, parts, done) // a short write: rare
}

function writeRestSync(fd: number, parts: readonly Uint8Array[], done: number): void {
  let skip = done
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    writeAllSync(fd, part.subarray(skip))
    skip = 0
  }
}

/** Write `parts` back to back at `position`; returns the bytes written. */
async function writeAllAt(fh: fsp.FileHandle, parts: readonly Uint8Array[], position: number): Promise<number> {
  const total = parts.reduce((n, p) => n + p.length, 0)
  let done = 0
  while (done < total) {
    const rest = done === 0 ? parts : remainder(parts, done)
    const {bytesWritten} = rest.length === 1 ? await fh.write(rest[0]!, 0, rest[0]!.length, position + done) : await fh.writev(rest, position + done)
    if (bytesWritten === 0) throw new Error('write made no progress')
    done += bytesWritten
  }
  return total
}

function remainder(parts: readonly Uint8Array[], done: number): Uint8Array[] {
  const rest: Uint8Array[] = []
  let skip = done
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    rest.push(skip > 0 ? part.subarray(skip) : part)
    skip = 0
  }
  return rest
}
