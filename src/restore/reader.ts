// The restore reader: walks a snapshot's tree and hands its entries, with their contents fetched,
// inflated and checked, to an output (the filesystem for restore, a tar stream for export). What
// is read and how it is batched lives here; what is made of it lives in the output.
//
// - The walk reads trees (the next few sibling subtrees ahead) and hands out entries in tree order.
// - Small files (under LARGE_FILE) are gathered into batches across directories. A batch's blobs
//   are read with one ranged read per stretch of a pack (not one open and read per blob), then
//   inflated and checked in one thread-pool job (openBlobs), while the walk fills the next batch
//   and the output writes the batch before.
// - Large files, and sparse files of any size, are handed to the output as a stream of pieces at
//   their file offsets: runs of adjacent chunks fetched and checked RUNS_AHEAD ahead of the write,
//   a run stored as is handed over in the buffer it was read into.
// - The second and later names of one inode (same dev and ino, recorded with a link count) are
//   handed out as links to the first name restored, never read again.
//
// An output is ordered (a stream: every entry arrives whole, in tree order, one after another) or
// not (a filesystem: directories and symlinks are made by the walk while batches and large files,
// `lanes` at a time, are written beside it). Either way a directory is done (dirDone) only once
// every entry in it is.
//
// Nothing unverified reaches an output: every chunk is checked against its id first. Names come
// checked from decodeTree; a file whose chunks do not add up to its size is refused before any of
// it is handed out.
//
// Memory is bounded: BATCHES_AHEAD + 1 batch buffers and lanes x (RUNS_AHEAD + 1) run buffers,
// each with a buffer to inflate into (allocated on first need), all pooled, the queued large files
// (LARGE_QUEUE, their chunk lists resolved only when their turn comes), the trees on the current
// path with TREES_AHEAD siblings of each, and one record per hard-linked inode seen.
import {mapLimit} from '../core/concurrency.js'
import {inflatedSize, openBlobs} from '../core/codec.js'
import {IntegrityError, ObjectMissingError} from '../core/errors.js'
import {hashBuffer} from '../core/hashpool.js'
import {toHex} from '../core/ids.js'
import {ReadBuffer, ReadPool} from '../core/readpool.js'
import {BlobType} from '../repo/pack.js'
import {checkBlobBound, damagedBlob, type Repository} from '../repo/repository.js'
import type {ExcludeMatcher} from '../snapshot/exclude.js'
import {childPath, dataLength, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'
import type {ChunkSource, LocalBase, LocalFile} from './local.js'
import {type Chunk, ExtentMap, planRanges, planRuns, planSourcedRuns, type Piece, type Run} from './plan.js'
import {selects} from './select.js'

/** Files from this size up are large: handed out one at a time, in runs. */
export const LARGE_FILE = 1024 * 1024
/** Largest run of a large file (one ranged read, one write), and the size of a run buffer. */
const MAX_RUN = 1024 * 1024
/** Runs of a large file fetched and checked ahead of its write. */
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
/** Ranged reads in flight for one batch. */
const IO_AT_ONCE = 8

export type {Piece} from './plan.js'

/** A small file and its verified contents, `parts` back to back. */
export interface SmallFile<D> {
  dir: D
  node: TreeNode
  rel: string
  parts: readonly Uint8Array[]
}

/** Where the first restored name of a hard-linked inode went. */
export interface LinkTarget<D> {
  dir: D
  node: TreeNode
  rel: string
}

/**
 * What a restore makes of a snapshot. `D` is the output's handle of a directory. Calls that
 * return a promise are awaited (an output slows the reader down by taking its time); buffers
 * handed over are valid until the call settles.
 */
export interface RestoreOutput<D> {
  /** True: entries arrive one at a time, whole, in tree order (a stream). False: they may overlap. */
  readonly ordered: boolean
  /** Large files written at once (unordered outputs only). */
  readonly lanes: number
  dir(parent: D, node: TreeNode, rel: string): D | Promise<D>
  /** Everything in `dir` has been written. */
  dirDone(dir: D): void | Promise<void>
  symlink(parent: D, node: TreeNode, rel: string): void | Promise<void>
  /** FIFOs and device nodes. */
  special(parent: D, node: TreeNode, rel: string): void | Promise<void>
  /** Another name of the inode first restored as `first` (already written). */
  link(parent: D, node: TreeNode, rel: string, first: LinkTarget<D>): void | Promise<void>
  /** A batch of small files, in tree order. */
  smallFiles(files: readonly SmallFile<D>[]): Promise<void>
  /** A large or sparse file: its data in order, each piece at its file offset (holes are the gaps up to node.size). */
  largeFile(dir: D, node: TreeNode, rel: string, pieces: AsyncIterable<Piece>): Promise<void>
  /**
   * A file whose content is already on disk (a ChunkSource found it): carry it in whole. False
   * when it changed before it was carried (the reader then writes it as any other). Outputs
   * without it get every file's bytes.
   */
  existing?(dir: D, node: TreeNode, rel: string, from: LocalFile): Promise<boolean>
  /**
   * A large file made as a clone of `base` (its old version) with `pieces` written over it: the
   * ranges where it differs, at their offsets. False when the filesystem cannot clone it or the
   * base changed since it was hashed (nothing is left behind, no piece read); the reader then
   * writes the file as any other.
   */
  largeFileFrom?(dir: D, node: TreeNode, rel: string, base: LocalBase, pieces: AsyncIterable<Piece>): Promise<boolean>
}

export interface ReaderProgress {
  files: number
  bytes: number
  path: string
}

/** A directory being read: done once nothing in it is pending. */
class DirTask<D> {
  /** Entries handed out and not yet written, plus one while the walk is still listing it. */
  pending = 1

  /** `raw`: its path below the root, as bytes (kept only when a ChunkSource needs it). */
  constructor(readonly handle: D, readonly parent: DirTask<D> | undefined, readonly raw?: Buffer) {}
}

interface FileJob<D> {
  node: TreeNode
  rel: string
  dir: DirTask<D>
  /** Resolved when the file is handed out (small files) or when its turn comes (large ones). */
  chunks?: Chunk[]
  /** Settles once the output has written it (hard-link groups wait on it). */
  written?: Deferred
  /** Large files: bytes written so far, shown in progress before the file is done. */
  progressed?: number
  /** Its old version, to clone and patch (local.ts, largeFileFrom). */
  base?: LocalBase
}

/** Small files whose blobs are fetched together. */
class Batch<D> {
  readonly files: FileJob<D>[] = []
  /** Every chunk of every file, in order (a blob two files share is read through once, see planRanges). */
  readonly blobs: Chunk[] = []
  stored = 0
  raw = 0
  fetched: Promise<Uint8Array[]> | undefined
  buffer: ReadBuffer | undefined
  inflated: ReadBuffer | undefined
  /** What chunks found locally are read into. */
  local: ReadBuffer | undefined

  add(job: FileJob<D>, chunks: Chunk[], stored: number): void {
    this.files.push(job)
    for (const c of chunks) this.blobs.push(c)
    this.stored += stored
    this.raw += job.node.size
  }

  release(): void {
    this.buffer?.retire()
    this.inflated?.retire()
    this.local?.retire()
    this.buffer = this.inflated = this.local = undefined
  }
}

interface FetchedRun {
  /** The run's plain bytes in order: one buffer when stored as is, else one per chunk. */
  parts: Uint8Array[]
  release: () => void
}

class Deferred {
  readonly promise: Promise<void>
  resolve!: () => void
  reject!: (err: unknown) => void

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    this.promise.catch(() => undefined) // a failure is reported by the lane that wrote the file
  }
}

