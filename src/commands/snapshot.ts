import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {count, formatBytes, formatDuration} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import {readSelection} from '../cli/selection.js'
import {ExitCode, UsageError} from '../core/errors.js'
import type {SnapshotOptions} from '../snapshot/create.js'
import type {DryRunResult} from '../snapshot/dryrun.js'
import type {CaptureRecord, SnapshotSummary, SnapshotWarning} from '../snapshot/manifest.js'

export interface SnapshotJson extends SnapshotSummary {
  id: string
  parent: string | null
  time: string
  source: string
  tags: string[]
  warningList: SnapshotWarning[]
  capture: CaptureRecord
}

export default class Snapshot extends CkptCommand {
  static override summary = 'Checkpoint a directory into the repository.'
  static override description = `Splits every file into content-defined chunks, stores each new chunk once (zstd-compressed) and writes a manifest whose parent is the latest snapshot of the same directory on this host. Files whose size, mtime, ctime and inode match the parent, and whose chunks are all in the index, are not read again.

--force reads every file and also checks the repository's copy of every chunk it reuses (read, inflated and hashed, in batches): it costs a full read of the source plus a read of the stored data the snapshot shares with earlier ones, about as much as "verify --read-data" of that data. A damaged stored copy stops the snapshot before it is written (exit code 12, naming the blob): run "ckpt repair", then snapshot again to store the data anew.

Selection: --exclude (and --exclude-file) patterns, --exclude-if-present and --exclude-caches (directories holding a marker file), --one-file-system (directories mounted inside DIR), --files-from (only the listed paths; restic's rules: one a line, "#" comments, no globs). The directories the marker and filesystem rules leave out are recorded with the snapshot's exclude patterns, so an in-place restore keeps them as they are; a --files-from snapshot can only be restored with --target. Paths of --files-from that do not exist are warnings (exit code 3).

--dry-run walks DIR as a snapshot would (files the parent snapshot vouches for are not read; the others are read, chunked and hashed) and prints what would be stored: files, bytes, and the bytes the repository does not hold yet. It writes nothing to the repository and takes no lock; no hook runs and no program is paused.

Prints the new snapshot id on stdout. Exit code 3: the snapshot was written, but some files could not be read, or changed or vanished while it read them, or the directory changed while it was captured so the snapshot may not be a state it ever had (each listed as a warning naming the path, and in the manifest).`
  static override examples = [
    '<%= config.bin %> snapshot ./state',
    '<%= config.bin %> snapshot ~ --exclude-caches --one-file-system --exclude-file ~/.ckpt-excludes --dry-run',
    '<%= config.bin %> snapshot /srv/app --files-from /srv/app/backup.list',
    '<%= config.bin %> snapshot /var/lib/postgresql/15/main --tag nightly --repo /backups/pg',
    '<%= config.bin %> snapshot ./state --exclude "*.tmp" --exclude "cache/**" --json',
  ]

  static override args = {
    dir: Args.string({description: 'Directory to checkpoint.', required: true}),
  }

