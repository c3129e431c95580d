import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {UsageError} from '../core/errors.js'
import {count, formatBytes, formatDuration} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import type {CopyResult} from '../copy/copy.js'

export interface CopyJson extends Omit<CopyResult, 'verify'> {
  from: string
  to: string
  /** The destination's check of the copied snapshots: null when nothing was copied or with --no-verify. */
  verify: {ok: boolean; readData: boolean; errors: number; findings: unknown[]; durationMs: number} | null
}

export default class Copy extends CkptCommand {
  static override summary = 'Copy snapshots into another repository, sending only what it lacks.'
  static override description = `Copies snapshots from the repository --from (default: --repo, $CKPT_REPO, else .ckpt) into the repository --to, which must exist (ckpt init --repo s3://... creates one). Either may be a directory or s3://BUCKET/PREFIX: a local repository copied to S3 is an off-host copy.

Only blobs (trees and chunks) the destination's index does not list are sent: each is read from the source and checked against its BLAKE3 id, then stored by the destination as a snapshot stores it (its own packs and index files). A snapshot keeps its id: the manifest is copied byte for byte, last, once everything it reaches is durable, so an interrupted copy leaves no snapshot in the destination that lacks data, and the next copy finishes the work. A snapshot the destination has already is skipped, so running the same copy again sends nothing (safe in cron). A copied snapshot whose parent was not copied is complete all the same; verify notes the missing parent.

Name the snapshots (ids, unique prefixes, "latest"), or give --all. --source, --host and --tag narrow both, as in ckpt snapshots; --latest N (with --all) takes the newest N of each host and source.

Afterwards the destination checks the copied snapshots as ckpt verify ID... does (structure: index, packs, every tree read and decoded, every chunk indexed); --read-data also reads back and re-hashes every pack they reach, --no-verify skips the check. Damage found there is exit code 12.

The destination's largest chunk must not be smaller than the source's (ckpt init --avg-chunk-size), else exit code 2. Both repositories are locked shared for the whole copy, so a prune on either waits for it.

--dry-run walks the selected snapshots' trees in the source and counts what the destination lacks (snapshots, blobs, bytes to send: chunks as stored, trees plain, as the destination compresses them itself), and writes nothing to the destination.`
  static override examples = [
    '<%= config.bin %> copy latest --from /var/backups/ckpt --to s3://backups/host-a',
    '<%= config.bin %> copy --all --repo /var/backups/ckpt --to s3://backups/host-a',
    '<%= config.bin %> copy 3fa9c2 8d0e11 --to /mnt/usb/ckpt --read-data',
    '<%= config.bin %> copy --all --tag nightly --latest 7 --to s3://backups/host-a --json',
    '<%= config.bin %> copy --all --to s3://backups/host-a --dry-run',
  ]

  static override strict = false
  static override args = {
    snapshot: Args.string({description: 'Snapshot ids, unique prefixes, or "latest" (several may be given).'}),
  }

  static override flags = {
    from: Flags.string({summary: 'Repository to copy from (default: --repo, $CKPT_REPO, else .ckpt).'}),
    to: Flags.string({summary: 'Repository to copy into: a directory or s3://BUCKET/PREFIX. It must exist.', required: true}),
    all: Flags.boolean({summary: 'Copy every snapshot (that the filters pass).'}),
    source: Flags.string({summary: 'Only snapshots of this directory (which need not exist any more).'}),
    host: Flags.string({summary: 'Only snapshots taken on this host.'}),
    tag: Flags.string({summary: 'Only snapshots with these tags ("a,b": both; repeated: any).', multiple: true}),
    latest: Flags.integer({summary: 'With --all: only the newest N snapshots of each host and source.', min: 1}),
    'read-data': Flags.boolean({summary: 'After copying, read back and re-hash every pack the copied snapshots reach in the destination.'}),
    verify: Flags.boolean({summary: 'Check the copied snapshots in the destination afterwards (default; --no-verify skips it).', default: true, allowNo: true}),
    'dry-run': Flags.boolean({char: 'n', summary: 'Count what would be sent (snapshots, blobs, bytes) and write nothing.'}),
  }