/** The first name restored of a hard-linked inode. */
interface LinkGroup<D> {
  first: LinkTarget<D>
  written: Deferred
}

export class TreeReader<D> {
  files = 0
  dirs = 0
  symlinks = 0
  specials = 0
  links = 0
  /** File bytes written (data only: the holes of sparse files are not counted). */
  bytes = 0
  /** Files carried whole from local files, and their bytes. */
  filesReused = 0
  bytesReused = 0
  /** Bytes of chunks taken from local files (checked against their ids). */
  bytesLocal = 0
  /** Stored bytes read from the repository (trees and data, with the stretches read through). */
  bytesFromRepository = 0
  /** Bytes of large files written and not yet done (progress only). */
  private partialBytes = 0
  /** File bytes handed out so far: never more than the snapshot declared. */
  private planned = 0
  private failure: {error: unknown} | undefined

  private batch = new Batch<D>()
  /** Sealed batches, fetching or fetched, oldest first. */
  private readonly batches: Batch<D>[] = []
  private readonly batchBuffers = new ReadPool(BATCHES_AHEAD + 1, BATCH_BUFFER)
  /** What batches inflate into (allocated on first need: a repository of raw blobs needs none). */
  private readonly batchInflated = new ReadPool(BATCHES_AHEAD + 1, BATCH_RAW)
  /** What batches read local chunks into (allocated on first need). */
  private readonly batchLocal = new ReadPool(BATCHES_AHEAD + 1, BATCH_RAW)

