// A restore's record of what it left on disk, so the next snapshot and the next delta restore of
// that directory trust its files without reading them. A restored file has the snapshot's bytes,
// mode and mtime, but a new inode or a new ctime (a file written anew, or one linked from the old
// tree, whose link count moved): no snapshot vouches for that stat, so the first snapshot after a
// restore would read every file again, and a second rollback would hash every old file.
//
// Once the restore is done, the restored snapshot's trees are walked against the directory, and
// every entry still of its type (a file: of its size and mtime) is recorded as it is now (stat
// fields from lstat; content, xattrs and flags from the snapshot, which the restore set: a restore
// with any warning writes no record). The result is a tree of the same format with its own ids,
// kept outside the repository, under the cache directory (store/cache.ts):
// records/<repository id>/<blake3 of host NUL path>. It is read as a parent is: a file is trusted
// when its ino, ctime, size and mtime are the record's and it last changed before the record's walk
// began, outside the racy window (core/racy.ts). So the walk starts one racy window after the
// restore's last change; a file changed since (by anyone) has another ctime. The record names its
// snapshot: a snapshot made from it names that one as its parent, and it serves only while the
// directory is the one recorded (same device and inode) and no snapshot of it is newer.
//
// File layout (version 1): "ckpt-restore-record 1\n", a JSON header line, then the trees back to
// back, then the table of trees (per tree: id 32 bytes, offset u64 LE, length u32 LE), then a
// footer: the table's offset (u64 LE) and its count (u32 LE). Trees are checked against their
// ids when read; a record that does not parse is ignored. Written to a temp name and renamed,
// best effort: a failure only costs the next snapshot its reads.
import {randomBytes} from 'node:crypto'
import {type BigIntStats, lstatSync, promises as fsp} from 'node:fs'
import path from 'node:path'

import {errnoCode} from '../core/errors.js'
import {blake3} from '../core/hash.js'
import {toHex} from '../core/ids.js'
import {RACY_WINDOW_NS} from '../core/racy.js'
import {makeDirs} from '../core/mkdirs.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {cacheRoot} from '../store/cache.js'
import {childPath, decodeTree, encodeTree, nodeTypeOf, type TreeNode} from './tree.js'

const MAGIC = 'ckpt-restore-record 1\n'
const ENTRY = 32 + 8 + 4
const FOOTER = 8 + 4
/** Trees recorded at most (the table is held in memory while writing and reading): a larger tree gets no record. */
const MAX_TREES = 1 << 20
/** Records kept per repository on this machine (one per directory restored into), the newest. */
const MAX_RECORDS = 64

interface Header {
  snapshot: string
  tree: string
  startNs: string
  host: string
  path: string
  dev: string
  ino: string
}

/** A record read back: the stat cache's parent for `path`. */
export interface RestoreRecord {
  /** The snapshot restored. */
  snapshot: string
  /** The record's root tree (not in the repository). */
  tree: Buffer
  /** When its walk began: what changed later, or within the racy window before, is not vouched for. */
  startNs: bigint
  /** A tree of the record, checked against its id; another id is the repository's. */
  readTree(id: Buffer): Promise<Buffer>
  /** Close the record's file (readTree fails after). */
  close(): Promise<void>
}

export interface RecordOptions {
  host: string
  /** Wall clock in ns (tests). */
  nowNs?: () => bigint
}

function recordPath(repo: Repository, dest: string, opts: RecordOptions): string {
  const key = toHex(blake3(Buffer.concat([Buffer.from(opts.host), Buffer.from([0]), Buffer.from(dest)])))
  return path.join(cacheRoot(), 'records', repo.config.id, key)
}

/**
 * Record what the restore of snapshot `snapshot` (root tree `tree`) left at `dest`. Returns
 * whether a record was written; never throws (a record is only a shortcut).
 */
