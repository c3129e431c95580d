import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'

export interface FoundEntry {
  snapshot: string
  time: string
  source: string
  path: string
  pathHex?: string
  type: string
  size: number
  mtime: string
}

export default class Find extends CkptCommand {
  static override summary = 'Find which snapshots hold a path matching a pattern.'
  static override description = `PATTERN is matched as --exclude patterns are: without "/" against every name at any depth ("*.sst", "CURRENT"), with "/" against the whole path from the snapshot's root ("db/*.log", "**/step-*/weights.bin"); "*" and "?" stay within a name, "**" crosses directories, [abc] and [!abc] are classes. Quote it so the shell does not expand it.

Prints one line per match: snapshot, its time, the path (escaped as ckpt ls shows it), type, size and mtime in that snapshot; newest snapshots first. Searches every snapshot, or those --snapshot, --source, --host and --tag select. A directory unchanged between snapshots is searched once.

Exit codes: 0 searched (also when nothing matched: the count is on stderr), 2 a bad pattern, 4 a --snapshot that does not exist or is ambiguous, 10 no repository.`

  static override examples = [
    '<%= config.bin %> find "*.sst"',
    '<%= config.bin %> find "checkpoints/step-*/weights.bin" --source /data/run1',
    '<%= config.bin %> find CURRENT --snapshot latest --json',
  ]

  static override args = {
    pattern: Args.string({description: 'The pattern (see above).', required: true}),
  }

  static override flags = {
    snapshot: Flags.string({summary: 'Search only this snapshot (id, unique prefix, "latest"; repeatable).', multiple: true}),
    source: Flags.string({summary: 'Only snapshots of this directory (which need not exist any more).'}),
    host: Flags.string({summary: 'Only snapshots taken on this host.'}),
    tag: Flags.string({summary: 'Only snapshots with these tags ("a,b": both; repeated: any).', multiple: true}),
  }

  async run(): Promise<FoundEntry[]> {
    const {args, flags} = await this.parse(Find)
    const [{openRepository}, {formatBytes, formatTime, table}, {Finder}, {isoNs, escapeName, jsonBytes}, {reading}, select, {Trees}, {UsageError}] = await Promise.all([
      import('../cli/repository.js'), import('../cli/format.js'), import('../inspect/find.js'), import('../inspect/names.js'), import('../inspect/open.js'),
      import('../inspect/select.js'), import('../inspect/trees.js'), import('../core/errors.js'),
    ])
    if (args.pattern.replace(/\/+$/, '') === '') throw new UsageError('find: the pattern is empty')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await select.sourcePath(flags.source)
    const filter = {source, host: flags.host, tags: select.parseTagFilter(flags.tag)}
    const found: FoundEntry[] = []
    const rows: string[][] = []
    await reading(repo, {command: 'find', retryMs: parseWait(flags['retry-lock']), blobs: true}, async (catalog) => {
      const chosen = flags.snapshot?.length
        ? [...new Map(flags.snapshot.map((ref) => select.selectSnapshot(catalog, ref, filter)).map((s) => [s.id, s])).values()]
        : select.filterSnapshots(catalog.snapshots, filter)
      const finder = new Finder(new Trees(repo), args.pattern)
      for (const s of [...chosen].reverse()) {
        for (const at of await finder.inSnapshot(s)) {
          const p = jsonBytes(at.path)
          const n = at.node
          found.push({snapshot: s.id, time: s.manifest.time, source: s.manifest.source, path: p.text, ...(p.hex ? {pathHex: p.hex} : {}), type: n.type, size: n.size, mtime: isoNs(n.mtimeNs)})
          rows.push([s.id.slice(0, 8), formatTime(s.manifest.time), escapeName(at.path) + (n.type === 'dir' ? '/' : ''), n.type, n.type === 'file' ? formatBytes(n.size) : '-', isoNs(n.mtimeNs).slice(0, 19).replace('T', ' ')])
        }
      }
      this.note(flags, `${found.length} ${found.length === 1 ? 'match' : 'matches'} in ${new Set(found.map((f) => f.snapshot)).size} of ${chosen.length} ${chosen.length === 1 ? 'snapshot' : 'snapshots'}`)
    })
    if (!this.jsonEnabled() && rows.length) this.log(table(['SNAPSHOT', 'TIME', 'PATH', 'TYPE', 'SIZE', 'MTIME'], rows, new Set([4])))
    return found
  }
}
