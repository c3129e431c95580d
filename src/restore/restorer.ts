// `ckpt restore`: build the snapshot's tree in a temp directory beside the destination (same
// filesystem), make it durable, then swap it in with one atomic exchange, so the destination
// path always holds the old tree or the new one, whole. Any failure (a corrupt chunk, a full
// disk) removes the temp tree and leaves the destination as it was.
//
// An in-place restore keeps what the snapshot did not take: the repository in use when it lies
// inside the destination, and what the snapshot's --exclude patterns matched are carried from
// the old tree into the new one just before the swap (carry.ts). Before anything is written the
// target filesystem must have room for the snapshot's declared bytes, and the tree writer stops
// once a tree would write more than that (a hostile manifest can lie, and a subtree referenced
// many times can multiply what little is stored).
//
// Safety against a hostile repository: tree names are checked by decodeTree (no "", ".", "..",
// "/" or NUL, no duplicates), every entry is created fresh with O_EXCL / mkdir / symlink inside
// directories this restore created, and files are opened with O_NOFOLLOW, so nothing can be
// written through a symlink or outside the destination. How the tree is read: reader.ts; how it is written: fsout.ts.
import {type BigIntStats, constants as fsc, promises as fsp} from 'node:fs'
import path from 'node:path'

import {BadPathError, classifyOsError, errnoCode, IntegrityError, NoSpaceError, UsageError} from '../core/errors.js'
import {exchangePaths, syncFilesystem} from '../core/fsmeta.js'
import {faultPoint} from '../core/faultpoint.js'
import type {Repository} from '../repo/repository.js'
import {fsyncDir} from '../core/durable.js'
import {withLock} from '../store/lock.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {childPath} from '../snapshot/tree.js'
import {directoryUsers, refuseBusy} from './busy.js'
import {type Carried, carryInto, discardTemp, planCarry, removeAbandonedTemps, tempName} from './carry.js'
import {type TreeCounts, writeTree} from './fsout.js'

/** Room asked for beyond the snapshot's bytes: directories, inodes, the journal. */
const SPACE_MARGIN = 1024 * 1024

export interface RestoreOptions {
  /** Restore here (must be missing or an empty directory); default: the snapshot's source, replaced atomically. */
  target?: string
  /** Only these paths (relative to the snapshot root) and what is below them. */
  includes?: readonly string[]
  /** Keep the replaced tree beside the destination instead of deleting it. */
  keepOld?: boolean
  /** Called before a non-empty destination is replaced (the CLI takes the pre-restore snapshot here). */
  beforeReplace?: (dest: string) => Promise<void>
  /**
   * Paths an in-place restore must keep as they are when they lie inside the destination (the
   * CLI passes the repository's root): carried into the new tree, never replaced or removed.
   */
  keep?: readonly string[]
  lockRetryMs?: number
  onProgress?: (p: RestoreProgress) => void
  /**
   * Replace the source even when running processes use it (busy.ts). Without it an in-place
   * restore refuses such a directory before anything is written, and again just before the swap.
   */
  force?: boolean
  /** After an in-place restore: these callers (ckpt's ancestors) have their working directory in the removed tree. */
  onCallerCwd?: (pids: number[]) => void
  /** Called once the tree is written and durable, just before it is swapped in (tests and fault injection). */
  beforeSwap?: (temp: string) => void | Promise<void>
}

export interface RestoreProgress {
  files: number
  bytes: number
  path: string
}

