import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {count, formatBytes, formatDuration} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import {UsageError} from '../core/errors.js'
import type {RepoLocation} from '../store/location.js'
import type {Finding} from '../verify/findings.js'
import type {DataSelection} from '../verify/subset.js'
import type {VerifyReport} from '../verify/verify.js'

/** Findings of one kind printed on a terminal; --json lists them all. */
const SHOWN_PER_KIND = 50

export default class Verify extends CkptCommand {
  static override summary = 'Check that the repository is whole: structure, and with --read-data every byte.'
  static override description = `Checks the config, every snapshot manifest and index file, every tree the snapshots reach (read and hash-checked), that every chunk they reference is indexed, and that every indexed pack exists with the right size and a header that agrees with the index. --read-data also reads every pack and checks every chunk against its BLAKE3 id; --read-data-subset n/t reads one of t slices of the packs (1/t .. t/t together read each pack once), or N% a random sample. Given snapshot ids, checks only what they reach. With --source DIR, also compares the snapshot with a directory, file by file.

Reports every problem, with the snapshots it affects. Exit codes: 0 clean (information such as a forgotten parent does not count), 12 damage found (or differences with --source), 13 unknown repository format version, 10 no repository, 11 locked by prune. See docs/VERIFY.md.`

  static override examples = [
    '<%= config.bin %> verify',
    '<%= config.bin %> verify --read-data --json',
    '<%= config.bin %> verify --quiet --read-data-subset "$(( $(date +%s) / 86400 % 7 + 1 ))/7"',
    '<%= config.bin %> verify latest --source /var/lib/state',
  ]

  static override strict = false

  static override args = {
    snapshot: Args.string({description: 'Snapshot ids, unique prefixes or "latest" (several allowed): check only what they reach.'}),
  }

  static override flags = {
    'read-data': Flags.boolean({summary: 'Read every pack and check every chunk against its id.', exclusive: ['read-data-subset']}),
    'read-data-subset': Flags.string({summary: 'Read one slice of the packs: n/t (e.g. 3/7; 1/t..t/t cover every pack once) or a random N%.', exclusive: ['read-data']}),
    source: Flags.string({summary: 'Compare the snapshot given (exactly one; "latest" is the latest snapshot of this directory) with this directory: content, mode, mtime, symlinks, missing and extra entries.'}),
  }

  async run(): Promise<VerifyReport> {
    const {argv, flags} = await this.parse(Verify)
    // Library code is loaded when the command runs, so other commands do not pay for it at start.
    const [{repositoryDirs, sourceDirectory}, {openBackend}, {describeFinding}, {parseSubset}, {verifyRepository}] = await Promise.all([
      import('../cli/repository.js'), import('../store/registry.js'), import('../verify/findings.js'), import('../verify/subset.js'), import('../verify/verify.js'),
    ])
    let refs = argv as string[]
    let readData: DataSelection = {kind: 'none'}
    if (flags['read-data']) readData = {kind: 'all'}
    else if (flags['read-data-subset'] !== undefined) readData = parseSubset(flags['read-data-subset'])
    if (flags.source !== undefined && refs.length !== 1) throw new UsageError('--source compares one snapshot: give exactly one snapshot id (or "latest")')
    const source = flags.source === undefined ? undefined : await sourceDirectory(flags.source)
    const location = this.repoLocation(flags.repo)
    const backend = await openBackend(location)
    // A repository inside the directory is never in its snapshots, as snapshot skips it.
    const sourceSkipDirs = source === undefined ? [] : await repositoryDirs(backend)
    if (source && refs[0] === 'latest') refs = [await this.latestOf(location, source)]

    const human = !this.jsonEnabled()
    const progress = await startProgress({command: 'verify', text: 'verify', quiet: flags.quiet, json: !human})
    const started = Date.now()
    let report: VerifyReport
    try {
      report = await verifyRepository(backend, {
        snapshots: refs,
        readData,
        source,
        sourceSkipDirs,
        lockRetryMs: parseWait(flags['retry-lock']),
        onStaleLockRemoved: (_info, name) => this.note(flags, `removed stale lock ${name}`),
        onProgress: (p) => {
          const seconds = Math.max(0.001, (Date.now() - started) / 1000)
          const what = p.phase === 'packs' ? `${p.packsDone}/${count(p.packsTotal, 'pack')}` : p.phase === 'trees' ? `${count(p.trees, 'tree')}` : p.phase
          progress.update({
            text: `verify: ${what}, ${formatBytes(p.bytesRead)} read (${formatBytes(p.bytesRead / seconds)}/s)`,
            figures: {phase: p.phase, trees: p.trees, packsDone: p.packsDone, packsTotal: p.packsTotal, bytesRead: p.bytesRead},
            // Reading packs, the share of them read is the share of the work done (packs are of one size).
            ...(p.phase === 'packs' && p.packsTotal > 0 ? {done: p.packsDone, total: p.packsTotal} : {}),
          })
        },
      })
    } finally {
      progress.stop()
    }
    process.exitCode = report.exitCode
    if (human) this.print(report, Boolean(flags.quiet), describeFinding)
    return report
  }

