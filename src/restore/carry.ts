// What an in-place restore keeps from the tree it replaces. Restore builds the new tree in a temp
// directory beside the destination and swaps it in; the old tree is then deleted. Some of the old
// tree is not the snapshot's to replace: the repository in use when it lies inside the
// destination (a snapshot skips it) and whatever the snapshot's --exclude patterns matched. Just
// before the swap those paths are *carried* into the new tree by rename (same filesystem: no data
// is copied), so the swap keeps them.
//
// Crash safety: before anything moves, a journal beside the temp tree lists what will be carried,
// each with its device and inode (a rename keeps both). After a crash, recoverAbandoned puts back
// into the destination every carried path still in the temp tree, found by its inode (a lock
// refresh may have re-created an empty look-alike at the old path meanwhile), then deletes the
// temp tree. Temp trees and journals are named after the restoring process; one whose process is
// gone is abandoned. This runs before every restore, and when a repository cannot be found (the
// repository itself may be what a crash left in a temp tree).
import {randomBytes} from 'node:crypto'
import {type BigIntStats, promises as fsp} from 'node:fs'
import path from 'node:path'

import {BadPathError, errnoCode, IntegrityError} from '../core/errors.js'
import {writeFlags} from '../core/fsextra.js'
import {exchangePaths, setTimesNs} from '../core/fsmeta.js'
import {atomicWriteFile, fsyncDir} from '../core/durable.js'
import {faultPoint} from '../core/faultpoint.js'
import {processGone, processStart} from '../store/lock.js'
import {compileExcludes, type ExcludeMatcher} from '../snapshot/exclude.js'
import {childPath, displayName} from '../snapshot/tree.js'
import {removeTree, unlock} from './deeptree.js'

/** A path carried from the old tree into the new one. */
export interface Carried {
  /** Relative to the destination, as bytes (names need not be UTF-8). */
  rel: Buffer
  dev: bigint
  ino: bigint
}

const SLASH = Buffer.from('/')
const JOURNAL_SUFFIX = '.carry'
const JOURNAL_VERSION = 1

/**
 * Where the old tree waits while it is swapped out without an exchange: between the two-rename
 * swap's renames (no RENAME_EXCHANGE: NFS, no addon), or, inside a mount point, while its entries
 * are moved aside (swapInside). The temp tree's name and this.
 */
export const ASIDE_SUFFIX = '-old'
/** swapInside: the temp tree's name once every old entry is aside (its commit point). */
const MOVING_SUFFIX = '-new'

export function tempPrefix(base: string): string {
  return `.${base}.ckpt-restore-`
}

/**
 * A fresh temp tree name for a restore of `base` by this process: its pid and start time, so a
 * later restore can tell a dead owner from a live process that got the same pid (pids wrap around
 * quickly on a busy machine: 32768 here).
 */
export function tempName(base: string): string {
  return `${tempPrefix(base)}${process.pid}-${processStart(process.pid) ?? 0}-${randomBytes(4).toString('hex')}`
}

/** True when the restore that named `name` (one of its temp names) is gone: what it left is for the next one. */
function abandoned(name: string, prefix: string): boolean {
  const {pid, start} = tempOwner(name, prefix)
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processGone(pid, start)
}

/** The owner a temp tree's name records: pid and start time (null in names written before it was). */
function tempOwner(name: string, prefix: string): {pid: number; start: number | null} {
  const parts = name.slice(prefix.length).split('-')
  const start = parts.length >= 3 ? Number(parts[1]) : NaN
  return {pid: Number(parts[0]), start: Number.isInteger(start) && start > 0 ? start : null}
}

export function journalPath(temp: string): string {
  return temp + JOURNAL_SUFFIX
}

function join(dir: Buffer | string, rel: Buffer): Buffer {
  return childPath(Buffer.isBuffer(dir) ? dir : Buffer.from(dir), rel)
}

/** The directory part of a path given as bytes. */
function dirOf(p: Buffer): Buffer {
  return p.subarray(0, p.lastIndexOf(0x2f))
}

function shown(rel: Buffer): string {
  return rel.toString('latin1').split('/').map((n) => displayName(Buffer.from(n, 'latin1'))).join('/')
}

async function lstatOrUndefined(p: Buffer | string): Promise<BigIntStats | undefined> {
  try {
    return await fsp.lstat(p, {bigint: true})
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined
    throw err
  }
}