export async function writeRestoreRecord(repo: Repository, snapshot: string, tree: Buffer, dest: string, opts: RecordOptions & {skip?: readonly Buffer[]}): Promise<boolean> {
  let temp: string | undefined
  let fh: fsp.FileHandle | undefined
  try {
    // Named as a snapshot names its source: absolute, without symlinks.
    dest = await fsp.realpath(dest)
    const file = recordPath(repo, dest, opts)
    temp = `${file}.tmp-${randomBytes(6).toString('hex')}`
    const nowNs = opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n)
    // The restore changed its last file a moment ago: one racy window later, none of them is racy.
    await new Promise((resolve) => setTimeout(resolve, Number(RACY_WINDOW_NS / 1_000_000n) + 1))
    const startNs = nowNs()
    const root = lstatSync(dest, {bigint: true})
    await makeDirs(path.dirname(file))
    await tidy(path.dirname(file), path.basename(file))
    fh = await fsp.open(temp, 'wx', 0o600)
    const header: Header = {snapshot, tree: '', startNs: startNs.toString(), host: opts.host, path: dest, dev: root.dev.toString(), ino: root.ino.toString()}
    const out = new RecordWriter(fh)
    // The header goes first with the root's id filled in at the end: its line is rewritten in place, same length.
    const head = Buffer.from(`${MAGIC}${JSON.stringify({...header, tree: '0'.repeat(64)})}\n`)
    await out.append(head)
    const skip = new Set((opts.skip ?? []).map((rel) => rel.toString('latin1')))
    const rootId = await recordDir(repo, Buffer.from(dest), Buffer.alloc(0), tree, out, skip)
    await out.finish()
    await fh.write(Buffer.from(`${MAGIC}${JSON.stringify({...header, tree: toHex(rootId)})}\n`), 0, head.length, 0)
    await fh.sync()
    await fh.close()
    fh = undefined
    await fsp.rename(temp, file)
    return true
  } catch {
    await fh?.close().catch(() => undefined)
    if (temp) await fsp.rm(temp, {force: true}).catch(() => undefined)
    // An older record of the directory must not outlive the restore that replaced what it describes.
    await dropRestoreRecord(repo, dest, opts)
    return false
  }
}

/**
 * Before a record of `key` is written: a temp file a killed writer left of it goes (records of one
 * directory are written one at a time), and so do the oldest records beyond MAX_RECORDS (restores
 * into directories never snapshotted since would otherwise pile up).
 */
async function tidy(dir: string, key: string): Promise<void> {
  const records: {name: string; mtimeMs: number}[] = []
  for (const name of await fsp.readdir(dir)) {
    if (name.startsWith(`${key}.tmp-`)) await fsp.rm(path.join(dir, name), {force: true})
    else if (!name.includes('.tmp-') && name !== key) {
      const st = await fsp.stat(path.join(dir, name)).catch(() => undefined)
      if (st) records.push({name, mtimeMs: st.mtimeMs})
    }
  }
  records.sort((a, b) => b.mtimeMs - a.mtimeMs)
  for (const r of records.slice(MAX_RECORDS - 1)) await fsp.rm(path.join(dir, r.name), {force: true})
}

/**
 * Record one directory (`rel` below the root; its snapshot tree `treeId`) and what is below it,
 * leaving out the paths in `skip`; returns the record's tree id.
 */
async function recordDir(repo: Repository, abs: Buffer, rel: Buffer, treeId: Buffer, out: RecordWriter, skip: ReadonlySet<string>): Promise<Buffer> {
  const nodes = decodeTree(await repo.readBlob(treeId, BlobType.tree), toHex(treeId))
  const recorded: TreeNode[] = []
  for (const n of nodes) {
    // A tree decoded from version 1 recorded no xattrs or flags: what is on disk may have them.
    if (n.legacy) throw new Error('version-1 tree')
    const r = rel.length > 0 ? childPath(rel, n.name) : n.name
    if (skip.has(r.toString('latin1'))) continue
    const p = childPath(abs, n.name)
    let st: BigIntStats
    try {
      st = lstatSync(p, {bigint: true})
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue
      throw err
    }
    if (nodeTypeOf(st) !== n.type) continue
    const node: TreeNode = {...n, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino}
    delete node.nlink
    delete node.dev
    if (n.type === 'file') {
      if (BigInt(n.size) !== st.size || n.mtimeNs !== st.mtimeNs) continue
      // As the archiver records it: (dev, ino) for a file with other names.
      if (st.nlink > 1n) {
        node.nlink = Number(st.nlink)
        node.dev = st.dev
      }
    } else if (n.type === 'dir') {
      node.subtree = await recordDir(repo, p, r, n.subtree!, out, skip)
    }
    recorded.push(node)
  }
  const bytes = encodeTree(recorded)
  const id = blake3(bytes)
  await out.add(id, bytes)
  return id
}

/** Appends trees (each once) and, at the end, their table and the footer. */
class RecordWriter {
  private offset = 0
  private readonly table = new Map<string, {id: Buffer; offset: number; length: number}>()
  private pending: Buffer[] = []
  private pendingBytes = 0

