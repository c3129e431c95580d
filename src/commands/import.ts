import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import {formatBytes, formatDuration} from '../cli/format.js'
import {startProgress} from '../cli/progress.js'
import {BadPathError, errnoCode, UsageError} from '../core/errors.js'
import type {SnapshotSummary} from '../snapshot/manifest.js'

export interface ImportJson extends SnapshotSummary {
  id: string
  parent: string | null
  time: string
  source: string
  tags: string[]
  compression: 'none' | 'gzip' | 'zstd'
  /** Members replaced by a later one of the same name. */
  duplicates: number
}

export default class Import extends CkptCommand {
  static override summary = 'Store a tar archive (plain, gzip or zstd) as a snapshot.'
  static override description = `Reads the archive as a stream (a file, or - for stdin; compression is detected from its first bytes) and stores it as a snapshot of --source, chained to the latest snapshot of that source on this host like ckpt snapshot: file contents are chunked and deduplicated against everything in the repository, so importing a tar of a directory already snapshotted stores little more than its trees.

Kept: names as bytes (pax path records are taken byte for byte, as GNU tar writes names that are not UTF-8), modes, uid and gid (user and group names are not stored), mtimes to the nanosecond (pax mtime), symlinks, hard links (one inode, several names), empty directories, FIFOs and device nodes, extended attributes (SCHILY.xattr.*, GNU tar --xattrs), and GNU sparse files in pax format (GNU tar --sparse --format=pax; holes are recorded, not stored). Directories the archive implies without listing get mode 0755, the importing user and the import time.

A hostile or damaged archive is refused with one line and exit code 16, and nothing is committed (a killed or refused import leaves only unreferenced data, which prune removes): a ".." component, a NUL in a name, a member under a symlink or a file of the archive, a name that is both a directory and a file, a hard link to anything but an earlier regular file, an impossible size or owner, a malformed or oversized header, a bad checksum, a truncated stream, an entry type it does not know (old GNU sparse, multi-volume). Neutralised as GNU tar does, with a warning: a leading "/" is removed; a later member of a name already seen replaces it. Symlink targets are stored as they are: import never follows them, and restore creates them as links.`
  static override examples = [
    '<%= config.bin %> import state.tar --source /var/lib/app',
    'tar -C /var/lib/app --xattrs --format=pax -c . | <%= config.bin %> import - --source /var/lib/app --tag migrated',
    '<%= config.bin %> import backup.tar.zst --source /srv/data --time 2026-11-21T09:00:00Z --json',
  ]

  static override args = {
    file: Args.string({description: 'The tar archive, or - to read it from stdin.', required: true}),
  }

  static override flags = {
    source: Flags.string({summary: 'The directory the snapshot is of (recorded as its source; restore puts it there by default).', required: true}),
    tag: Flags.string({char: 't', summary: 'Tag the snapshot (repeatable).', multiple: true}),
    time: Flags.string({summary: 'Record this time (ISO 8601) instead of now.'}),
    host: Flags.string({summary: 'Record this host name instead of the machine\'s.'}),
  }

  async run(): Promise<ImportJson> {
    const {args, flags} = await this.parse(Import)
    let time: Date | undefined
    if (flags.time !== undefined) {
      time = new Date(flags.time)
      if (!Number.isFinite(time.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(flags.time)) throw new UsageError(`--time "${flags.time}" is not an ISO 8601 time (e.g. 2026-11-21T09:00:00Z)`)
    }
    if (flags.source === '') throw new UsageError('--source must name a directory')
    const path = await import('node:path')
    const source = path.resolve(flags.source)
    const {createReadStream, promises: fsp} = await import('node:fs')
    const {openOrCreate} = await import('../cli/repository.js')
    const {importTar} = await import('../snapshot/importer.js')
    let input: import('node:stream').Readable
    if (args.file === '-') {
      if (process.stdin.isTTY) throw new UsageError('refusing to read a tar archive from a terminal: pipe one in, or give a file')
      input = process.stdin
    } else {
      try {
        const st = await fsp.stat(args.file)
        if (st.isDirectory()) throw new BadPathError(`${args.file} is a directory, not a tar archive`)
      } catch (err) {
        if (err instanceof BadPathError) throw err
        throw new BadPathError(`${args.file}: ${errnoCode(err) === 'ENOENT' ? 'no such file' : errnoCode(err) ?? (err as Error).message}`)
      }
      input = createReadStream(args.file, {highWaterMark: 64 * 1024})
    }
    const repo = await openOrCreate(this.repoLocation(flags.repo))
    const progress = await startProgress(!flags.quiet && !this.jsonEnabled(), `import ${args.file}`)
    let result
    try {
      result = await importTar(repo, {
        input,
        source,
        tags: flags.tag,
        time,
        host: flags.host,
        lockRetryMs: parseWait(flags['retry-lock']),
        program: `ckpt ${this.config.version}`,
        onProgress: (p) => progress.update(`import ${args.file}: ${p.files} files, ${formatBytes(p.bytes)} ${p.path}`),
        onWarning: (message) => {
          if (!flags.quiet) process.stderr.write(`warning: ${message}\n`)
        },
      })
    } finally {
      progress.stop()
      if (args.file !== '-') input.destroy()
    }
    const {id, manifest} = result
    const s = manifest.summary
    if (!this.jsonEnabled()) {
      this.log(id)
      this.note(flags, `imported ${args.file} as snapshot ${id.slice(0, 12)} of ${source}: ${s.files} ${s.files === 1 ? 'file' : 'files'}, ${formatBytes(s.bytes)}, ${formatBytes(s.newBytes)} new (${formatBytes(s.storedBytes)} stored) in ${formatDuration(s.durationMs)}${manifest.parent ? `, parent ${manifest.parent.slice(0, 12)}` : ''}`)
    }
    return {id, parent: manifest.parent, time: manifest.time, source, tags: manifest.tags, ...s, compression: result.compression, duplicates: result.duplicates}
  }
}