  private readonly largeQueue: FileJob<D>[] = []
  /** Chunks of the queued large files (their lists are resolved only when their turn comes). */
  private largeQueued = 0
  private readonly largeLanes = new Set<Promise<void>>()
  private largeRoom: (() => void) | undefined
  private readonly runBuffers: ReadPool
  private readonly runInflated: ReadPool
  /** Links waiting for their first name to be written. */
  private readonly linking = new Set<Promise<void>>()
  private readonly groups = new Map<string, LinkGroup<D>>()
  private exclude: ExcludeMatcher = () => false

  /**
   * `maxBytes`: what the snapshot declares its files hold (its summary); handing out more is
   * refused. `local`: bytes already on this machine, asked for before the repository (local.ts).
   */
  constructor(private readonly repo: Repository, private readonly output: RestoreOutput<D>, private readonly onProgress?: (p: ReaderProgress) => void, private readonly maxBytes = Number.MAX_SAFE_INTEGER, private readonly local?: ChunkSource) {
    const lanes = output.ordered ? 1 : Math.max(1, output.lanes)
    this.runBuffers = new ReadPool(lanes * (RUNS_AHEAD + 1), MAX_RUN)
    this.runInflated = new ReadPool(lanes * (RUNS_AHEAD + 1), MAX_RUN)
  }

