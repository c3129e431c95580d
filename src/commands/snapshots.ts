import {CkptCommand} from '../cli/base.js'
import {formatBytes, formatCapture, formatTime, table} from '../cli/format.js'
import type {CaptureRecord} from '../snapshot/manifest.js'

export interface SnapshotListEntry {
  id: string
  shortId: string
  time: string
  parent: string | null
  host: string
  source: string
  tags: string[]
  /** A safety snapshot (restore's undo point): not a checkpoint, skipped by "latest", kept by --keep-pre-restore. */
  safety: boolean
  files: number
  bytes: number
  newBytes: number
  storedBytes: number
  warnings: number
  /** How it was captured (mode, consistent, pause, moves); null in manifests written before ckpt recorded it. */
  capture: CaptureRecord | null
}

export default class Snapshots extends CkptCommand {
  static override summary = 'List snapshots, oldest first.'
  static override description = `KIND is "safety" for the snapshot restore takes of a directory before replacing it (tag pre-restore): an undo point, which "latest" skips and prune keeps by --keep-pre-restore; "checkpoint" otherwise.

CAPTURE is how the directory was captured: "plain" (read while its program ran, then checked for anything that moved meanwhile), "paused" or "frozen" (the program stopped by --pause-pid or --pause-cgroup, with how long), or "hooks" (--freeze/--thaw hooks, no pause). ", inconsistent" marks a snapshot that may not be a state the directory ever had (something moved during a plain capture, or a pause ran past --max-pause); restore warns about it, and prune --prefer-consistent passes it over. "-": taken before ckpt recorded this (unknown). --json gives the whole capture record.`
  static override examples = ['<%= config.bin %> snapshots', '<%= config.bin %> snapshots --json']

  async run(): Promise<SnapshotListEntry[]> {
    const {flags} = await this.parse(Snapshots)
    const {openRepository} = await import('../cli/repository.js')
    const {isSafetySnapshot, loadCatalog, shortIds} = await import('../snapshot/catalog.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const {snapshots, damaged} = await loadCatalog(repo)
    const short = shortIds(snapshots.map((s) => s.id))
    const list = snapshots.map(({id, manifest: m}) => ({
      id, shortId: short.get(id)!, time: m.time, parent: m.parent, host: m.host, source: m.source, tags: m.tags, safety: isSafetySnapshot(m.tags),
      files: m.summary.files, bytes: m.summary.bytes, newBytes: m.summary.newBytes, storedBytes: m.summary.storedBytes, warnings: m.summary.warnings,
      capture: m.capture ?? null,
    }))
    for (const d of damaged) process.stderr.write(`warning: ${d.error.message}\n`)
    if (!this.jsonEnabled()) {
      if (list.length === 0) {
        this.note(flags, 'no snapshots')
      } else {
        this.log(table(
          ['ID', 'TIME', 'KIND', 'CAPTURE', 'PARENT', 'SOURCE', 'TAGS', 'FILES', 'SIZE', 'NEW'],
          list.map((s) => [s.shortId, formatTime(s.time), s.safety ? 'safety' : 'checkpoint', formatCapture(s.capture ?? undefined), s.parent ? s.parent.slice(0, 8) : '-', s.source, s.tags.join(',') || '-', String(s.files), formatBytes(s.bytes), formatBytes(s.newBytes)]),
          new Set([7, 8, 9]),
        ))
      }
    }
    return list
  }
}
