// `ckpt snapshot`: find the parent, archive the directory, make the blobs durable, then write
// the manifest (the commit point). Holds a shared repository lock throughout so prune never
// deletes what this snapshot is about to reference.
import os from 'node:os'

import {faultPoint} from '../core/faultpoint.js'
import {withLock} from '../store/lock.js'
import {type SweepResult, sweepTemporaries} from '../store/temp.js'
import type {Repository} from '../repo/repository.js'
import {BlobWriter, type WriterStats} from '../repo/writer.js'
import {type ArchiveOptions, Archiver, type ArchiveProgress, type ArchiveResult} from './archiver.js'
import {loadCatalog} from './catalog.js'
import {encodeManifest, type Manifest, MANIFEST_VERSION} from './manifest.js'

export interface SnapshotOptions {
  /** Absolute, symlink-free path of the directory. */
  source: string
  tags?: readonly string[]
  excludes?: readonly string[]
  force?: boolean
  /** Recorded snapshot time (default: now). */
  time?: Date
  host?: string
  skipDirs?: readonly {dev: bigint; ino: bigint}[]
  lockRetryMs?: number
  program: string
  onProgress?: (p: ArchiveProgress) => void
  /** For tests: see ArchiveOptions.walkHook. */
  walkHook?: ArchiveOptions['walkHook']
  /** Wall clock in ns (tests pin it). */
  nowNs?: () => bigint
}

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
    const swept = await sweepTemporaries(repo.backend, Date.now())
    await repo.loadIndex()
    const {snapshots} = await loadCatalog(repo)
    const parent = [...snapshots].reverse().find((s) => s.manifest.source === opts.source && s.manifest.host === host)
    // --force exists to store the source anew: what it reuses from the repository is checked.
    const writer = new BlobWriter(repo, {verifyReused: opts.force ?? false})
    let archived: ArchiveResult
    let stats: WriterStats
    try {
      archived = await new Archiver(repo, writer, {
        source: opts.source,
        excludes: opts.excludes ?? [],
        parentTree: parent ? Buffer.from(parent.manifest.tree, 'hex') : undefined,
        parentStartNs: parent ? BigInt(parent.manifest.startTimeNs) : undefined,
        force: opts.force ?? false,
        skipDirs: opts.skipDirs ?? [],
        onProgress: opts.onProgress,
        walkHook: opts.walkHook,
      }).run()
      stats = await writer.flush()
    } catch (err) {
      await writer.abort()
      throw err
    }
    const manifest: Manifest = {
      version: MANIFEST_VERSION,
      time: (opts.time ?? new Date(Number(startNs / 1_000_000n))).toISOString(),
      startTimeNs: startNs.toString(),
      parent: parent?.id ?? null,
      host,
      source: opts.source,
      tags: [...new Set(opts.tags ?? [])].sort(),
      ...(opts.excludes?.length ? {excludes: [...opts.excludes]} : {}),
      tree: archived.tree.toString('hex'),
      root: archived.root,
      summary: {
        files: archived.files,
        dirs: archived.dirs,
        symlinks: archived.symlinks,
        bytes: archived.bytes,
        newBytes: stats.rawBytes,
        storedBytes: stats.storedBytes,
        newBlobs: stats.blobs,
        bytesRead: archived.bytesRead,
        filesRead: archived.filesRead,
        durationMs: Number((process.hrtime.bigint() - started) / 1_000_000n),
        warnings: archived.warningCount,
        incomplete: archived.errorCount,
      },
      warnings: archived.warnings,
      program: opts.program,
    }
    faultPoint('snapshot.before-manifest')
    const id = await repo.writeSnapshotBytes(encodeManifest(manifest))
    faultPoint('snapshot.after-manifest')
    return {id, manifest, swept}
  })
}
