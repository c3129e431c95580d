// `ckpt snapshot`: find the parent, archive the directory, make the blobs durable, then write
// the manifest (the commit point). Holds a shared repository lock throughout so prune never
// deletes what this snapshot is about to reference.
import os from 'node:os'

import {faultPoint} from '../core/faultpoint.js'
import {withLock} from '../store/lock.js'
import {type SweepResult, sweepTemporaries} from '../store/temp.js'
import type {Repository} from '../repo/repository.js'
import {BlobWriter} from '../repo/writer.js'
import {type ArchiveOptions, Archiver, type ArchiveProgress, type ArchiveResult} from './archiver.js'
import {loadCatalog, type SnapshotRecord} from './catalog.js'
import {compileSelection, literalPattern, type Marker} from './exclude.js'
import {sharedWritableMappings} from '../core/procfs.js'
import {type CaptureRecord, encodeManifest, type Manifest, manifestHead, MAX_LISTED_MOVES} from './manifest.js'
import {dropRestoreRecord, readRestoreRecord, type RestoreRecord} from './restorerecord.js'
import {checkSettled} from './settle.js'
import {TreeCache} from './treecache.js'

export interface SnapshotOptions {
  /** Absolute, symlink-free path of the directory. */
  source: string
  tags?: readonly string[]
  excludes?: readonly string[]
  force?: boolean
  /** Leave out entries with the nodump inode flag (chattr +d). */
  excludeNodump?: boolean
  /** Recorded snapshot time (default: now). */
  time?: Date
  host?: string
  skipDirs?: readonly {dev: bigint; ino: bigint}[]
  /** Leave out mount points (--one-file-system). */
  oneFileSystem?: boolean
  /** Leave out directories holding one of these files (--exclude-if-present, --exclude-caches). */
  markers?: readonly Marker[]
  /** Only these paths, relative to the source (--files-from); recorded in the manifest. */
  paths?: readonly string[]
  lockRetryMs?: number
  program: string
  onProgress?: (p: ArchiveProgress) => void
  /** For tests: see ArchiveOptions.walkHook. */
  walkHook?: ArchiveOptions['walkHook']
  /** Wall clock in ns (tests pin it). */
  nowNs?: () => bigint
  /** How to capture (default plainCapture). */
  capture?: CaptureStrategy
}

/** What a capture hands to the commit: the archived tree and how it was captured. */
export interface Captured {
  archived: ArchiveResult
  capture: CaptureRecord
}

/** What a capture strategy works with. `commit` flushes the blobs and writes the manifest. */
export interface CaptureContext {
  repo: Repository
  writer: BlobWriter
  /** The options every archive pass shares; parentTree/parentStartNs are the parent snapshot's. */
  archive: ArchiveOptions
  nowNs: () => bigint
  commit: (captured: Captured) => Promise<SnapshotResult>
}

/**
 * How the directory is captured: plain (one pass beside the running program, checked afterwards),
 * or with the program paused (src/live/capture.ts). Strategies above this layer plug in here.
 */
export type CaptureStrategy = (ctx: CaptureContext) => Promise<SnapshotResult>

export interface SnapshotResult {
  id: string
  manifest: Manifest
  /** Temp objects of dead writers removed before the snapshot began. */
  swept: SweepResult
}

export async function createSnapshot(repo: Repository, opts: SnapshotOptions): Promise<SnapshotResult> {
  return withLock(repo.backend, {exclusive: false, command: 'snapshot', retryMs: opts.lockRetryMs ?? 0}, async () => {
    const nowNs = opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n)
    const startNs = nowNs()
    const started = process.hrtime.bigint()
    const host = opts.host ?? os.hostname()
    // A killed or failed writer's temp objects would hold their space until prune, a day later.
    // The three are independent: at once, they cost an object store one round trip, not three.
    const [swept, , {snapshots}] = await allSettled([sweepTemporaries(repo.backend, Date.now()), repo.loadIndex(), loadCatalog(repo)] as const)
    // This build writes version-2 trees: an older ckpt must refuse the repository from now on.
    await repo.upgradeFormat()
    const base = await statBaseOf(repo, latestOf(snapshots, opts.source, host), opts.source, host, (id) => snapshots.some((s) => s.id === id))
    // --force exists to store the source anew: what it reuses from the repository is checked.
    const writer = new BlobWriter(repo, {verifyReused: opts.force ?? false})
    const archive = archiveOptions(repo, opts, base)
    const commit = async ({archived, capture}: Captured): Promise<SnapshotResult> => {
      const stats = await writer.flush()
      // What a rule left out is kept by an in-place restore, as what a pattern left out.
      const excludes = [...(opts.excludes ?? []), ...archived.leftOut.map(literalPattern)]
      const manifest: Manifest = {
        ...manifestHead({time: opts.time, startNs, parent: base?.parentId, host, source: opts.source, tags: opts.tags}),
        ...(excludes.length ? {excludes} : {}),
        ...(opts.excludeNodump ? {excludeNodump: true as const} : {}),
        ...(opts.paths ? {paths: [...opts.paths]} : {}),
        tree: archived.tree.toString('hex'),
        root: archived.root,
        summary: {
          files: archived.files,
          dirs: archived.dirs,
          symlinks: archived.symlinks,
          bytes: archived.bytes,
          dataBytes: archived.dataBytes,
          newBytes: stats.rawBytes,
          storedBytes: stats.storedBytes,
          newBlobs: stats.blobs,
          bytesRead: archived.bytesRead,
          filesRead: archived.filesRead,
          ...(archived.specials > 0 ? {specials: archived.specials} : {}),
          ...(archived.sockets > 0 ? {sockets: archived.sockets} : {}),
          durationMs: Number((process.hrtime.bigint() - started) / 1_000_000n),
          warnings: archived.warningCount,
          incomplete: archived.errorCount,
        },
        warnings: archived.warnings,
        program: opts.program,
        capture,
        ...(archived.metadataSkipped ? {metadataSkipped: true as const} : {}),
      }
      faultPoint('snapshot.before-manifest')
      const id = await repo.writeSnapshotBytes(encodeManifest(manifest))
      faultPoint('snapshot.after-manifest')
      // This snapshot says more than a restore's record of the directory now.
      if (base?.record) await dropRestoreRecord(repo, opts.source, {host})
      return {id, manifest, swept}
    }
    try {
      return await (opts.capture ?? plainCapture)({repo, writer, archive, nowNs, commit})
    } catch (err) {
      await writer.abort()
      throw err
    } finally {
      await base?.record?.close()
    }
  })
}

