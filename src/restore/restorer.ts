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
import {type BigIntStats, promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {BadPathError, classifyOsError, errnoCode, IntegrityError, NoSpaceError, UsageError} from '../core/errors.js'
import {exchangePaths, syncFilesystem} from '../core/fsmeta.js'
import {isMountPoint, mountsBelow, onlyLostFound} from '../core/mounts.js'
import {makeDirs} from '../core/mkdirs.js'
import {faultPoint} from '../core/faultpoint.js'
import type {Repository} from '../repo/repository.js'
import {fsyncDir} from '../core/durable.js'
import {withLock} from '../store/lock.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {type Manifest, rootMetaNode} from '../snapshot/manifest.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import {compileExcludes} from '../snapshot/exclude.js'
import {statBaseOf} from '../snapshot/create.js'
import {dropRestoreRecord, writeRestoreRecord} from '../snapshot/restorerecord.js'
import {decodeTree} from '../snapshot/tree.js'
import {directoryUsers, refuseBusy} from './busy.js'
import {ASIDE_SUFFIX, type Carried, carryInto, discardTemp, planCarry, removeAbandonedTemps, swapInside, tempName, tempPrefix} from './carry.js'
import {fsyncTree} from './deeptree.js'
import {dropInheritedAcls, setRootFlags, setRootMeta, type TreeCounts, writeTree} from './fsout.js'
import {LocalChunks} from './local.js'
import {checkIncludes, planRestore, type RestoreCounts, splitInclude} from './select.js'
import type {RestoreWarning} from './warnings.js'

/** Room asked for beyond the snapshot's bytes: directories, inodes, the journal. */
const SPACE_MARGIN = 1024 * 1024

export interface RestoreOptions {
  /** Restore here (missing or an empty directory, or any directory with overwrite); default: the snapshot's source, replaced atomically. */
  target?: string
  /** Replace a non-empty target atomically, as an in-place restore replaces the source. */
  overwrite?: boolean
  /** Directories whose files may hold chunks of the snapshot (read before the repository, each chunk checked). */
  seeds?: readonly string[]
  /** Hash every file of the replaced tree before reusing it, trusting no stat (local.ts). */
  verifyExisting?: boolean
  /** Called once the seed directories are indexed, before anything is restored (tests). */
  afterIndex?: () => void | Promise<void>
  /** Only these paths (relative to the snapshot root) and what is below them; each must be in the snapshot. */
  includes?: readonly string[]
  /**
   * Leave out paths matching these patterns (the syntax of snapshot --exclude). In place, what
   * the destination holds there stays, as for the snapshot's own excludes.
   */
  excludes?: readonly string[]
  /** Count what would be written and stop: nothing is created, replaced or removed. */
  dryRun?: boolean
  /** Keep the replaced tree beside the destination instead of deleting it. */
  keepOld?: boolean
  /**
   * Called before a non-empty destination is replaced (the CLI takes the pre-restore snapshot
   * here); it may return that snapshot's manifest, which then serves as `current`.
   */
  beforeReplace?: (dest: string) => Promise<Manifest | void>
  /**
   * A snapshot of the destination as it is (the newest of it): a delta restore takes what it
   * recorded of an old file it still matches instead of reading the file (local.ts).
   */
  current?: Manifest
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
  /** This host's name: restore records (snapshot/restorerecord.ts) are per host. Default: os.hostname(). */
  host?: string
}

export interface RestoreProgress {
  files: number
  bytes: number
  path: string
}

export interface RestoreResult extends RestoreCounts {
  destination: string
  /** What the snapshot holds that this target or user could not be given, one per kind (exit code 3). */
  warnings: RestoreWarning[]
  /** Where the replaced tree was kept (with keepOld). */
  oldTree?: string
  /** The destination held a tree, which was (with dryRun: would be) replaced. */
  replaced: boolean
  /** Nothing was written: the counts are what a restore would write. */
  dryRun?: true
  /** Files carried whole from the replaced tree (hard link, clone or copy). */
  filesReused: number
  /** Bytes taken from local files: those files, and chunks of other local files checked against their ids. */
  bytesReused: number
  /** Bytes read from the repository (stored, compressed: trees and data). */
  bytesFromRepository: number
  /** Local files read and hashed to find what they hold (old files a snapshot could not vouch for, seeds). */
  filesHashed: number
  /** A record of the restored tree was kept for the next snapshot and delta restore of it (snapshot/restorerecord.ts). */
  recorded?: boolean
  /** Wall time of the restore, ms (the safety snapshot, taken by the caller, included when there is one). */
  durationMs: number
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotRecord, opts: RestoreOptions): Promise<RestoreResult> {
  if (opts.includes?.length && !opts.target) {
    throw new UsageError('--include restores part of a snapshot and needs --target: replacing the source with part of it would delete the rest')
  }
  const started = performance.now()
  if (snap.manifest.paths && !opts.target) {
    throw new UsageError(`snapshot ${snap.id.slice(0, 12)} holds only the paths --files-from chose: restore it with --target (in place it would remove everything else)`)
  }
  let includes = opts.includes?.length ? opts.includes.map(splitInclude) : undefined
  const exclude = compileExcludes(opts.excludes ?? [])
  const dest = opts.target ? await targetPath(opts.target) : path.resolve(snap.manifest.source)
  await refuseInsideRepository(dest, repo.backend.capabilities.localDirectory)
  for (const seed of opts.seeds ?? []) {
    const st = await fsp.stat(seed).catch(() => undefined)
    if (!st?.isDirectory()) throw new BadPathError(`--seed ${seed} is not a directory`)
  }
  // A mount point (a volume mounted at the state directory, a fresh disk as the target) cannot be
  // renamed (EBUSY), and a tree written beside it would be on another filesystem.
  const mounted = mountPoint(dest)
  // What a killed restore left: its temp tree beside the destination (inside it, for a mount
  // point), or the old tree set aside by a two-rename swap, the destination missing meanwhile.
  if (!opts.dryRun) await removeAbandonedTemps(mounted ? dest : path.dirname(dest), path.basename(dest), mounted)
  const {state, st: destId} = await destinationState(dest, Boolean(opts.target) && !opts.overwrite, mounted)
  if (mounted && state === 'non-empty' && opts.keepOld) {
    throw new UsageError(`--keep-old cannot keep the replaced tree of ${dest}: it is a mount point, and the old tree would have to stay inside it`)
  }
  const declared = snap.manifest.summary.bytes
  if (!Number.isSafeInteger(declared) || declared < 0) throw new IntegrityError(`snapshot ${snap.id}: bad summary.bytes`, {snapshot: snap.id})
  const excludes = [...(snap.manifest.excludes ?? []), ...(opts.excludes ?? [])]
  const keep = opts.keep ?? []
  const inPlace = state === 'non-empty'
  // Refused before the lock, the safety snapshot and the temp tree: nothing is touched. Only
  // when a process uses the directory is the carry planned, to leave out what it keeps valid.
  if (inPlace && !opts.force && !opts.dryRun) {
    const {busy} = directoryUsers(dest)
    if (busy.length > 0) refuseBusy(dest, directoryUsers(dest, carriedPaths(await planCarry(dest, keep, excludes, {inside: mounted}))).busy)
  }
  return withLock(repo.backend, {exclusive: false, readOnly: true, command: 'restore', retryMs: opts.lockRetryMs ?? 0}, async () => {
    // The snapshot was chosen before the lock was ours: a prune may have forgotten it since.
    // Reading its manifest again under the lock turns that into "not found", not missing data.
    await repo.readSnapshotBytes(snap.id)
    await repo.loadIndex()
    const tree = Buffer.from(snap.manifest.tree, 'hex')
    // The root's flags wait until it is in place (setRootFlags below); its xattrs come with the tree.
    const {flags: rootFlags, ...rootMeta} = rootMetaNode(snap.manifest.root)
    const readTree = async (id: Buffer) => decodeTree(await repo.readBlob(id, BlobType.tree), toHex(id))
    if (includes) includes = await checkIncludes(readTree, tree, includes)
    if (opts.dryRun) return {destination: dest, ...(await planRestore(readTree, tree, includes, exclude)), replaced: inPlace, dryRun: true, filesReused: 0, bytesReused: 0, bytesFromRepository: 0, filesHashed: 0, durationMs: Math.round(performance.now() - started)}
    const parent = path.dirname(dest)
    // Where the new tree is written: beside the destination, or inside an (empty) mount point.
    const home = mounted ? dest : parent
    await makeDirs(parent).catch((err: unknown) => {
      const code = errnoCode(err)
      if (code === undefined) throw err
      throw new BadPathError(`cannot make ${parent} to restore into: ${code} (${(err as Error).message})`)
    })
    await removeAbandonedTemps(parent, path.basename(dest))
    // What must be kept is looked for again just before the swap; refusing now saves the work.
    if (state === 'non-empty') {
      await planCarry(dest, keep, excludes, {inside: mounted})
      // A volume mounted inside (and not kept, which planCarry refuses by name) would leave with
      // the old tree, and removing that tree would empty it.
      const inside = mountsBelow(dest)
      if (inside.length > 0) {
        throw new BadPathError(`cannot replace ${dest}: ${inside[0]} inside it is a mount point, which the swap would carry off with the old tree (and removing that tree would empty it); unmount it, or restore with --target into an empty directory. Nothing was changed`)
      }
    }
    // Holes and further names of a hard-linked file take no room: the data bytes are what it needs.
    if (!includes) await checkSpace(home, dest, dataBytes(snap.manifest.summary))
    const current = (state === 'non-empty' ? await opts.beforeReplace?.(dest) : undefined) ?? opts.current
    const temp = path.join(home, tempName(path.basename(dest)))
    await fsp.mkdir(temp, {mode: 0o700}).catch((err: unknown) => {
      // The tree is built in `home` (beside the destination, or inside a mount point): a
      // directory this user cannot write, or a read-only filesystem, is the target's problem.
      const code = errnoCode(err)
      if (code === undefined || !(code in WRITE_REFUSED)) throw err
      throw new BadPathError(`cannot restore to ${dest}: cannot write in ${home} (${code}: ${WRITE_REFUSED[code]}), where the new tree is built before it is moved into place`)
    })
    dropInheritedAcls(temp)
    let written: TreeCounts | undefined
    let callerCwd: number[] = []
    let carriedRels: Buffer[] = []
    // Bytes already here: the tree being replaced, and the seeds (local.ts).
    const recordOpts = {host: opts.host ?? os.hostname()}
    // What a snapshot's stat cache would start from: that snapshot, or the last restore's record
    // of the destination when it is newer.
    const base = inPlace ? await statBaseOf(repo, current && {manifest: current}, await fsp.realpath(dest), recordOpts.host) : undefined
    const known = base && {tree: base.tree, startNs: base.startNs, readTree: (id: Buffer) => base.trees.read(id), chunkLength: (id: Buffer) => repo.lookup(id)?.rawLength}
    const local = inPlace || opts.seeds?.length ? new LocalChunks({chunker: repo.config.chunker, old: inPlace ? {root: Buffer.from(dest), dev: destId!.dev, ...(mounted ? {ownPrefix: Buffer.from(tempPrefix(path.basename(dest)))} : {})} : undefined, seeds: opts.seeds, verifyExisting: opts.verifyExisting, known}) : undefined
    try {
      await local?.indexSeeds()
      await opts.afterIndex?.()
      written = await writeTree(repo, tree, Buffer.from(temp), rootMeta, includes, {onProgress: opts.onProgress, maxBytes: declared, exclude, local, shareReused: !opts.keepOld})
      // Durable before it is swapped in: one syncfs, or (without the native addon) fsync of every entry.
      if (!syncFilesystem(temp)) fsyncTree(temp)
      faultPoint('restore.temp-synced')
      if (inPlace) {
        const carried = await planCarry(dest, keep, excludes, {inside: mounted})
        // A program may have started on the directory while the tree was written.
        const users = directoryUsers(dest, carriedPaths(carried))
        if (!opts.force) refuseBusy(dest, users.busy)
        await carryInto(dest, destId!, temp, carried)
        carriedRels = carried.map((c) => c.rel)
        callerCwd = users.callerCwd
      }
      faultPoint('restore.carried')
      await opts.beforeSwap?.(temp)
    } catch (err) {
      await local?.close()
      await base?.record?.close()
      await discardTemp(dest, temp)
      // A full disk here is the target's, not the repository's (the CLI's default wording).
      throw classifyOsError(err, `the restored tree beside ${dest}`)
    }
    await local?.close()
    await base?.record?.close()
    const w = written!
    const result: RestoreResult = {
      destination: dest, files: w.files, hardLinks: w.links, dirs: w.dirs, symlinks: w.symlinks, fifos: w.fifos, devices: w.devices, skippedSpecials: w.skippedSpecials,
      bytes: w.bytes, warnings: w.warnings, replaced: state === 'non-empty',
      filesReused: w.filesReused, bytesReused: w.bytesReused, bytesFromRepository: w.bytesFromRepository, filesHashed: local?.filesHashed ?? 0, durationMs: 0,
    }
    if (state === 'non-empty') {
      // temp and dest trade places: dest now holds the new tree, temp the old one. Should dest
      // have become a symlink meanwhile, the link is what moves, never what it points to.
      faultPoint('restore.before-exchange')
      let exchanged: boolean
      try {
        exchanged = mounted ? await swapMountPoint(dest, destId!, temp) : exchangePaths(temp, dest)
      } catch (err) {
        // An immutable or append-only destination (chattr +i/+a) cannot be moved: nothing changed,
        // and what was carried into the new tree goes back.
        if (errnoCode(err) !== 'EPERM') throw err
        await discardTemp(dest, temp)
        throw new BadPathError(`cannot replace ${dest}: the system refuses to move it (EPERM; immutable or append-only? see lsattr -d): it was left as it is`)
      }
      if (!exchanged) {
        const aside = temp + ASIDE_SUFFIX
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
      try {
        await discardTemp(dest, temp)
      } catch (err) {
        // The restore itself is done: what is left is the old tree, named, for the user to remove.
        const code = errnoCode(err)
        if (code === undefined) throw err
        result.warnings.push({kind: 'old-tree', message: `the restored tree is in place, but the tree it replaced could not be removed (${code}: ${(err as Error).message}): it is left at ${temp}; remove it by hand`, count: 1, path: ''})
      }
      faultPoint('restore.after-remove-old')
    } else if (mounted) {
      // Empty when it was looked at, and still (as rename would refuse a directory filled meanwhile).
      const others = (await fsp.readdir(dest)).filter((n) => !n.startsWith(tempPrefix(path.basename(dest))))
      if (others.length > 0 && !(await onlyLostFound(dest, others))) {
        await discardTemp(dest, temp)
        throw new BadPathError(`target ${dest} changed during the restore (${others.length} entries appeared in it): it was left as it is`)
      }
      await swapMountPoint(dest, destId!, temp)
      await discardTemp(dest, temp) // the old tree: nothing, or an empty lost+found
      faultPoint('restore.renamed')
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
    // A mount point's own metadata, once the old tree is out of it (its removal moves the mtime).
    if (mounted) setRootMeta(dest, rootMeta, result.warnings)
    // Last of all, however the tree came in (exchange, rename, moves into a mount point).
    setRootFlags(dest, rootFlags, result.warnings)
    if (callerCwd.length > 0) opts.onCallerCwd?.(callerCwd)
    // Not after a warning: something the snapshot holds is not on disk as it says. Paths kept
    // from the old tree are left out of it (one could stand where a snapshot's file is, with its size and mtime).
    if (result.warnings.length === 0) result.recorded = await writeRestoreRecord(repo, snap.id, tree, dest, {...recordOpts, skip: carriedRels})
    else await dropRestoreRecord(repo, dest, recordOpts)
    result.durationMs = Math.round(performance.now() - started)
    return result
  })
}

/**
 * A mount point cannot be renamed: its entries trade places with the temp tree's (carry.ts
 * swapInside). It takes the snapshot root's metadata once the old tree is gone. Returns true (swapped).
 */
async function swapMountPoint(dest: string, destId: {dev: bigint; ino: bigint}, temp: string): Promise<true> {
  // Unmounted meanwhile, dest is another directory and the temp tree is out of sight.
  const now = await fsp.lstat(dest, {bigint: true})
  if (now.dev !== destId.dev || now.ino !== destId.ino || !(await fsp.lstat(temp).then(() => true, () => false))) {
    throw new BadPathError(`${dest} was unmounted or replaced during the restore; it was left as it is`)
  }
  await swapInside(dest, temp)
  return true
}

function mountPoint(dir: string): boolean {
  try {
    return isMountPoint(dir)
  } catch {
    return false // missing, or not ours to look at: the destination checks say which
  }
}

/** Why the directory the tree is built in cannot be written, as strerror says it. */
const WRITE_REFUSED: Record<string, string> = {EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system'}

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

function dataBytes(summary: SnapshotRecord['manifest']['summary']): number {
  const d = summary.dataBytes
  return Number.isSafeInteger(d) && d! >= 0 && d! <= summary.bytes ? d! : summary.bytes
}

function showBytes(n: bigint): string {
  return `${(Number(n) / 1024 / 1024).toFixed(1)} MiB (${n} bytes)`
}

/**
 * --target as an absolute path; a symbolic link to a directory is the directory it leads to, as
 * `tar -C` and `cp` take it (the link itself cannot be swapped for a directory, and stays as it is).
 */
async function targetPath(target: string): Promise<string> {
  const abs = path.resolve(target)
  if (!(await fsp.lstat(abs).then((st) => st.isSymbolicLink(), () => false))) return abs
  const real = await fsp.realpath(abs).catch(() => undefined)
  return real !== undefined && (await fsp.stat(real).then((st) => st.isDirectory(), () => false)) ? real : abs
}

/**
 * A restore into the repository's own directory would mix a tree into its objects (which prune
 * and verify pass over, and a later prune may remove): refused before anything is touched.
 */
async function refuseInsideRepository(dest: string, repoDir: string | undefined): Promise<void> {
  if (repoDir === undefined) return
  const repoReal = await fsp.realpath(repoDir).catch(() => path.resolve(repoDir))
  // The destination may not exist yet: resolve its nearest existing ancestor.
  let known = dest
  const rest: string[] = []
  let real = await fsp.realpath(known).catch(() => undefined)
  while (real === undefined && path.dirname(known) !== known) {
    rest.unshift(path.basename(known))
    known = path.dirname(known)
    real = await fsp.realpath(known).catch(() => undefined)
  }
  const full = path.join(real ?? known, ...rest)
  if (full === repoReal || full.startsWith(repoReal + path.sep)) {
    throw new UsageError(`cannot restore to ${dest}: it is inside the repository ${repoDir}; restore somewhere else`)
  }
}

async function destinationState(dest: string, explicitTarget: boolean, mounted: boolean): Promise<{state: 'missing' | 'empty' | 'non-empty'; st?: BigIntStats}> {
  let st
  try {
    st = await fsp.lstat(dest, {bigint: true})
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {state: 'missing'}
    throw new BadPathError(`cannot use ${dest}: ${errnoCode(err) ?? (err as Error).message}`)
  }
  if (st.isSymbolicLink()) throw new BadPathError(`${dest} is a symbolic link that leads to no directory`)
  if (!st.isDirectory()) throw new BadPathError(`${dest} exists and is not a directory`)
  const entries = await fsp.readdir(dest)
  if (entries.length === 0 || (mounted && await onlyLostFound(dest, entries))) return {state: 'empty', st}
  if (explicitTarget) throw new BadPathError(`target ${dest} is not empty (restore into a new or empty directory, replace it with --overwrite, or omit --target to replace the source)`)
  return {state: 'non-empty', st}
}

/** Carried paths as /proc shows them (UTF-8), relative to the destination. */
function carriedPaths(carried: readonly Carried[]): string[] {
  return carried.map((c) => c.rel.toString('utf8'))
}
