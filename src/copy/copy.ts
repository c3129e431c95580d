// `ckpt copy`: snapshots from one repository into another (say a local one into S3 for an off-host
// copy). Only blobs the destination's index lacks are sent; each is read from the source and
// checked against its id first, then written by the destination's own BlobWriter, so packs and
// index files are the destination's, made durable as a snapshot makes them. A manifest is copied
// byte for byte, so the snapshot keeps its id, and written only once every blob it reaches is
// durable: a killed copy leaves blobs no manifest names (prune's to collect), never a manifest
// naming missing blobs. Both repositories are locked shared, as a snapshot locks its repository,
// so a prune on either side cannot delete what the copy reads or relies on.
import {type CompressionValue, inflateBatches, inflatedSize, openBlobs} from '../core/codec.js'
import {Inflight} from '../core/concurrency.js'
import {IntegrityError, UsageError} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {hashBuffer} from '../core/hashpool.js'
import {IdMap} from '../core/idmap.js'
import {toHex} from '../core/ids.js'
import {ReadPool} from '../core/readpool.js'
import {withLock} from '../store/lock.js'
import {type SweepResult, sweepTemporaries} from '../store/temp.js'
import {BlobType} from '../repo/pack.js'
import {type BlobLocation, checkBlobBound, damagedBlob, type Repository} from '../repo/repository.js'
import {BlobWriter} from '../repo/writer.js'
import {filterSnapshots, selectSnapshot, type SnapshotFilter} from '../inspect/select.js'
import {bySnapshotTime, type CatalogLoad, loadCatalog, type SnapshotRecord} from '../snapshot/catalog.js'
import {decodeTree} from '../snapshot/tree.js'
import type {VerifyReport} from '../verify/verify.js'

/**
 * Chunks to send are gathered until they hold this many stored bytes, then read in pack order,
 * neighbours in one ranged read: an S3 source answers a few large GETs instead of one per chunk.
 */
const BATCH_BYTES = 32 * 1024 * 1024
const BATCH_BLOBS = 16384
/** A ranged read spans at most this much, and reads through gaps of at most GAP_BYTES between chunks it needs. */
const RANGE_BYTES = 4 * 1024 * 1024
const GAP_BYTES = 64 * 1024
/** Ranged reads in flight (memory: about this many times RANGE_BYTES). */
const RANGES_IN_FLIGHT = 6
/** A range's chunks are inflated and hashed in batches of at most this many plain bytes. */
const CHECK_BYTES = 4 * 1024 * 1024
/** Trees read ahead of the walk (a remote source answers each after a round trip). */
const TREES_AHEAD = 16

export interface CopySelection {
  /** Ids, unique prefixes or "latest" (as restore resolves them, within the filter). */
  refs: readonly string[]
  /** Every snapshot the filter passes (refs must then be empty). */
  all: boolean
  filter: SnapshotFilter
  /** With all: only the newest N of each host and source. */
  latest?: number
}

/**
 * The snapshots a copy means, oldest first (so a parent is copied before its child), each once.
 * A ref that names nothing is NotFoundError (exit 4), as for restore.
 */
export function selectForCopy(catalog: CatalogLoad, sel: CopySelection): SnapshotRecord[] {
  if (sel.all && sel.refs.length > 0) throw new UsageError('give snapshot ids or --all, not both')
  if (!sel.all && sel.refs.length === 0) throw new UsageError('name the snapshots to copy (ids, prefixes, "latest") or give --all')
  if (!sel.all && sel.latest !== undefined) throw new UsageError('--latest N goes with --all')
  const chosen = sel.all ? filterSnapshots(catalog.snapshots, sel.filter, sel.latest) : sel.refs.map((ref) => selectSnapshot(catalog, ref, sel.filter))
  const unique = new Map(chosen.map((s) => [s.id, s]))
  return [...unique.values()].sort(bySnapshotTime)
}

export interface CopyProgress {
  /** The snapshot being copied (1-based) of those to copy. */
  snapshot: number
  snapshots: number
  id: string
  /** Blobs and their stored bytes sent to the destination so far. */
  blobs: number
  bytesSent: number
  /** File bytes of the snapshots walked so far (a subtree met before counts at the end of its snapshot). */
  bytesWalked: number
  /** File bytes of every snapshot to copy (their manifests' summary.bytes). */
  bytesTotal: number
}

export interface CopiedSnapshot {
  id: string
  /** Blobs this snapshot needed that the destination lacked (trees and chunks). */
  blobs: number
  /** Their stored (compressed) bytes, as sent. */
  bytesSent: number
}

