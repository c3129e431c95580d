// Whole-tree operations a restore does on trees it made or replaced, at any depth: remove one
// (the old tree after a swap, a temp tree after a failure) and fsync every entry (without the
// addon's syncfs). fs.rm and a recursive readdir build full paths, which the kernel refuses past
// PATH_MAX (ENAMETOOLONG) while a tree may nest deeper; here a directory whose path is too long
// is opened and its entries named through its descriptor (core/longpath.ts). The walk is a loop
// with an explicit stack, not recursion: depth costs memory, never the call stack. Descriptors
// open: one per VIA_MAX bytes of depth.
//
// Removal clears what stops it: an immutable or append-only inode (or one in such a directory)
// refuses unlink and rmdir with EPERM, and a tree restored from a snapshot may hold some (chattr
// +i, +a). As root the flags are cleared and the removal tried again; otherwise EPERM stands and
// names the path.
import {closeSync, constants as fsc, type Dirent, fsyncSync, lstatSync, openSync, readdirSync, rmdirSync, unlinkSync} from 'node:fs'

import {errnoCode} from '../core/errors.js'
import {readFlags, writeFlags} from '../core/fsextra.js'
import {DirRef} from '../core/longpath.js'
import {childPath, FS_FLAGS_LOCKING} from '../snapshot/tree.js'

/** Longest path a directory's entries are named through (room left for "/", a 255-byte name and the NUL). */
const VIA_MAX = 4096 - 1 - 255 - 1 - 64

interface Frame {
  /** Names the directory itself (through its parent's frame, never its own descriptor). */
  self: Buffer
  /** Names its entries' parent: self, or its own descriptor when self is long. */
  base: Buffer
  ref: DirRef | undefined
  entries: Dirent<Buffer>[]
}

function openFrame(self: Buffer): Frame {
  const ref = self.length > VIA_MAX ? DirRef.open(self) : undefined
  const base = ref ? ref.path : self
  return {self, base, ref, entries: readdirSync(base, {withFileTypes: true, encoding: 'buffer'})}
}

/**
 * Visit every entry below `top` (a directory), children before their directory: `entry` for
 * each non-directory (path, and the frame of its directory), `dirDone` for each directory once
 * its entries are visited (top last).
 */
function walkPostOrder(top: Buffer, entry: (p: Buffer, e: Dirent<Buffer>, dir: Frame) => void, dirDone: (dir: Frame, parent: Frame | undefined) => void, enter?: (p: Buffer) => void): void {
  const stack = [openFrame(top)]
  try {
    while (stack.length > 0) {
      const f = stack[stack.length - 1]!
      const next = f.entries.pop()
      if (next) {
        const p = childPath(f.base, next.name)
        if (next.isDirectory()) {
          enter?.(p)
          stack.push(openFrame(p))
        }
        else entry(p, next, f)
        continue
      }
      stack.pop()
      f.ref?.close()
      f.ref = undefined
      dirDone(f, stack[stack.length - 1])
    }
  } finally {
    for (const f of stack) f.ref?.close()
  }
}

/** Remove `top` and everything below it, however deep; nothing there is fine. */
export function removeTree(top: Buffer | string): void {
  const root = Buffer.from(top)
  let st
  try {
    st = lstatSync(root)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return
    throw err
  }
  if (!st.isDirectory()) {
    removeEntry(root, false, () => undefined)
    return
  }
  // Never into another filesystem: a volume mounted in the tree (since it was checked) is left whole.
  const dev = st.dev
  walkPostOrder(
    root,
    (p, e, dir) => removeEntry(p, e.isFile(), () => unlock(dir.self, true)),
    (dir, parent) => removeEntry(dir.self, true, () => parent && unlock(parent.self, true), true),
    (p) => {
      if (lstatSync(p).dev !== dev) throw Object.assign(new Error(`EXDEV: ${p.toString()} is a mount point (another filesystem): not removed`), {code: 'EXDEV'})
    },
  )
}

/** Unlink (or rmdir) `p`; on EPERM, clear the flags that refuse it (its own, and its directory's through `unlockParent`), then try once more. */
function removeEntry(p: Buffer, hasFlags: boolean, unlockParent: () => void, dir = false): void {
  const remove = () => (dir ? rmdirSync(p) : unlinkSync(p))
  try {
    remove()
  } catch (err) {
    const code = errnoCode(err)
    if (code === 'ENOENT') return
    if (code !== 'EPERM' || process.getuid?.() !== 0) throw err
    if (hasFlags) unlock(p, dir)
    unlockParent()
    remove()
  }
}

/**
 * Clear immutable and append-only on `p` (a file or directory), if set and if this system has
 * flags. Returns the flags it had when it cleared any (to put back), else undefined.
 */
export function unlock(p: Buffer, dir: boolean): number | undefined {
  const flags = readFlags(p, dir)
  if (typeof flags !== 'number' || (flags & FS_FLAGS_LOCKING) === 0) return undefined
  writeFlags(p, dir, flags & ~FS_FLAGS_LOCKING)
  return flags
}

/** fsync every regular file and directory below `top`, directories after their entries. */
export function fsyncTree(top: Buffer | string): void {
  walkPostOrder(
    Buffer.from(top),
    (p, e) => {
      if (e.isFile()) syncPath(p, fsc.O_RDONLY | fsc.O_NOFOLLOW)
    },
    (dir) => syncPath(dir.self, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW),
  )
}

function syncPath(p: Buffer, flags: number): void {
  const fd = openSync(p, flags)
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