  /**
   * Hand tree `treeId` to the output, inside the directory `root` (the output's handle, already
   * made), and finish `root` once all of it is written. `exclude`: paths left out (restore
   * --exclude, see select.ts). `includes`: path parts of each --include;
   * undefined means everything. On failure, returns only once nothing it started is still running.
   */
  async read(treeId: Buffer, root: D, includes: string[][] | undefined, exclude: ExcludeMatcher = () => false): Promise<void> {
    this.exclude = exclude
    const rootDir = new DirTask(root, undefined)
    try {
      await this.walk(this.readTree(treeId), rootDir, '', includes, undefined)
      await this.drain()
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

  /** Everything handed out is written. */
  private async drain(): Promise<void> {
    await this.sealBatch()
    while (this.batches.length > 0) await this.writeOldestBatch()
    while (this.largeLanes.size > 0) await Promise.all(this.largeLanes)
    while (this.linking.size > 0) await Promise.all(this.linking)
  }

  /** Wait until nothing started is running (after a failure), and give buffers back. */
  private async settle(): Promise<void> {
    for (const b of [...this.batches, this.batch]) {
      await b.fetched?.catch(() => undefined)
      b.release()
    }
    this.batches.length = 0
    this.largeQueue.length = 0
    // Links waiting for a first name that will never be written now give up.
    for (const g of this.groups.values()) g.written.reject(this.failure?.error)
    while (this.largeLanes.size > 0) await Promise.all(this.largeLanes)
    while (this.linking.size > 0) await Promise.all(this.linking)
  }

  private async readTree(id: Buffer): Promise<TreeNode[]> {
    this.bytesFromRepository += this.repo.lookup(id)?.storedLength ?? 0
    return decodeTree(await this.repo.readBlob(id, BlobType.tree), toHex(id))
  }

  // ---- the walk ----

  /** `relRaw`: the path of `dir` from the root as bytes (undefined at the root), for --exclude. */
  private async walk(tree: Promise<TreeNode[]>, dir: DirTask<D>, rel: string, includes: string[][] | undefined, relRaw: Buffer | undefined): Promise<void> {
    const nodes = await tree
    const subdirs: {node: TreeNode; rel: string; raw: Buffer | undefined; below: string[][] | undefined}[] = []
    for (const node of nodes) {
      this.check()
      const shown = displayName(node.name)
      const childRel = rel ? `${rel}/${shown}` : shown
      const {take, below} = selects(includes, this.exclude, childRel, shown, node.name, relRaw)
      if (!take) continue
      const childRaw = this.local ? (dir.raw ? childPath(dir.raw, node.name) : node.name) : undefined
      if (node.type === 'dir') {
        // An ordered output gets a directory's entries before the next sibling's: its
        // subdirectories come after its other entries, as they do for a filesystem.
        subdirs.push({node, rel: childRel, raw: childRaw, below})
        continue
      }
      if (below) continue // an include naming something below a non-directory restores nothing
      if (node.type === 'file') {
        await this.file(node, dir, childRel, childRaw)
        continue
      }
      if (this.output.ordered) await this.drain()
      if (node.type === 'symlink') {
        await this.output.symlink(dir.handle, node, childRel)
        this.symlinks++
      } else {
        await this.output.special(dir.handle, node, childRel)
        this.specials++
      }
      this.onProgress?.({files: this.files, bytes: this.bytes + this.partialBytes, path: childRel})
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
      const {node, rel: childRel, raw: childRaw, below} = subdirs[i]!
      if (this.output.ordered) await this.drain()
      const handle = await this.output.dir(dir.handle, node, childRel)
      dir.pending++
      await this.walk(ahead.shift()!, new DirTask(handle, dir, childRaw), childRel, below, relRaw ? childPath(relRaw, node.name) : node.name)
    }
    await this.entryDone(dir)
  }

  private async file(node: TreeNode, dir: DirTask<D>, rel: string, raw: Buffer | undefined): Promise<void> {
    const group = linkKey(node)
    const first = group === undefined ? undefined : this.groups.get(group)
    if (first && sameContent(first.first.node, node)) {
      await this.link(node, dir, rel, first)
      return
    }
    const job: FileJob<D> = {node, rel, dir}
    if (group !== undefined && !first) {
      job.written = new Deferred()
      this.groups.set(group, {first: {dir: dir.handle, node, rel}, written: job.written})
    }
    this.planned += dataLength(node)
    if (this.planned > this.maxBytes) throw new IntegrityError(`the snapshot's files hold more than the ${this.maxBytes} bytes its manifest declares (at ${rel}): refusing to write more`)
    dir.pending++
    if (raw && (await this.reuse(job, raw))) return
    if (node.size < LARGE_FILE && !node.extents) {
      const chunks = this.chunksOf(node)
      const stored = chunks.reduce((n, c) => n + c.loc.storedLength, 0)
      job.chunks = chunks
      // A small file stored in more than a batch buffer (not written by ckpt) goes the large way.
      if (stored <= BATCH_BUFFER) {
        await this.addSmall(job, chunks, stored)
        return
      }
    }
    await this.addLarge(job)
  }

  /** Carry the file in whole when its content is already on disk. */
  private async reuse(job: FileJob<D>, raw: Buffer): Promise<boolean> {
    if (!this.output.existing) return false
    const found = await this.local!.wholeFile(job.node, raw)
    if (!found) {
      if (this.output.largeFileFrom) job.base = this.local!.baseOf?.(raw)
      return false
    }
    try {
      if (!(await this.output.existing(job.dir.handle, job.node, job.rel, found))) return false
    } catch (err) {
      job.written?.reject(err)
      throw err
    }
    this.filesReused++
    this.bytesReused += dataLength(job.node)
    await this.fileDone(job)
    return true
  }

  /** A later name of an inode handed out before: linked once the first is written. */
  private async link(node: TreeNode, dir: DirTask<D>, rel: string, group: LinkGroup<D>): Promise<void> {
    dir.pending++
    const made = async () => {
      await group.written.promise
      this.check()
      await this.output.link(dir.handle, node, rel, group.first)
      this.links++
      this.onProgress?.({files: this.files, bytes: this.bytes + this.partialBytes, path: rel})
      await this.entryDone(dir)
    }
    if (this.output.ordered) {
      await this.drain()
      await made()
      return
    }
    const pending: Promise<void> = made().catch((err: unknown) => this.fail(err)).finally(() => this.linking.delete(pending))
    this.linking.add(pending)
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
    const expected = dataLength(node)
    if (raw !== expected) throw new IntegrityError(`file ${displayName(node.name)}: chunks add up to ${raw} bytes, the tree says ${expected}`)
    return chunks
  }

  /** One entry of `dir` is written (or the walk has listed it): when none is left, finish it. */
  private async entryDone(dir: DirTask<D>): Promise<void> {
    if (--dir.pending > 0 || this.failure) return
    await this.output.dirDone(dir.handle)
    if (dir.parent) {
      this.dirs++
      await this.entryDone(dir.parent)
    }
  }

  private async fileDone(job: FileJob<D>): Promise<void> {
    this.files++
    this.bytes += dataLength(job.node)
    job.written?.resolve()
    this.onProgress?.({files: this.files, bytes: this.bytes + this.partialBytes, path: job.rel})
    await this.entryDone(job.dir)
  }

  // ---- small files ----

  private async addSmall(job: FileJob<D>, chunks: Chunk[], stored: number): Promise<void> {
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

  private async fetchBatch(batch: Batch<D>): Promise<Uint8Array[]> {
    if (batch.blobs.length === 0) return []
    const plain: Uint8Array[] = new Array(batch.blobs.length)
    const remote = this.local ? await this.fromLocal(batch, plain) : batch.blobs.map((_, i) => i)
    if (remote.length === 0) return plain
    const blobs = remote.map((i) => batch.blobs[i]!)
    const rb = await this.batchBuffers.acquire()
    batch.buffer = rb
    const raw = inflatedSize(blobs.map((b) => b.loc))
    if (raw > 0) batch.inflated = await this.batchInflated.acquire()
    const plan = planRanges(blobs.map((b) => b.loc), RANGE_GAP, rb.buf.length)
    for (const r of plan.ranges) this.bytesFromRepository += r.length
    await mapLimit(plan.ranges, IO_AT_ONCE, (r) => this.repo.backend.get('data', r.pack, {offset: r.offset, length: r.length}, rb.buf.subarray(r.at, r.at + r.length)))
    const opened = await this.open(blobs, rb.buf, plan.at, batch.inflated?.buf ?? Buffer.alloc(0))
    remote.forEach((i, k) => (plain[i] = opened[k]!))
    return plain
  }

  /** Fill `plain` with the batch's chunks found (and checked) locally; returns the indexes of the others. */
  private async fromLocal(batch: Batch<D>, plain: Uint8Array[]): Promise<number[]> {
    const all = batch.blobs.map((_, i) => i)
    const here = all.filter((i) => this.local!.has(batch.blobs[i]!.id, batch.blobs[i]!.loc.rawLength))
    if (here.length === 0) return all
    const lb = await this.batchLocal.acquire()
    batch.local = lb
    const at: number[] = []
    let used = 0
    for (const i of here) {
      at.push(used)
      used += batch.blobs[i]!.loc.rawLength
    }
    const ok = await this.local!.read(here.map((i) => ({id: batch.blobs[i]!.id, length: batch.blobs[i]!.loc.rawLength})), lb.buf, at)
    here.forEach((i, k) => {
      if (!ok[k]) return
      const length = batch.blobs[i]!.loc.rawLength
      plain[i] = lb.buf.subarray(at[k]!, at[k]! + length)
      this.bytesLocal += length
    })
    return all.filter((i) => plain[i] === undefined)
  }

  private async writeOldestBatch(): Promise<void> {
    const batch = this.batches.shift()!
    try {
      const plain = await batch.fetched!
      this.check()
      const files: SmallFile<D>[] = []
      let next = 0
      for (const {dir, node, rel, chunks} of batch.files) {
        const n = chunks!.length
        files.push({dir: dir.handle, node, rel, parts: plain.slice(next, next + n)})
        next += n
      }
      await this.output.smallFiles(files)
      for (const job of batch.files) await this.fileDone(job)
    } catch (err) {
      for (const job of batch.files) job.written?.reject(err)
      throw err
    } finally {
      batch.release()
    }
  }

  // ---- large files ----

  private async addLarge(job: FileJob<D>): Promise<void> {
    if (this.output.ordered) {
      await this.drain()
      await this.writeLargeFile(job)
      return
    }
    this.largeQueue.push(job)
    this.largeQueued += job.node.chunks?.length ?? 0
    if (this.largeLanes.size < this.output.lanes) {
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

  private async writeLargeFile(job: FileJob<D>): Promise<void> {
    try {
      const chunks = job.chunks ?? this.chunksOf(job.node)
      const base = job.base
      job.base = undefined
      if (!base || !(await this.writeOverBase(job, chunks, base))) {
        const local = this.local
        const runs = local ? planSourcedRuns(chunks, MAX_RUN, (c) => local.has(c.id, c.loc.rawLength)) : planRuns(chunks, MAX_RUN)
        await this.output.largeFile(job.dir.handle, job.node, job.rel, this.pieces(runs, job))
      }
    } catch (err) {
      job.written?.reject(err)
      throw err
    } finally {
      this.partialBytes -= job.progressed ?? 0
    }
    await this.fileDone(job)
  }

  /**
   * A changed file whose old version still holds most of its chunks where the snapshot has them
   * (an overwrite in place, an append): cloned from it, with only the other chunks written.
   * False when a clone is not worth it (less than a quarter kept) or the output cannot make one.
   */
  private async writeOverBase(job: FileJob<D>, chunks: readonly Chunk[], base: LocalBase): Promise<boolean> {
    if (!this.output.largeFileFrom) return false
    const local = this.local!
    const isLocal = (c: Chunk) => local.has(c.id, c.loc.rawLength)
    const runs: Run[] = []
    let kept = 0
    let offset = 0
    // Stretches of chunks the base lacks at their offset, each planned as a file of its own and placed where it starts.
    let stretch: Chunk[] = []
    let start = 0
    const plan = () => {
      let at = start
      for (const run of planSourcedRuns(stretch, MAX_RUN, isLocal)) {
        run.at = at
        at += run.raw
        runs.push(run)
      }
      stretch = []
    }
    for (const c of chunks) {
      if (base.holds(offset, c.id, c.loc.rawLength)) {
        kept += c.loc.rawLength
        if (stretch.length > 0) plan()
      } else {
        if (stretch.length === 0) start = offset
        stretch.push(c)
      }
      offset += c.loc.rawLength
    }
    if (stretch.length > 0) plan()
    if (kept * 4 < offset) return false
    const made = await this.output.largeFileFrom(job.dir.handle, job.node, job.rel, base, this.pieces(runs, job))
    if (made) this.bytesLocal += kept
    return made
  }

  /**
   * A large file's data, run by run, each run's chunks checked on the hash pool while earlier
   * runs are written, so no unverified byte reaches the output. A run's buffers go back once the
   * output asks for the next piece (or stops).
   */
  private async *pieces(runs: readonly Run[], job: FileJob<D>): AsyncGenerator<Piece> {
    const pending: Promise<FetchedRun>[] = []
    let current: FetchedRun | undefined
    const place = new ExtentMap(job.node.extents)
    try {
      for (let i = 0; i < runs.length; i++) {
        this.check() // another lane failed
        while (pending.length < RUNS_AHEAD && i + pending.length < runs.length) {
          const fetch = this.fetchRun(runs[i + pending.length]!)
          fetch.catch(() => undefined) // reported when its turn comes
          pending.push(fetch)
        }
        current = await pending.shift()!
        const at = runs[i]!.at
        if (at === undefined) for (const piece of place.next(current.parts)) yield piece
        else yield {offset: at, parts: current.parts}
        current.release()
        current = undefined
        // Progress moves inside a large file too, run by run (its bytes count whole once it is done).
        job.progressed = (job.progressed ?? 0) + runs[i]!.raw
        this.partialBytes += runs[i]!.raw
        this.onProgress?.({files: this.files, bytes: this.bytes + this.partialBytes, path: job.rel})
      }
    } finally {
      current?.release()
      // Reads started must finish before their buffers go back, and must not surface later.
      for (const p of pending) await p.then((r) => r.release(), () => undefined)
    }
  }

  /** Read a run into a pooled buffer, inflate and check it; the caller uses it, then releases. */
  private async fetchRun(run: Run): Promise<FetchedRun> {
    if (run.local) return this.fetchLocalRun(run)
    this.bytesFromRepository += run.length
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

  /** A run of chunks found locally: read and checked; one that fails the check comes from the repository. */
  private async fetchLocalRun(run: Run): Promise<FetchedRun> {
    const rb = run.raw > MAX_RUN ? undefined : await this.runBuffers.acquire()
    const release = () => rb?.retire()
    try {
      const buf = rb?.buf ?? hashBuffer(run.raw)
      const at: number[] = []
      let used = 0
      for (const c of run.chunks) {
        at.push(used)
        used += c.loc.rawLength
      }
      const ok = await this.local!.read(run.chunks.map((c) => ({id: c.id, length: c.loc.rawLength})), buf, at)
      const parts: Uint8Array[] = []
      for (let i = 0; i < run.chunks.length; i++) {
        const {id, loc} = run.chunks[i]!
        if (ok[i]) {
          parts.push(buf.subarray(at[i]!, at[i]! + loc.rawLength))
          this.bytesLocal += loc.rawLength
        } else {
          this.bytesFromRepository += loc.storedLength
          parts.push(await this.repo.readBlobAt(id, loc))
        }
      }
      return {parts, release}
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

/** The inode a file shares with other names in the snapshot, or undefined for a single name. */
function linkKey(node: TreeNode): string | undefined {
  return node.nlink !== undefined && node.nlink > 1 && node.dev !== undefined ? `${node.dev}:${node.ino}` : undefined
}

/**
 * Names recorded as one inode are linked only if they also agree on what the inode holds: a
 * tree claiming otherwise (damaged, or hostile) gets separate files, each as its node says.
 */
function sameContent(a: TreeNode, b: TreeNode): boolean {
  if (a.size !== b.size || a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.mtimeNs !== b.mtimeNs) return false
  const ca = a.chunks ?? []
  const cb = b.chunks ?? []
  if (ca.length !== cb.length || !ca.every((c, i) => c.equals(cb[i]!))) return false
  const ea = a.extents ?? []
  const eb = b.extents ?? []
  return ea.length === eb.length && ea.every((e, i) => e.offset === eb[i]!.offset && e.length === eb[i]!.length)
}
