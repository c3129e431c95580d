import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand} from '../cli/base.js'
import type {LogResult} from '../inspect/log.js'

export default class Log extends CkptCommand {
  static override summary = 'Show a snapshot and its parents, newest first.'
  static override description = `Follows the parent each snapshot records (the previous snapshot of the same directory on the same host) from SNAPSHOT (default "latest"; with --source, the latest snapshot of that directory) back to the first one, or to a parent that was forgotten.

Columns: ID, TIME, TAGS (and "pinned"), CAPTURE (how it was taken, ", inconsistent" when not one instant's state; "-" when not recorded), FILES, SIZE (all files), ADDED (bytes stored for the first time, as stored), DURATION. --json: {entries: [{id, time, parent, host, source, tags, pinned, safety, capture, consistent, files, bytes, newBytes, storedBytes, durationMs, warnings}], missingParent}.

Exit codes: 0 shown, 4 no such snapshot (unknown id, ambiguous prefix, no snapshot of --source), 10 no repository.`

  static override examples = [
    '<%= config.bin %> log',
    '<%= config.bin %> log --source /var/lib/app',
    '<%= config.bin %> log 3fa9c2d1 --json',
  ]

  static override args = {
    snapshot: Args.string({description: 'Where the chain starts: snapshot id, unique prefix, or "latest" (default).'}),
  }

  static override flags = {
    source: Flags.string({summary: 'The chain of this directory (which need not exist any more): starts at its latest snapshot.'}),
    host: Flags.string({summary: 'With "latest": the latest snapshot taken on this host.'}),
  }

  async run(): Promise<LogResult> {
    const {args, flags} = await this.parse(Log)
    const [{openRepository}, {formatBytes, formatCapture, formatDuration, formatTime, table}, {parentChain}, {selectSnapshot, sourcePath}, {loadCatalog}, {listPins}] = await Promise.all([
      import('../cli/repository.js'), import('../cli/format.js'), import('../inspect/log.js'), import('../inspect/select.js'), import('../snapshot/catalog.js'), import('../prune/pins.js'),
    ])
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await sourcePath(flags.source)
    const catalog = await loadCatalog(repo)
    for (const d of catalog.damaged) process.stderr.write(`warning: ${d.error.message}\n`)
    const start = selectSnapshot(catalog, args.snapshot ?? 'latest', {source, host: flags.host})
    const result = parentChain(catalog.snapshots, start, await listPins(repo))
    if (!this.jsonEnabled()) {
      const byId = new Map(catalog.snapshots.map((s) => [s.id, s.manifest]))
      this.log(table(['ID', 'TIME', 'TAGS', 'CAPTURE', 'FILES', 'SIZE', 'ADDED', 'DURATION'], result.entries.map((e) => [
        e.id.slice(0, 8), formatTime(e.time), [...e.tags, ...(e.pinned ? ['pinned'] : [])].join(',') || '-', formatCapture(byId.get(e.id)?.capture),
        String(e.files), formatBytes(e.bytes), formatBytes(e.storedBytes), formatDuration(e.durationMs),
      ]), new Set([4, 5, 6, 7])))
      if (result.missingParent) this.note(flags, `(the parent of the oldest shown, ${result.missingParent.slice(0, 12)}, was forgotten)`)
    }
    return result
  }
}
