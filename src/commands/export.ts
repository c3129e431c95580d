import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {formatBytes} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import {errnoCode, UsageError} from '../core/errors.js'
import type {ExportResult} from '../restore/tarout.js'

export default class Export extends CkptCommand {
  static override summary = 'Write a snapshot as a tar archive (POSIX pax), to a file or stdout.'
  static override description = `Streams the snapshot as a pax tar that GNU tar, bsdtar and Python's tarfile read: contents are read from the repository chunk by chunk, each checked against its BLAKE3 id, and written as the output takes them, so memory stays flat whatever the file sizes. A damaged chunk stops the export with exit code 12 (a file given with -o is then not left behind; on stdout the archive is cut short, which tar reports). A reader of stdout that goes away (ckpt export ... | head) stops the export quietly (exit 0), as it does ckpt cat.

Kept: names as bytes (a name that is not UTF-8 is written as raw bytes in the pax path record, as GNU tar writes it), modes, uid and gid (no user or group names: the snapshot records ids only, and names would let the extracting tar map files to other ids), mtimes to the nanosecond, symlinks, empty directories, hard links (the first name of an inode is a file, the others are link members), xattrs and ACLs as SCHILY.xattr.* (extract with tar --xattrs), FIFOs and device nodes, and sparse files as GNU sparse 1.0 members (holes neither stored nor expanded; GNU tar restores them as sparse files).

With PATH arguments only those paths of the snapshot and what is below them are written (a path not in the snapshot: exit code 4). --zstd compresses the stream (needs the optional zstd-napi package). Without -o the archive goes to stdout, which must not be a terminal.`
  static override examples = [
    '<%= config.bin %> export latest -o state.tar',
    '<%= config.bin %> export 3fa9c2 | tar -x --xattrs -C /tmp/copy',
    '<%= config.bin %> export latest db/ --zstd -o db.tar.zst',
  ]

  static override strict = false

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest".', required: true}),
    path: Args.string({description: 'Only these paths of the snapshot (any number).'}),
  }

  static override flags = {
    output: Flags.string({char: 'o', summary: 'Write the archive to this file (default: stdout, also with -).'}),
    zstd: Flags.boolean({summary: 'Compress the archive with zstd.'}),
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory (which need not exist any more).'}),
  }

  async run(): Promise<ExportResult & {snapshot: string; output: string}> {
    const {args, argv, flags} = await this.parse(Export)
    const paths = (argv as string[]).slice(1)
    const includes = paths.map((p) => {
      const parts = p.split('/').filter((c) => c !== '' && c !== '.')
      if (parts.includes('..')) throw new UsageError(`path "${p}" has a ".." component`)
      if (parts.length === 0) throw new UsageError(`path "${p}" names the whole snapshot: give no path instead`)
      return parts
    })
    const toStdout = flags.output === undefined || flags.output === '-'
    if (toStdout && process.stdout.isTTY) throw new UsageError('refusing to write a tar archive to a terminal: give -o FILE or redirect stdout')
    if (toStdout && this.jsonEnabled()) throw new UsageError('--json needs -o FILE: stdout carries the archive')
    const {openRepository} = await import('../cli/repository.js')
    const {loadCatalog} = await import('../snapshot/catalog.js')
    const {selectSnapshot, sourcePath} = await import('../inspect/select.js')
    const {exportTar} = await import('../restore/tarout.js')
    const {openOutput} = await import('../cli/archivefile.js')
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source ? await sourcePath(flags.source) : undefined
    const snap = selectSnapshot(await loadCatalog(repo), args.snapshot, {source})
    const output = await openOutput(toStdout ? undefined : flags.output!, flags.zstd)
    const progress = await startProgress(!flags.quiet && !this.jsonEnabled() && !toStdout, `export ${snap.id.slice(0, 12)}`)
    let result: ExportResult
    try {
      result = await exportTar(repo, snap.manifest, output.stream, {
        includes,
        lockRetryMs: parseWait(flags['retry-lock']),
        onProgress: (p) => progress.update(`export ${snap.id.slice(0, 12)}: ${p.files} files, ${formatBytes(p.bytes)} ${p.path}`),
      })
      await output.commit()
    } catch (err) {
      await output.abort()
      // The reader of stdout went away (`ckpt export ID | head`): stop quietly, as ckpt cat does
      // and as a shell pipeline expects; the reader knows what it did not read.
      if (toStdout && errnoCode(err) === 'EPIPE') return {snapshot: snap.id, output: '-', entries: 0, files: 0, dirs: 0, symlinks: 0, hardLinks: 0, specials: 0, bytes: 0}
      throw err
    } finally {
      progress.stop()
    }
    this.note(flags, `exported snapshot ${snap.id.slice(0, 12)} to ${toStdout ? 'stdout' : flags.output}: ${result.entries} ${result.entries === 1 ? 'entry' : 'entries'}, ${result.files} ${result.files === 1 ? 'file' : 'files'}, ${formatBytes(result.bytes)}${flags.zstd ? ', zstd' : ''}`)
    return {snapshot: snap.id, output: toStdout ? '-' : flags.output!, ...result}
  }
}
