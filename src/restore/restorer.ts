// `ckpt restore`: build the snapshot's tree in a temp directory beside the destination (same
// filesystem), make it durable, then swap it in with one atomic exchange, so the destination
// path always holds the old tree or the new one, whole. Any failure (a corrupt chunk, a full
// disk) removes the temp tree and leaves the destination as it was.
//
// Safety against a hostile repository: tree names are checked by decodeTree (no "", ".", "..",
// "/" or NUL, no duplicates), every entry is created fresh with O_EXCL / mkdir / symlink inside
// directories this restore created, and files are opened with O_NOFOLLOW, so nothing can be
// written through a symlink or outside the destination. How the tree is written: treewriter.ts.
import {randomBytes} from 'node:crypto'
import {constants as fsc, promises as fsp} from 'node:fs'
import path from 'node:path'

import {BadPathError, classifyOsError, errnoCode, UsageError} from '../core/errors.js'
import {exchangePaths, syncFilesystem} from '../core/fsmeta.js'
import {faultPoint} from '../core/faultpoint.js'
import type {Repository} from '../repo/repository.js'
import {fsyncDir} from '../store/local.js'
import {withLock} from '../store/lock.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {childPath} from '../snapshot/tree.js'
import {TreeWriter} from './treewriter.js'

export interface RestoreOptions {
  /** Restore here (must be missing or an empty directory); default: the snapshot's source, replaced atomically. */
  target?: string
  /** Only these paths (relative to the snapshot root) and what is below them. */
  includes?: readonly string[]
  /** Keep the replaced tree beside the destination instead of deleting it. */
  keepOld?: boolean
  /** Called before a non-empty destination is replaced (the CLI takes the pre-restore snapshot here). */
  beforeReplace?: (dest: string) => Promise<void>
  lockRetryMs?: number
  onProgress?: (p: RestoreProgress) => void
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
  const state = await destinationState(dest, Boolean(opts.target))
  return withLock(repo.backend, {exclusive: false, command: 'restore', retryMs: opts.lockRetryMs ?? 0}, async () => {
    // The snapshot was chosen before the lock was ours: a prune may have forgotten it since.
    // Reading its manifest again under the lock turns that into "not found", not missing data.
    await repo.readSnapshotBytes(snap.id)
    await repo.loadIndex()
    if (state === 'non-empty') await opts.beforeReplace?.(dest)
    const parent = path.dirname(dest)
    await fsp.mkdir(parent, {recursive: true})
    await removeAbandonedTemps(parent, path.basename(dest))
    const temp = path.join(parent, `${tempPrefix(path.basename(dest))}${process.pid}-${randomBytes(4).toString('hex')}`)
    await fsp.mkdir(temp, {mode: 0o700})
    const writer = new TreeWriter(repo, opts.onProgress)
    try {
      const includes = (opts.includes ?? []).map(splitInclude)
      const root = snap.manifest.root
      const rootMeta = {type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs)} as const
      await writer.write(Buffer.from(snap.manifest.tree, 'hex'), Buffer.from(temp), rootMeta, includes.length ? includes : undefined)
      // Durable before it is swapped in: one syncfs, or (without the native addon) fsync of every entry.
      if (!syncFilesystem(temp)) await fsyncTree(Buffer.from(temp))
      faultPoint('restore.temp-synced')
    } catch (err) {
      await fsp.rm(temp, {recursive: true, force: true})
      // A full disk here is the target's, not the repository's (the CLI's default wording).
      throw classifyOsError(err, `the restored tree beside ${dest}`)
    }
    const result: RestoreResult = {destination: dest, files: writer.files, dirs: writer.dirs, symlinks: writer.symlinks, bytes: writer.bytes, replaced: state === 'non-empty'}
    if (state === 'non-empty') {
      // temp and dest trade places: dest now holds the new tree, temp the old one.
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
      } else {
        faultPoint('restore.before-remove-old')
        await fsp.rm(temp, {recursive: true, force: true})
        faultPoint('restore.after-remove-old')
      }
    } else {
      // Missing or empty: rename replaces an empty directory atomically.
      await fsp.rename(temp, dest)
      faultPoint('restore.renamed')
    }
    await fsyncDir(parent)
    return result
  })
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

function tempPrefix(base: string): string {
  return `.${base}.ckpt-restore-`
}

/** Temp trees of restores whose process is gone (killed midway): remove them. */
async function removeAbandonedTemps(parent: string, base: string): Promise<void> {
  const prefix = tempPrefix(base)
  for (const name of await fsp.readdir(parent)) {
    if (!name.startsWith(prefix)) continue
    const pid = Number(name.slice(prefix.length).split('-')[0])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue
    try {
      process.kill(pid, 0)
      continue // still running
    } catch (err) {
      if (errnoCode(err) === 'EPERM') continue
    }
    await fsp.rm(path.join(parent, name), {recursive: true, force: true})
  }
}

async function destinationState(dest: string, explicitTarget: boolean): Promise<'missing' | 'empty' | 'non-empty'> {
  let st
  try {
    st = await fsp.lstat(dest)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing'
    throw new BadPathError(`cannot use ${dest}: ${errnoCode(err) ?? (err as Error).message}`)
  }
  if (!st.isDirectory()) throw new BadPathError(`${dest} exists and is not a directory`)
  const entries = await fsp.readdir(dest)
  if (entries.length === 0) return 'empty'
  if (explicitTarget) throw new BadPathError(`target ${dest} is not empty (restore into a new or empty directory, or omit --target to replace the source)`)
  return 'non-empty'
}

function splitInclude(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.')
  if (parts.length === 0 || parts.includes('..')) throw new UsageError(`--include ${JSON.stringify(p)} must be a path inside the snapshot`)
  return parts
}
