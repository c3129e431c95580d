// Hostile repository content, as whoever can write the repository would make it: every object
// correctly named by its hash (packs, index files, trees, manifests), so only ckpt's own checks
// stand between it and the user. A Crafter writes blobs into a pack with its index, trees from
// raw JSON nodes (so any field can be absurd) and manifests; HOSTILE_CASES are the named
// attacks (each a test in test/fault/hostile-*.test.ts), hostileVariant(seed) makes endless
// variations for bench/soak.mjs; probeRepository runs restore --target, verify, verify
// --read-data and snapshots on the result and checks: no stack trace, no hang, a documented exit
// code (0 only for content that is legitimately fine), bounded peak RSS, nothing written
// outside the target. Pure of vitest.
import {execFileSync, spawn} from 'node:child_process'
import {existsSync, promises as fsp, readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {Compression, encodeBlob} from '../../src/core/codec.js'
import {blake3} from '../../src/core/hash.js'
import {encodeIndex} from '../../src/repo/indexfile.js'
import {removeTree} from '../../src/restore/deeptree.js'
import {BlobType, type BlobTypeValue, encodePackTail, type PackEntry} from '../../src/repo/pack.js'
import {BIN} from './cli.js'
import {seededBytes, seededRandom} from './tree.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

export interface RawBlob {
  id: Buffer
  type: BlobTypeValue
  compression: number
  stored: Buffer
  rawLength: number
}

export type RawNode = Record<string, unknown>

export class Crafter {
  private pending: RawBlob[] = []
  /** Nodes of the trees made here, by id: what a well-formed manifest's summary.bytes adds up. */
  private readonly trees = new Map<string, RawNode[]>()
  constructor(readonly repo: string) {}

  /** A data blob (zstd where it pays), id = BLAKE3 of `plain` unless given. */
  async data(plain: Buffer, opts: {id?: Buffer; rawLength?: number} = {}): Promise<Buffer> {
    const enc = await encodeBlob(plain, 3)
    return this.stored({id: opts.id ?? blake3(plain), type: BlobType.data, compression: enc.compression, stored: Buffer.from(enc.data), rawLength: opts.rawLength ?? plain.length})
  }

  /** A tree blob from raw nodes (sorted by name bytes unless `unsorted`). */
  async tree(nodes: RawNode[], opts: {id?: Buffer; unsorted?: boolean; raw?: Buffer; version?: number} = {}): Promise<Buffer> {
    const sorted = opts.unsorted ? nodes : [...nodes].sort((a, b) => Buffer.compare(nameOf(a), nameOf(b)))
    const plain = opts.raw ?? Buffer.from(JSON.stringify({version: opts.version ?? 1, nodes: sorted}))
    const enc = await encodeBlob(plain, 3)
    if (!opts.raw) this.trees.set(hex(opts.id ?? blake3(plain)), sorted)
    return this.stored({id: opts.id ?? blake3(plain), type: BlobType.tree, compression: enc.compression, stored: Buffer.from(enc.data), rawLength: plain.length})
  }

  stored(b: RawBlob): Buffer {
    this.pending.push(b)
    return b.id
  }

  /** Write the pending blobs as one pack and its index file; `edit` may change the entries each describes. */
  async flush(edit: {index?: (e: PackEntry[], size: number) => {entries: PackEntry[]; size: number}; tail?: (e: PackEntry[]) => Buffer} = {}): Promise<string> {
    const blobs = this.pending
    this.pending = []
    let offset = 0
    const entries: PackEntry[] = blobs.map((b) => {
      const e = {id: b.id, type: b.type, compression: b.compression, offset, storedLength: b.stored.length, rawLength: b.rawLength}
      offset += b.stored.length
      return e
    })
    const pack = Buffer.concat([...blobs.map((b) => b.stored), edit.tail ? edit.tail(entries) : encodePackTail(entries)])
    const name = hex(blake3(pack))
    await writeObject(path.join(this.repo, 'data', name.slice(0, 2), name), pack)
    const idx = edit.index ? edit.index(entries.map((e) => ({...e})), pack.length) : {entries, size: pack.length}
    await this.index(encodeIndex([{name, size: idx.size, entries: idx.entries}]))
    return name
  }

  /** An index file of these bytes, named by their hash. */
  async index(bytes: Buffer): Promise<string> {
    const name = hex(blake3(bytes))
    await writeObject(path.join(this.repo, 'index', name), bytes)
    return name
  }

  /** What the files under a tree made here hold, as the archiver would declare it (capped: cycles and bombs stay finite). */
  private fileBytes(id: string, depth = 0): number {
    let total = 0
    for (const n of this.trees.get(id) ?? []) {
      if (n.type === 'file' && typeof n.size === 'number') total += n.size
      else if (n.type === 'dir' && typeof n.subtree === 'string' && depth < 64) total += this.fileBytes(n.subtree, depth + 1)
      if (total > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER
    }
    return total
  }

  /** A manifest of these bytes (or fields over a valid one), named by its hash: the snapshot id. */
  async manifest(tree: Buffer, fields: Record<string, unknown> = {}, raw?: Buffer): Promise<string> {
    const m = {
      version: 1, time: '2026-12-01T00:00:00.000Z', startTimeNs: '1764547200000000000', parent: null, host: 'hostile', source: '/hostile/src', tags: [],
      tree: hex(tree), root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: '1764547200000000000'},
      summary: {files: 0, dirs: 0, symlinks: 0, bytes: this.fileBytes(hex(tree)), newBytes: 0, storedBytes: 0, newBlobs: 0, bytesRead: 0, filesRead: 0, durationMs: 0, warnings: 0, incomplete: 0},
      warnings: [], program: 'hostile', ...fields,
    }
    const bytes = raw ?? Buffer.from(JSON.stringify(m, null, 1) + '\n')
    const id = hex(blake3(bytes))
    await writeObject(path.join(this.repo, 'snapshots', id), bytes)
    return id
  }
}

async function writeObject(file: string, bytes: Buffer): Promise<void> {
  await fsp.mkdir(path.dirname(file), {recursive: true})
  await fsp.writeFile(file, bytes, {mode: 0o444})
}

function nameOf(n: RawNode): Buffer {
  if (typeof n.name === 'string') return Buffer.from(n.name)
  if (typeof n.nameHex === 'string') return Buffer.from(n.nameHex, 'hex')
  return Buffer.alloc(0)
}

const T = '1764547200000000000'
const meta = (extra: RawNode = {}): RawNode => ({mode: 0o644, uid: 0, gid: 0, mtimeNs: T, ctimeNs: T, ino: '1', ...extra})
export const fileNode = (name: string, chunks: Buffer[], size: number, extra: RawNode = {}): RawNode => ({name, type: 'file', ...meta(extra), size, chunks: chunks.map(hex)})
export const dirNode = (name: string, subtree: Buffer, extra: RawNode = {}): RawNode => ({name, type: 'dir', ...meta({mode: 0o755, ...extra}), subtree: hex(subtree)})
export const linkNode = (name: string, target: string, extra: RawNode = {}): RawNode => ({name, type: 'symlink', ...meta({mode: 0o777, ...extra}), target})

/** A zstd frame of 1 GiB of zeros (about 32 KiB) and the BLAKE3 of those zeros, made once per machine by the zstd and b3sum tools. */
export function gibZeros(): {id: Buffer; frame: Buffer} {
  const file = path.join(os.tmpdir(), 'ckpt-test-1gib-zeros.zst')
  const idFile = `${file}.b3`
  if (!existsSync(file) || !existsSync(idFile)) {
    execFileSync('sh', ['-c', `head -c 1073741824 /dev/zero | zstd -q -c -3 > ${file}.part && mv ${file}.part ${file}`])
    execFileSync('sh', ['-c', `head -c 1073741824 /dev/zero | b3sum --no-names > ${idFile}.part && mv ${idFile}.part ${idFile}`])
  }
  return {frame: readFileSync(file), id: Buffer.from(readFileSync(idFile, 'utf8').trim(), 'hex')}
}

export type Outcome = 'ok' | 'fail' | 'either'

export interface HostileCase {
  name: string
  /** Content that is legitimately fine: restore and verify exit 0. */
  fine?: boolean
  /**
   * What each command must do where it differs from `fine` (all 'ok') or hostile (all 'fail':
   * a documented exit code other than 0). 'either' where both are right (a damaged object the
   * snapshot does not need; data a correct ckpt may restore or refuse).
   */
  expect?: Partial<Record<'restore' | 'verify' | 'readData', Outcome>>
  /** Run by bench/soak.mjs only: CI's sample has a case of the same kind. */
  soakOnly?: boolean
  /** The restore target should be on a small file system (the case would otherwise write gigabytes). */
  smallTarget?: boolean
  /** Build the content; returns the snapshot to restore. */
  build(c: Crafter, outside: string): Promise<string>
}

async function oneFile(c: Crafter, extra: RawNode = {}, size = 5): Promise<Buffer> {
  const chunk = await c.data(Buffer.from('hello'))
  return c.tree([fileNode('f', [chunk], size, extra)])
}

async function withTree(c: Crafter, nodes: RawNode[], opts: {unsorted?: boolean} = {}, fields: Record<string, unknown> = {}): Promise<string> {
  const tree = await c.tree(nodes, opts)
  await c.flush()
  return c.manifest(tree, fields)
}

export const HOSTILE_CASES: HostileCase[] = [
  {name: 'a well-formed snapshot (control)', fine: true, async build(c) {
    const chunk = await c.data(seededBytes(10_000, 3))
    return withTree(c, [fileNode('a', [chunk], 10_000), linkNode('l', 'a')])
  }},
  {name: 'file size larger than its chunks', async build(c) {
    const chunk = await c.data(seededBytes(1000, 4))
    return withTree(c, [fileNode('f', [chunk], 5_000_000_000)])
  }},
  {name: 'file size smaller than its chunks', soakOnly: true, async build(c) {
    const chunk = await c.data(seededBytes(1000, 5))
    return withTree(c, [fileNode('f', [chunk], 10)])
  }},
  {name: 'a chunk claiming 1 GiB raw length (a 32 KiB zstd frame)', async build(c) {
    const {id, frame} = gibZeros()
    c.stored({id, type: BlobType.data, compression: Compression.zstd, stored: frame, rawLength: 1 << 30})
    return withTree(c, [fileNode('bomb', [id], 1 << 30)])
  }},
  {name: 'a uid of 2^40', async build(c) {
    return withTree(c, [fileNode('f', [await c.data(Buffer.from('hello'))], 5, {uid: 2 ** 40, gid: 2 ** 40})])
  }},
  {name: 'a root uid of 2^40 in the manifest', async build(c) {
    const tree = await oneFile(c)
    await c.flush()
    return c.manifest(tree, {root: {mode: 0o755, uid: 2 ** 40, gid: 0, mtimeNs: T}})
  }},
  {name: 'root xattrs out of order and flags past the recorded mask in the manifest', async build(c) {
    const tree = await oneFile(c)
    await c.flush()
    return c.manifest(tree, {root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: T, flags: 0x80000, xattrs: [{name: 'user.b', value: ''}, {name: 'user.a', value: '%%'}]}})
  }},
  // Valid data; restoring it needs *at calls (the path is 20,000 bytes). Refusing it with a
  // documented code is right too, but then verify must refuse it as well.
  {name: '10,000 nested directories', expect: {restore: 'either', verify: 'either', readData: 'either'}, async build(c) {
    let sub = await c.tree([])
    for (let i = 0; i < 10_000; i++) sub = await c.tree([dirNode('d', sub)])
    await c.flush()
    return c.manifest(sub)
  }},
  // Legitimate data (deduplicated directories) that needs more space than the target has: verify
  // passes it, restore must end with exit 7 (best before writing) and leave the target empty.
  {name: 'a subtree referenced 512 times (2 GiB written from kilobytes stored)', smallTarget: true, expect: {restore: 'fail', verify: 'ok', readData: 'ok'}, async build(c) {
    const zeros = await c.data(Buffer.alloc(512 * 1024))
    const sub = await c.tree([fileNode('z', Array.from({length: 8}, () => zeros), 4 * 1024 * 1024)])
    return withTree(c, Array.from({length: 512}, (_, i) => dirNode(`d${String(i).padStart(3, '0')}`, sub)))
  }},
  {name: 'a tree that contains itself (a cycle, its id not its hash)', async build(c) {
    // Content addressing makes a true cycle impossible; an attacker can only store a tree under an id it does not hash to.
    const id = blake3(Buffer.from('cycle'))
    await c.tree([dirNode('loop', id)], {id})
    await c.flush()
    return c.manifest(id)
  }},
  ...['..', '.', 'a/b', '/etc', ''].map((name): HostileCase => ({name: `unsafe name ${JSON.stringify(name)}`, soakOnly: name !== '..' && name !== 'a/b', async build(c) {
    return withTree(c, [fileNode(name, [await c.data(Buffer.from('x'))], 1)])
  }})),
  {name: 'unsafe name with NUL (hex)', async build(c) {
    const chunk = await c.data(Buffer.from('x'))
    return withTree(c, [{...fileNode('', [chunk], 1), name: undefined, nameHex: '2e2e002f'}])
  }},
  {name: 'duplicate names: a symlink out of the target, then a directory of the same name', async build(c, outside) {
    const sub = await c.tree([fileNode('pwned', [await c.data(Buffer.from('x'))], 1)])
    return withTree(c, [linkNode('a', outside), dirNode('a', sub)], {unsorted: true})
  }},
  {name: 'names out of order (a symlink after the directory it shadows)', soakOnly: true, async build(c, outside) {
    const sub = await c.tree([fileNode('pwned', [await c.data(Buffer.from('x'))], 1)])
    return withTree(c, [dirNode('b', sub), linkNode('a', outside)], {unsorted: true})
  }},
  {name: 'symlinks pointing outside the target (stored, never followed)', fine: true, async build(c, outside) {
    return withTree(c, [linkNode('abs', outside), linkNode('rel', '../../../../../../../../tmp'), linkNode('self', 'self')])
  }},
  {name: 'a 5000-byte symlink target', async build(c) {
    return withTree(c, [linkNode('long', 'x'.repeat(5000))])
  }},
  {name: 'absurd times and mode bits', expect: {restore: 'either', verify: 'either', readData: 'either'}, async build(c) {
    return withTree(c, [fileNode('f', [await c.data(Buffer.from('x'))], 1, {mtimeNs: '-99999999999999999999', mode: 0o7777})])
  }},
  {name: 'a tree id that names a data blob', async build(c) {
    const chunk = await c.data(Buffer.from('{"version":1,"nodes":[]}'))
    await c.flush()
    return c.manifest(chunk)
  }},
  {name: 'a manifest naming a tree that does not exist', async build(c) {
    return c.manifest(blake3(Buffer.from('nothing')))
  }},
  {name: 'a manifest with absurd summary, 10,000 tags and a missing parent', expect: {restore: 'either', verify: 'either', readData: 'either'}, async build(c) {
    const tree = await oneFile(c)
    await c.flush()
    return c.manifest(tree, {summary: {files: -1, bytes: 1e308}, tags: Array.from({length: 10_000}, (_, i) => `t${i}`), parent: 'ab'.repeat(32), time: '9999-12-31T23:59:59.999Z'})
  }},
  {name: 'a manifest that is not JSON', async build(c) {
    return c.manifest(Buffer.alloc(32), {}, Buffer.from('{"version":1, "tree": '.repeat(1000)))
  }},
  {name: 'index: a blob at an offset past the end of its pack', async build(c) {
    const tree = await oneFile(c)
    await c.flush({index: (e, size) => ({entries: e.map((x) => ({...x, offset: 0xffff_fff0})), size})})
    return c.manifest(tree)
  }},
  {name: 'index: stored lengths of 4 GiB and a pack size of 4 GiB', async build(c) {
    const tree = await oneFile(c)
    await c.flush({index: (e) => ({entries: e.map((x) => ({...x, storedLength: 0xffff_ffff, rawLength: 0xffff_ffff})), size: 0xffff_ffff})})
    return c.manifest(tree)
  }},
  {name: 'index: a "negative" offset (2^32 - 1, what -1 wraps to)', async build(c) {
    const tree = await oneFile(c)
    await c.flush({index: (e, size) => ({entries: e.map((x, i) => (i === 0 ? {...x, offset: 0xffff_ffff} : x)), size})})
    return c.manifest(tree)
  }},
  {name: 'index: a header that claims 2^32 - 1 packs', expect: {restore: 'either'}, async build(c) {
    const tree = await oneFile(c)
    await c.flush()
    const bytes = encodeIndex([])
    bytes.writeUInt32LE(0xffff_ffff, 12)
    await c.index(bytes)
    return c.manifest(tree)
  }},
  {name: 'index: an unknown compression (99) and blob type (7)', async build(c) {
    const tree = await oneFile(c)
    await c.flush({index: (e, size) => ({entries: e.map((x) => ({...x, compression: 99, type: 7 as BlobTypeValue})), size})})
    return c.manifest(tree)
  }},
  {name: 'pack: a trailer that claims 2^32 - 1 entries', expect: {restore: 'either', verify: 'either'}, async build(c) {
    const tree = await oneFile(c)
    await c.flush({tail: (e) => {
      const t = encodePackTail(e)
      t.writeUInt32LE(0xffff_ffff, t.length - 16)
      return t
    }})
    return c.manifest(tree)
  }},
  {name: 'pack: a header whose lengths do not add up (hash recomputed)', expect: {restore: 'either', verify: 'either'}, async build(c) {
    const tree = await oneFile(c)
    await c.flush({tail: (e) => encodePackTail(e.map((x) => ({...x, storedLength: x.storedLength + 1000})))})
    return c.manifest(tree)
  }},
]