/**
 * What an in-place restore of `dest` must carry: each path of `keep` (absolute; the repository)
 * that lies inside `dest`, and each path of the old tree that `excludes` match (the walk stops at
 * a match). Refuses (BadPathError) a path that a rename cannot move into a temp tree beside
 * `dest`: one on another filesystem (a mount point inside `dest`). Costs two realpaths when there
 * is nothing to carry and no excludes.
 */
export async function planCarry(dest: string, keep: readonly string[], excludes: readonly string[], opts: {inside?: boolean} = {}): Promise<Carried[]> {
  const realDest = await fsp.realpath(dest, {encoding: 'buffer'})
  const rels: Buffer[] = []
  for (const k of keep) {
    let real: Buffer
    try {
      real = await fsp.realpath(k, {encoding: 'buffer'})
    } catch {
      continue
    }
    if (real.equals(realDest)) throw new BadPathError(`cannot restore ${dest} in place: it is the repository itself`)
    if (real.length > realDest.length + 1 && real.subarray(0, realDest.length).equals(realDest) && real[realDest.length] === 0x2f) {
      rels.push(real.subarray(realDest.length + 1))
    }
  }
  if (excludes.length > 0) {
    let matcher: ExcludeMatcher
    try {
      matcher = compileExcludes(excludes)
    } catch (err) {
      throw new IntegrityError(`the snapshot's exclude patterns cannot be used: ${(err as Error).message}`)
    }
    const skip = new Set(rels.map((r) => r.toString('hex')))
    // The temp tree of a restore inside a mount point is ckpt's, whatever a pattern says.
    if (opts.inside) for (const n of await ownNames(dest)) skip.add(Buffer.from(n).toString('hex'))
    await findExcluded(realDest, undefined, '', matcher, skip, rels)
  }
  if (rels.length === 0) return []
  // Carry the outermost of nested paths (an excluded directory holding the repository): it takes the rest along.
  rels.sort(Buffer.compare)
  const outer: Buffer[] = []
  for (const r of rels) {
    const last = outer[outer.length - 1]
    if (last && (r.equals(last) || (r.length > last.length && r.subarray(0, last.length).equals(last) && r[last.length] === 0x2f))) continue
    outer.push(r)
  }
  // Carried by rename into the temp tree: beside dest, or inside it (a mount point).
  const parentDev = (await fsp.stat(opts.inside ? dest : path.dirname(dest), {bigint: true})).dev
  const carried: Carried[] = []
  for (const rel of outer) {
    const st = await lstatOrUndefined(join(realDest, rel))
    if (!st) continue // gone since it was listed
    if (st.dev !== parentDev) {
      throw new BadPathError(`cannot restore ${dest} in place: ${shown(rel)} must be kept through the restore (the repository, or excluded at snapshot time) but is on another filesystem (a mount point?); restore with --target instead`, {path: shown(rel)})
    }
    carried.push({rel, dev: st.dev, ino: st.ino})
  }
  return carried
}

async function findExcluded(dir: Buffer, relBytes: Buffer | undefined, rel: string, matcher: ExcludeMatcher, skip: Set<string>, out: Buffer[]): Promise<void> {
  let entries
  try {
    entries = await fsp.readdir(dir, {withFileTypes: true, encoding: 'buffer'})
  } catch (err) {
    const code = errnoCode(err)
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return
    throw err
  }
  for (const e of entries) {
    const name = e.name
    const childBytes = relBytes ? Buffer.concat([relBytes, SLASH, name]) : name
    if (skip.has(childBytes.toString('hex'))) continue
    const show = displayName(name)
    const childRel = rel ? `${rel}/${show}` : show
    if (matcher(childRel, show, name, relBytes)) out.push(childBytes)
    else if (e.isDirectory()) await findExcluded(childPath(dir, name), childBytes, childRel, matcher, skip, out)
  }
}

/**
 * Move `carried` from the old tree `dest` into the new tree `temp`, after a durable journal
 * lists them. Missing parent directories are created in the new tree like the old tree's; the
 * new tree's directories keep their restored times. What the snapshot has at a carried path
 * gives way to the live one. Refuses (BadPathError, before anything moves) when the new tree has
 * a file or symlink where a carried path needs a directory, or `dest` is no longer the directory
 * `destId` (replaced, e.g. by a symlink, during the restore).
 */
