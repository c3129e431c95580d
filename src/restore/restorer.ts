// `ckpt restore`: build the snapshot's tree in a temp directory beside the destination (same
// filesystem), make it durable, then swap it in with one atomic exchange, so the destination
// path always holds the old tree or the new one, whole. Any failure (a corrupt chunk, a full
// disk) removes the temp tree and leaves the destination as it was.
//
// Safety against a hostile repository: tree names are checked by decodeTree (no "", ".", "..",
// "/" or NUL, no duplicates), every entry is created fresh with O_EXCL / mkdir / symlink inside
// directories this restore created, and files are opened with O_NOFOLLOW, so nothing can be
// written through a symlink or outside the destination.
import {randomBytes} from 'node:crypto'
import {constants as fsc, promises as fsp} from 'node:fs'
import path from 'node:path'

import {BadPathError, errnoCode, UsageError} from '../core/errors.js'
import {exchangePaths, setTimesNs, syncFilesystem} from '../core/fsmeta.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {fsyncDir} from '../store/local.js'
import {withLock} from '../store/lock.js'
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'

/** Chunks fetched ahead of the one being written. */
const READ_AHEAD = 8

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
    await repo.loadIndex()
    if (state === 'non-empty') await opts.beforeReplace?.(dest)
    const parent = path.dirname(dest)
    await fsp.mkdir(parent, {recursive: true})
    await removeAbandonedTemps(parent, path.basename(dest))
    const temp = path.join(parent, `${tempPrefix(path.basename(dest))}${process.pid}-${randomBytes(4).toString('hex')}`)
    await fsp.mkdir(temp, {mode: 0o700})
    const writer = new TreeWriter(repo, opts, !syncFilesystemAvailable())
    try {
      const includes = (opts.includes ?? []).map(splitInclude)
      await writer.restoreTree(Buffer.from(snap.manifest.tree, 'hex'), Buffer.from(temp), '', includes.length ? includes : undefined)
      const root = snap.manifest.root
      await writer.applyMeta(Buffer.from(temp), {type: 'dir', mode: root.mode, uid: root.uid, gid: root.gid, mtimeNs: BigInt(root.mtimeNs)})
      if (writer.fsyncEach) await fsyncDir(temp)
      else syncFilesystem(temp)
    } catch (err) {
      await fsp.rm(temp, {recursive: true, force: true})
      throw err
    }
    const result: RestoreResult = {destination: dest, files: writer.files, dirs: writer.dirs, symlinks: writer.symlinks, bytes: writer.bytes, replaced: state === 'non-empty'}
    if (state === 'non-empty') {
      // temp and dest trade places: dest now holds the new tree, temp the old one.
      if (!exchangePaths(temp, dest)) {
        const aside = `${temp}-old`
        await fsp.rename(dest, aside)
        await fsp.rename(temp, dest)
        await fsp.rename(aside, temp)
      }
      await fsyncDir(parent)
      if (opts.keepOld) {
        const kept = path.join(parent, `${path.basename(dest)}.ckpt-old-${new Date().toISOString().replace(/[:.]/g, '-')}`)
        await fsp.rename(temp, kept)
        result.oldTree = kept
      } else {
        await fsp.rm(temp, {recursive: true, force: true})
      }
    } else {
      // Missing or empty: rename replaces an empty directory atomically.
      await fsp.rename(temp, dest)
    }
    await fsyncDir(parent)
    return result
  })
}

function syncFilesystemAvailable(): boolean {
  try {
    return syncFilesystem('/')
  } catch {
    return false
  }
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

type Meta = Pick<TreeNode, 'type' | 'mode' | 'uid' | 'gid' | 'mtimeNs'>

class TreeWriter {
  files = 0
  dirs = 0
  symlinks = 0
  bytes = 0
  private readonly owners = process.getuid?.() === 0

  constructor(private readonly repo: Repository, private readonly opts: RestoreOptions, readonly fsyncEach: boolean) {}

  /**
   * Restore the children of tree `id` into directory `dir`. `includes`: remaining path parts of
   * each --include that passes through here; undefined means everything below.
   */
  async restoreTree(id: Buffer, dir: Buffer, rel: string, includes: string[][] | undefined): Promise<void> {
    const nodes = decodeTree(await this.repo.readBlob(id, BlobType.tree), toHex(id))
    for (const node of nodes) {
      const shown = displayName(node.name)
      let below: string[][] | undefined
      if (includes) {
        const matching = includes.filter((parts) => parts[0] === shown)
        if (matching.length === 0) continue
        below = matching.some((parts) => parts.length === 1) ? undefined : matching.map((parts) => parts.slice(1))
      }
      const abs = Buffer.concat([dir, SLASH, node.name])
      const childRel = rel ? `${rel}/${shown}` : shown
      if (node.type === 'dir') {
        await fsp.mkdir(abs, {mode: 0o700})
        await this.restoreTree(node.subtree!, abs, childRel, below)
        if (this.fsyncEach) await fsyncDir(abs)
        await this.applyMeta(abs, node)
        this.dirs++
      } else if (below) {
        continue // an include names something below a non-directory: nothing to restore
      } else if (node.type === 'symlink') {
        await fsp.symlink(node.target!, abs)
        await this.applyMeta(abs, node)
        this.symlinks++
      } else {
        await this.writeFile(abs, node)
        await this.applyMeta(abs, node)
        this.files++
        this.bytes += node.size
      }
      this.opts.onProgress?.({files: this.files, bytes: this.bytes, path: childRel})
    }
  }

  private async writeFile(abs: Buffer, node: TreeNode): Promise<void> {
    const fh = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600)
    const pending: Promise<Buffer>[] = []
        try {
      const chunks = node.chunks ?? []
      let written = 0
      for (let i = 0; i < chunks.length; i++) {
        while (pending.length < READ_AHEAD && i + pending.length < chunks.length) {
          pending.push(this.repo.readBlob(chunks[i + pending.length]!, BlobType.data))
        }
        const data = await pending.shift()!
        let off = 0
        while (off < data.length) {
          const {bytesWritten} = await fh.write(data, off, data.length - off, null)
          off += bytesWritten
        }
        written += data.length
      }
      if (written !== node.size) {
        throw new BadPathError(`file ${displayName(node.name)}: chunks add up to ${written} bytes, the tree says ${node.size}`)
      }
      if (this.fsyncEach) await fh.sync()
    } catch (err) {
      // Reads already started must not surface later as unhandled rejections.
      for (const p of pending) p.catch(() => undefined)
      throw err
    } finally {
      await fh.close()
    }
  }

  /** Owner (when root), mode, then times: chown clears setuid bits, and times must come last. */
  async applyMeta(abs: Buffer, meta: Meta): Promise<void> {
    if (this.owners) await fsp.lchown(abs, meta.uid, meta.gid)
    if (meta.type !== 'symlink') await fsp.chmod(abs, meta.mode)
    setTimesNs(abs, meta.mtimeNs, meta.mtimeNs)
  }
}

const SLASH = Buffer.from('/')