/** A generated variation: a valid tree or manifest with one field set to something absurd, or a named case with changed numbers. */
export function hostileVariant(seed: number): HostileCase {
  const rand = seededRandom(seed)
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rand() * xs.length)]!
  const absurd = () => pick<unknown>([-1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, -(2 ** 53), 1e308, 0.5, NaN, '', 'x', '-1', '99999999999999999999', null, [], {}, true, '\u0000', '../..', 'a'.repeat(70_000)])
  const kind = pick(['file-field', 'dir-field', 'link-field', 'root-field', 'manifest-field', 'index-number', 'named', 'name'] as const)
  const fields = {file: ['name', 'type', 'mode', 'uid', 'gid', 'mtimeNs', 'ctimeNs', 'ino', 'size', 'chunks'], dir: ['name', 'mode', 'uid', 'gid', 'mtimeNs', 'subtree'], link: ['name', 'mode', 'target', 'targetHex']}
  if (kind === 'named') {
    const base = pick(HOSTILE_CASES.filter((c) => !c.smallTarget && !c.name.includes('1 GiB')))
    return {...base, name: `${base.name} (seed ${seed})`}
  }
  return {
    // Some of these are harmless (a mode of 0.5 is refused, a uid of 2^31 is a real uid): any
    // documented code will do, and verify --read-data's 0 must still mean restore works.
    name: `generated ${kind} (seed ${seed})`,
    expect: {restore: 'either', verify: 'either', readData: 'either'},
    async build(c, outside) {
      const plain = seededBytes(1 + Math.floor(rand() * 3000), seed)
      const chunk = await c.data(plain)
      const sub = await c.tree([fileNode('inner', [chunk], plain.length)])
      const nodes: RawNode[] = [fileNode('f', [chunk], plain.length), dirNode('d', sub), linkNode('l', 'f')]
      if (kind === 'file-field' || kind === 'dir-field' || kind === 'link-field') {
        const n = nodes[kind === 'file-field' ? 0 : kind === 'dir-field' ? 1 : 2]!
        n[pick(fields[kind === 'file-field' ? 'file' : kind === 'dir-field' ? 'dir' : 'link'])] = absurd()
      } else if (kind === 'name') {
        nodes[0]!.name = undefined
        nodes[0]!.nameHex = seededBytes(1 + Math.floor(rand() * 8), seed).toString('hex').replace(/^(..)/, pick(['2f', '00', '2e', '41']))
        if (rand() < 0.3) nodes.push(linkNode('z', outside))
      }
      const tree = await c.tree(nodes, {unsorted: rand() < 0.2})
      if (kind === 'index-number') {
        const field = pick(['offset', 'storedLength', 'rawLength', 'compression', 'type'] as const)
        const value = pick([0, 1, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff])
        await c.flush({index: (e, s) => ({entries: e.map((x, i) => (i === Math.floor(rand() * e.length) ? {...x, [field]: value} : x)), size: rand() < 0.2 ? value : s})})
      } else {
        await c.flush()
      }
      if (kind === 'root-field') return c.manifest(tree, {root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: T, [pick(['mode', 'uid', 'gid', 'mtimeNs', 'flags', 'xattrs'])]: absurd()}})
      if (kind === 'manifest-field') return c.manifest(tree, {[pick(['version', 'time', 'startTimeNs', 'parent', 'host', 'source', 'tags', 'tree', 'root', 'summary', 'warnings', 'program'])]: absurd()})
      return c.manifest(tree)
    },
  }
}