  /** "latest" with --source means the latest snapshot of that directory, as everywhere. */
  private async latestOf(location: RepoLocation, source: string): Promise<string> {
    const [{openRepository}, {selectSnapshot}, {loadCatalog}] = await Promise.all([import('../cli/repository.js'), import('../inspect/select.js'), import('../snapshot/catalog.js')])
    return selectSnapshot(await loadCatalog(await openRepository(location)), 'latest', {source}).id
  }

  /**
   * A failing verify lists its findings (information too, for context) on stdout, even with
   * --quiet; a clean one prints only the summary line, on stderr, and --quiet silences that.
   */
  private print(report: VerifyReport, quiet: boolean, describeFinding: (f: Finding) => string): void {
    const shown = new Map<string, number>()
    for (const f of report.errors > 0 ? report.findings : []) {
      const n = (shown.get(f.kind) ?? 0) + 1
      shown.set(f.kind, n)
      if (n <= SHOWN_PER_KIND) this.log(describeFinding(f))
    }
    for (const [kind, n] of shown) if (n > SHOWN_PER_KIND) this.log(`... and ${count(n - SHOWN_PER_KIND, `more ${kind} finding`)} (--json lists all)`)
    for (const d of report.source?.differences ?? []) this.log(`differs ${d.kind}: ${d.message}`)

    const c = report.counts
    const rate = c.packsRead > 0 && report.durationMs > 0 ? ` at ${formatBytes(Math.round((c.bytesRead / report.durationMs) * 1000))}/s` : ''
    const checked = `${count(c.snapshots, 'snapshot')}, ${count(c.trees, 'tree')}, ${count(c.chunks, 'chunk')}, ${count(c.packs, 'pack')}${c.packsRead ? ` (${c.packsRead} read, ${count(c.blobsRead, 'blob')} re-hashed${report.subset ? `, subset ${report.subset}` : ''})` : ''}, ${formatBytes(c.bytesRead)} read${rate} in ${formatDuration(report.durationMs)}`
    const compared = report.source ? `; ${count(report.source.entries, 'entry', 'entries')} compared with ${report.source.directory}: ${report.source.differences.length} differ` : ''
    const differences = report.source?.differences.length ?? 0
    const verdict = report.errors === 0 && differences === 0 ? 'no errors' : [report.errors ? count(report.errors, 'error') : '', differences ? count(differences, 'difference') : ''].filter(Boolean).join(' and ')
    const notes = report.infos ? `, ${count(report.infos, 'note')}${report.errors ? '' : ' (--json lists them)'}` : ''
    const summary = `verify: ${verdict}${notes}: ${checked}${compared}`
    if (quiet) return
    process.stderr.write(summary + '\n')
    // Damage stays in the index until repaired: until then no snapshot stores the data again.
    if (report.errors > 0) process.stderr.write('ckpt repair drops what is damaged, so that the next snapshot of a source that has the data stores it again (docs/VERIFY.md, "Repair")\n')
  }
}
