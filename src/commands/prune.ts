import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {helpForTerminal, pruneDecisions, prunePlan, pruneSummary} from '../cli/prune.js'
import {startProgress} from '../cli/progress.js'
import {UsageError} from '../core/errors.js'
import type {PruneReport} from '../prune/prune.js'
import {parseDuration} from '../retention/duration.js'
import {DEFAULT_GROUP_BY, DEFAULT_KEEP_PRE_RESTORE, isEmptyPolicy, parseGroupBy, POLICY_HELP, type RetentionPolicy} from '../retention/policy.js'

const keep = (what: string) => Flags.integer({summary: `Keep ${what}.`, min: 0, helpGroup: 'POLICY'})

export default class Prune extends CkptCommand {
  static override summary = 'Remove snapshots by a retention policy and free the data nothing uses any more.'
  static override description = `${helpForTerminal(POLICY_HELP)}
The rules are the --keep-* flags; --keep-tag may be repeated. A pinned snapshot (ckpt pin) is never removed.

Worked examples (one group, times UTC):
- --keep-last 3, snapshots on Nov 1 to 5: keeps Nov 5 (newest of group, last 1/3), Nov 4 (last 2/3), Nov 3 (last 3/3); removes Nov 2 and Nov 1.
- --keep-daily 2, snapshots at Nov 21 18:00, Nov 21 09:00, Nov 20 12:00: keeps Nov 21 18:00 (newest of group, daily 2026-11-21) and Nov 20 12:00 (daily 2026-11-20); removes Nov 21 09:00, which is not the newest of its day.
- --keep-hourly 24 --keep-daily 7 --keep-weekly 4 on hourly snapshots: the 24 newest, and the newest of each of the 7 most recent days and of the 4 most recent ISO weeks; these often coincide (the newest snapshot is kept for every rule at once), and a snapshot kept by one rule still counts for the others.
- --keep-daily 2 --prefer-consistent, snapshots at Nov 21 18:00 (plain, inconsistent), Nov 21 09:00 (paused), Nov 20 12:00: keeps Nov 21 18:00 (newest of group), Nov 21 09:00 (daily 2026-11-21 (consistent)) and Nov 20 12:00 (daily 2026-11-20).
- --keep-within 7d --keep-last 1: everything from the last 7 days (by the --tz calendar), and at least the newest even if older.
- --keep-last 1 with one checkpoint and two newer pre-restore snapshots: keeps the checkpoint (newest of group, last 1/1) and both safety snapshots (pre-restore 1/3, 2/3).

Then garbage collection: every tree and chunk reachable from the remaining snapshots is marked; packs with no live data are deleted, packs with at least --repack-threshold dead data are repacked (live blobs copied to new packs first), small packs are merged. The plan is made and the copying done under a shared lock, beside running snapshots; only the final deletions take the exclusive lock, briefly. Safe to run from cron, and after a crash: the next prune finishes the work.

Output: one summary line (nothing with --quiet); decisions and plan with --dry-run or --verbose; the full report with --json. Docs: docs/RETENTION.md.

Exit codes: 0 done (also when there was nothing to do), 2 bad or empty policy, 11 the repository is locked (the holder is named, and how to break the lock: ckpt unlock), 12 the repository is damaged (a kept snapshot needs a missing or corrupt blob, or a manifest is unreadable): prune then deletes nothing, 14 the repository is read-only.`
  static override examples = [
    '<%= config.bin %> prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12',
    '<%= config.bin %> prune --keep-last 10 --keep-within 30d --dry-run',
    '<%= config.bin %> prune --keep-hourly 48 --keep-tag release --group-by host --tz Europe/Berlin --json',
  ]

