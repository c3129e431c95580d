// Reading a snapshot's trees for inspection: a counting reader (diff reports how many trees it
// read, which is what it costs), looking a path up, and walking a tree depth first with one
// decoded directory per level held, so a listing of millions of entries stays small.
import {NotFoundError, UsageError} from '../core/errors.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {type Manifest, rootMetaNode} from '../snapshot/manifest.js'
import {TreeCache} from '../snapshot/treecache.js'
import {childPath, type TreeNode} from '../snapshot/tree.js'
import {findNamed} from './names.js'

export type BlobReader = Pick<Repository, 'readBlob'>

/** Decoded trees by id, counting the trees actually read from the repository. */
export class Trees {
  /** Tree blobs read from the repository (a cache hit is not a read). */
  read = 0

  private readonly cache: TreeCache

  constructor(repo: BlobReader, maxNodes?: number) {
    const counting: BlobReader = {
      readBlob: (id, type) => {
        this.read++
        return repo.readBlob(id, type ?? BlobType.tree)
      },
    }
    this.cache = new TreeCache(counting, maxNodes)
  }

  get(id: Buffer): Promise<readonly TreeNode[]> {
    return this.cache.read(id)
  }
}

/** The root directory of a snapshot as a node (the manifest records its metadata). */
export function rootNode(m: Manifest): TreeNode {
  return {name: Buffer.alloc(0), ...rootMetaNode(m.root), ctimeNs: 0n, ino: 0n, size: 0, subtree: Buffer.from(m.tree, 'hex')}
}

/** A path the user typed, as its parts ("", "." and "/" alone mean the root). ".." is refused. */
export function splitPath(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.')
  if (parts.includes('..')) throw new UsageError(`${JSON.stringify(p)}: ".." is not a path inside a snapshot`)
  return parts
}

export interface Located {
  node: TreeNode
  /** Its path from the snapshot root, as bytes ("" for the root). */
  path: Buffer
}

/** Find `p` in the tree under `root`; undefined when it is not there. */
export async function locate(trees: Trees, root: TreeNode, p: string): Promise<Located | undefined> {
  let node = root
  let at: Buffer = Buffer.alloc(0)
  for (const part of splitPath(p)) {
    if (node.type !== 'dir') return undefined
    const nodes = await trees.get(node.subtree!)
    const next = findNamed(nodes, part)
    if (!next) return undefined
    node = next
    at = at.length ? childPath(at, next.name) : Buffer.from(next.name)
  }
  return {node, path: at}
}

/** locate, or NotFoundError naming the snapshot (exit code 4). */
export async function mustLocate(trees: Trees, root: TreeNode, p: string, snapshotId: string): Promise<Located> {
  const found = await locate(trees, root, p)
  if (!found) throw new NotFoundError(`${p}: no such path in snapshot ${snapshotId.slice(0, 12)}`, {snapshot: snapshotId, path: p})
  return found
}

/** Join a directory path and a name ("" is the root). */
export function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length ? childPath(dir, name) : Buffer.from(name)
}

/**
 * Every entry below directory `dir` (at `dirPath`), depth first in name order, each directory
 * before what it holds. Only the trees on the current path are held. An explicit stack, not
 * nested generators: each entry a nested `yield*` hands out passes through every generator
 * above it, which on a tree thousands of levels deep took quadratic time and overflowed the stack.
 */
export async function* walk(trees: Trees, dir: TreeNode, dirPath: Buffer, depth = Infinity): AsyncGenerator<Located> {
  if (dir.type !== 'dir' || depth <= 0) return
  const stack: {nodes: readonly TreeNode[]; next: number; path: Buffer; depth: number}[] = [{nodes: await trees.get(dir.subtree!), next: 0, path: dirPath, depth}]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!
    if (top.next === top.nodes.length) {
      stack.pop()
      continue
    }
    const node = top.nodes[top.next++]!
    const p = joinPath(top.path, node.name)
    yield {node, path: p}
    if (node.type === 'dir' && top.depth > 1) stack.push({nodes: await trees.get(node.subtree!), next: 0, path: p, depth: top.depth - 1})
  }
}