export interface CopyResult {
  copied: CopiedSnapshot[]
  /** Selected, and in the destination already: nothing sent. */
  skipped: string[]
  /** Trees read and walked in the source. */
  trees: number
  blobs: number
  /** Plain and stored bytes of the blobs sent. */
  rawBytes: number
  bytesSent: number
  packs: number
  indexFiles: number
  /** Temp objects of dead writers removed from the destination before the copy began. */
  swept: SweepResult
  /** The destination's check of the copied snapshots (undefined: nothing was copied, verify: 'none', or a dry run). */
  verify?: VerifyReport
  /** Nothing was written: `copied` and the counts say what a copy would send (trees counted plain: the destination compresses them). */
  dryRun: boolean
  durationMs: number
}

export interface CopyOptions {
  /** After writing: 'structure' (default) checks the copied snapshots in the destination as `ckpt verify ID...`; 'read' also reads back every pack they reach; 'none' skips it. */
  verify?: 'none' | 'structure' | 'read'
  lockRetryMs?: number
  onProgress?: (p: CopyProgress) => void
  /** Walk the selected snapshots and count what the destination lacks, writing nothing to it (its lock is taken read-only). */
  dryRun?: boolean
}

/**
 * Copy the selected snapshots of `src` into `dst`. They are chosen from the source's catalog
 * under the source's lock, so a prune there cannot remove them meanwhile.
 */
export async function copySnapshots(src: Repository, dst: Repository, selection: CopySelection, opts: CopyOptions = {}): Promise<CopyResult> {
  if (src.config.id === dst.config.id) throw new UsageError(`${src.backend.location} and ${dst.backend.location} are the same repository (id ${src.config.id})`)
  if (src.config.chunker.maxSize > dst.config.chunker.maxSize) {
    // Restore and verify refuse a chunk above the repository's maxSize as hostile.
    throw new UsageError(`the destination's largest chunk (${dst.config.chunker.maxSize} bytes) is smaller than the source's (${src.config.chunker.maxSize} bytes): create the destination with ckpt init --avg-chunk-size ${src.config.chunker.avgSize}`)
  }
  const started = performance.now()
  const dryRun = opts.dryRun ?? false
  const lock = (readOnly: boolean) => ({exclusive: false, readOnly, command: 'copy', retryMs: opts.lockRetryMs ?? 0})
  return withLock(src.backend, lock(true), () => withLock(dst.backend, lock(dryRun), async () => {
    const swept = dryRun ? {removed: 0, bytes: 0} : await sweepTemporaries(dst.backend, Date.now())
    const chosen = selectForCopy(await loadCatalog(src), selection)
    const present = new Set(await dst.listSnapshotNames())
    const todo = chosen.filter((s) => !present.has(s.id))
    const result: CopyResult = {copied: [], skipped: chosen.filter((s) => present.has(s.id)).map((s) => s.id), trees: 0, blobs: 0, rawBytes: 0, bytesSent: 0, packs: 0, indexFiles: 0, swept, dryRun, durationMs: 0}
    if (todo.length > 0) {
      await Promise.all([src.loadIndex(), dst.loadIndex()])
      // Version-2 trees must not land in a repository an older ckpt would misread.
      if (src.config.version > dst.config.version && !dryRun) await dst.upgradeFormat()
      const copier = new SnapshotCopier(src, dst, todo, opts.onProgress, dryRun)
      try {
        for (const s of todo) result.copied.push(await copier.copy(s))
      } catch (err) {
        await copier.settle()
        await copier.writer.abort()
        throw err
      }
      Object.assign(result, {trees: copier.trees, ...copier.sent()})
      if ((opts.verify ?? 'structure') !== 'none' && !dryRun) {
        const {verifyRepository} = await import('../verify/verify.js')
        result.verify = await verifyRepository(dst.backend, {snapshots: todo.map((s) => s.id), readData: opts.verify === 'read' ? {kind: 'all'} : undefined, lockRetryMs: opts.lockRetryMs})
      }
    }
    result.durationMs = Math.round(performance.now() - started)
    return result
  }))
}

/** The walk of one run: every tree and chunk is considered once, however many snapshots reach it. */
class SnapshotCopier {
  readonly writer: BlobWriter
  /** Blobs considered in this run (sent, being sent, or found in the destination). */
  private readonly seen = new IdMap(0)
  private readonly inflight = new Inflight(RANGES_IN_FLIGHT)
  /** Chunks to send, not yet read. */
  private batch: {id: Buffer; loc: BlobLocation}[] = []
  private batchBytes = 0
  private readonly reads = new ReadPool(RANGES_IN_FLIGHT, RANGE_BYTES)
  private readonly checks = new ReadPool(RANGES_IN_FLIGHT, CHECK_BYTES)
  /** Trees being read ahead of the walk, by id. */
  private readonly ahead = new Map<string, Promise<Buffer>>()
  trees = 0
  private readonly total: number
  private walkedBefore = 0
  private done = 0
  /** A dry run's count of what would be sent. */
  private readonly lacking = {blobs: 0, rawBytes: 0, storedBytes: 0}

