import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'
import path from 'node:path'

import {CkptCommand, parseWait} from '../cli/base.js'
import {ExitCode} from '../core/errors.js'
import {count, describeInconsistency, formatBytes} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import type {RestoreResult} from '../restore/restorer.js'

export default class Restore extends CkptCommand {
  static override summary = 'Put a snapshot back, byte for byte.'
  static override description = `Without --target, replaces the snapshot's source directory atomically: the tree is built in a temp directory beside it, synced to disk, then swapped in, so the path holds the old tree or the new one, never a mix. Before replacing a non-empty directory it snapshots what is there, tagged pre-restore (cheap thanks to dedup): restore that snapshot to undo. With --target, restores into a new or empty directory; with --target DIR --overwrite, replaces DIR as an in-place restore replaces the source (safety snapshot, atomic swap).

A restore over an existing directory (in place, or --overwrite) reuses what is already there: a file the snapshot read and nobody touched since (same inode, ctime, size and mtime) is hard linked into the new tree without being read (copied instead with --keep-old, so the kept tree shares no inode with the new one); any other file at the same path (or a renamed one, found by its inode) is cut with the repository's chunker and hashed (unless the newest snapshot of the directory, such as the safety snapshot, recorded it as it is now), carried whole when its chunks are the snapshot's, and otherwise lends the chunks it still holds; on a filesystem that shares extents (XFS, btrfs) a changed large file starts as a clone of its old version and only the stretches that differ are written. --seed DIR (repeatable) adds directories whose files may hold chunks too, say an older copy. Every chunk taken from a local file is checked against its id as it is copied; only what no local file holds is read from the repository. --verify-existing hashes even the untouched files. The report gives the files reused, the bytes taken from local files and those read from the repository.

An in-place restore keeps the repository when it lies inside the directory, and every path the snapshot's --exclude patterns match: they are moved into the new tree before the swap, never replaced or removed. One that cannot be moved (on another filesystem, a mount point) stops the restore before anything changes (exit code 5).

A directory that is itself a mount point (a volume mounted at the state directory, or an empty one given as --target) cannot be renamed: the new tree is written inside it, on its own filesystem, and its entries trade places with the old ones (the old ones set aside, then the new ones moved up); a restore killed midway is undone or finished by the next one, so the directory ends wholly old or wholly new. --keep-old is refused there. A directory with another volume mounted inside it is refused before anything changes (exit code 5).

An in-place restore refuses a directory that a running process uses, before anything changes (exit code 15): the message names each process (pid, command, what it uses). A process uses it when it has a file under it open or mapped, or its working directory, root or executable there: such a program would go on with the removed old tree, and its writes would be lost. Not counted: ckpt's own caller (the shell or script that ran it, often with its working directory inside: cd into the directory again afterwards) and the paths the restore keeps (the repository, excluded paths). Stop the program first, restore elsewhere with --target, or replace it anyway with --force.

--include and --exclude choose what is written: every --include must name a path in the snapshot (else exit code 4, before anything is written); --exclude leaves out paths matching its glob (the syntax of snapshot --exclude), and in place what the directory holds there stays, as for the paths the snapshot itself excluded. --dry-run reads only the snapshot's trees and prints what would be written (files, directories, symlinks, bytes, and whether the destination would be replaced); it creates, replaces and removes nothing.

A snapshot recorded as not consistent (see ckpt snapshots, CAPTURE) is restored with a warning on stderr naming how it was captured and what moved.

Restores contents, modes, mtimes (ns), symlinks, empty directories, hard links (as links), sparse files (holes as holes), FIFOs, user.* extended attributes and POSIX ACLs, paths of any length; as root also owners, trusted.* and security.* attributes, device nodes and inode flags (chattr: immutable, append-only... set last). What the target filesystem or user cannot take (a filesystem without xattrs or flags, device nodes without root) is skipped with one warning per kind, and the exit code is 3. Every chunk is checked against its BLAKE3 id; a damaged one stops the restore and leaves the destination untouched (exit code 12). A target filesystem without room for the snapshot is refused before anything is written (exit code 7).`
  static override examples = [
    '<%= config.bin %> restore latest',
    '<%= config.bin %> restore 3fa9c2 --target /tmp/state-copy',
    '<%= config.bin %> restore latest --target /tmp/one --include db/CURRENT',
    '<%= config.bin %> restore latest --exclude "*.log" --exclude "cache/**"',
    '<%= config.bin %> restore latest --dry-run --json',
    '<%= config.bin %> restore 3fa9c2 --target /srv/replica --overwrite --seed /mnt/old-copy',
  ]

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest".', required: true}),
  }

  static override flags = {
    target: Flags.string({summary: 'Restore into this new or empty directory instead of replacing the source (a symbolic link to a directory: into that directory, the link kept).'}),
    include: Flags.string({summary: 'Restore only this path of the snapshot, its names as bytes or as ckpt ls shows them (repeatable; needs --target). A path not in the snapshot is an error (exit code 4), before anything is written.', multiple: true}),
    exclude: Flags.string({char: 'e', summary: 'Leave out paths matching this glob (repeatable; the syntax of snapshot --exclude). In place, what is there now stays.', multiple: true}),
    'dry-run': Flags.boolean({char: 'n', summary: 'Show what would be restored (files, directories, bytes, destination) and change nothing.'}),
    'keep-old': Flags.boolean({summary: 'Keep the replaced directory beside the source instead of deleting it.'}),
    'no-safety-snapshot': Flags.boolean({summary: 'Do not snapshot the directory being replaced first.'}),
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory (which need not exist any more).'}),
    force: Flags.boolean({summary: 'Replace the source in place even when running processes use it (otherwise exit code 15).'}),
    overwrite: Flags.boolean({summary: 'With --target: replace a non-empty target atomically, reusing what it holds.', dependsOn: ['target']}),
    seed: Flags.string({summary: 'Read chunks from the files under this directory before the repository (repeatable; each chunk checked).', multiple: true}),
    'verify-existing': Flags.boolean({summary: 'Hash every file of the replaced tree before reusing it, even those whose inode is untouched.'}),
  }

  async run(): Promise<RestoreResult & {snapshot: string; safetySnapshot?: string}> {
    const {args, flags} = await this.parse(Restore)
    const {openRepository, repositoryDirs, sourceDirectory} = await import('../cli/repository.js')
    const {restoreSnapshot} = await import('../restore/restorer.js')
    const {loadCatalog, PRE_RESTORE_TAG} = await import('../snapshot/catalog.js')
    const {filterSnapshots, selectSnapshot, sourcePath} = await import('../inspect/select.js')
    const {hostname} = await import('node:os')
    const {createSnapshot} = await import('../snapshot/create.js')
    const location = this.repoLocation(flags.repo)
    const repo = await openRepository(location)
    const repoDir = repo.backend.capabilities.localDirectory
    const skipDirs = await repositoryDirs(repo.backend)
    const retryMs = parseWait(flags['retry-lock'])
    const source = flags.source ? await sourcePath(flags.source) : undefined
    const catalog = await loadCatalog(repo)
    const snap = selectSnapshot(catalog, args.snapshot, {source})
    const capture = snap.manifest.capture
    if (capture && !capture.consistent) {
      process.stderr.write(`warning: snapshot ${snap.id.slice(0, 12)} is not a consistent image of one instant (${describeInconsistency(capture)}): it may not be a state the directory ever had\n`)
    }
    let safetySnapshot: string | undefined
    const progress = await startProgress({command: 'restore', text: `restore ${snap.id.slice(0, 12)}`, quiet: flags.quiet, json: this.jsonEnabled()})
    // The snapshot's bytes are the total when all of it is restored.
    const total = flags.include?.length || flags.exclude?.length ? undefined : snap.manifest.summary.bytes
    let result: RestoreResult
    try {
      result = await restoreSnapshot(repo, snap, {
        target: flags.target,
        overwrite: flags.overwrite,
        seeds: flags.seed?.map((s) => path.resolve(s)),
        verifyExisting: flags['verify-existing'],
        includes: flags.include,
        excludes: flags.exclude,
        dryRun: flags['dry-run'],
        keepOld: flags['keep-old'],
        lockRetryMs: retryMs,
        keep: repoDir === undefined ? [] : [repoDir],
        force: flags.force,
        onCallerCwd: (pids) => this.note(flags, `note: the working directory of what ran ckpt (pid ${pids.join(', ')}, e.g. your shell) was in the old ${snap.manifest.source}, now removed: cd into it again to see the restored tree`),
        beforeReplace: flags['no-safety-snapshot'] ? undefined : async (dest) => {
          const real = await sourceDirectory(dest)
          // Like any snapshot: without the repository, and without what the restore keeps anyway.
          const safety = await createSnapshot(repo, {
            source: real, tags: [PRE_RESTORE_TAG], excludes: snap.manifest.excludes, skipDirs,
            program: `ckpt ${this.config.version}`, lockRetryMs: retryMs,
          })
          safetySnapshot = safety.id
          this.note(flags, `saved the current ${dest} as snapshot ${safety.id.slice(0, 12)} (tag ${PRE_RESTORE_TAG}; undo with: ckpt restore ${safety.id.slice(0, 12)})`)
          return safety.manifest
        },
        // What the newest snapshot of the destination from this host recorded spares reading old files it still matches.
        current: filterSnapshots(catalog.snapshots, {source: path.resolve(flags.target ?? snap.manifest.source), host: hostname()}, 1).pop()?.manifest,
        onProgress: (p) => progress.update({
          text: `restore ${snap.id.slice(0, 12)}: ${count(p.files, 'file')}, ${formatBytes(p.bytes)}${total !== undefined ? ` of ${formatBytes(total)}` : ''} ${p.path}`,
          figures: {files: p.files, bytes: p.bytes, path: p.path},
          bytes: p.bytes,
          ...(total !== undefined ? {done: p.bytes, total} : {}),
        }),
      })
    } finally {
      progress.stop()
    }
    if (result.dryRun) {
      if (!this.jsonEnabled()) this.log(`restore (dry run): would write snapshot ${snap.id.slice(0, 12)} to ${result.destination}${result.replaced ? ', replacing what is there' : ''}: ${describeRestored(result)}, ${formatBytes(result.bytes)}`)
      return {snapshot: snap.id, ...result}
    }
    this.note(flags, `restored snapshot ${snap.id.slice(0, 12)} to ${result.destination}: ${describeRestored(result)}, ${formatBytes(result.bytes)}${result.oldTree ? ` (previous tree kept at ${result.oldTree})` : ''}`)
    // What a delta restore reused: said when there was something to reuse (a tree replaced, seeds).
    if (result.replaced || result.bytesReused > 0) this.note(flags, `  ${count(result.filesReused, 'file')} reused, ${formatBytes(result.bytesReused)} from local files, ${formatBytes(result.bytesFromRepository)} read from the repository, in ${(result.durationMs / 1000).toFixed(2)} s`)
    // Like a snapshot's warnings: on stderr whatever --quiet says, and exit code 3.
    for (const w of result.warnings) process.stderr.write(`warning: ${w.message} (${w.count === 1 ? w.path : `${w.count} entries, first ${w.path}`})\n`)
    if (result.warnings.length > 0) process.exitCode = ExitCode.warnings
    return {snapshot: snap.id, ...result, ...(safetySnapshot ? {safetySnapshot} : {})}
  }
}

function describeRestored(r: RestoreResult): string {
  const parts = [`${count(r.files, 'file')}${r.hardLinks > 0 ? ` (${count(r.hardLinks, 'hard link')})` : ''}`, count(r.dirs, 'directory', 'directories'), count(r.symlinks, 'symlink')]
  if (r.fifos > 0) parts.push(count(r.fifos, 'FIFO'))
  if (r.devices > 0) parts.push(count(r.devices, 'device node'))
  if (r.skippedSpecials > 0) parts.push(`${count(r.skippedSpecials, 'special file')} skipped`)
  return parts.join(', ')
}
