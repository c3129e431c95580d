import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'

export default class Ls extends CkptCommand {
  static override summary = 'List the files of a snapshot.'
  static override description = `Lists what PATH holds in the snapshot (a directory's entries, or a file itself; no PATH: the snapshot's top directory), one path per line from the snapshot's root. -l adds what ls -l shows: type and mode ("+" after it: the entry has extended attributes), link count, owner (uid/gid), size (a device's major, minor), mtime, and a link's target; --recursive descends into directories.

Names are shown as GNU ls -b shows them: control characters, spaces, backslashes and bytes that are not UTF-8 escaped (\\n, \\ , \\\\, \\351), so a hostile name cannot drive the terminal. A PATH may be given as ls shows it. --json prints one JSON object per line (NDJSON, so memory stays flat on large trees): path (the exact name when it is UTF-8, else the escaped form and pathHex with the raw bytes), type (file, dir, symlink, fifo, chardev, blockdev), mode, uid, gid, size, mtime, mtimeNs; and where they apply target (links), nlink and inode ("dev:ino", the same for every name of one file), rdev {major, minor}, dataBytes (a sparse file's bytes outside its holes), xattrs [{name, value}] (hex beside what is not UTF-8), flags (chattr's inode flags).

Exit codes: 0 listed, 4 no such snapshot (unknown id, ambiguous prefix) or no such path in it, 10 no repository, 12 a tree is damaged.`

  static override examples = [
    '<%= config.bin %> ls latest',
    '<%= config.bin %> ls 3fa9c2d1 db -l',
    '<%= config.bin %> ls latest --source /var/lib/app --recursive --json | jq -r \'select(.size > 1e9) | .path\'',
  ]

  static override strict = false

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest".', required: true}),
    path: Args.string({description: 'Paths inside the snapshot (several allowed); default: its top directory.'}),
  }

  static override flags = {
    long: Flags.boolean({char: 'l', summary: 'Long listing: type and mode, uid/gid, size, mtime, link target.'}),
    recursive: Flags.boolean({char: 'R', summary: 'List everything below the directories named, not only their entries.'}),
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory (which need not exist any more).'}),
  }

  async run(): Promise<undefined> {
    const {args, argv, flags} = await this.parse(Ls)
    const [{openRepository}, {StdoutSink}, {listSnapshot, lsEntry, lsLine}, {reading}, {selectSnapshot, sourcePath}, {Trees}] = await Promise.all([
      import('../cli/repository.js'), import('../cli/output.js'), import('../inspect/ls.js'), import('../inspect/open.js'), import('../inspect/select.js'), import('../inspect/trees.js'),
    ])
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await sourcePath(flags.source)
    const out = new StdoutSink()
    const json = this.jsonEnabled()
    await reading(repo, {command: 'ls', retryMs: parseWait(flags['retry-lock'])}, async (catalog) => {
      const snap = selectSnapshot(catalog, args.snapshot, {source})
      const trees = new Trees(repo)
      for await (const at of listSnapshot(trees, snap, (argv as string[]).slice(1), {recursive: flags.recursive})) {
        if (out.closed) break
        await out.line(json ? JSON.stringify(lsEntry(at)) : lsLine(at, flags.long))
      }
    })
    return undefined
  }
}
