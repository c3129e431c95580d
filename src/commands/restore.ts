import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {describeInconsistency, formatBytes} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import type {RestoreResult} from '../restore/restorer.js'

export default class Restore extends CkptCommand {
  static override summary = 'Put a snapshot back, byte for byte.'
  static override description = `Without --target, replaces the snapshot's source directory atomically: the tree is built in a temp directory beside it, synced to disk, then swapped in, so the path holds the old tree or the new one, never a mix. Before replacing a non-empty directory it snapshots what is there, tagged pre-restore (cheap thanks to dedup): restore that snapshot to undo. With --target, restores into a new or empty directory.

An in-place restore keeps the repository when it lies inside the directory, and every path the snapshot's --exclude patterns match: they are moved into the new tree before the swap, never replaced or removed. One that cannot be moved (on another filesystem, a mount point) stops the restore before anything changes (exit code 5).

An in-place restore refuses a directory that a running process uses, before anything changes (exit code 15): the message names each process (pid, command, what it uses). A process uses it when it has a file under it open or mapped, or its working directory, root or executable there: such a program would go on with the removed old tree, and its writes would be lost. Not counted: ckpt's own caller (the shell or script that ran it, often with its working directory inside: cd into the directory again afterwards) and the paths the restore keeps (the repository, excluded paths). Stop the program first, restore elsewhere with --target, or replace it anyway with --force.

A snapshot recorded as not consistent (see ckpt snapshots, CAPTURE) is restored with a warning on stderr naming how it was captured and what moved.

Restores contents, modes, mtimes (ns), symlinks, empty directories, and owners when run as root. Every chunk is checked against its BLAKE3 id; a damaged one stops the restore and leaves the destination untouched (exit code 12). A target filesystem without room for the snapshot is refused before anything is written (exit code 7).`
  static override examples = [
    '<%= config.bin %> restore latest',
    '<%= config.bin %> restore 3fa9c2 --target /tmp/state-copy',
    '<%= config.bin %> restore latest --target /tmp/one --include db/CURRENT',
  ]

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest".', required: true}),
  }

  static override flags = {
    target: Flags.string({summary: 'Restore into this new or empty directory instead of replacing the source.'}),
    include: Flags.string({summary: 'Restore only this path of the snapshot (repeatable; needs --target).', multiple: true}),
    'keep-old': Flags.boolean({summary: 'Keep the replaced directory beside the source instead of deleting it.'}),
    'no-safety-snapshot': Flags.boolean({summary: 'Do not snapshot the directory being replaced first.'}),
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory.'}),
    force: Flags.boolean({summary: 'Replace the source in place even when running processes use it (otherwise exit code 15).'}),
  }

  async run(): Promise<RestoreResult & {snapshot: string; safetySnapshot?: string}> {
    const {args, flags} = await this.parse(Restore)
    const {openRepository, sourceDirectory} = await import('../cli/repository.js')
    const {restoreSnapshot} = await import('../restore/restorer.js')
    const {loadCatalog, PRE_RESTORE_TAG, resolveSnapshot} = await import('../snapshot/catalog.js')
    const {createSnapshot} = await import('../snapshot/create.js')
    const location = this.repoLocation(flags.repo)
    const repo = await openRepository(location)
    const {promises: fsp} = await import('node:fs')
    const repoDir = repo.backend.capabilities.localDirectory
    const repoStat = repoDir === undefined ? undefined : await fsp.stat(repoDir, {bigint: true})
    const retryMs = parseWait(flags['retry-lock'])
    const {snapshots, damaged} = await loadCatalog(repo)
    const source = flags.source ? await sourceDirectory(flags.source) : undefined
    const snap = resolveSnapshot(snapshots, args.snapshot, source ? (s) => s.manifest.source === source : undefined, damaged)
    const capture = snap.manifest.capture
    if (capture && !capture.consistent) {
      process.stderr.write(`warning: snapshot ${snap.id.slice(0, 12)} is not a consistent image of one instant (${describeInconsistency(capture)}): it may not be a state the directory ever had\n`)
    }
    let safetySnapshot: string | undefined
    const progress = await startProgress(!flags.quiet && !this.jsonEnabled(), `restore ${snap.id.slice(0, 12)}`)
    let result: RestoreResult
    try {
      result = await restoreSnapshot(repo, snap, {
        target: flags.target,
        includes: flags.include,
        keepOld: flags['keep-old'],
        lockRetryMs: retryMs,
        keep: repoDir === undefined ? [] : [repoDir],
        force: flags.force,
        onCallerCwd: (pids) => this.note(flags, `note: the working directory of what ran ckpt (pid ${pids.join(', ')}, e.g. your shell) was in the old ${snap.manifest.source}, now removed: cd into it again to see the restored tree`),
        beforeReplace: flags['no-safety-snapshot'] ? undefined : async (dest) => {
          const real = await sourceDirectory(dest)
          // Like any snapshot: without the repository, and without what the restore keeps anyway.
          const safety = await createSnapshot(repo, {
            source: real, tags: [PRE_RESTORE_TAG], excludes: snap.manifest.excludes, skipDirs: repoStat ? [{dev: repoStat.dev, ino: repoStat.ino}] : [],
            program: `ckpt ${this.config.version}`, lockRetryMs: retryMs,
          })
          safetySnapshot = safety.id
          this.note(flags, `saved the current ${dest} as snapshot ${safety.id.slice(0, 12)} (tag ${PRE_RESTORE_TAG}; undo with: ckpt restore ${safety.id.slice(0, 12)})`)
        },
        onProgress: (p) => progress.update(`restore ${snap.id.slice(0, 12)}: ${p.files} files, ${formatBytes(p.bytes)} ${p.path}`),
      })
    } finally {
      progress.stop()
    }
    this.note(flags, `restored snapshot ${snap.id.slice(0, 12)} to ${result.destination}: ${result.files} files, ${result.dirs} directories, ${result.symlinks} symlinks, ${formatBytes(result.bytes)}${result.oldTree ? ` (previous tree kept at ${result.oldTree})` : ''}`)
    return {snapshot: snap.id, ...result, ...(safetySnapshot ? {safetySnapshot} : {})}
  }
}
