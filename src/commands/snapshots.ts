import {CkptCommand} from '../cli/base.js'
import {formatBytes, formatTime, table} from '../cli/format.js'

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
}

export default class Snapshots extends CkptCommand {
  static override summary = 'List snapshots, oldest first.'
  static override description = 'KIND is "safety" for the snapshot restore takes of a directory before replacing it (tag pre-restore): an undo point, which "latest" skips and prune keeps by --keep-pre-restore; "checkpoint" otherwise.'
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
    }))
    for (const d of damaged) process.stderr.write(`warning: ${d.error.message}\n`)
    if (!this.jsonEnabled()) {
      if (list.length === 0) {
        this.note(flags, 'no snapshots')
      } else {
        this.log(table(
          ['ID', 'TIME', 'KIND', 'PARENT', 'SOURCE', 'TAGS', 'FILES', 'SIZE', 'NEW'],
          list.map((s) => [s.shortId, formatTime(s.time), s.safety ? 'safety' : 'checkpoint', s.parent ? s.parent.slice(0, 8) : '-', s.source, s.tags.join(',') || '-', String(s.files), formatBytes(s.bytes), formatBytes(s.newBytes)]),
          new Set([6, 7, 8]),
        ))
      }
    }
    return list
  }
}