export async function carryInto(dest: string, destId: {dev: bigint; ino: bigint}, temp: string, carried: readonly Carried[]): Promise<void> {
  if (carried.length === 0) return
  const parents = new Map<string, {abs: Buffer; create: boolean; mode: number; mtimeNs: bigint}>()
  // The root too: an entry carried to the top moves its mtime as it moves any directory's.
  const root = await fsp.lstat(temp, {bigint: true})
  parents.set('', {abs: Buffer.from(temp), create: false, mode: Number(root.mode & 0o7777n), mtimeNs: root.mtimeNs})
  for (const c of carried) {
    const parts = c.rel.toString('latin1').split('/')
    let missing = false
    for (let i = 1; i < parts.length; i++) {
      const relDir = Buffer.from(parts.slice(0, i).join('/'), 'latin1')
      const key = relDir.toString('hex')
      if (parents.has(key)) {
        missing = parents.get(key)!.create
        continue
      }
      const abs = join(temp, relDir)
      const st: BigIntStats | undefined = missing ? undefined : await lstatOrUndefined(abs)
      if (st && !st.isDirectory()) throw new BadPathError(`cannot restore ${dest} in place: ${shown(c.rel)} must be kept, but the snapshot has a file at ${shown(relDir)}`)
      missing = !st
      const old = st ?? (await fsp.lstat(join(dest, relDir), {bigint: true}))
      parents.set(key, {abs, create: missing, mode: Number(old.mode & 0o7777n), mtimeNs: old.mtimeNs})
    }
  }
  const now = await lstatOrUndefined(dest)
  if (!now?.isDirectory() || now.dev !== destId.dev || now.ino !== destId.ino) {
    throw new BadPathError(`${dest} was replaced during the restore; it was left as it is`)
  }
  await atomicWriteFile(journalPath(temp), encodeJournal(carried), 0o600)
  const touched = new Map<string, Buffer>()
  for (const p of [...parents.values()].sort((a, b) => a.abs.length - b.abs.length)) {
    if (p.create) await fsp.mkdir(p.abs, {mode: 0o700})
  }
  for (const c of carried) {
    const to = join(temp, c.rel)
    if (await lstatOrUndefined(to)) await fsp.rm(to, {recursive: true, force: true})
    await fsp.rename(join(dest, c.rel), to)
    for (const dir of [dirOf(join(dest, c.rel)), dirOf(to)]) touched.set(dir.toString('hex'), dir)
  }
  for (const dir of touched.values()) await fsyncDir(dir)
  // Give the new tree's directories back the snapshot's (or, for created ones, the old tree's) mode and times, deepest first.
  for (const p of [...parents.values()].sort((a, b) => b.abs.length - a.abs.length)) {
    if (p.create) await fsp.chmod(p.abs, p.mode)
    setTimesNs(p.abs, p.mtimeNs, p.mtimeNs)
  }
  await fsyncDir(temp)
}

export function encodeJournal(carried: readonly Carried[]): Buffer {
  return Buffer.from(JSON.stringify({version: JOURNAL_VERSION, carried: carried.map((c) => ({rel: c.rel.toString('hex'), dev: c.dev.toString(), ino: c.ino.toString()}))}) + '\n')
}

/** The journal's entries; undefined when it is unreadable (torn writes cannot happen: it is renamed into place). */
export function decodeJournal(bytes: Buffer): Carried[] | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as {version?: unknown; carried?: {rel: string; dev: string; ino: string}[]}
    if (doc.version !== JOURNAL_VERSION || !Array.isArray(doc.carried)) return undefined
    return doc.carried.map((c) => {
      const rel = Buffer.from(c.rel, 'hex')
      if (rel.length === 0 || rel.toString('latin1').split('/').some((n) => n === '' || n === '.' || n === '..')) throw new Error('unsafe path')
      return {rel, dev: BigInt(c.dev), ino: BigInt(c.ino)}
    })
  } catch {
    return undefined
  }
}

/**
 * Put back into `dest` every carried path the journal lists that is still in the abandoned temp
 * tree `temp` (a crash between carrying and the swap, or midway through carrying). After the
 * swap, `temp` holds the old tree without them and nothing moves.
 */
async function recoverCarried(dest: string, temp: string, carried: readonly Carried[]): Promise<void> {
  if (!(await lstatOrUndefined(dest))?.isDirectory()) return
  for (const c of carried) {
    const from = join(temp, c.rel)
    const st = await lstatOrUndefined(from)
    if (!st || st.dev !== c.dev || st.ino !== c.ino) continue
    const to = join(dest, c.rel)
    await fsp.mkdir(dirOf(to), {recursive: true})
    if (await lstatOrUndefined(to)) {
      // A look-alike was created at the old path since (a lock refresh re-creates directories): it goes with the temp tree.
      if (!exchangePaths(from, to)) {
        await fsp.rename(to, join(temp, Buffer.from(`.ckpt-displaced-${randomBytes(4).toString('hex')}`)))
        await fsp.rename(from, to)
      }
    } else {
      await fsp.rename(from, to)
    }
    await fsyncDir(dirOf(to))
  }
}