// --- running the commands against the content -------------------------------------------

export interface CommandProbe {
  command: string
  code: number | null
  signal: NodeJS.Signals | null
  hung: boolean
  peakRssMb: number
  stderr: string
}

export interface ProbeResult {
  probes: CommandProbe[]
  problems: string[]
}

/** Documented exit codes a command may end a hostile input with (README's table); 0 only for fine content. */
const DOCUMENTED_FAILURES = [3, 4, 5, 7, 12]
export const RSS_LIMIT_MB = 300

/** Run bin/run.js under /usr/bin/time (peak RSS), killed (process group) after timeoutMs. */
export function probe(args: readonly string[], timeoutMs: number): Promise<CommandProbe> {
  return new Promise((resolve, reject) => {
    const rssFile = path.join(os.tmpdir(), `ckpt-rss-${process.pid}-${Math.random().toString(36).slice(2)}`)
    const child = spawn('/usr/bin/time', ['-q', '-f', '%M', '-o', rssFile, process.execPath, BIN, ...args], {
      env: {...process.env, CKPT_REPO: undefined, CKPT_FAULT: undefined, CKPT_FAULT_LOG: undefined, CI: '1'},
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    })
    let stderr = ''
    let hung = false
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 100_000) stderr += d.toString()
    })
    child.on('error', reject)
    const timer = setTimeout(() => {
      hung = true
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // gone
      }
    }, timeoutMs)
    child.on('close', async (code, signal) => {
      clearTimeout(timer)
      const text = await fsp.readFile(rssFile, 'utf8').catch(() => '')
      await fsp.rm(rssFile, {force: true})
      // time writes "Command exited with non-zero status N" before the figure: the last line is the KiB.
      const kib = Number(text.trim().split('\n').pop())
      resolve({command: args[0]! + (args.includes('--read-data') ? ' --read-data' : ''), code, signal, hung, peakRssMb: Number.isFinite(kib) ? kib / 1024 : NaN, stderr})
    })
  })
}

