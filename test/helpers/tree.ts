// Test fixtures: build real directory trees from a literal description, and capture a tree
// (content hash, mode, mtime in ns, symlink target, owner) to compare two trees exactly.
import {createHash} from 'node:crypto'
import {constants as fsc, promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export type Spec =
  | string // file content
  | Buffer
  | {file: string | Buffer | {random: number; seed?: number}; mode?: number; mtimeNs?: bigint}
  | {symlink: string | Buffer}
  | {dir: TreeSpec; mode?: number}
export interface TreeSpec {
  [name: string]: Spec
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
  const dirModes: [Buffer, number][] = []
  await build(Buffer.from(root), spec, dirModes)
  // Directory modes last (a read-only directory would refuse its own children).
  for (const [dir, mode] of dirModes.reverse()) await fsp.chmod(dir, mode)
}

export function nameBytes(name: string): Buffer {
  return name.startsWith('hex:') ? Buffer.from(name.slice(4), 'hex') : Buffer.from(name)
}

async function build(dir: Buffer, spec: TreeSpec, dirModes: [Buffer, number][]): Promise<void> {
  for (const [name, s] of Object.entries(spec)) {
    const p = Buffer.concat([dir, Buffer.from('/'), nameBytes(name)])
    if (typeof s === 'string' || Buffer.isBuffer(s)) {
      await fsp.writeFile(p, s)
    } else if ('file' in s) {
      const content = typeof s.file === 'string' || Buffer.isBuffer(s.file) ? s.file : seededBytes(s.file.random, s.file.seed)
      await fsp.writeFile(p, content)
      if (s.mode !== undefined) await fsp.chmod(p, s.mode)
      if (s.mtimeNs !== undefined) await fsp.utimes(p, Number(s.mtimeNs) / 1e9, Number(s.mtimeNs) / 1e9)
    } else if ('symlink' in s) {
      await fsp.symlink(s.symlink, p)
    } else {
      await fsp.mkdir(p)
      await build(p, s.dir, dirModes)
      if (s.mode !== undefined) dirModes.push([p, s.mode])
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
}

/** Every entry below root (root itself as ""), keyed by the hex of its relative path bytes. */
export async function captureTree(root: string | Buffer): Promise<Map<string, Captured>> {
  const out = new Map<string, Captured>()
  const walk = async (abs: Buffer, rel: Buffer) => {
    const st = await fsp.lstat(abs, {bigint: true})
    const base = {mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs, uid: Number(st.uid), gid: Number(st.gid)}
    const key = rel.toString('hex')
    if (st.isDirectory()) {
      out.set(key, {type: 'dir', ...base})
      const names = await fsp.readdir(abs, {encoding: 'buffer'})
      for (const n of names) await walk(Buffer.concat([abs, Buffer.from('/'), n]), rel.length ? Buffer.concat([rel, Buffer.from('/'), n]) : n)
    } else if (st.isSymbolicLink()) {
      out.set(key, {type: 'symlink', ...base, target: (await fsp.readlink(abs, {encoding: 'buffer'})).toString('hex')})
    } else if (st.isFile()) {
      out.set(key, {type: 'file', ...base, size: Number(st.size), sha256: await fileHash(abs)})
    } else {
      out.set(key, {type: 'other', ...base})
    }
  }
  await walk(Buffer.from(root), Buffer.alloc(0))
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
  const show = (k: string) => JSON.stringify(Buffer.from(k, 'hex').toString('utf8') || '.')
  for (const [k, x] of a) {
    const y = b.get(k)
    if (!y) {
      lines.push(`missing ${show(k)}`)
      continue
    }
    for (const f of ['type', 'mode', 'mtimeNs', 'uid', 'gid', 'size', 'sha256', 'target'] as const) {
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
