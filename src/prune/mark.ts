// Marking: every tree and chunk reachable from the snapshots that stay. Trees are read once
// each (a marked subtree is never entered again), a few at a time, depth first so the queue stays
// short. Anything a kept snapshot needs and the repository cannot give is a problem, and one
// problem is enough for prune to delete nothing.
import {IntegrityError, ObjectMissingError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {decodeTree} from '../snapshot/tree.js'
import type {BlobTable} from './table.js'

export interface Problem {
  kind: 'missing-blob' | 'missing-pack' | 'wrong-type' | 'damaged-tree' | 'damaged-manifest' | 'damaged-index'
  message: string
  snapshot?: string
  blob?: string
}

/** Problems found, with the first few kept for the report. */
export class Problems {
  static readonly LISTED = 50
  readonly list: Problem[] = []
  count = 0

  add(p: Problem): void {
    this.count++
    if (this.list.length < Problems.LISTED) this.list.push(p)
  }

  /** The error prune stops with: nothing has been deleted when it is thrown. */
  toError(): IntegrityError {
    const first = this.list[0]?.message ?? 'unknown problem'
    const more = this.count > 1 ? ` (and ${this.count - 1} more problem${this.count > 2 ? 's' : ''})` : ''
    return new IntegrityError(
      `the repository is damaged, so prune deleted nothing: ${first}${more}. Run "ckpt verify" for the full list; forget the damaged snapshots (ckpt forget ID) and prune again`,
      {problems: this.list, problemCount: this.count},
    )
  }
}

export interface MarkRoot {
  snapshot: string
  tree: Buffer
}

const TREES_IN_FLIGHT = 8

/**
 * Mark every blob reachable from `roots`. `onNew` sees each blob marked for the first time
 * (the commit phase uses it to find blobs of packs it meant to delete).
 */
export async function markTrees(
  repo: Repository,
  table: BlobTable,
  roots: readonly MarkRoot[],
  problems: Problems,
  opts: {onNew?: (id: Buffer) => void; onTree?: (trees: number) => void} = {},
): Promise<{trees: number}> {
  const queue: MarkRoot[] = []
  let trees = 0
  const need = (id: Buffer, snapshot: string, type: number, what: string): boolean => {
    const state = table.mark(id)
    if (state === 'missing') {
      problems.add({kind: 'missing-blob', snapshot, blob: toHex(id), message: `snapshot ${snapshot.slice(0, 12)} needs ${what} ${toHex(id)}, which no index lists`})
      return false
    }
    if (state === 'marked') return false
    if (table.typeOf(id) !== type) {
      problems.add({kind: 'wrong-type', snapshot, blob: toHex(id), message: `snapshot ${snapshot.slice(0, 12)} uses ${toHex(id)} as a ${what}, but it is stored as another type`})
      return false
    }
    const packNo = table.packOf(id)!
    if (!table.packs[packNo]!.exists) {
      problems.add({kind: 'missing-pack', snapshot, blob: toHex(id), message: `snapshot ${snapshot.slice(0, 12)} needs ${what} ${toHex(id)} from pack ${table.packs[packNo]!.name}, which is missing`})
      return false
    }
    opts.onNew?.(id)
    return true
  }
  for (const root of roots) if (need(root.tree, root.snapshot, BlobType.tree, 'tree')) queue.push(root)

  const visit = async ({snapshot, tree}: MarkRoot): Promise<void> => {
    const hex = toHex(tree)
    let nodes
    try {
      nodes = decodeTree(await repo.readBlobAt(tree, table.location(tree)!), hex)
    } catch (err) {
      if (err instanceof IntegrityError || err instanceof ObjectMissingError) {
        problems.add({kind: 'damaged-tree', snapshot, blob: hex, message: `snapshot ${snapshot.slice(0, 12)}: tree ${hex} cannot be read: ${err.message}`})
        return
      }
      throw err
    }
    trees++
    opts.onTree?.(trees)
    for (const node of nodes) {
      if (node.type === 'file') {
        for (const chunk of node.chunks ?? []) need(chunk, snapshot, BlobType.data, 'chunk')
      } else if (node.type === 'dir' && node.subtree) {
        if (need(node.subtree, snapshot, BlobType.tree, 'tree')) queue.push({snapshot, tree: node.subtree})
      }
    }
  }

  await new Promise<void>((resolve, reject) => {
    let active = 0
    let failed = false
    const pump = (): void => {
      if (failed) return
      while (active < TREES_IN_FLIGHT && queue.length > 0) {
        active++
        visit(queue.pop()!).then(
          () => {
            active--
            pump()
          },
          (err: unknown) => {
            failed = true
            reject(err)
          },
        )
      }
      if (active === 0 && queue.length === 0) resolve()
    }
    pump()
  })
  return {trees}
}