  constructor(private readonly src: Repository, private readonly dst: Repository, private readonly todo: readonly SnapshotRecord[], private readonly onProgress?: (p: CopyProgress) => void, private readonly dryRun = false) {
    this.writer = new BlobWriter(dst)
    this.total = todo.reduce((n, s) => n + s.manifest.summary.bytes, 0)
  }

  /** What was sent (or, in a dry run, would be). */
  sent(): Pick<CopyResult, 'blobs' | 'rawBytes' | 'bytesSent' | 'packs' | 'indexFiles'> {
    const w = this.dryRun ? {...this.lacking, packs: 0, indexFiles: 0} : this.writer.stats
    return {blobs: w.blobs, rawBytes: w.rawBytes, bytesSent: w.storedBytes, packs: w.packs, indexFiles: w.indexFiles}
  }

  async copy(s: SnapshotRecord): Promise<CopiedSnapshot> {
    const before = this.sent()
    this.done++
    let walked = 0
    const report = () => this.onProgress?.({
      snapshot: this.done, snapshots: this.todo.length, id: s.id, blobs: this.sent().blobs, bytesSent: this.sent().bytesSent,
      bytesWalked: Math.min(this.walkedBefore + walked, this.total), bytesTotal: this.total,
    })
    // Depth first: the stack holds the subtrees of one directory per level, not the whole snapshot.
    const stack: Buffer[] = [Buffer.from(s.manifest.tree, 'hex')]
    while (stack.length > 0) {
      const tree = stack.pop()!
      if (this.seen.has(tree)) continue
      this.seen.set(tree, [])
      const plain = await this.readTree(s, tree)
      const nodes = decodeTree(plain, toHex(tree))
      this.trees++
      for (const node of nodes) {
        if (node.subtree && !this.seen.has(node.subtree)) {
          stack.push(node.subtree)
          this.readAhead(s, node.subtree)
        }
        for (const chunk of node.chunks ?? []) {
          if (this.seen.has(chunk)) continue
          this.seen.set(chunk, [])
          if (!this.dst.has(chunk)) await this.queue(s, chunk, report)
        }
        walked += node.size
      }
      // Trees are written as plain bytes: the destination compresses them (and caches them when remote).
      if (!this.dst.has(tree)) {
        if (this.dryRun) this.lack(plain.length, plain.length)
        else await this.writer.add(BlobType.tree, tree, plain)
      }
      report()
    }
    if (this.dryRun) {
      this.walkedBefore += s.manifest.summary.bytes
      const after = this.sent()
      return {id: s.id, blobs: after.blobs - before.blobs, bytesSent: after.bytesSent - before.bytesSent}
    }
    await this.send(report)
    await this.inflight.drain()
    // Every blob the manifest reaches is durable (packs, then index files) before the manifest.
    await this.writer.flush()
    faultPoint('copy.before-manifest')
    const bytes = await this.src.readSnapshotBytes(s.id)
    const id = await this.dst.writeSnapshotBytes(bytes)
    if (id !== s.id) throw new IntegrityError(`snapshot ${s.id}: the manifest read back hashes to ${id}`, {snapshot: s.id})
    faultPoint('copy.after-manifest')
    this.walkedBefore += s.manifest.summary.bytes
    walked = 0
    report()
    const after = this.sent()
    return {id: s.id, blobs: after.blobs - before.blobs, bytesSent: after.bytesSent - before.bytesSent}
  }

  private lack(rawBytes: number, storedBytes: number): void {
    this.lacking.blobs++
    this.lacking.rawBytes += rawBytes
    this.lacking.storedBytes += storedBytes
  }

  /** Wait for the reads still running (a failed run gives back what they wrote). */
  async settle(): Promise<void> {
    await this.inflight.drain().catch(() => undefined)
    await Promise.allSettled(this.ahead.values())
  }

  /** A tree of the source, checked against its id (readBlob checks): read ahead, or now. */
  private readTree(s: SnapshotRecord, id: Buffer): Promise<Buffer> {
    const hex = toHex(id)
    const ahead = this.ahead.get(hex)
    if (ahead) {
      this.ahead.delete(hex)
      return ahead
    }
    this.located(s, id, BlobType.tree)
    return this.src.readBlob(id, BlobType.tree)
  }