  async run(): Promise<CopyJson> {
    const {argv, flags} = await this.parse(Copy)
    if (flags['read-data'] && !flags.verify) throw new UsageError('--read-data is a way to verify: it cannot go with --no-verify')
    const {openRepository} = await import('../cli/repository.js')
    const {copySnapshots} = await import('../copy/copy.js')
    const {parseTagFilter, sourcePath} = await import('../inspect/select.js')
    const from = this.repoLocation(flags.from ?? flags.repo)
    const to = this.repoLocation(flags.to)
    const src = await openRepository(from)
    const dst = await openRepository(to)
    const filter = {source: flags.source === undefined ? undefined : await sourcePath(flags.source), host: flags.host, tags: parseTagFilter(flags.tag)}
    const started = Date.now()
    const progress = await startProgress({command: 'copy', text: `copy to ${to.root}`, quiet: flags.quiet, json: this.jsonEnabled()})
    let result: CopyResult
    try {
      result = await copySnapshots(src, dst, {refs: argv as string[], all: flags.all, filter, latest: flags.latest}, {
        verify: !flags.verify ? 'none' : flags['read-data'] ? 'read' : 'structure',
        lockRetryMs: parseWait(flags['retry-lock']),
        dryRun: flags['dry-run'],
        onProgress: (p) => {
          const seconds = Math.max(0.001, (Date.now() - started) / 1000)
          progress.update({
            text: `copy ${p.snapshot}/${p.snapshots} ${p.id.slice(0, 12)}: ${formatBytes(p.bytesSent)} sent (${formatBytes(Math.round(p.bytesSent / seconds))}/s), ${formatBytes(p.bytesWalked)} of ${formatBytes(p.bytesTotal)} walked`,
            figures: {snapshot: p.snapshot, snapshots: p.snapshots, id: p.id, blobs: p.blobs, bytesSent: p.bytesSent, bytesWalked: p.bytesWalked},
            done: p.bytesWalked,
            total: p.bytesTotal,
          })
        },
      })
    } finally {
      progress.stop()
    }
    const v = result.verify
    if (v && !v.ok) process.exitCode = v.exitCode
    if (!this.jsonEnabled()) this.print(flags, result, to.root)
    return {
      from: from.root, to: to.root, ...result,
      verify: v ? {ok: v.ok, readData: v.readData !== 'none', errors: v.errors, findings: v.findings, durationMs: v.durationMs} : null,
    }
  }

  private print(flags: {quiet?: boolean}, r: CopyResult, to: string): void {
    // Damage is printed whatever --quiet says, as verify prints it.
    for (const f of r.verify && !r.verify.ok ? r.verify.findings.filter((f) => f.severity === 'error').slice(0, 20) : []) this.log(f.message)
    const skipped = r.skipped.length ? ` (${count(r.skipped.length, 'snapshot')} already there)` : ''
    if (r.dryRun) {
      this.note(flags, `would copy ${count(r.copied.length, 'snapshot')} to ${to}${skipped}: ${count(r.blobs, 'blob')}, ${formatBytes(r.bytesSent)} to send (${formatBytes(r.rawBytes)} plain); nothing was written`)
      return
    }
    if (r.copied.length === 0) {
      this.note(flags, `copy: nothing to copy to ${to}${skipped}`)
      return
    }
    const verified = !r.verify ? 'not checked (--no-verify)' : r.verify.ok ? `verified${r.verify.readData !== 'none' ? ' (data read back)' : ''}` : `DAMAGED: ${count(r.verify.errors, 'error')} (ckpt verify --repo ${to} lists them)`
    this.note(flags, `copied ${count(r.copied.length, 'snapshot')} to ${to}${skipped}: ${count(r.blobs, 'blob')}, ${formatBytes(r.bytesSent)} sent (${formatBytes(r.rawBytes)} plain) in ${formatDuration(r.durationMs)}; ${verified}`)
  }
}
