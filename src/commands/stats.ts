import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import type {StatsReport} from '../inspect/stats.js'

export default class Stats extends CkptCommand {
  static override summary = 'Sizes, dedup and compression ratios, and what each snapshot alone holds.'
  static override description = `Per snapshot (those given, else all, or those --source, --host and --tag select): FILES; SIZE, the bytes of its files as restored (logical); STORED, what the distinct chunks and trees it reaches take in the repository; DEDUP, logical size over the plain bytes of its distinct chunks; COMPR, plain over stored bytes; UNIQUE, the stored bytes no other snapshot reaches: what forgetting it and then pruning would free.

Then the repository: snapshots, packs and their bytes, blobs indexed and referenced, logical size of all snapshots, dedup and compression ratios over everything, and what no snapshot references (what ckpt prune would free).

Every snapshot's trees are walked to find what is unique to each (a tree shared by two snapshots is walked at most twice in all); each snapshot shown is also walked whole, for STORED and the ratios, so on a repository of many large snapshots name the few you want. --json: {snapshots: [{id, time, source, files, logicalBytes, reached: {blobs, rawBytes, storedBytes}, unique: {...}, dedupRatio, compressionRatio}], totals: {snapshots, packs, packBytes, indexed, referenced, unreferenced, missingBlobs, logicalBytes, dedupRatio, compressionRatio}, treesRead}.

Exit codes: 0 shown, 4 no such snapshot (unknown id, ambiguous prefix), 10 no repository, 12 a tree is damaged.`

  static override examples = [
    '<%= config.bin %> stats',
    '<%= config.bin %> stats latest 3fa9c2d1',
    '<%= config.bin %> stats --source /var/lib/app --json',
  ]

  static override strict = false

  static override args = {
    snapshot: Args.string({description: 'Snapshot ids, unique prefixes or "latest" (several allowed); default: every snapshot.'}),
  }

  static override flags = {
    source: Flags.string({summary: 'Only snapshots of this directory (which need not exist any more).'}),
    host: Flags.string({summary: 'Only snapshots taken on this host.'}),
    tag: Flags.string({summary: 'Only snapshots with these tags ("a,b": both; repeated: any).', multiple: true}),
  }

  async run(): Promise<StatsReport> {
    const {argv, flags} = await this.parse(Stats)
    const [{openRepository}, {formatBytes, formatTime, table}, {repositoryStats}, {reading}, select] = await Promise.all([
      import('../cli/repository.js'), import('../cli/format.js'), import('../inspect/stats.js'), import('../inspect/open.js'), import('../inspect/select.js'),
    ])
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await select.sourcePath(flags.source)
    const filter = {source, host: flags.host, tags: select.parseTagFilter(flags.tag)}
    const refs = argv as string[]
    const report = await reading(repo, {command: 'stats', retryMs: parseWait(flags['retry-lock'])}, async (catalog) => {
      for (const d of catalog.damaged) process.stderr.write(`warning: ${d.error.message}\n`)
      const chosen = refs.length ? refs.map((ref) => select.selectSnapshot(catalog, ref, filter)) : select.filterSnapshots(catalog.snapshots, filter)
      return repositoryStats(repo, catalog.snapshots, chosen)
    })
    if (!this.jsonEnabled()) {
      const r = (x: number | null) => (x === null ? '-' : `${x.toFixed(2)}x`)
      if (report.snapshots.length) {
        this.log(table(['ID', 'TIME', 'SOURCE', 'FILES', 'SIZE', 'STORED', 'DEDUP', 'COMPR', 'UNIQUE'], report.snapshots.map((s) => [
          s.id.slice(0, 8), formatTime(s.time), s.source, String(s.files), formatBytes(s.logicalBytes), formatBytes(s.reached.storedBytes), r(s.dedupRatio), r(s.compressionRatio), formatBytes(s.unique.storedBytes),
        ]), new Set([3, 4, 5, 6, 7, 8])))
        this.log('')
      }
      const t = report.totals
      const plural = (n: number, one: string) => `${n} ${n === 1 ? one : `${one}s`}`
      this.log([
        `repository: ${plural(t.snapshots, 'snapshot')}, ${plural(t.packs, 'pack')} (${formatBytes(t.packBytes)}), ${plural(t.indexed.blobs, 'blob')} indexed`,
        `  logical size ${formatBytes(t.logicalBytes)}, stored ${formatBytes(t.referenced.storedBytes)} (plain ${formatBytes(t.referenced.rawBytes)}): dedup ${r(t.dedupRatio)}, compression ${r(t.compressionRatio)}`,
        `  unreferenced: ${plural(t.unreferenced.blobs, 'blob')}, ${formatBytes(t.unreferenced.storedBytes)} (ckpt prune frees them)${t.missingBlobs ? `; ${plural(t.missingBlobs, 'blob')} referenced but missing (run ckpt verify)` : ''}`,
      ].join('\n'))
    }
    return report
  }
}
