// What a capture must do about files that moved while it ran. Pure: stat records in, decisions out.
//
// With a pause (planCapture): the pre-copy read every file while the program ran, recording its stat
// and when the read finished. Inside the pause the directory is walked again (stat only) and this
// decides which files must be read again, now, while nothing can change them: those whose stat
// changed, that appeared, that took another file's inode (renamed over), whose timestamps are too
// close to their read to prove they did not change after it within one clock tick, and those the
// paused processes hold open for writing or map shared-writable (a write through a mapping need not
// move mtime, and a write() may land between the stat and the read). Everything else is kept as
// the pre-copy read it.
//
// (Without a pause, what moved is found by src/snapshot/settle.ts, against the stored tree.)
//
// Paths are strings relative to the source, one spelling per name (the caller decodes names the
// same way on both sides: latin1 of the raw bytes keeps names that are not UTF-8 distinct).
import {RACY_WINDOW_COARSE_NS, RACY_WINDOW_NS} from '../core/racy.js'

export type EntryType = 'file' | 'dir' | 'symlink' | 'other'

export interface StatRecord {
  path: string
  type: EntryType
  size: bigint
  mtimeNs: bigint
  ctimeNs: bigint
  ino: bigint
}

export interface ReadRecord extends StatRecord {
  /** When reading this entry finished (wall clock, ns since the epoch, as file timestamps are). */
  readNs: bigint
}

/** Why a file is read again inside the pause. */
export type DirtyReason =
  | 'changed' // size, mtime, ctime, inode or type differ from the pre-copy's
  | 'appeared' // not in the pre-copy
  | 'renamed' // took the inode of a file the pre-copy read under another name
  | 'racy' // mtime or ctime within the racy window of the read: it may have changed unseen
  | 'written' // a paused process has it open for writing
  | 'mapped' // a paused process maps it shared and writable

export interface RacyWindow {
  /** ns; default 50 ms (kernel timestamps come from a clock a jiffy coarse). */
  windowNs?: bigint
  /** ns, for timestamps in whole seconds (filesystems that store no fraction); default 2 s. */
  coarseWindowNs?: bigint
}


/** The entry's timestamps are too close to (or after) its read to prove it unchanged since. */
export function isRacy(st: StatRecord, readNs: bigint, opts: RacyWindow = {}): boolean {
  const coarse = st.mtimeNs % 1_000_000_000n === 0n && st.ctimeNs % 1_000_000_000n === 0n
  const window = coarse ? opts.coarseWindowNs ?? RACY_WINDOW_COARSE_NS : opts.windowNs ?? RACY_WINDOW_NS
  return st.mtimeNs >= readNs - window || st.ctimeNs >= readNs - window
}

/**
 * Same entry, unchanged. Directories compare by inode and type only: their times move with every
 * entry added or removed, and those are compared entry by entry.
 */
export function sameStat(a: StatRecord, b: StatRecord): boolean {
  if (a.type !== b.type || a.ino !== b.ino) return false
  if (a.type === 'dir') return true
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs
}

export interface CopyItem {
  path: string
  type: EntryType
  /** Size at the pause's stat: the bytes to copy aside. */
  size: bigint
  reasons: DirtyReason[]
  /** For 'renamed': the name the pre-copy read this inode under. */
  from?: string
}

export interface CapturePlan {
  /** Files (and symlinks) to read again inside the pause, in path order. */
  copy: CopyItem[]
  /**
   * Renamed files whose content the pre-copy already holds: same inode, size and mtime as read
   * under `from`, not racy, not being written. Stored from the pre-copy's read, under the new name.
   */
  moved: {from: string; to: string}[]
  /** In the pre-copy, gone at the pause: left out of the snapshot. */
  removed: string[]
  /** Kept as the pre-copy read them. */
  unchanged: number
  /** Sum of copy[].size: what the pause must copy. */
  copyBytes: bigint
}

/** What the paused processes may write: path → how (from filesBeingWritten in procfs.ts). */
export type Writers = ReadonlyMap<string, 'write' | 'mmap'> | Iterable<{path: string; use: string}>