/**
 * Remove a temp tree that will not be swapped in, first giving back to `dest` what its journal
 * says was carried into it (nothing, if no journal was written or the swap happened).
 */
export async function discardTemp(dest: string, temp: string): Promise<void> {
  const journal = journalPath(temp)
  let bytes: Buffer | undefined
  try {
    bytes = await fsp.readFile(journal)
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err
  }
  if (bytes) {
    const carried = decodeJournal(bytes)
    // An unreadable journal: leave both for a person rather than delete what it may have listed.
    if (!carried) throw new IntegrityError(`cannot read ${journal}; ${temp} may hold paths of ${dest}: move them back by hand, then delete both`)
    await recoverCarried(dest, temp, carried)
  }
  // However deep, and whatever immutable files it holds (deeptree.ts).
  removeTree(temp)
  await fsp.rm(journal, {force: true})
}

/** ckpt's own entries in `dir` (a mount point being restored in place): temp trees, journals, old trees aside. */
async function ownNames(dir: string): Promise<string[]> {
  const prefix = tempPrefix(path.basename(dir))
  return (await fsp.readdir(dir)).filter((n) => n.startsWith(prefix))
}

/** Move every entry of `from` into `to` (one filesystem), but those `keep` names. */
async function moveEntries(from: string, to: string, keep: (name: Buffer) => boolean = () => false): Promise<void> {
  const a = Buffer.from(from + '/')
  const b = Buffer.from(to + '/')
  for (const name of await fsp.readdir(from, {encoding: 'buffer'})) {
    if (keep(name)) continue
    await renameEntry(Buffer.concat([a, name]), Buffer.concat([b, name]))
    faultPoint('restore.inside-moved')
  }
}

/**
 * rename(2), also of an entry whose own immutable or append-only flag forbids it (a mount point's
 * entries move one by one): the flag is lifted for the rename and put back on the moved entry.
 * Killed in between, the entry is whole, in one place or the other, only without that flag.
 */
async function renameEntry(from: Buffer, to: Buffer): Promise<void> {
  try {
    return await fsp.rename(from, to)
  } catch (err) {
    if (errnoCode(err) !== 'EPERM') throw err
    const st = await fsp.lstat(from)
    const dir = st.isDirectory()
    const flags = dir || st.isFile() ? unlock(from, dir) : undefined
    if (flags === undefined) throw err
    try {
      await fsp.rename(from, to)
    } catch (again) {
      writeFlags(from, dir, flags)
      throw again
    }
    writeFlags(to, dir, flags)
  }
}

/**
 * The swap of a mount point, which cannot be renamed: its entries trade places with those of the
 * temp tree written inside it. The old ones go into `<temp>-old`, then the temp tree is renamed
 * `<temp>-new` (the commit point: every old entry is aside), its entries move up, and the old tree
 * ends as `temp`, as after an exchange. Not atomic; killed midway, the next restore
 * (finishSwapsInside) moves the old entries back before the commit point and finishes after it,
 * so the directory ends wholly old or wholly new.
 */
export async function swapInside(dest: string, temp: string): Promise<void> {
  const aside = temp + ASIDE_SUFFIX
  const moving = temp + MOVING_SUFFIX
  const own = tempPrefix(path.basename(dest))
  // A filesystem's lost+found (mkfs makes it for fsck) stays, unless the new tree has its own.
  const ownLostFound = !(await lstatOrUndefined(path.join(temp, 'lost+found')))
  const stays = (n: Buffer) => n.toString('latin1').startsWith(own) || (ownLostFound && n.toString('latin1') === 'lost+found')
  await fsp.mkdir(aside, {mode: 0o700})
  try {
    await fsyncDir(dest)
    await moveEntries(dest, aside, stays)
    await fsyncDir(aside)
    await fsyncDir(dest)
    faultPoint('restore.inside-aside')
    await fsp.rename(temp, moving)
  } catch (err) {
    // Refused midway (an entry that cannot be moved): what went aside comes back.
    await moveEntries(aside, dest)
    await fsp.rmdir(aside)
    throw err
  }
  await fsyncDir(dest)
  faultPoint('restore.inside-committed')
  await moveEntries(moving, dest)
  await fsp.rmdir(moving)
  await fsp.rename(aside, temp)
  await fsyncDir(dest)
}

/**
 * Finish or undo the in-place swaps of dead restores inside the mount point `dest` (swapInside):
 * past the commit point the new entries move up and the old tree goes; before it the old entries
 * come back (the temp tree then goes with the others). Returns how many were dealt with.
 */
