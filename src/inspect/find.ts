// ckpt find: which snapshots hold a path matching a pattern. Patterns are those of --exclude: one
// without "/" matches a name at any depth, one with "/" the path from the root ("*", "?", "**",
// classes). Successive snapshots share most subtrees, and an unchanged subtree at the same path
// holds the same matches: they are remembered by (tree id, path), so each distinct directory is
// searched once, not once per snapshot.
import {blake3} from '../core/hash.js'
import {toHex} from '../core/ids.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {compileExcludes} from '../snapshot/exclude.js'
import type {TreeNode} from '../snapshot/tree.js'
import {joinPath, type Located, type Trees} from './trees.js'

/** Directories and matches remembered at most, so memory stays bounded on any repository. */
const MEMO_DIRS = 100_000
const MEMO_MATCHES = 200_000

export interface FindMatch {
  snapshot: SnapshotRecord
  at: Located
}

export class Finder {
  private readonly match: (relPath: string, name: string) => boolean
  private readonly memo = new Map<string, Located[]>()
  private held = 0

  constructor(private readonly trees: Trees, pattern: string) {
    this.match = compileExcludes([pattern])
  }

  /** The entries of a snapshot that match, depth first in name order. */
  async inSnapshot(s: SnapshotRecord): Promise<Located[]> {
    return this.inTree(Buffer.from(s.manifest.tree, 'hex'), Buffer.alloc(0))
  }

  private async inTree(tree: Buffer, dir: Buffer): Promise<Located[]> {
    // The path as its hash: as text, the keys of a tree thousands of levels deep held gigabytes.
    const key = `${toHex(tree)}:${toHex(blake3(dir))}`
    const hit = this.memo.get(key)
    if (hit) return hit
    const found: Located[] = []
    for (const node of await this.trees.get(tree)) {
      const p = joinPath(dir, node.name)
      if (this.matches(node, p)) found.push({node, path: p})
      // One by one: a spread of more than ~120,000 matches overflows the stack.
      if (node.type === 'dir') for (const m of await this.inTree(node.subtree!, p)) found.push(m)
    }
    if (this.memo.size < MEMO_DIRS && this.held + found.length <= MEMO_MATCHES) {
      this.memo.set(key, found)
      this.held += found.length
    }
    return found
  }

  private matches(node: TreeNode, p: Buffer): boolean {
    // Names that are not UTF-8 are matched as decoded with replacement characters.
    return this.match(p.toString('utf8'), node.name.toString('utf8'))
  }
}