  private readAhead(s: SnapshotRecord, id: Buffer): void {
    const hex = toHex(id)
    if (this.ahead.size >= TREES_AHEAD || this.ahead.has(hex)) return
    const read = (async () => {
      this.located(s, id, BlobType.tree)
      return this.src.readBlob(id, BlobType.tree)
    })()
    read.catch(() => undefined) // reported where the walk awaits it
    this.ahead.set(hex, read)
  }

  private async queue(s: SnapshotRecord, id: Buffer, report: () => void): Promise<void> {
    const loc = this.located(s, id, BlobType.data)
    // Before anything is read or allocated: an index entry claiming more is hostile (restore refuses it too).
    checkBlobBound(id, loc, this.src.config)
    if (this.dryRun) return this.lack(loc.rawLength, loc.storedLength)
    this.batch.push({id, loc})
    this.batchBytes += loc.storedLength
    if (this.batchBytes >= BATCH_BYTES || this.batch.length >= BATCH_BLOBS) await this.send(report)
  }

  /** Read the batch in pack order, neighbours together, and hand each chunk to the writer as stored once it passes its check. */
  private async send(report: () => void): Promise<void> {
    const batch = this.batch
    this.batch = []
    this.batchBytes = 0
    batch.sort((a, b) => (a.loc.pack < b.loc.pack ? -1 : a.loc.pack > b.loc.pack ? 1 : a.loc.offset - b.loc.offset))
    for (const range of coalesce(batch)) await this.inflight.add(this.sendRange(range).then(report))
  }

  private async sendRange(range: {pack: string; start: number; end: number; blobs: {id: Buffer; loc: BlobLocation}[]}): Promise<void> {
    const length = range.end - range.start
    // Pooled buffers: a fresh 4 MiB per read would fault in every page of the copy anew.
    const read = length <= RANGE_BYTES ? await this.reads.acquire() : undefined
    const check = await this.checks.acquire()
    try {
      const bytes = await this.src.backend.get('data', range.pack, {offset: range.start, length}, read?.buf.subarray(0, length))
      const blobs = range.blobs.map(({id, loc}) => ({id, offset: loc.offset - range.start, storedLength: loc.storedLength, compression: loc.compression, rawLength: loc.rawLength}))
      // Checked in batches off the main thread (inflated and hashed in one job each), as prune's copier does.
      for (const batch of inflateBatches(blobs, CHECK_BYTES)) {
        const raw = inflatedSize(batch)
        const opened = await openBlobs(bytes, batch, raw <= CHECK_BYTES ? check.buf : hashBuffer(raw))
        opened.forEach((o, n) => {
          if (!o.ok) throw damagedBlob(batch[n]!.id, range.pack, o.error)
        })
        // Each resolves once the writer has copied or written the bytes: the buffer may then be reused.
        for (const b of batch) await this.writer.addStored(BlobType.data, b.id as Buffer, bytes.subarray(b.offset, b.offset + b.storedLength), b.compression as CompressionValue, b.rawLength)
      }
    } finally {
      read?.retire()
      check.retire()
    }
  }

  private located(s: SnapshotRecord, id: Buffer, type: number): BlobLocation {
    const loc = this.src.lookup(id)
    const what = type === BlobType.tree ? 'tree' : 'chunk'
    if (!loc) throw new IntegrityError(`snapshot ${s.id.slice(0, 12)} needs ${what} ${toHex(id)}, which the source's index does not list (run ckpt verify on the source)`, {snapshot: s.id, blob: toHex(id)})
    if (loc.type !== type) throw new IntegrityError(`snapshot ${s.id.slice(0, 12)} uses ${toHex(id)} as a ${what}, but the source stores it as another type`, {snapshot: s.id, blob: toHex(id)})
    return loc
  }
}

/**
 * Chunks sorted by pack and offset, grouped into ranged reads: one pack each, at most RANGE_BYTES
 * long (a longer chunk alone), reading through gaps of at most GAP_BYTES. Pure.
 */
export function coalesce<T extends {loc: {pack: string; offset: number; storedLength: number}}>(sorted: readonly T[]): {pack: string; start: number; end: number; blobs: T[]}[] {
  const ranges: {pack: string; start: number; end: number; blobs: T[]}[] = []
  let open: {pack: string; start: number; end: number; blobs: T[]} | undefined
  for (const b of sorted) {
    const {pack, offset, storedLength} = b.loc
    const end = offset + storedLength
    if (open && open.pack === pack && offset >= open.end && offset - open.end <= GAP_BYTES && end - open.start <= RANGE_BYTES) {
      open.end = end
      open.blobs.push(b)
      continue
    }
    open = {pack, start: offset, end, blobs: [b]}
    ranges.push(open)
  }
  return ranges
}