  static override flags = {
    tag: Flags.string({char: 't', summary: 'Tag the snapshot (repeatable).', multiple: true}),
    exclude: Flags.string({char: 'e', summary: 'Skip paths matching this glob (repeatable). Without "/" it matches a name at any depth.', multiple: true, helpGroup: 'SELECTION'}),
    'exclude-file': Flags.string({summary: 'Read --exclude patterns from this file, one a line ("#" comments and blank lines skipped; repeatable).', multiple: true, helpGroup: 'SELECTION'}),
    'exclude-if-present': Flags.string({summary: 'Leave out every directory holding a file of this name (NAME, or NAME:HEADER for one starting with HEADER; repeatable).', multiple: true, helpGroup: 'SELECTION'}),
    'exclude-caches': Flags.boolean({summary: 'Leave out cache directories: those holding a CACHEDIR.TAG with the standard signature (bford.info/cachedir).', helpGroup: 'SELECTION'}),
    'one-file-system': Flags.boolean({char: 'x', summary: 'Do not cross into other filesystems: directories mounted inside the source are left out.', helpGroup: 'SELECTION'}),
    'files-from': Flags.string({summary: 'Snapshot only the paths listed in this file, one a line, relative to DIR (or absolute inside it); repeatable.', multiple: true, helpGroup: 'SELECTION'}),
    'dry-run': Flags.boolean({char: 'n', summary: 'Show what would be stored (files, bytes, new bytes) and write nothing to the repository.'}),
    force: Flags.boolean({summary: 'Read every file, ignoring the stat cache, and check the stored copy of every chunk reused (slower; see the description).'}),
    'exclude-nodump': Flags.boolean({summary: 'Skip files and directories with the nodump flag (chattr +d).'}),
    time: Flags.string({summary: 'Record this time (ISO 8601) instead of now, e.g. for imports.'}),
    host: Flags.string({summary: 'Record this host name instead of the machine\'s.'}),
    'pause-pid': Flags.integer({summary: 'Pause this process and all its descendants for a consistent capture (repeatable).', multiple: true, helpGroup: 'LIVE CAPTURE'}),
    'pause-pid-file': Flags.string({summary: 'Pause the process whose id is on the first line of this file (postmaster.pid, a daemon\'s pid file; repeatable).', multiple: true, helpGroup: 'LIVE CAPTURE'}),
    'pause-cgroup': Flags.string({summary: 'Freeze this cgroup (v2 cgroup.freeze, v1 freezer) for a consistent capture (repeatable).', multiple: true, helpGroup: 'LIVE CAPTURE'}),
    'max-pause': Flags.string({summary: 'Longest the program may stay paused (default 5s); past it, it is resumed and the snapshot recorded as not consistent.', helpGroup: 'LIVE CAPTURE'}),
    pre: Flags.string({summary: 'Run this shell command before the snapshot (a failure aborts it).', helpGroup: 'LIVE CAPTURE'}),
    post: Flags.string({summary: 'Run this shell command after the snapshot, whatever happened (CKPT_SNAPSHOT_ID, CKPT_OUTCOME).', helpGroup: 'LIVE CAPTURE'}),
    freeze: Flags.string({summary: 'Run this shell command just before the capture window (quiesce the program; a failure aborts).', helpGroup: 'LIVE CAPTURE'}),
    thaw: Flags.string({summary: 'Run this shell command just after the capture window, whatever happened.', helpGroup: 'LIVE CAPTURE'}),
    config: Flags.string({summary: 'Read capture options (pause-pid, pause-pid-file, pause-cgroup, max-pause, pre, post, freeze, thaw, exclude, tag) from this JSON file; flags win.', helpGroup: 'LIVE CAPTURE'}),
  }

