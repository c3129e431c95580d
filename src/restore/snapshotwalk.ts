// A snapshot read as a stream of entries in tree order (a directory before what it holds, names
// in byte order) with verified contents: what an output that is not the filesystem (the tar
// export) needs of the restore reader. Memory: one decoded tree per level of the current path,
// and a few chunks read ahead of the one being written.
import {IntegrityError, NotFoundError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import type {RootMeta} from '../snapshot/manifest.js'
import {childPath, dataLength, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'

export interface WalkEntry {
  /** Path below the snapshot root as bytes; empty for the root itself. */
  path: Buffer
  node: TreeNode
}

/** Chunks read ahead of the one being handed out. */
const READ_AHEAD = 4

export class SnapshotWalk {
  constructor(private readonly repo: Repository) {}

  private async tree(id: Buffer): Promise<TreeNode[]> {
    return decodeTree(await this.repo.readBlob(id, BlobType.tree), toHex(id))
  }

  /**
   * Every entry of the tree, the root first (as a directory node built from the manifest's root
   * metadata). With `includes` (paths as components), only those entries and what is below them;
   * one that names nothing is a NotFoundError before anything is yielded.
   */
  async *entries(treeId: Buffer, root: RootMeta, includes?: readonly Buffer[][]): AsyncGenerator<WalkEntry> {
    if (!includes || includes.length === 0) {
      const rootNode: TreeNode = {name: Buffer.alloc(0), type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs), ctimeNs: BigInt(root.mtimeNs), ino: 0n, size: 0, subtree: treeId}
      yield {path: Buffer.alloc(0), node: rootNode}
      yield* this.below(treeId, Buffer.alloc(0))
      return
    }
    const found: WalkEntry[] = []
    for (const parts of includes) found.push(await this.find(treeId, parts))
    for (const e of found) {
      yield e
      if (e.node.type === 'dir') yield* this.below(e.node.subtree!, e.path)
    }
  }

  private async find(treeId: Buffer, parts: readonly Buffer[]): Promise<WalkEntry> {
    let nodes = await this.tree(treeId)
    let path: Buffer = Buffer.alloc(0)
    for (let i = 0; i < parts.length; i++) {
      const node = nodes.find((n) => n.name.equals(parts[i]!))
      path = path.length ? childPath(path, parts[i]!) : Buffer.from(parts[i]!)
      if (!node) throw new NotFoundError(`${parts.map(displayName).join('/')} is not in the snapshot`)
      if (i === parts.length - 1) return {path, node}
      if (node.type !== 'dir') throw new NotFoundError(`${parts.map(displayName).join('/')} is not in the snapshot (${displayName(path)} is not a directory)`)
      nodes = await this.tree(node.subtree!)
    }
    throw new NotFoundError('an empty path names the whole snapshot: give no path instead')
  }

  private async *below(treeId: Buffer, dir: Buffer): AsyncGenerator<WalkEntry> {
    for (const node of await this.tree(treeId)) {
      const path = dir.length ? childPath(dir, node.name) : node.name
      yield {path, node}
      if (node.type === 'dir') yield* this.below(node.subtree!, path)
    }
  }

  /**
   * A file's stored bytes (its data extents back to back for a sparse file), each chunk checked
   * against its id; a file whose chunks hold other than its size is damage (IntegrityError).
   */
  async *content(node: TreeNode, path: Buffer): AsyncGenerator<Buffer> {
    const want = dataLength(node)
    const chunks = node.chunks ?? []
    const reads: Promise<Buffer>[] = []
    let next = 0
    let got = 0
    const start = () => {
      while (next < chunks.length && reads.length < READ_AHEAD) {
        const read = this.repo.readBlob(chunks[next++]!, BlobType.data)
        read.catch(() => undefined) // awaited in order below
        reads.push(read)
      }
    }
    start()
    while (reads.length > 0) {
      const buf = await reads.shift()!
      start()
      got += buf.length
      if (got > want) throw new IntegrityError(`file ${displayName(path)}: chunks add up to more than the ${want} bytes the tree says`, {path: displayName(path)})
      yield buf
    }
    if (got !== want) throw new IntegrityError(`file ${displayName(path)}: chunks add up to ${got} bytes, the tree says ${want}`, {path: displayName(path)})
  }
}