function writerMap(w: Writers): Map<string, Set<'written' | 'mapped'>> {
  const out = new Map<string, Set<'written' | 'mapped'>>()
  const add = (path: string, use: string): void => {
    const reason = use === 'mmap' ? 'mapped' : use === 'write' ? 'written' : undefined
    if (!reason) return
    const set = out.get(path) ?? new Set()
    set.add(reason)
    out.set(path, set)
  }
  if (w instanceof Map) for (const [path, use] of w) add(path, use)
  else for (const {path, use} of w as Iterable<{path: string; use: string}>) add(path, use)
  return out
}

const byPath = <T extends {path: string}>(items: Iterable<T>): Map<string, T> => {
  const m = new Map<string, T>()
  for (const it of items) m.set(it.path, it)
  return m
}

const pathOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Names present before and not after, and after and not before; and renames: an entry after
 * (new, or under a name that had another inode) with the inode of an entry gone since, same type.
 * A rename over an existing name (temp file, then rename over) is one of those.
 */
function diffNames<A extends StatRecord, B extends StatRecord>(before: Map<string, A>, after: Map<string, B>): {gone: A[]; fresh: B[]; renames: {from: A; to: B}[]} {
  const gone: A[] = []
  for (const [path, a] of before) if (!after.has(path)) gone.push(a)
  const goneByIno = new Map<bigint, A>()
  for (const a of gone) if (a.type !== 'dir') goneByIno.set(a.ino, a)
  const fresh: B[] = []
  const renames: {from: A; to: B}[] = []
  for (const [path, b] of after) {
    const was = before.get(path)
    if (!was) fresh.push(b)
    if (was && was.ino === b.ino) continue
    const a = goneByIno.get(b.ino)
    if (a && a.type === b.type) {
      renames.push({from: a, to: b})
      goneByIno.delete(b.ino)
    }
  }
  return {gone, fresh, renames}
}

/**
 * Decide what the pause must copy. `read`: the pre-copy's records; `paused`: every entry stat'ed
 * inside the pause (the whole tree, directories included); `writers`: files the paused processes
 * hold open for writing or map shared-writable.
 */
export function planCapture(read: Iterable<ReadRecord>, paused: Iterable<StatRecord>, writers: Writers, opts: RacyWindow = {}): CapturePlan {
  const before = byPath(read)
  const now = byPath(paused)
  const writing = writerMap(writers)
  const {gone, renames} = diffNames(before, now)
  const renamedTo = new Map(renames.map((r) => [r.to.path, r.from]))
  const copy: CopyItem[] = []
  const moved: {from: string; to: string}[] = []
  let unchanged = 0
  for (const [path, st] of now) {
    if (st.type === 'dir') continue // recorded from the pause's stat; their entries are checked one by one
    const reasons: DirtyReason[] = []
    const was = before.get(path)
    const from = renamedTo.get(path)
    if (from) {
      const sameContent = from.size === st.size && from.mtimeNs === st.mtimeNs && !isRacy(from, from.readNs, opts) && !writing.has(path)
      if (sameContent) {
        moved.push({from: from.path, to: path})
        continue
      }
      reasons.push('renamed')
    } else if (!was) {
      reasons.push('appeared')
    } else {
      if (!sameStat(was, st)) reasons.push('changed')
      if (isRacy(st, was.readNs, opts)) reasons.push('racy')
    }
    for (const r of writing.get(path) ?? []) reasons.push(r)
    if (reasons.length === 0) {
      unchanged++
      continue
    }
    copy.push({path, type: st.type, size: st.type === 'file' ? st.size : 0n, reasons, ...(from ? {from: from.path} : {})})
  }
  copy.sort((a, b) => pathOrder(a.path, b.path))
  moved.sort((a, b) => pathOrder(a.to, b.to))
  const movedFrom = new Set(renames.map((r) => r.from.path))
  const removed = gone.filter((a) => !movedFrom.has(a.path)).map((a) => a.path).sort(pathOrder)
  return {copy, moved, removed, unchanged, copyBytes: copy.reduce((n, c) => n + c.size, 0n)}
}
