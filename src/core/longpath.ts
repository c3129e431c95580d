// Paths longer than PATH_MAX. Every call of Node's fs takes a whole path, which the kernel refuses
// past PATH_MAX (4096 bytes with its NUL) with ENAMETOOLONG, while a directory tree may nest
// deeper than that: only each name is limited (255 bytes). The kernel resolves a path relative to
// an open directory the way openat(2) does when the path starts with /proc/self/fd/N: that
// component is the directory behind descriptor N itself, not a name looked up again. So a long
// path is used as "/proc/self/fd/N/<the rest>", N an open ancestor directory, with the rest short
// enough; ancestors deeper than PATH_MAX are opened the same way from shallower ones.
//
// Two pieces:
// - DirRef: one open directory; `child(rel)` names something under it by a short path. Its
//   paths are valid until `close()`.
// - LongPaths: `short(abs)` for any absolute path: abs itself when it fits (no descriptor, no
//   cost beyond a length check), else a path through an anchor DirRef it opens and keeps. Anchors
//   are kept (least recently used first out, at most MAX_ANCHORS) until `close()`. A short path
//   through an anchor is only good until the anchor is closed: use it at once (to open, stat,
//   list), never store it. A walk in depth-first order reuses the anchors of the current branch.
//
// The anchor is opened O_DIRECTORY | O_NOFOLLOW, so a directory replaced by a symlink fails
// (ELOOP/ENOTDIR) rather than leading the walk elsewhere; once open, renames above it do not
// move what its paths name. Needs /proc mounted (Linux); without it long paths fail as before.
import {closeSync, constants as fsc, openSync} from 'node:fs'

/** The longest path handed to the kernel as is; longer ones go through an anchor. Leaves room below PATH_MAX (4096 with the NUL). */
export const PATH_LIMIT = 4000
const PROC_FD = '/proc/self/fd/'
/** Anchors kept open by one LongPaths. A walk needs about one per PATH_LIMIT bytes of depth. */
const MAX_ANCHORS = 64
const SLASH = 0x2f

export class DirRef {
  private constructor(readonly fd: number, readonly prefix: Buffer) {}

  /** Opens the directory at `path` (a path the kernel accepts: short, or from another DirRef). */
  static open(path: Buffer | string): DirRef {
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW)
    return new DirRef(fd, Buffer.from(`${PROC_FD}${fd}`))
  }

  /** The directory itself, as a path ("/proc/self/fd/N"). */
  get path(): Buffer {
    return this.prefix
  }

  /** A short path to `rel` (relative, no leading slash) under this directory. */
  child(rel: Buffer): Buffer {
    const out = Buffer.allocUnsafe(this.prefix.length + 1 + rel.length)
    this.prefix.copy(out, 0)
    out[this.prefix.length] = SLASH
    rel.copy(out, this.prefix.length + 1)
    return out
  }

  close(): void {
    closeSync(this.fd)
  }
}

export class LongPaths {
  /** Open anchors by the absolute path of their directory (latin1 of the bytes), least recently used first. */
  private readonly anchors = new Map<string, {ref: DirRef; dir: Buffer}>()

  /** A path the kernel accepts that names what `abs` (absolute) names. Throws as openSync does if an ancestor cannot be opened. */
  short(abs: Buffer): Buffer {
    if (abs.length <= PATH_LIMIT) return abs
    // The deepest open anchor whose rest fits; else open one at the parent directory, so the
    // siblings and children that come next in a walk share it. The anchors (a few) are compared
    // with abs, not abs's ancestors looked up: that made a string of the path for each ancestor
    // within PATH_LIMIT, a thousand of them on a chain of short names, at every call (a snapshot
    // of a 2,000-deep tree of 3-byte names took 20 s, 13 of them here).
    const parentCut = abs.lastIndexOf(SLASH)
    let best: string | undefined
    let bestLength = 0
    for (const [key, {dir}] of this.anchors) {
      const n = dir.length
      if (n > bestLength && n <= parentCut && abs[n] === SLASH && abs.length - n <= PATH_LIMIT - 32 && dir.equals(abs.subarray(0, n))) {
        best = key
        bestLength = n
      }
    }
    if (best !== undefined) {
      const anchor = this.anchors.get(best)!
      this.anchors.delete(best)
      this.anchors.set(best, anchor)
      return anchor.ref.child(abs.subarray(bestLength + 1))
    }
    const parent = abs.subarray(0, parentCut)
    const ref = DirRef.open(this.short(parent))
    this.anchors.set(parent.toString('latin1'), {ref, dir: Buffer.from(parent)})
    if (this.anchors.size > MAX_ANCHORS) {
      const [oldest, anchor] = this.anchors.entries().next().value as [string, {ref: DirRef}]
      this.anchors.delete(oldest)
      anchor.ref.close()
    }
    return ref.child(abs.subarray(parentCut + 1))
  }

  /** Open anchors (for tests). */
  get open(): number {
    return this.anchors.size
  }

  close(): void {
    for (const {ref} of this.anchors.values()) ref.close()
    this.anchors.clear()
  }
}
