import {promises as fsp} from 'node:fs'

import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {count, formatBytes} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import {UsageError} from '../core/errors.js'
import type {RepairReport} from '../prune/repair.js'

/** Snapshots named on a terminal; --json lists them all. */
const SHOWN = 20

export default class Repair extends CkptCommand {
  static override summary = 'Drop damaged blobs from the repository, keeping everything that still checks out.'
  static override description = `Reads and checks every blob, as verify --read-data does (or only the packs a verify --json report names, with --from-verify). Each pack with damage is rewritten: the blobs that pass their BLAKE3 check are copied into a new pack, index files are written without the damaged pack, and then it is deleted (a shared lock while copying, the exclusive lock only for the deletes, crash-safe in prune's order). Damaged index files are deleted and the packs snapshots need from them indexed again; packs no index lists whose header cannot be read are deleted.

The snapshots that need a dropped blob are named. A snapshot of a source that still has the data stores those blobs again, and since ids are content hashes, that heals these snapshots too.

Exit codes: 0 the repository is whole (nothing was damaged, or no snapshot lost a blob), 12 snapshots remain broken (named) or damage repair cannot mend remains (a damaged manifest, a tree that does not decode); with --dry-run, 12 when anything is damaged. 10 no repository, 11 locked. See docs/VERIFY.md.`

  static override examples = [
    '<%= config.bin %> repair --dry-run',
    '<%= config.bin %> repair --json',
    '<%= config.bin %> verify --read-data-subset 1/7 --json > verify.json; <%= config.bin %> repair --from-verify verify.json',
  ]

  static override flags = {
    'dry-run': Flags.boolean({char: 'n', summary: 'Check and show what would be dropped; change nothing.'}),
    'from-verify': Flags.string({summary: 'Read and check only the packs this verify --json report names (structure is still checked in full).'}),
  }

  async run(): Promise<RepairReport> {
    const {flags} = await this.parse(Repair)
    const packs = flags['from-verify'] === undefined ? undefined : await packsFromReport(flags['from-verify'])
    const retry = flags['retry-lock'] === undefined ? undefined : parseWait(flags['retry-lock'])
    const {openRepository} = await import('../cli/repository.js')
    const {runRepair} = await import('../prune/repair.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const progress = await startProgress(!flags.quiet && !this.jsonEnabled(), 'repair')
    let report: RepairReport
    try {
      report = await runRepair(repo, {
        dryRun: flags['dry-run'] === true, packs, retryMs: retry ?? 0, exclusiveRetryMs: retry,
        onProgress: (text) => progress.update(`repair: ${text}`),
        onStaleLock: (_info, name) => this.note(flags, `removed stale lock ${name}`),
      })
    } finally {
      progress.stop()
    }
    process.exitCode = report.exitCode
    if (!this.jsonEnabled()) this.print(report, Boolean(flags.quiet))
    return report
  }

  /** Broken snapshots are printed on stdout even with --quiet (as verify's findings are); the summary goes to stderr. */
  private print(r: RepairReport, quiet: boolean): void {
    for (const p of r.packs) {
      const what = r.dryRun ? 'would rewrite' : p.present ? `rewrote (${count(p.blobsKept ?? 0, 'blob')} kept, ${p.blobsDropped} dropped)` : `dropped from the index (${count(p.blobsDropped ?? 0, 'blob')})`
      if (!quiet) process.stderr.write(`pack ${p.name.slice(0, 16)}: ${r.dryRun || p.present ? what : 'missing, ' + what}: ${p.reasons.join(', ')}\n`)
    }
    if (r.brokenSnapshots.length > 0) {
      const shown = r.brokenSnapshots.slice(0, SHOWN).map((id) => id.slice(0, 12)).join(', ') + (r.brokenSnapshots.length > SHOWN ? `, and ${r.brokenSnapshots.length - SHOWN} more` : '')
      this.log(`${r.dryRun ? 'snapshots affected' : 'snapshots still broken'} (${r.brokenSnapshots.length}): ${shown}`)
      if (!r.dryRun) {
        for (const f of r.remaining.slice(0, SHOWN)) this.log(`  ${f.kind}: ${f.message}`)
        this.log('A snapshot of a source that still has the data stores the missing blobs again, which heals these snapshots too, since ids are content hashes.')
      }
    }
    if (quiet) return
    const x = r.result
    const summary = r.dryRun
      ? `repair (dry run): ${count(r.found.errors, 'error')} found; would rewrite ${count(r.packs.length, 'pack')}, drop ${count(r.droppedBlobs.length, 'damaged blob')} and ${count(r.damagedIndexFiles.length, 'damaged index file')}`
      : x === null
        ? `repair: nothing to repair (${count(r.found.errors, 'error')} found, ${count(r.found.packsRead, 'pack')} read)`
        : `repair: ${count(r.packs.length, 'pack')} rewritten, ${count(r.droppedBlobs.length, 'blob')} dropped, ${x.blobsCopied} copied (${formatBytes(x.bytesWritten)} written, ${formatBytes(x.bytesDeleted)} deleted), ${count(x.indexFilesDeleted, 'index file')} replaced; ${r.brokenSnapshots.length === 0 ? 'the repository is whole' : `${count(r.brokenSnapshots.length, 'snapshot')} still broken`}`
    process.stderr.write(summary + '\n')
  }
}

/** The packs a verify --json report names: packs found damaged, and the packs of damaged blobs. */
async function packsFromReport(file: string): Promise<string[]> {
  let doc: unknown
  try {
    doc = JSON.parse(await fsp.readFile(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`--from-verify ${file}: not a verify --json report (${(err as Error).message})`)
  }
  const findings = (doc as {findings?: unknown}).findings
  if (!Array.isArray(findings)) throw new UsageError(`--from-verify ${file}: not a verify --json report (no findings)`)
  const packs = new Set<string>()
  for (const f of findings as {object?: unknown; id?: unknown; pack?: unknown}[]) {
    if (f.object === 'pack' && typeof f.id === 'string') packs.add(f.id)
    if (typeof f.pack === 'string') packs.add(f.pack)
  }
  return [...packs].sort()
}