  constructor(private readonly fh: fsp.FileHandle) {}

  async append(bytes: Buffer): Promise<void> {
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    this.offset += bytes.length
    if (this.pendingBytes >= 256 * 1024) await this.flush()
  }

  async add(id: Buffer, bytes: Buffer): Promise<void> {
    const key = toHex(id)
    if (this.table.has(key)) return
    if (this.table.size >= MAX_TREES) throw new Error('too many trees')
    this.table.set(key, {id, offset: this.offset, length: bytes.length})
    await this.append(bytes)
  }

  async finish(): Promise<void> {
    const at = this.offset
    for (const e of this.table.values()) {
      const b = Buffer.allocUnsafe(ENTRY)
      e.id.copy(b, 0)
      b.writeBigUInt64LE(BigInt(e.offset), 32)
      b.writeUInt32LE(e.length, 40)
      await this.append(b)
    }
    const footer = Buffer.allocUnsafe(FOOTER)
    footer.writeBigUInt64LE(BigInt(at), 0)
    footer.writeUInt32LE(this.table.size, 8)
    await this.append(footer)
    await this.flush()
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return
    const parts = this.pending
    this.pending = []
    this.pendingBytes = 0
    await this.fh.writev(parts)
  }
}

/**
 * The record of the last restore into `dest` from this repository on this host, when there is
 * one and `dest` is still the directory it recorded; undefined otherwise (never throws).
 */
export async function readRestoreRecord(repo: Repository, dest: string, opts: RecordOptions): Promise<RestoreRecord | undefined> {
  const file = recordPath(repo, dest, opts)
  let fh: fsp.FileHandle | undefined
  try {
    fh = await fsp.open(file, 'r')
    const size = (await fh.stat()).size
    const first = Buffer.alloc(Math.min(size, 64 * 1024))
    await fh.read(first, 0, first.length, 0)
    const nl = first.indexOf(0x0a, MAGIC.length)
    if (first.subarray(0, MAGIC.length).toString() !== MAGIC || nl < 0) return undefined
    const header = JSON.parse(first.subarray(MAGIC.length, nl).toString()) as Header
    const root = lstatSync(dest, {bigint: true, throwIfNoEntry: false})
    if (!root || header.host !== opts.host || header.path !== dest || root.dev.toString() !== header.dev || root.ino.toString() !== header.ino) return undefined
    const footer = Buffer.alloc(FOOTER)
    await fh.read(footer, 0, FOOTER, size - FOOTER)
    const at = Number(footer.readBigUInt64LE(0))
    const count = footer.readUInt32LE(8)
    if (count > MAX_TREES || at + count * ENTRY + FOOTER !== size) return undefined
    const table = Buffer.alloc(count * ENTRY)
    await fh.read(table, 0, table.length, at)
    const trees = new Map<string, {offset: number; length: number}>()
    for (let i = 0; i < count; i++) {
      const e = table.subarray(i * ENTRY, (i + 1) * ENTRY)
      trees.set(toHex(e.subarray(0, 32)), {offset: Number(e.readBigUInt64LE(32)), length: e.readUInt32LE(40)})
    }
    const tree = Buffer.from(header.tree, 'hex')
    if (tree.length !== 32 || !trees.has(header.tree)) return undefined
    const handle = fh
    fh = undefined
    return {
      snapshot: header.snapshot,
      tree,
      startNs: BigInt(header.startNs),
      async readTree(id: Buffer): Promise<Buffer> {
        const loc = trees.get(toHex(id))
        if (!loc) return repo.readBlob(id, BlobType.tree)
        const bytes = Buffer.allocUnsafe(loc.length)
        const {bytesRead} = await handle.read(bytes, 0, loc.length, loc.offset)
        if (bytesRead !== loc.length || !blake3(bytes).equals(id)) throw new Error(`restore record ${file}: tree ${toHex(id)} is damaged`)
        return bytes
      },
      close: () => handle.close().catch(() => undefined),
    }
  } catch {
    return undefined
  } finally {
    await fh?.close().catch(() => undefined)
  }
}

/** Forget the record of `dest` (a snapshot now says more than it, or a restore left no record). Never throws. */
export async function dropRestoreRecord(repo: Repository, dest: string, opts: RecordOptions): Promise<void> {
  const real = await fsp.realpath(dest).catch(() => dest)
  await fsp.rm(recordPath(repo, real, opts), {force: true}).catch(() => undefined)
}