/** Names and sizes below `dir`, to see whether anything changed there. */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await fsp.readdir(dir, {recursive: true, withFileTypes: true}).catch(() => [])) {
    const p = path.join(e.parentPath, e.name)
    const st = await fsp.lstat(p).catch(() => undefined)
    out.push(`${path.relative(dir, p)} ${st?.size ?? '?'} ${st?.mtimeMs ?? '?'}`)
  }
  return out.sort()
}

export interface ProbeLayout {
  repo: string
  /** The restore target's parent: only the target may appear in it. */
  sentinel: string
  /** A directory symlink tricks point at: must stay as it was. */
  outside: string
}

/** restore --target, verify, verify --read-data and snapshots against the repository, with every check. */
export async function probeRepository(layout: ProbeLayout, snapshot: string, c: Pick<HostileCase, 'fine' | 'expect'>, timeoutMs = 60_000): Promise<ProbeResult> {
  const problems: string[] = []
  const target = path.join(layout.sentinel, 'out')
  const before = await listing(layout.outside)
  const sentinelBefore = await listing(layout.sentinel)
  const codes = (what: 'restore' | 'verify' | 'readData') => {
    const o = c.expect?.[what] ?? (c.fine ? 'ok' : 'fail')
    return o === 'ok' ? [0] : o === 'fail' ? DOCUMENTED_FAILURES : [0, ...DOCUMENTED_FAILURES]
  }
  const runs: [string[], number[]][] = [
    [['restore', snapshot, '--target', target, '-q', '--repo', layout.repo], codes('restore')],
    [['verify', '-q', '--repo', layout.repo], codes('verify')],
    [['verify', '--read-data', '-q', '--repo', layout.repo], codes('readData')],
    [['snapshots', '--repo', layout.repo], [0, 12]],
  ]
  // Restore first and alone (what it leaves beside the target is checked right after); the three
  // read-only commands then together.
  const probes: CommandProbe[] = [await probe(runs[0]![0], timeoutMs)]
  probes.push(...(await Promise.all(runs.slice(1).map(([args]) => probe(args, timeoutMs)))))
  for (const [k, [args, allowed]] of runs.entries()) {
    const p = probes[k]!
    const what = `ckpt ${p.command}`
    if (p.hung) problems.push(`${what} hung (killed after ${timeoutMs} ms)`)
    else if (p.code === null || !allowed.includes(p.code)) problems.push(`${what} exited ${p.code ?? p.signal}, wanted one of ${allowed.join(', ')}: ${p.stderr.slice(0, 300)}`)
    if (/\n\s+at .+:\d+:\d+\)?/.test(p.stderr)) problems.push(`${what} printed a stack trace: ${p.stderr.slice(0, 500)}`)
    if (!(p.peakRssMb < RSS_LIMIT_MB)) problems.push(`${what} peaked at ${p.peakRssMb.toFixed(0)} MB RSS (limit ${RSS_LIMIT_MB})`)
    if (args[0] === 'restore') {
      const after = (await listing(layout.sentinel)).filter((l) => l !== 'out' && !l.startsWith('out ') && !l.startsWith('out/'))
      const extra = after.filter((l) => !sentinelBefore.includes(l))
      if (extra.length > 0) problems.push(`restore wrote beside its target: ${extra.slice(0, 5).join(', ')}`)
      if (p.code !== 0 && (await fsp.readdir(target).then((n) => n.length > 0, () => false))) problems.push('a failed restore left a partial target')
      await removeAll(target)
    }
  }
  // Verify's exit 0 is a promise that every snapshot restores.
  const [restore, , readData] = probes
  // (Exit 7 excepted: whether the data fits depends on the target, not the repository.)
  if (readData!.code === 0 && restore!.code !== 0 && restore!.code !== 7 && !restore!.hung) problems.push(`verify --read-data passed but restore exited ${restore!.code}`)
  const after = await listing(layout.outside)
  if (after.join('\n') !== before.join('\n')) problems.push(`something changed outside the target: ${after.filter((l) => !before.includes(l)).slice(0, 5).join(', ')}`)
  return {probes, problems}
}

async function removeAll(dir: string): Promise<void> {
  // A restored tree may hold directories without write or search permission.
  if (existsSync(dir)) execFileSync('chmod', ['-R', 'u+rwx', dir], {stdio: 'ignore'})
  // Restore writes trees deeper than PATH_MAX, which fs.rm cannot remove.
  removeTree(dir)
}

/** A fresh repository (copied from `template`, made by `ckpt init` once) with the sentinel layout. */
export async function hostileLayout(root: string, template: string, name: string): Promise<ProbeLayout> {
  const dir = path.join(root, name)
  const layout = {repo: path.join(dir, 'repo'), sentinel: path.join(dir, 'sentinel'), outside: path.join(dir, 'outside')}
  await fsp.mkdir(layout.sentinel, {recursive: true})
  await fsp.mkdir(layout.outside, {recursive: true})
  await fsp.writeFile(path.join(layout.outside, 'keep'), 'do not touch\n')
  execFileSync('cp', ['-a', template, layout.repo])
  return layout
}