/** The latest snapshot of `source` taken on `host`: the parent of the next one. */
export function latestOf(snapshots: readonly SnapshotRecord[], source: string, host: string): SnapshotRecord | undefined {
  return [...snapshots].reverse().find((s) => s.manifest.source === source && s.manifest.host === host)
}

/** What the stat cache compares the directory with. */
export interface StatBase {
  /** The manifest's parent: the parent snapshot, or the snapshot a newer restore record restored (while the catalog has it). */
  parentId?: string
  tree: Buffer
  startNs: bigint
  /** The parent was taken without the native addon (its metadata is incomplete). */
  metadataSkipped: boolean
  trees: TreeCache
  /** Set when the base is a restore's record (restorerecord.ts): the caller closes it. */
  record?: RestoreRecord
}

/**
 * What the stat cache of `source` starts from: `parent` (its newest snapshot on `host`), or the
 * record of a restore into it made since (restorerecord.ts): what it restored, with the stats
 * the restore left. `inCatalog` says whether a snapshot still exists (the record's is then the
 * new snapshot's parent).
 */
export async function statBaseOf(repo: Repository, parent: {id?: string; manifest: Pick<Manifest, 'tree' | 'startTimeNs' | 'metadataSkipped'>} | undefined, source: string, host: string, inCatalog: (id: string) => boolean = () => false): Promise<StatBase | undefined> {
  const record = await readRestoreRecord(repo, source, {host})
  if (record && (!parent || record.startNs > BigInt(parent.manifest.startTimeNs))) {
    const parentId = inCatalog(record.snapshot) ? record.snapshot : parent?.id
    return {parentId, tree: record.tree, startNs: record.startNs, metadataSkipped: false, trees: new TreeCache({readBlob: (id) => record.readTree(Buffer.from(id))}), record}
  }
  await record?.close()
  if (!parent) return undefined
  return {parentId: parent.id, tree: Buffer.from(parent.manifest.tree, 'hex'), startNs: BigInt(parent.manifest.startTimeNs), metadataSkipped: parent.manifest.metadataSkipped === true, trees: new TreeCache(repo)}
}

/** What every archive pass of a snapshot (or of its dry run) shares. */
export function archiveOptions(repo: Repository, opts: SnapshotOptions, base: StatBase | undefined): ArchiveOptions {
  return {
    source: opts.source,
    excludes: opts.excludes ?? [],
    parentTree: base?.tree,
    parentStartNs: base?.startNs,
    force: opts.force ?? false,
    skipDirs: opts.skipDirs ?? [],
    oneFileSystem: opts.oneFileSystem,
    markers: opts.markers,
    select: opts.paths ? compileSelection(opts.paths) : undefined,
    excludeNodump: opts.excludeNodump ?? false,
    parentMetadataSkipped: base?.metadataSkipped === true,
    onProgress: opts.onProgress,
    walkHook: opts.walkHook,
    trees: base?.trees ?? new TreeCache(repo),
  }
}

/**
 * The plain capture: one pass while the program goes on writing, then the check of what moved
 * meanwhile (settle.ts), which decides whether the snapshot is one instant of the directory.
 */
export const plainCapture: CaptureStrategy = async (ctx) => ctx.commit(await plainPass(ctx))

/** One archive pass and the check of what moved during it (for plain capture, and inside hooks). */
export async function plainPass(ctx: CaptureContext): Promise<Captured> {
  const startNs = ctx.nowNs()
  const archived = await new Archiver(ctx.repo, ctx.writer, ctx.archive).run()
  await ctx.writer.flush()
  const excludes = [...ctx.archive.excludes, ...archived.leftOut.map(literalPattern)]
  const settled = await checkSettled(ctx.archive.trees ?? new TreeCache(ctx.repo), {source: ctx.archive.source, tree: archived.tree, excludes, select: ctx.archive.select, skipDirs: ctx.archive.skipDirs ?? [], excludeNodump: ctx.archive.excludeNodump ?? false, startNs})
  // A write through a shared mapping need not move the file's stat: such files prove nothing.
  const moves = [...settled.moves]
  let moveCount = settled.moveCount
  for (const use of sharedWritableMappings(ctx.archive.source)) {
    moveCount++
    if (moves.length < MAX_LISTED_MOVES) moves.push({path: use.path, change: 'mapped'})
  }
  return {archived, capture: {mode: 'plain', consistent: moveCount === 0, moves, moveCount}}
}

/** Promise.all that, on a failure, still waits for the others: none is left changing the repository. */
async function allSettled<T extends readonly unknown[]>(promises: {[K in keyof T]: Promise<T[K]>}): Promise<T> {
  const settled = await Promise.allSettled(promises)
  for (const s of settled) if (s.status === 'rejected') throw s.reason
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T
}
