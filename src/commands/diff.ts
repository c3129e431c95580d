import * as Args from '@oclif/core/args'
import * as Flags from '@oclif/core/flags'

import {CkptCommand, parseWait} from '../cli/base.js'
import type {ChangeJson, DiffStats} from '../inspect/diff.js'

export interface DiffResult {
  before: string
  after: string
  path: string
  changes: ChangeJson[]
  stats: DiffStats
}

const MARK = {added: '+', removed: '-', modified: 'M', metadata: 'U', type: 'T'} as const

export default class Diff extends CkptCommand {
  static override summary = 'Show what changed between two snapshots.'
  static override description = `One line per change, depth first in name order: "+" added, "-" removed (with their size), "M" content modified (size before -> after; for a link its target, for a device its number, for a sparse file its holes), "U" metadata only (which of mode, owner, mtime, xattrs, flags), "T" type changed (a file became a directory...). Then a summary: counts, bytes, and the trees read.

Only subtrees whose ids differ are read (a tree's id is the hash of its content): the cost is what changed, not the size of the snapshots. A directory's own mtime is not reported (it moves with its entries), nor are ctimes, inode numbers and link counts (a restore changes them). Snapshots taken before tree format 2 recorded no xattrs or flags: those are not compared with them; and as their trees are encoded differently, a diff across that upgrade reads every tree. With PATH, compares only what lies below it.

--json: {before, after, path, changes: [{kind, path, pathHex?, type, oldType?, size, oldSize?, fields?}], stats: {added, removed, modified, metadata, type, addedBytes, removedBytes, modifiedBytesBefore, modifiedBytesAfter, treesRead}}.

Exit codes: 0 compared (whether or not anything changed), 4 no such snapshot (unknown id, ambiguous prefix) or PATH in neither, 10 no repository, 12 a tree is damaged.`

  static override examples = [
    '<%= config.bin %> diff 3fa9c2d1 latest',
    '<%= config.bin %> diff 3fa9c2d1 8b07e4aa db --json',
  ]

  static override args = {
    snapshot1: Args.string({description: 'The older snapshot: id, unique prefix, or "latest".', required: true}),
    snapshot2: Args.string({description: 'The newer snapshot: id, unique prefix, or "latest".', required: true}),
    path: Args.string({description: 'Compare only this path (from the snapshots\' root).'}),
  }

  static override flags = {
    source: Flags.string({summary: 'With "latest": the latest snapshot of this directory (which need not exist any more).'}),
  }

  async run(): Promise<DiffResult> {
    const {args, flags} = await this.parse(Diff)
    const [{openRepository}, {StdoutSink}, {formatBytes}, d, {reading}, {selectSnapshot, sourcePath}, {locate, rootNode, Trees}, {escapeName}, {NotFoundError}] = await Promise.all([
      import('../cli/repository.js'), import('../cli/output.js'), import('../cli/format.js'), import('../inspect/diff.js'), import('../inspect/open.js'),
      import('../inspect/select.js'), import('../inspect/trees.js'), import('../inspect/names.js'), import('../core/errors.js'),
    ])
    const repo = await openRepository(this.repoLocation(flags.repo))
    const source = flags.source === undefined ? undefined : await sourcePath(flags.source)
    const json = this.jsonEnabled()
    const out = new StdoutSink()
    return reading(repo, {command: 'diff', retryMs: parseWait(flags['retry-lock'])}, async (catalog) => {
      const a = selectSnapshot(catalog, args.snapshot1, {source})
      const b = selectSnapshot(catalog, args.snapshot2, {source})
      const trees = new Trees(repo)
      const p = args.path ?? ''
      const [x, y] = await Promise.all([locate(trees, rootNode(a.manifest), p), locate(trees, rootNode(b.manifest), p)])
      if (!x && !y) throw new NotFoundError(`${p}: no such path in snapshot ${a.id.slice(0, 12)} nor in ${b.id.slice(0, 12)}`, {path: p})
      const stats = d.emptyStats()
      const changes: ChangeJson[] = []
      for await (const c of d.diffNodes(trees, x?.node, y?.node, (x ?? y)!.path)) {
        d.countChange(stats, c)
        if (json) {
          changes.push(d.changeJson(c))
          continue
        }
        if (out.closed) break
        const shown = c.path.length ? escapeName(c.path) : '.'
        const node = (c.after ?? c.before)!
        const slash = node.type === 'dir' ? '/' : ''
        let detail = ''
        if (c.kind === 'added' || c.kind === 'removed') detail = node.type === 'file' ? `  (${formatBytes(node.size)})` : ''
        else if (c.kind === 'modified') detail = `  (${formatBytes(c.before!.size)} -> ${formatBytes(c.after!.size)}${c.fields ? `; ${c.fields.join(', ')}` : ''})`
        else if (c.kind === 'metadata') detail = `  (${c.fields!.join(', ')})`
        else detail = `  (${c.before!.type} -> ${c.after!.type})`
        await out.line(`${MARK[c.kind]}  ${shown}${slash}${detail}`)
      }
      stats.treesRead = trees.read
      if (!json && !flags.quiet && !out.closed) {
        const kinds = [`${stats.added} added (${formatBytes(stats.addedBytes)})`, `${stats.removed} removed (${formatBytes(stats.removedBytes)})`,
          `${stats.modified} modified (${formatBytes(stats.modifiedBytesBefore)} -> ${formatBytes(stats.modifiedBytesAfter)})`, `${stats.metadata} metadata only`, `${stats.type} type changed`]
        await out.line(`${a.id.slice(0, 8)} -> ${b.id.slice(0, 8)}: ${kinds.join(', ')}; ${stats.treesRead} ${stats.treesRead === 1 ? 'tree' : 'trees'} read`)
      }
      return {before: a.id, after: b.id, path: p, changes, stats}
    })
  }
}
