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
  files: number
  bytes: number
  newBytes: number
  storedBytes: number
  warnings: number
}

export default class Snapshots extends CkptCommand {
  static override summary = 'List snapshots, oldest first.'
  static override examples = ['<%= config.bin %> snapshots', '<%= config.bin %> snapshots --json']

  async run(): Promise<SnapshotListEntry[]> {
    const {flags} = await this.parse(Snapshots)
    const {openRepository} = await import('../cli/repository.js')
    const {loadCatalog, shortIds} = await import('../snapshot/catalog.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const {snapshots, damaged} = await loadCatalog(repo)
    const short = shortIds(snapshots.map((s) => s.id))
    const list = snapshots.map(({id, manifest: m}) => ({
      id, shortId: short.get(id)!, time: m.time, parent: m.parent, host: m.host, source: m.source, tags: m.tags,
      files: m.summary.files, bytes: m.summary.bytes, newBytes: m.summary.newBytes, storedBytes: m.summary.storedBytes, warnings: m.summary.warnings,
    }))
    for (const d of damaged) process.stderr.write(`warning: ${d.error.message}\n`)
    if (!this.jsonEnabled()) {
      if (list.length === 0) {
        this.note(flags, 'no snapshots')
      } else {
        this.log(table(
          ['ID', 'TIME', 'PARENT', 'SOURCE', 'TAGS', 'FILES', 'SIZE', 'NEW'],
          list.map((s) => [s.shortId, formatTime(s.time), s.parent ? s.parent.slice(0, 8) : '-', s.source, s.tags.join(',') || '-', String(s.files), formatBytes(s.bytes), formatBytes(s.newBytes)]),
          new Set([5, 6, 7]),
        ))
      }
    }
    return list
  }
}
