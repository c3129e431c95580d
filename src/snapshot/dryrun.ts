// `ckpt snapshot --dry-run`: the archive pass of a snapshot with a sink that only counts. Files
// the stat cache does not vouch for are read, chunked and hashed as a snapshot would, so "new
// bytes" is exact: what the snapshot would add (before compression). Nothing is written to the
// repository and no lock is taken (a lock is a write): a prune meanwhile can at worst make the
// parent unreadable, which costs the stat cache, not the answer's correctness.
import os from 'node:os'

import {toHex} from '../core/ids.js'
import type {Repository} from '../repo/repository.js'
import {Archiver, type BlobSink} from './archiver.js'
import {loadCatalog} from './catalog.js'
import {archiveOptions, latestOf, type SnapshotOptions, statBaseOf} from './create.js'
import type {SnapshotWarning} from './manifest.js'

export interface DryRunResult {
  source: string
  parent: string | null
  files: number
  dirs: number
  symlinks: number
  bytes: number
  /** Bytes of blobs (file chunks and trees) the repository does not hold: what the snapshot would add, before compression. */
  newBytes: number
  newBlobs: number
  bytesRead: number
  filesRead: number
  warnings: number
  incomplete: number
  warningList: SnapshotWarning[]
  /** Directories --one-file-system, --exclude-if-present or --exclude-caches would leave out. */
  leftOut: string[]
  dryRun: true
}

/** Counts the blobs a snapshot would store instead of storing them. */
class CountingSink implements BlobSink {
  newBytes = 0
  newBlobs = 0
  private readonly seen = new Set<string>()

  constructor(private readonly repo: Pick<Repository, 'has'>) {}

  reuse(id: Uint8Array): boolean {
    return this.repo.has(id) || this.seen.has(toHex(id))
  }

  async add(_type: number, id: Buffer, plain: Uint8Array): Promise<boolean | undefined> {
    if (this.reuse(id)) return undefined
    this.seen.add(toHex(id))
    this.newBlobs++
    this.newBytes += plain.length
    return undefined
  }
}

export async function dryRunSnapshot(repo: Repository, opts: SnapshotOptions): Promise<DryRunResult> {
  await repo.loadIndex()
  const {snapshots} = await loadCatalog(repo)
  const host = opts.host ?? os.hostname()
  const base = await statBaseOf(repo, latestOf(snapshots, opts.source, host), opts.source, host, (id) => snapshots.some((s) => s.id === id))
  const sink = new CountingSink(repo)
  const a = await new Archiver(repo, sink, archiveOptions(repo, opts, base)).run().finally(() => base?.record?.close())
  return {
    source: opts.source, parent: base?.parentId ?? null,
    files: a.files, dirs: a.dirs, symlinks: a.symlinks, bytes: a.bytes, newBytes: sink.newBytes, newBlobs: sink.newBlobs,
    bytesRead: a.bytesRead, filesRead: a.filesRead, warnings: a.warningCount, incomplete: a.errorCount, warningList: a.warnings, leftOut: a.leftOut, dryRun: true,
  }
}
