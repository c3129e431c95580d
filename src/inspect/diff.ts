// ckpt diff: what changed between two snapshots. Trees are named by their content, so two
// directories with the same subtree id hold the same entries and are never read: the cost is the
// trees along the paths to what changed (reported as treesRead), not the size of the snapshots.
import type {TreeNode} from '../snapshot/tree.js'
import {compareNames} from '../snapshot/tree.js'
import {jsonBytes} from './names.js'
import {joinPath, type Trees, walk} from './trees.js'

export type ChangeKind = 'added' | 'removed' | 'modified' | 'metadata' | 'type'

/** What changed about an entry present in both, for metadata changes. */
export type MetaField = 'mode' | 'owner' | 'mtime' | 'xattrs' | 'flags'

export interface Change {
  kind: ChangeKind
  /** Path from the snapshot root as bytes (Located.path), and the node before and after. */
  path: Buffer
  before?: TreeNode
  after?: TreeNode
  /** metadata changes: which fields differ. */
  fields?: MetaField[]
}

export interface DiffStats {
  added: number
  removed: number
  modified: number
  metadata: number
  type: number
  /** File bytes of added entries, of removed ones, and the sizes before and after of modified files. */
  addedBytes: number
  removedBytes: number
  modifiedBytesBefore: number
  modifiedBytesAfter: number
  /** Trees read from the repository to find these changes. */
  treesRead: number
}

export function emptyStats(): DiffStats {
  return {added: 0, removed: 0, modified: 0, metadata: 0, type: 0, addedBytes: 0, removedBytes: 0, modifiedBytesBefore: 0, modifiedBytesAfter: 0, treesRead: 0}
}

export function countChange(stats: DiffStats, c: Change): void {
  stats[c.kind]++
  if (c.kind === 'added') stats.addedBytes += c.after!.size
  else if (c.kind === 'removed') stats.removedBytes += c.before!.size
  else if (c.kind === 'modified' || c.kind === 'type') {
    stats.modifiedBytesBefore += c.before!.size
    stats.modifiedBytesAfter += c.after!.size
  }
}

function sameIds(a: readonly Buffer[] | undefined, b: readonly Buffer[] | undefined): boolean {
  const x = a ?? []
  const y = b ?? []
  return x.length === y.length && x.every((id, i) => id.equals(y[i]!))
}

function sameExtents(a: TreeNode, b: TreeNode): boolean {
  const x = a.extents ?? []
  const y = b.extents ?? []
  return x.length === y.length && x.every((e, i) => e.offset === y[i]!.offset && e.length === y[i]!.length)
}

function sameXattrs(a: TreeNode, b: TreeNode): boolean {
  const x = a.xattrs ?? []
  const y = b.xattrs ?? []
  return x.length === y.length && x.every((e, i) => e.name.equals(y[i]!.name) && e.value.equals(y[i]!.value))
}

/** Content differs: file chunks, size or holes, a link's target, a device's number. */
export function contentDiffers(a: TreeNode, b: TreeNode): boolean {
  if (a.type === 'file') return a.size !== b.size || !sameIds(a.chunks, b.chunks) || !sameExtents(a, b)
  if (a.type === 'symlink') return !a.target!.equals(b.target!)
  if (a.type === 'chardev' || a.type === 'blockdev') return a.rdev?.major !== b.rdev?.major || a.rdev?.minor !== b.rdev?.minor
  return false
}

/**
 * Metadata that differs. ctime, inode and link count are left out (a restore changes them without
 * changing anything a user cares about; a new link is reported where it was added), and so is a
 * directory's mtime (it moves whenever an entry does, which the entry's own change already says).
 * A node of a version-1 tree never recorded xattrs or flags: they are not compared with it.
 */
export function metadataDiffers(a: TreeNode, b: TreeNode): MetaField[] {
  const out: MetaField[] = []
  if (a.mode !== b.mode) out.push('mode')
  if (a.uid !== b.uid || a.gid !== b.gid) out.push('owner')
  if (a.type !== 'dir' && a.mtimeNs !== b.mtimeNs) out.push('mtime')
  if (!a.legacy && !b.legacy) {
    if (!sameXattrs(a, b)) out.push('xattrs')
    if ((a.flags ?? 0) !== (b.flags ?? 0)) out.push('flags')
  }
  return out
}

/**
 * Changes from `before` to `after` (either may be absent: everything below the other is added or
 * removed), depth first in name order; a directory's own change comes before its entries'.
 */
export async function* diffNodes(trees: Trees, before: TreeNode | undefined, after: TreeNode | undefined, at: Buffer): AsyncGenerator<Change> {
  if (!before && !after) return
  if (!before || !after) {
    const node = (before ?? after)!
    const kind = before ? 'removed' : 'added'
    const side = (n: TreeNode) => (before ? {before: n} : {after: n})
    if (at.length) yield {kind, path: at, ...side(node)}
    if (node.type === 'dir') for await (const e of walk(trees, node, at)) yield {kind, path: e.path, ...side(e.node)}
    return
  }
  if (before.type !== after.type) {
    yield {kind: 'type', path: at, before, after}
    if (before.type === 'dir') for await (const e of walk(trees, before, at)) yield {kind: 'removed', path: e.path, before: e.node}
    if (after.type === 'dir') for await (const e of walk(trees, after, at)) yield {kind: 'added', path: e.path, after: e.node}
    return
  }
  const fields = metadataDiffers(before, after)
  if (contentDiffers(before, after)) yield {kind: 'modified', path: at, before, after, ...(fields.length ? {fields} : {})}
  else if (fields.length) yield {kind: 'metadata', path: at, before, after, fields}
  if (before.type !== 'dir' || before.subtree!.equals(after.subtree!)) return
  const [a, b] = await Promise.all([trees.get(before.subtree!), trees.get(after.subtree!)])
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const order = i >= a.length ? 1 : j >= b.length ? -1 : compareNames(a[i]!.name, b[j]!.name)
    const x = order <= 0 ? a[i++] : undefined
    const y = order >= 0 ? b[j++] : undefined
    yield* diffNodes(trees, x, y, joinPath(at, (x ?? y)!.name))
  }
}

export interface ChangeJson {
  kind: ChangeKind
  path: string
  pathHex?: string
  type: string
  oldType?: string
  size?: number
  oldSize?: number
  fields?: MetaField[]
}

export function changeJson(c: Change): ChangeJson {
  const p = jsonBytes(c.path.length ? c.path : Buffer.from('.'))
  const out: ChangeJson = {kind: c.kind, path: p.text, ...(p.hex ? {pathHex: p.hex} : {}), type: (c.after ?? c.before)!.type}
  if (c.kind === 'type') out.oldType = c.before!.type
  if (c.after) out.size = c.after.size
  if (c.before && c.kind !== 'added' && c.kind !== 'removed') out.oldSize = c.before.size
  if (c.kind === 'removed') out.size = c.before!.size
  if (c.fields) out.fields = c.fields
  return out
}