  async run(): Promise<SnapshotJson | DryRunResult> {
    const {args, flags} = await this.parse(Snapshot)
    let time: Date | undefined
    if (flags.time !== undefined) {
      time = new Date(flags.time)
      if (!Number.isFinite(time.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(flags.time)) throw new UsageError(`--time "${flags.time}" is not an ISO 8601 time (e.g. 2026-11-21T09:00:00Z)`)
    }
    // Library code is loaded when a command runs, so `ckpt --help` and other commands start fast.
    const {openOrCreate, openRepository, repositoryDirs, restoreTempsInside, sourceDirectory} = await import('../cli/repository.js')
    const {createSnapshot} = await import('../snapshot/create.js')
    const {captureStrategy, withConfig} = await import('../cli/capture.js')
    const options = withConfig(flags, flags.config)
    const source = await sourceDirectory(args.dir)
    const selection = await readSelection(flags, source)
    const location = this.repoLocation(flags.repo)
    const repo = flags['dry-run'] ? await openRepository(location) : await openOrCreate(location)
    const progress = await startProgress({command: 'snapshot', text: `snapshot ${source}`, quiet: flags.quiet, json: this.jsonEnabled()})
    const snapshotOptions: SnapshotOptions = {
      source,
      tags: options.tag,
      excludes: [...(options.exclude ?? []), ...selection.excludes],
      oneFileSystem: flags['one-file-system'],
      markers: selection.markers,
      paths: selection.paths,
      capture: captureStrategy(options, location.root),
      force: flags.force,
      excludeNodump: flags['exclude-nodump'],
      time,
      host: flags.host,
      skipDirs: [...(await repositoryDirs(repo.backend)), ...(await restoreTempsInside(source, !flags['dry-run']))],
      lockRetryMs: parseWait(flags['retry-lock']),
      program: `ckpt ${this.config.version}`,
      onProgress: (p) => progress.update({
        text: `snapshot ${source}: ${count(p.files, 'file')}, ${formatBytes(p.bytes)} (${formatBytes(p.bytesRead)} read) ${p.path}`,
        figures: {files: p.files, bytes: p.bytes, bytesRead: p.bytesRead, path: p.path},
        bytes: p.bytesRead,
      }),
    }
    for (const p of selection.missing) process.stderr.write(`warning: ${p}: listed in --files-from, not found in ${source}\n`)
    if (selection.missing.length > 0) process.exitCode = ExitCode.warnings
    if (flags['dry-run']) {
      const {dryRunSnapshot} = await import('../snapshot/dryrun.js')
      let dry
      try {
        dry = await dryRunSnapshot(repo, snapshotOptions)
      } finally {
        progress.stop()
      }
      for (const w of dry.warningList) process.stderr.write(`warning: ${w.path}: ${w.message}\n`)
      if (dry.incomplete > 0) process.exitCode = ExitCode.warnings
      if (!this.jsonEnabled()) {
        const leftOut = dry.leftOut.length ? `; would leave out ${dry.leftOut.slice(0, 5).join(', ')}${dry.leftOut.length > 5 ? ` and ${dry.leftOut.length - 5} more` : ''}` : ''
        this.log(`snapshot (dry run) of ${source}: would store ${count(dry.files, 'file')}, ${formatBytes(dry.bytes)}, ${formatBytes(dry.newBytes)} new (${formatBytes(dry.bytesRead)} read)${dry.parent ? `, parent ${dry.parent.slice(0, 12)}` : ''}${leftOut}`)
      }
      return dry
    }
    let result
    try {
      result = await createSnapshot(repo, snapshotOptions)
    } finally {
      progress.stop()
    }
    const {id, manifest, swept} = result
    const s = manifest.summary
    if (swept.removed > 0) this.note(flags, `removed ${count(swept.removed, 'temporary object')}, ${formatBytes(swept.bytes)}, left by writes that were killed or failed`)
    for (const w of manifest.warnings) process.stderr.write(`warning: ${w.path}: ${w.message}\n`)
    if (s.warnings > manifest.warnings.length) process.stderr.write(`warning: ${count(s.warnings - manifest.warnings.length, 'more warning')} not listed\n`)
    const capture = manifest.capture!
    if (!capture.consistent && capture.pause) {
      process.stderr.write(`warning: the pause ran past --max-pause and the program was resumed before the changed files were copied (${capture.pause.pauseMs.toFixed(0)} ms): the snapshot may not be a state the directory ever had\n`)
    } else if (!capture.consistent) {
      const listed = capture.moves.slice(0, 5).map((m) => `${m.path} (${m.change})`).join(', ')
      const more = capture.moveCount > 5 ? ` and ${capture.moveCount - 5} more` : ''
      process.stderr.write(`warning: the directory changed while it was captured, so the snapshot may not be a state it ever had: ${listed}${more}. Pause its program (--pause-pid, --pause-cgroup) for a consistent capture.\n`)
    }
    if (s.incomplete > 0 || !capture.consistent) process.exitCode = ExitCode.warnings
    if (!this.jsonEnabled()) {
      this.log(id)
      this.note(flags, `snapshot ${id.slice(0, 12)} of ${source}: ${count(s.files, 'file')}, ${formatBytes(s.bytes)}, ${formatBytes(s.newBytes)} new (${formatBytes(s.storedBytes)} stored) in ${formatDuration(s.durationMs)}${s.sockets ? `, ${count(s.sockets, 'socket')} skipped` : ''}${capture.pause ? `, program paused ${capture.pause.pauseMs.toFixed(1)} ms` : ''}${manifest.parent ? `, parent ${manifest.parent.slice(0, 12)}` : ''}`)
    }
    return {id, parent: manifest.parent, time: manifest.time, source, tags: manifest.tags, ...s, warningList: manifest.warnings, capture}
  }
}
