import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import type {LsEntry} from '../inspect/ls.js'

export default class Cat extends CkptCommand {
  static override summary = 'Print one file of a snapshot on stdout.'
  static override description = `Streams the file's bytes without restoring anything: a few chunks are read ahead, each checked against its BLAKE3 id before it is written, so memory stays flat whatever the file's size and a damaged chunk stops the output (exit code 12) instead of passing on wrong bytes. A reader that closes the pipe early (| head) ends it quietly.

PATH is from the snapshot's root, as ckpt ls shows it. With --json, prints the file's entry (as ckpt ls --json) and its chunk ids instead of its content.

Exit codes: 0 written, 2 PATH is a directory, a link or a special file, 4 no such snapshot (unknown id, ambiguous prefix) or no such path in it, 10 no repository, 12 a chunk or tree is damaged.`

  static override examples = [
    '<%= config.bin %> cat latest db/CURRENT',
    '<%= config.bin %> cat 3fa9c2d1 checkpoints/step-100/weights.bin > weights.bin',
    '<%= config.bin %> cat latest --source /var/lib/app config.json | jq .',
  ]

  static override args = {
    snapshot: Args.string({description: 'Snapshot id, unique prefix, or "latest".', required: true}),
    path: Args.string({description: 'The file, from the snapshot\'s root.', required: true}),
  }

  static override flags = {
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory (which need not exist any more).'}),
  }

  async run(): Promise<(LsEntry & {chunks: string[]}) | undefined> {
    const {args, flags} = await this.parse(Cat)
    const [{openRepository}, {StdoutSink}, {checkCattable, fileContents}, {lsEntry}, {reading}, {selectSnapshot, sourcePath}, {mustLocate, rootNode, Trees}, {toHex}] = await Promise.all([
      import('../cli/repository.js'), import('../cli/output.js'), import('../inspect/cat.js'), import('../inspect/ls.js'), import('../inspect/open.js'),
      import('../inspect/select.js'), import('../inspect/trees.js'), import('../core/ids.js'),
    ])
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await sourcePath(flags.source)
    return reading(repo, {command: 'cat', retryMs: parseWait(flags['retry-lock'])}, async (catalog) => {
      const snap = selectSnapshot(catalog, args.snapshot, {source})
      const trees = new Trees(repo)
      const at = await mustLocate(trees, rootNode(snap.manifest), args.path, snap.id)
      checkCattable(at)
      if (this.jsonEnabled()) return {...lsEntry(at), chunks: (at.node.chunks ?? []).map(toHex)}
      const out = new StdoutSink()
      for await (const bytes of fileContents(repo, at.node)) {
        if (out.closed) break
        await out.write(bytes)
      }
      return undefined
    })
  }
}