export interface RestoreResult {
  destination: string
  files: number
  dirs: number
  symlinks: number
  bytes: number
  /** Where the replaced tree was kept (with keepOld). */
  oldTree?: string
  replaced: boolean
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotRecord, opts: RestoreOptions): Promise<RestoreResult> {
  if (opts.includes?.length && !opts.target) {
    throw new UsageError('--include restores part of a snapshot and needs --target: replacing the source with part of it would delete the rest')
  }
  const dest = path.resolve(opts.target ?? snap.manifest.source)
  const {state, st: destId} = await destinationState(dest, Boolean(opts.target))
  const declared = snap.manifest.summary.bytes
  if (!Number.isSafeInteger(declared) || declared < 0) throw new IntegrityError(`snapshot ${snap.id}: bad summary.bytes`, {snapshot: snap.id})
  const excludes = snap.manifest.excludes ?? []
  const keep = opts.keep ?? []
  const inPlace = state === 'non-empty'
  // Refused before the lock, the safety snapshot and the temp tree: nothing is touched. Only
  // when a process uses the directory is the carry planned, to leave out what it keeps valid.
  if (inPlace && !opts.force) {
    const {busy} = directoryUsers(dest)
    if (busy.length > 0) refuseBusy(dest, directoryUsers(dest, carriedPaths(await planCarry(dest, keep, excludes))).busy)
  }
  return withLock(repo.backend, {exclusive: false, readOnly: true, command: 'restore', retryMs: opts.lockRetryMs ?? 0}, async () => {
    // The snapshot was chosen before the lock was ours: a prune may have forgotten it since.
    // Reading its manifest again under the lock turns that into "not found", not missing data.
    await repo.readSnapshotBytes(snap.id)
    await repo.loadIndex()
    const parent = path.dirname(dest)
    await fsp.mkdir(parent, {recursive: true})
    await removeAbandonedTemps(parent, path.basename(dest))
    // What must be kept is looked for again just before the swap; refusing now saves the work.
    if (state === 'non-empty') await planCarry(dest, keep, excludes)
    if (!opts.includes?.length) await checkSpace(parent, dest, declared)
    if (state === 'non-empty') await opts.beforeReplace?.(dest)
    const temp = path.join(parent, tempName(path.basename(dest)))
    await fsp.mkdir(temp, {mode: 0o700})
    let written: TreeCounts | undefined
    let callerCwd: number[] = []
    try {
      const includes = (opts.includes ?? []).map(splitInclude)
      const root = snap.manifest.root
      const rootMeta = {type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs)} as const
      written = await writeTree(repo, Buffer.from(snap.manifest.tree, 'hex'), Buffer.from(temp), rootMeta, includes.length ? includes : undefined, {onProgress: opts.onProgress, maxBytes: declared})
      // Durable before it is swapped in: one syncfs, or (without the native addon) fsync of every entry.
      if (!syncFilesystem(temp)) await fsyncTree(Buffer.from(temp))
      faultPoint('restore.temp-synced')
      if (inPlace) {
        const carried = await planCarry(dest, keep, excludes)
        // A program may have started on the directory while the tree was written.
        const users = directoryUsers(dest, carriedPaths(carried))
        if (!opts.force) refuseBusy(dest, users.busy)
        await carryInto(dest, destId!, temp, carried)
        callerCwd = users.callerCwd
      }
      faultPoint('restore.carried')
      await opts.beforeSwap?.(temp)
    } catch (err) {
      await discardTemp(dest, temp)
      // A full disk here is the target's, not the repository's (the CLI's default wording).
      throw classifyOsError(err, `the restored tree beside ${dest}`)
    }
    const result: RestoreResult = {destination: dest, files: written!.files + written!.links, dirs: written!.dirs, symlinks: written!.symlinks, bytes: written!.bytes, replaced: state === 'non-empty'}
    if (state === 'non-empty') {
      // temp and dest trade places: dest now holds the new tree, temp the old one. Should dest
      // have become a symlink meanwhile, the link is what moves, never what it points to.
      faultPoint('restore.before-exchange')
      if (!exchangePaths(temp, dest)) {
        const aside = `${temp}-old`
        await fsp.rename(dest, aside)
        await fsp.rename(temp, dest)
        await fsp.rename(aside, temp)
      }
      await fsyncDir(parent)
      faultPoint('restore.after-exchange')
      if (opts.keepOld) {
        const kept = path.join(parent, `${path.basename(dest)}.ckpt-old-${new Date().toISOString().replace(/[:.]/g, '-')}`)
        await fsp.rename(temp, kept)
        result.oldTree = kept
      }
      // The old tree (without what was carried out of it) goes, then the journal.
      faultPoint('restore.before-remove-old')
      await discardTemp(dest, temp)
      faultPoint('restore.after-remove-old')
    } else {
      // Missing or empty: rename replaces an empty directory atomically, and fails on anything
      // else (a symlink put there meanwhile is not followed).
      try {
        await fsp.rename(temp, dest)
      } catch (err) {
        await discardTemp(dest, temp)
        const code = errnoCode(err)
        if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOTEMPTY' || code === 'EISDIR') {
          throw new BadPathError(`target ${dest} changed during the restore (${code}): it was left as it is`)
        }
        throw err
      }
      faultPoint('restore.renamed')
    }
    await fsyncDir(parent)
    if (callerCwd.length > 0) opts.onCallerCwd?.(callerCwd)
    return result
  })
}

/** Refuse a restore the target filesystem has no room for, before anything is written. */
async function checkSpace(dir: string, dest: string, bytes: number): Promise<void> {
  const fs = await fsp.statfs(dir, {bigint: true})
  // Some filesystems (network, FUSE) report no size at all: nothing to check against.
  if (fs.blocks === 0n) return
  const free = fs.bavail * fs.bsize
  const need = BigInt(bytes) + BigInt(SPACE_MARGIN)
  if (free < need) {
    throw new NoSpaceError(`not enough space to restore to ${dest}: the snapshot needs ${showBytes(need)}, its filesystem has ${showBytes(free)} free`, {target: dest, needed: Number(need), free: Number(free)})
  }
}

function showBytes(n: bigint): string {
  return `${(Number(n) / 1024 / 1024).toFixed(1)} MiB (${n} bytes)`
}

async function fsyncTree(dir: Buffer): Promise<void> {
  for (const entry of await fsp.readdir(dir, {withFileTypes: true, encoding: 'buffer'})) {
    const abs = childPath(dir, entry.name)
    if (entry.isDirectory()) {
      await fsyncTree(abs)
    } else if (entry.isFile()) {
      const fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW)
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  }
  await fsyncDir(dir)
}

async function destinationState(dest: string, explicitTarget: boolean): Promise<{state: 'missing' | 'empty' | 'non-empty'; st?: BigIntStats}> {
  let st
  try {
    st = await fsp.lstat(dest, {bigint: true})
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {state: 'missing'}
    throw new BadPathError(`cannot use ${dest}: ${errnoCode(err) ?? (err as Error).message}`)
  }
  if (!st.isDirectory()) throw new BadPathError(`${dest} exists and is not a directory`)
  const entries = await fsp.readdir(dest)
  if (entries.length === 0) return {state: 'empty', st}
  if (explicitTarget) throw new BadPathError(`target ${dest} is not empty (restore into a new or empty directory, or omit --target to replace the source)`)
  return {state: 'non-empty', st}
}

/** Carried paths as /proc shows them (UTF-8), relative to the destination. */
function carriedPaths(carried: readonly Carried[]): string[] {
  return carried.map((c) => c.rel.toString('utf8'))
}

function splitInclude(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new UsageError(`--include ${JSON.stringify(p)} must be a path inside the snapshot`)
  return parts
}
