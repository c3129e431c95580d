// Decoded trees of one snapshot run, by id. A snapshot reads the parent's trees (stat cache), then
// the check of what moved reads the new snapshot's trees again, most of them the same ids: decoding
// JSON trees was most of that check's cost (45-60 ms of ~100 ms for 1,400 files). Bounded by nodes
// held, oldest first out, so a huge tree costs decoding again, never memory.
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {decodeTree, type TreeNode} from './tree.js'

/**
 * Nodes held at most. A decoded node costs about 0.5 KB of heap and, with the heap's slack, 1-2 KB
 * of resident memory: 50,000 took a first snapshot of 100,000 small files from 130-200 MB to
 * 260-350 MB. 4,096 hold every tree of a state directory of a few thousand entries, where the
 * second decode was most of the settle check's cost, for at most a few MB.
 */
const MAX_NODES = 4096

export class TreeCache {
  private readonly trees = new Map<string, readonly TreeNode[]>()
  private nodes = 0

  constructor(private readonly repo: Pick<Repository, 'readBlob'>, private readonly maxNodes = MAX_NODES) {}

  /** The decoded tree `id` (read, checked against its id and decoded on a miss). */
  async read(id: Buffer): Promise<readonly TreeNode[]> {
    const key = toHex(id)
    const hit = this.trees.get(key)
    if (hit) return hit
    const nodes = decodeTree(await this.repo.readBlob(id, BlobType.tree), key)
    this.put(id, nodes)
    return nodes
  }

  /** A tree this run wrote, as it was encoded. */
  put(id: Buffer, nodes: readonly TreeNode[]): void {
    const key = toHex(id)
    if (this.trees.has(key) || nodes.length > this.maxNodes) return
    this.trees.set(key, nodes)
    this.nodes += nodes.length
    for (const [old, held] of this.trees) {
      if (this.nodes <= this.maxNodes) break
      this.trees.delete(old)
      this.nodes -= held.length
    }
  }
}
