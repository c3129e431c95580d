// `ckpt snapshot`: find the parent, archive the directory, make the blobs durable, then write
// the manifest (the commit point). Holds a shared repository lock throughout so prune never
// deletes what this snapshot is about to reference.
import os from 'node:os'

import {withLock} from '../store/lock.js'
import type {Repository} from '../repo/repository.js'
import {BlobWriter} from '../repo/writer.js'
import {Archiver, type ArchiveProgress} from './archiver.js'
import {loadCatalog} from './catalog.js'
import {encodeManifest, type Manifest, MANIFEST_VERSION} from './manifest.js'
import {checkSettled} from './settle.js'

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
  /** Wall clock in ns (tests pin it). */
  nowNs?: () => bigint
}

export interface SnapshotResult {
  id: string
  manifest: Manifest
}

export async function createSnapshot(repo: Repository, opts: SnapshotOptions): Promise<SnapshotResult> {
  return withLock(repo.backend, {exclusive: false, command: 'snapshot', retryMs: opts.lockRetryMs ?? 0}, async () => {
    const nowNs = opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n)
    const startNs = nowNs()
    const started = process.hrtime.bigint()
    const host = opts.host ?? os.hostname()
    await repo.loadIndex()
    const {snapshots} = await loadCatalog(repo)
    const parent = [...snapshots].reverse().find((s) => s.manifest.source === opts.source && s.manifest.host === host)
    const writer = new BlobWriter(repo)
    const archived = await new Archiver(repo, writer, {
      source: opts.source,
      excludes: opts.excludes ?? [],
      parentTree: parent ? Buffer.from(parent.manifest.tree, 'hex') : undefined,
      parentStartNs: parent ? BigInt(parent.manifest.startTimeNs) : undefined,
      force: opts.force ?? false,
      skipDirs: opts.skipDirs ?? [],
      onProgress: opts.onProgress,
    }).run()
    const stats = await writer.flush()
    // Plain capture: the program kept running, so say whether the tree is one moment of it.
    const settled = await checkSettled(repo, {source: opts.source, tree: archived.tree, excludes: opts.excludes ?? [], skipDirs: opts.skipDirs ?? [], startNs})
    const manifest: Manifest = {
      version: MANIFEST_VERSION,
      time: (opts.time ?? new Date(Number(startNs / 1_000_000n))).toISOString(),
      startTimeNs: startNs.toString(),
      parent: parent?.id ?? null,
      host,
      source: opts.source,
      tags: [...new Set(opts.tags ?? [])].sort(),
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
      capture: {mode: 'plain', consistent: settled.consistent, moves: settled.moves, moveCount: settled.moveCount},
    }
    const id = await repo.writeSnapshotBytes(encodeManifest(manifest))
    return {id, manifest}
  })
}