async function finishSwapsInside(dest: string, prefix: string, names: readonly string[]): Promise<number> {
  let done = 0
  for (const name of names) {
    const moving = name.endsWith(MOVING_SUFFIX)
    if (!moving && !name.endsWith(ASIDE_SUFFIX)) continue
    if (!abandoned(name, prefix)) continue
    const temp = path.join(dest, name.slice(0, -(moving ? MOVING_SUFFIX : ASIDE_SUFFIX).length))
    if (moving) {
      await moveEntries(path.join(dest, name), dest)
      await fsp.rmdir(path.join(dest, name))
      await fsyncDir(dest)
      removeTree(temp + ASIDE_SUFFIX)
      await fsp.rm(journalPath(temp), {force: true})
    } else if (names.includes(path.basename(temp) + MOVING_SUFFIX)) {
      continue // dealt with as the "-new" one
    } else if (names.includes(path.basename(temp))) {
      // Before the commit point: the old entries go back; the temp tree (and what was carried
      // into it) is then an abandoned temp tree like any other.
      await moveEntries(path.join(dest, name), dest)
      await fsp.rmdir(path.join(dest, name))
      await fsyncDir(dest)
    } else {
      removeTree(path.join(dest, name)) // the swap was done; the old tree was being renamed
    }
    done++
  }
  return done
}

/**
 * Temp trees of restores of `parent/base` whose process is gone (killed midway): give back what
 * they had carried, then remove them and their journals. With `inside`, `parent` is the mount
 * point `base` itself, restored from inside (swapInside), whose killed swaps are undone or finished
 * first. Returns how many were cleaned up.
 */
export async function removeAbandonedTemps(parent: string, base: string, inside = false): Promise<number> {
  const prefix = tempPrefix(base)
  let names: string[]
  try {
    names = await fsp.readdir(parent)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return 0
    throw err
  }
  let cleaned = 0
  const dest = inside ? parent : path.join(parent, base)
  if (inside) {
    cleaned += await finishSwapsInside(dest, prefix, names)
    if (cleaned > 0) names = await fsp.readdir(parent)
  }
  const present = new Set(names)
  // An old tree set aside first: the temp tree's journal may give carried paths back into it.
  names.sort((a, b) => Number(b.endsWith(ASIDE_SUFFIX)) - Number(a.endsWith(ASIDE_SUFFIX)))
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    if (!abandoned(name, prefix)) continue
    const abs = path.join(parent, name)
    if (name.endsWith(ASIDE_SUFFIX) && !(await fsp.lstat(dest).then(() => true, () => false))) {
      // Killed between the two-rename swap's first rename (the old tree aside) and its second:
      // the destination is missing and this is all it held. It goes back.
      await fsp.rename(abs, dest)
      cleaned++
      continue
    }
    if (name.endsWith(JOURNAL_SUFFIX)) {
      // A journal whose temp tree is gone has nothing left to give back.
      if (!present.has(name.slice(0, -JOURNAL_SUFFIX.length))) await fsp.rm(abs, {force: true})
      continue
    }
    await discardTemp(dest, abs)
    cleaned++
  }
  if (cleaned > 0) await fsyncDir(parent)
  return cleaned
}

/**
 * A repository that cannot be found at `root` may sit in the temp tree of an in-place restore
 * of one of its ancestors that was killed between carrying it and the swap: recover every such
 * restore. Returns true when something was recovered (open the repository again).
 */
export async function recoverInterruptedRestores(root: string): Promise<boolean> {
  let recovered = false
  for (let dir = path.resolve(root); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const parent = path.dirname(dir)
    const base = path.basename(dir)
    let names: string[]
    try {
      names = await fsp.readdir(parent)
    } catch {
      continue
    }
    if (names.some((n) => n.startsWith(tempPrefix(base)) && n.endsWith(JOURNAL_SUFFIX))) {
      if ((await removeAbandonedTemps(parent, base)) > 0) recovered = true
    }
    // A mount point restored in place keeps its temp tree (and journal) inside itself.
    const inside = await fsp.readdir(dir).catch(() => [] as string[])
    if (inside.some((n) => n.startsWith(tempPrefix(base)) && (n.endsWith(JOURNAL_SUFFIX) || n.endsWith(ASIDE_SUFFIX) || n.endsWith(MOVING_SUFFIX)))) {
      if ((await removeAbandonedTemps(dir, base, true)) > 0) recovered = true
    }
  }
  return recovered
}
