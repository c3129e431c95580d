// Carrying a file that is already on disk into the new tree (a delta restore, local.ts found it).
// The old tree must stay exactly as it is until the swap, so the file is never moved:
// - the inode the snapshot read, whose owner, mode and mtime are already the node's, is hard
//   linked (no data written; the link changes only its ctime and link count), once its xattrs and
//   inode flags are known to be the node's too: its ctime is still the one the snapshot recorded,
//   or the known snapshot of the old tree recorded them with its present ctime (local.ts), or
//   else they are read and compared (a change to them alone moves only ctime, which the hashed
//   rule of local.ts does not trust or compare);
// - anything else is cloned (FICLONE, where the filesystem shares extents) or copied, and then
//   given the node's metadata like any restored file, so no metadata change reaches the old tree.
// Either way the source is looked at again once carried: if it changed since it was found (its
// inode, size, mtime, or for a copy its ctime), the carried file is removed and the reader writes
// the file from chunks instead.
import {type BigIntStats, constants as fsc, linkSync, lstatSync, promises as fsp, unlinkSync} from 'node:fs'

import {errnoCode} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {readFlags, readXattrs} from '../core/fsextra.js'
import {FS_FLAGS_RECORDED, type TreeNode} from '../snapshot/tree.js'
import {type LocalFile, unchanged} from './local.js'

export type Carried = 'linked' | 'copied' | 'changed'

/** Link errors after which a copy still works (another filesystem, too many links, not allowed). */
const NO_LINK = new Set(['EXDEV', 'EMLINK', 'EPERM'])

/** `link`: false when the new tree must not share inodes with the old one (it is kept). */
export async function carryExisting(from: LocalFile, dest: Buffer, node: TreeNode, link = true): Promise<Carried> {
  const st = from.st
  const sameMeta = Number(st.mode & 0o7777n) === node.mode && Number(st.uid) === node.uid && Number(st.gid) === node.gid && st.mtimeNs === node.mtimeNs
  // The inode the snapshot read with the ctime it recorded: no xattr or flag has changed since
  // (either would have moved the ctime), so they are the node's unless the tree did not record them.
  const untouched = from.sameInode && st.ctimeNs === node.ctimeNs && !node.legacy
  // Else what a snapshot recorded of them with this ctime (local.ts), or else what they are now.
  const sameAttrs = () => (from.attrs && !node.legacy ? sameXattrsAndFlagsAs(from.attrs, node) : sameXattrsAndFlags(from.path, node))
  if (link && from.sameInode && sameMeta && (untouched || sameAttrs())) {
    const now = lstatOrUndefined(from.path)
    if (!now || !unchanged(now, st)) return 'changed'
    try {
      linkSync(from.path, dest)
    } catch (err) {
      if (!NO_LINK.has(errnoCode(err) ?? '')) throw err
      // A copy may fill a sparse file's holes: such a file is written from its chunks instead.
      return node.extents ? 'changed' : copy(from, dest)
    }
    faultPoint('restore.reused')
    const got = lstatOrUndefined(dest)
    if (got && got.ino === st.ino && same(got, st)) return 'linked'
    unlinkSync(dest)
    return 'changed'
  }
  return node.extents ? 'changed' : copy(from, dest)
}

async function copy(from: LocalFile, dest: Buffer): Promise<Carried> {
  await fsp.copyFile(from.path, dest, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE)
  faultPoint('restore.reused')
  const now = lstatOrUndefined(from.path)
  if (now && now.isFile() && unchanged(now, from.st)) return 'copied'
  unlinkSync(dest)
  return 'changed'
}

/** The inode's xattrs and recorded inode flags are the node's (what cannot be read counts as none). */
function sameXattrsAndFlags(p: Buffer, node: TreeNode): boolean {
  const flags = readFlags(p, false)
  if ((typeof flags === 'number' ? flags & FS_FLAGS_RECORDED : 0) !== (node.flags ?? 0)) return false
  const listed = readXattrs(p)
  return sameXattrsAndFlagsAs({xattrs: typeof listed === 'string' ? [] : listed.xattrs}, node)
}

function sameXattrsAndFlagsAs(have: Pick<TreeNode, 'xattrs' | 'flags'>, node: TreeNode): boolean {
  if ((have.flags ?? 0) !== (node.flags ?? 0)) return false
  const a = have.xattrs ?? []
  const b = node.xattrs ?? []
  return a.length === b.length && a.every((x, i) => x.name.equals(b[i]!.name) && x.value.equals(b[i]!.value))
}

function same(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs
}

function lstatOrUndefined(p: Buffer): BigIntStats | undefined {
  try {
    return lstatSync(p, {bigint: true})
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined
    throw err
  }
}
