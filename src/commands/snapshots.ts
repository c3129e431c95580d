import * as Flags from '@oclif/core/flags'

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
  /** Pinned: no retention policy removes it (ckpt pin). */
  pinned: boolean
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

CAPTURE is how the directory was captured: "plain" (read while its program ran, then checked for anything that moved meanwhile), "paused" or "frozen" (the program stopped by --pause-pid or --pause-cgroup, with how long), or "hooks" (--freeze/--thaw hooks, no pause). ", inconsistent" marks a snapshot that may not be a state the directory ever had (something moved during a plain capture, or a pause ran past --max-pause); restore warns about it, and prune --prefer-consistent passes it over. "-": taken before ckpt recorded this (unknown). --json gives the whole capture record.

TAGS lists a snapshot's tags, and "pinned" for one no retention policy removes (ckpt pin).

--source, --host and --tag show only some snapshots (--source DIR: those of that directory, which need not exist any more; --tag a,b: with both tags; repeated --tag: with any); --latest N the newest N of each host and source.`
  static override examples = ['<%= config.bin %> snapshots', '<%= config.bin %> snapshots --source /var/lib/app --latest 5', '<%= config.bin %> snapshots --tag nightly --json']

  static override flags = {
    source: Flags.string({summary: 'Only snapshots of this directory (which need not exist any more).'}),
    host: Flags.string({summary: 'Only snapshots taken on this host.'}),
    tag: Flags.string({summary: 'Only snapshots with these tags ("a,b": both; repeated: any).', multiple: true}),
    latest: Flags.integer({summary: 'Only the newest N snapshots of each host and source.', min: 1}),
  }

  async run(): Promise<SnapshotListEntry[]> {
    const {flags} = await this.parse(Snapshots)
    const {openRepository} = await import('../cli/repository.js')
    const {isSafetySnapshot, loadCatalog, shortIds} = await import('../snapshot/catalog.js')
    const {filterSnapshots, parseTagFilter, sourcePath} = await import('../inspect/select.js')
    const {listPins} = await import('../prune/pins.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const catalog = await loadCatalog(repo)
    const {damaged} = catalog
    const source = flags.source === undefined ? undefined : await sourcePath(flags.source)
    const snapshots = filterSnapshots(catalog.snapshots, {source, host: flags.host, tags: parseTagFilter(flags.tag)}, flags.latest)
    const pins = await listPins(repo)
    // Prefixes that tell each snapshot apart from all others, not only from those shown.
    const short = shortIds(catalog.snapshots.map((s) => s.id))
    const list = snapshots.map(({id, manifest: m}) => ({
      id, shortId: short.get(id)!, time: m.time, parent: m.parent, host: m.host, source: m.source, tags: m.tags, safety: isSafetySnapshot(m.tags), pinned: pins.has(id),
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
          list.map((s) => [s.shortId, formatTime(s.time), s.safety ? 'safety' : 'checkpoint', formatCapture(s.capture ?? undefined), s.parent ? s.parent.slice(0, 8) : '-', s.source, [...s.tags, ...(s.pinned ? ['pinned'] : [])].join(',') || '-', String(s.files), formatBytes(s.bytes), formatBytes(s.newBytes)]),
          new Set([7, 8, 9]),
        ))
      }
    }
    return list
  }
}