  static override flags = {
    'keep-last': keep('the N newest snapshots of each group'),
    'keep-hourly': keep('the newest snapshot of each of the N most recent hours that have one'),
    'keep-daily': keep('the newest snapshot of each of the N most recent days that have one'),
    'keep-weekly': keep('the newest snapshot of each of the N most recent ISO weeks that have one'),
    'keep-monthly': keep('the newest snapshot of each of the N most recent months that have one'),
    'keep-yearly': keep('the newest snapshot of each of the N most recent years that have one'),
    'keep-within': Flags.string({summary: 'Keep every snapshot taken at or after now minus this duration (e.g. 36h, 7d, 2w, 1y6m, 30min).', helpGroup: 'POLICY'}),
    'keep-tag': Flags.string({summary: 'Keep every snapshot with this tag (repeatable).', multiple: true, helpGroup: 'POLICY'}),
    'keep-pre-restore': Flags.integer({
      summary: `Keep the N newest safety snapshots (tag pre-restore, taken by restore before it replaced a directory) of each group; the other rules never keep or count them. Default: ${DEFAULT_KEEP_PRE_RESTORE}.`,
      min: 0,
      helpGroup: 'POLICY',
    }),
    'prefer-consistent': Flags.boolean({
      summary: 'Make the hourly, daily, weekly, monthly and yearly rules keep the newest consistent snapshot of each period (a consistent image of one instant: ckpt snapshots, CAPTURE) when the period has one, instead of its newest. Snapshots with no capture record count as not consistent.',
      helpGroup: 'POLICY',
    }),
    'group-by': Flags.string({summary: 'Decide separately per host, source, tags (comma list), or none.', default: DEFAULT_GROUP_BY.join(','), helpGroup: 'POLICY'}),
    tz: Flags.string({summary: 'Time zone of the calendar (IANA name, e.g. Europe/Berlin, or UTC). Default: the system zone.', helpGroup: 'POLICY'}),
    'dry-run': Flags.boolean({char: 'n', summary: 'Show what would be removed and freed, and why; change nothing.'}),
    verbose: Flags.boolean({char: 'v', summary: 'Print the decisions and the plan, not only the summary.'}),
    'repack-threshold': Flags.string({summary: 'Repack a pack once this share of it is dead (0-100%).', default: '50%', helpGroup: 'GC'}),
    'merge-small': Flags.boolean({summary: 'Merge packs smaller than a quarter of the pack size.', default: true, allowNo: true, helpGroup: 'GC'}),
  }

  async run(): Promise<PruneReport> {
    const {flags} = await this.parse(Prune)
    const policy: RetentionPolicy = {
      last: flags['keep-last'], hourly: flags['keep-hourly'], daily: flags['keep-daily'], weekly: flags['keep-weekly'],
      monthly: flags['keep-monthly'], yearly: flags['keep-yearly'],
      within: flags['keep-within'] === undefined ? undefined : parseDuration(flags['keep-within']),
      tags: flags['keep-tag'],
      preRestore: flags['keep-pre-restore'],
      preferConsistent: flags['prefer-consistent'],
    }
    if (isEmptyPolicy(policy)) {
      throw new UsageError('refusing to prune without a retention policy: that would remove every snapshot but the newest of each group. Give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly (above 0), --keep-within or --keep-tag')
    }
    const groupBy = parseGroupBy(flags['group-by'])
    const timeZone = flags.tz ?? Intl.DateTimeFormat().resolvedOptions().timeZone
    const repackThreshold = parsePercent(flags['repack-threshold'])
    const retry = flags['retry-lock'] === undefined ? undefined : parseWait(flags['retry-lock'])
    const {openRepository} = await import('../cli/repository.js')
    const {runPrune} = await import('../prune/prune.js')
    const {describeHolder} = await import('../store/lock.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const progress = await startProgress({command: 'prune', text: 'prune', quiet: flags.quiet, json: this.jsonEnabled()})
    let report: PruneReport
    try {
      report = await runPrune(repo, {
        policy, groupBy, timeZone, now: Date.now(), dryRun: flags['dry-run'] === true, repackThreshold, mergeSmall: flags['merge-small'],
        retryMs: retry ?? 0, exclusiveRetryMs: retry,
        onProgress: (text) => progress.update({text: `prune: ${text}`, figures: {phase: text}}),
        onStaleLock: (info, name) => {
          if (info) this.note(flags, `removed stale lock ${name} (${describeHolder(info)})`)
          else process.stderr.write(`warning: removed unparsable lock ${name} from ${repo.backend.location} (no ckpt writes such a lock)\n`)
        },
      })
    } finally {
      progress.stop()
    }
    if (!this.jsonEnabled() && !flags.quiet) {
      for (const w of report.warnings) process.stderr.write(`warning: ${w}\n`)
      const detailed = flags['dry-run'] || flags.verbose || (process.stdout.isTTY && !process.env.CI)
      if (detailed) this.log(pruneDecisions(report))
      if (flags['dry-run'] || flags.verbose) this.log(prunePlan(report, flags.verbose))
      this.log(pruneSummary(report))
    }
    return report
  }
}

function parsePercent(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(text.trim())
  const n = m ? Number(m[1]) : NaN
  if (!(n >= 0 && n <= 100)) throw new UsageError(`invalid --repack-threshold "${text}": give a percentage from 0 to 100, e.g. 50%`)
  return n / 100
}
