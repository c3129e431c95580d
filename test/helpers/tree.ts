// Test fixtures: build real directory trees from a literal description, and capture a tree
// (content hash, mode, mtime in ns, symlink target, owner, xattrs and ACLs, inode flags, link
// count and which names share an inode, allocation, device numbers) to compare two trees exactly.
// Paths may be longer than PATH_MAX: both go through core/longpath.ts.
import {spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, constants as fsc, promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {makeNode, readFlags, readXattrs, splitDev, writeXattr} from '../../src/core/fsextra.js'
import {LongPaths} from '../../src/core/longpath.js'
import {FS_FLAGS_RECORDED} from '../../src/snapshot/tree.js'

/** What a file or directory carries beyond its bytes: xattrs (values as given), an ACL and default ACL (setfacl specs), chattr flags ("+i", "+a", "+d"). */
export interface Extras {
  xattrs?: Record<string, string | Buffer>
  acl?: string
  defaultAcl?: string
  chattr?: string
}

export type Spec =
  | string // file content
  | Buffer
  | ({file: string | Buffer | {random: number; seed?: number}; mode?: number; mtimeNs?: bigint} & Extras)
  | {symlink: string | Buffer}
  | ({dir: TreeSpec; mode?: number} & Extras)
  /** Another name of the file at `hardlink` (relative to the root, made earlier in the spec). */
  | {hardlink: string}
  /** A sparse file of `size` bytes holding `data` at the given offsets, holes elsewhere. */
  | ({sparse: number; data: [number, Buffer][]; mode?: number} & Extras)
  | {fifo: true; mode?: number}
  /** A device node (root only). */
  | {device: 'c' | 'b'; major: number; minor: number; mode?: number}
  /** Directories of 200-byte names nested until the path of the file `leaf` at the bottom, below the root, is at least `deep` bytes; `link`: another name for it (relative to the root, its directory made). */
  | {deep: number; leaf: string; link?: string}
export interface TreeSpec {
  [name: string]: Spec
}

/** Spec entries of every kind the suite's round trips must keep (device nodes only for root): hard links across directories, a sparse file, xattrs with binary values, ACLs, a FIFO, inode flags, a path past PATH_MAX. */
export function awkwardSpec(): TreeSpec {
  const root = process.getuid?.() === 0
  return {
    'links-a': {file: {random: 5000, seed: 41}},
    // Immutable with two names: restore must link before it sets the flag (link(2) refuses it after).
    ...(root ? {'locked-a': {file: 'immutable, two names', chattr: '+i'}} : {}),
    'links-dir': {dir: {'links-b': {hardlink: 'links-a'}, 'links-c': {hardlink: 'links-a'}, ...(root ? {'locked-b': {hardlink: 'locked-a'}} : {})}},
    'sparse.img': {sparse: 8 * 1024 * 1024, data: [[0, seededBytes(4096, 42)], [6 * 1024 * 1024, seededBytes(65536, 43)]]},
    'xattr.txt': {file: 'with attributes', xattrs: {'user.text': 'plain', 'user.binary': Buffer.from([0, 1, 2, 255, 0, 10]), ...(root ? {'trusted.t': Buffer.from([7, 0, 7])} : {})}},
    'acl-dir': {dir: {'acl.txt': {file: 'acl', acl: 'u:65534:r--,g:65534:rw-'}}, acl: 'u:65534:rwx', defaultAcl: 'u:65534:r-x'},
    fifo: {fifo: true, mode: 0o640},
    ...(root ? {null: {device: 'c', major: 1, minor: 3, mode: 0o666}, 'immutable.txt': {file: 'cannot change', chattr: '+i'}, 'append.log': {file: 'only grows\n', chattr: '+a'}, nodump: {dir: {x: 'x'}, chattr: '+d'}} : {}),
    // Linked from a directory the walk reaches after the deep one is done (its descriptors closed).
    deep: {deep: 8192, leaf: 'at the bottom of a path longer than PATH_MAX', link: 'zz/deep-leaf'},
  }
}

export async function tempDir(prefix = 'ckpt-test-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix))
}

/** A deterministic generator of numbers in [0, 1) (xorshift32), for seeded test choices. */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for tens of MiB. */
export function seededBytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length)
  let x = seed >>> 0 || 0x9e3779b9
  let i = 0
  for (; i + 4 <= length; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out.writeUInt32LE(x >>> 0, i)
  }
  for (; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** Create `spec` under `root` (which must exist). Names may be given as hex with a "hex:" prefix for non-UTF-8 bytes. */
export async function buildTree(root: string | Buffer, spec: TreeSpec): Promise<void> {
  const late: (() => void)[] = []
  const lp = new LongPaths()
  try {
    const top = Buffer.from(root)
    await build(top, top, spec, late, lp)
    // Directory modes, then inode flags, last (a read-only directory would refuse its own children, an immutable one anything).
    for (const f of late.reverse()) f()
  } finally {
    lp.close()
  }
}

export function nameBytes(name: string): Buffer {
  return name.startsWith('hex:') ? Buffer.from(name.slice(4), 'hex') : Buffer.from(name)
}

function run(cmd: string, args: (string | Buffer)[]): void {
  const r = spawnSync(cmd, args.map((a) => a.toString()), {encoding: 'utf8'})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr}`)
}

async function build(top: Buffer, dir: Buffer, spec: TreeSpec, late: (() => void)[], lp: LongPaths): Promise<void> {
  const extras = (p: Buffer, e: Extras, mode: number | undefined, isDir: boolean) => {
    for (const [k, v] of Object.entries(e.xattrs ?? {})) {
      if (writeXattr(p, Buffer.from(k), Buffer.from(v)) !== 'ok') throw new Error(`cannot set ${k} on ${p.toString()}`)
    }
    if (e.acl) run('setfacl', ['-m', e.acl, p])
    if (e.defaultAcl) run('setfacl', ['-d', '-m', e.defaultAcl, p])
    if (e.chattr) late.push(() => run('chattr', [e.chattr!, lp.short(p)]))
    if (mode !== undefined && isDir) late.push(() => chmodSync(lp.short(p), mode))
  }
  for (const [name, s] of Object.entries(spec)) {
    const p = Buffer.concat([dir, Buffer.from('/'), nameBytes(name)])
    if (typeof s === 'string' || Buffer.isBuffer(s)) {
      await fsp.writeFile(lp.short(p), s)
    } else if ('file' in s) {
      const content = typeof s.file === 'string' || Buffer.isBuffer(s.file) ? s.file : seededBytes(s.file.random, s.file.seed)
      await fsp.writeFile(lp.short(p), content)
      extras(p, s, undefined, false)
      if (s.mode !== undefined) await fsp.chmod(lp.short(p), s.mode)
      if (s.mtimeNs !== undefined) await fsp.utimes(lp.short(p), Number(s.mtimeNs) / 1e9, Number(s.mtimeNs) / 1e9)
    } else if ('symlink' in s) {
      await fsp.symlink(s.symlink, lp.short(p))
    } else if ('hardlink' in s) {
      await fsp.link(Buffer.concat([top, Buffer.from('/'), Buffer.from(s.hardlink)]), lp.short(p))
    } else if ('sparse' in s) {
      const fh = await fsp.open(lp.short(p), 'w')
      try {
        for (const [at, bytes] of s.data) await fh.write(bytes, 0, bytes.length, at)
        await fh.truncate(s.sparse)
      } finally {
        await fh.close()
      }
      extras(p, s, undefined, false)
      if (s.mode !== undefined) await fsp.chmod(lp.short(p), s.mode)
    } else if ('fifo' in s) {
      if (makeNode(lp.short(p), 'fifo', s.mode ?? 0o644) !== 'ok') throw new Error('no addon: cannot make a FIFO')
    } else if ('device' in s) {
      if (makeNode(lp.short(p), s.device === 'c' ? 'chardev' : 'blockdev', s.mode ?? 0o600, s.major, s.minor) !== 'ok') throw new Error('no addon: cannot make a device node')
    } else if ('deep' in s) {
      let at = p
      await fsp.mkdir(lp.short(at))
      while (at.length - top.length + 5 < s.deep) {
        at = Buffer.concat([at, Buffer.from('/'), Buffer.from('d'.repeat(199) + String(at.length % 10))])
        await fsp.mkdir(lp.short(at))
      }
      const leaf = Buffer.concat([at, Buffer.from('/leaf')])
      await fsp.writeFile(lp.short(leaf), s.leaf)
      if (s.link) {
        const other = Buffer.concat([top, Buffer.from('/'), Buffer.from(s.link)])
        await fsp.mkdir(path.dirname(other.toString()), {recursive: true})
        await fsp.link(lp.short(leaf), other)
      }
    } else {
      await fsp.mkdir(lp.short(p))
      await build(top, p, s.dir, late, lp)
      extras(p, s, s.mode, true)
    }
  }
}

export interface Captured {
  type: 'file' | 'dir' | 'symlink' | 'other'
  mode: number
  mtimeNs: bigint
  uid: number
  gid: number
  size?: number
  sha256?: string
  target?: string // hex
  /** name=value (hex) of every xattr, ACLs included, sorted. */
  xattrs?: string
  /** Inode flags ckpt keeps (files and directories). */
  flags?: number
  /** Files: the link count, and the first name (in sorted walk order) of its inode. */
  nlink?: number
  link?: string
  /** Files: bytes allocated (st_blocks x 512), compared within a margin. */
  allocated?: number
  /** Devices, FIFOs, sockets: the file type and device number. */
  node?: string
}

/** Every entry below root (root itself as ""), keyed by the hex of its relative path bytes. */
export async function captureTree(root: string | Buffer): Promise<Map<string, Captured>> {
  const out = new Map<string, Captured>()
  const inodes = new Map<string, string>()
  const lp = new LongPaths()
  const walk = async (abs: Buffer, rel: Buffer) => {
    const st = await fsp.lstat(lp.short(abs), {bigint: true})
    const base: Captured = {type: 'other', mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs, uid: Number(st.uid), gid: Number(st.gid)}
    const key = rel.toString('hex')
    if (!st.isSymbolicLink()) {
      const x = readXattrs(lp.short(abs))
      if (typeof x === 'object' && x.xattrs.length > 0) base.xattrs = x.xattrs.map((a) => `${a.name.toString()}=${a.value.toString('hex')}`).join(';')
    }
    if (st.isDirectory() || st.isFile()) {
      const f = readFlags(lp.short(abs), st.isDirectory())
      if (typeof f === 'number' && (f & FS_FLAGS_RECORDED) !== 0) base.flags = f & FS_FLAGS_RECORDED
    }
    if (st.isDirectory()) {
      out.set(key, {...base, type: 'dir'})
      const names = (await fsp.readdir(lp.short(abs), {encoding: 'buffer'})).sort(Buffer.compare)
      for (const n of names) await walk(Buffer.concat([abs, Buffer.from('/'), n]), rel.length ? Buffer.concat([rel, Buffer.from('/'), n]) : n)
    } else if (st.isSymbolicLink()) {
      out.set(key, {...base, type: 'symlink', target: (await fsp.readlink(lp.short(abs), {encoding: 'buffer'})).toString('hex')})
    } else if (st.isFile()) {
      const ino = `${st.dev}:${st.ino}`
      if (!inodes.has(ino)) inodes.set(ino, key)
      out.set(key, {...base, type: 'file', size: Number(st.size), sha256: await fileHash(lp.short(abs)), nlink: Number(st.nlink), link: inodes.get(ino), allocated: Number(st.blocks) * 512})
    } else {
      const kind = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : 'socket'
      const dev = splitDev(st.rdev)
      out.set(key, {...base, node: kind === 'fifo' || kind === 'socket' ? kind : `${kind} ${dev.major}:${dev.minor}`})
    }
  }
  try {
    await walk(Buffer.from(root), Buffer.alloc(0))
  } finally {
    lp.close()
  }
  return out
}

export async function fileHash(p: string | Buffer): Promise<string> {
  const h = createHash('sha256')
  const fh = await fsp.open(p, fsc.O_RDONLY)
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    for (;;) {
      const {bytesRead} = await fh.read(buf, 0, buf.length, null)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
    }
  } finally {
    await fh.close()
  }
  return h.digest('hex')
}

/** Differences between two captures, as readable lines (empty when equal). */
export function diffTrees(a: Map<string, Captured>, b: Map<string, Captured>, opts: {ignoreRootMtime?: boolean} = {}): string[] {
  const lines: string[] = []
  const show = (k: string) => {
    const s = Buffer.from(k, 'hex').toString('utf8') || '.'
    return JSON.stringify(s.length > 120 ? `${s.slice(0, 50)}...${s.slice(-50)}` : s)
  }
  for (const [k, x] of a) {
    const y = b.get(k)
    if (!y) {
      lines.push(`missing ${show(k)}`)
      continue
    }
    // Allocation within a margin: block sizes and preallocation differ, a hole filled does not.
    if (x.allocated !== undefined && y.allocated !== undefined && Math.abs(x.allocated - y.allocated) > 256 * 1024 + (x.size ?? 0) / 100) {
      lines.push(`${show(k)}: allocated ${x.allocated} != ${y.allocated} bytes`)
    }
    for (const f of ['type', 'mode', 'mtimeNs', 'uid', 'gid', 'size', 'sha256', 'target', 'xattrs', 'flags', 'nlink', 'link', 'node'] as const) {
      if (f === 'mtimeNs' && k === '' && opts.ignoreRootMtime) continue
      if (f === 'mtimeNs' && x.type === 'symlink' && x[f] !== y[f]) {
        lines.push(`${show(k)}: symlink mtime ${x[f]} != ${y[f]}`)
        continue
      }
      if (x[f] !== y[f]) lines.push(`${show(k)}: ${f} ${String(x[f])} != ${String(y[f])}`)
    }
  }
  for (const k of b.keys()) if (!a.has(k)) lines.push(`extra ${show(k)}`)
  return lines
}

/**
 * Wait until every entry under `dir` was last changed longer ago than the racy windows of
 * core/racy.ts (50 ms; whole-second timestamps are not expected here): the event after which a
 * snapshot or restore may trust their stat. Waits on the clock, not a guessed delay.
 */
export async function pastRacyWindow(dir: string): Promise<void> {
  let newest = 0n
  for (const e of await fsp.readdir(dir, {recursive: true})) {
    const st = await fsp.lstat(path.join(dir, e), {bigint: true})
    for (const t of [st.ctimeNs, st.mtimeNs]) if (t > newest) newest = t
  }
  const after = newest + 200_000_000n
  while (BigInt(Date.now()) * 1_000_000n <= after) await new Promise((r) => setTimeout(r, 20))
}
