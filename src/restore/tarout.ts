// `ckpt export`: a snapshot as a POSIX pax tar, another output of the restore reader (reader.ts;
// the filesystem is the first, fsout.ts). tar-stream frames the archive (headers, padding, end marker) and
// carries backpressure: an entry's next chunk is read only once the consumer has taken the last,
// so memory stays flat whatever the file sizes. The pax records are written here, byte for byte
// (tarformat.ts), because tar-stream writes pax values as UTF-8 text and ckpt's names, link
// targets and xattr values are bytes:
// - every member has a pax header with its path (raw bytes, as GNU tar writes a name that is not
//   UTF-8), its mtime to the nanosecond, ids too large for the ustar fields, and its xattrs as
//   SCHILY.xattr.NAME (binary values, as GNU tar --xattrs writes and reads them);
// - the ustar header under it carries a printable placeholder of the name for readers without pax;
// - no user or group names: the snapshot records ids only, and a name would let the extracting
//   tar map the file to a different id;
// - hard links: the first name of an inode is a file, the others are link members naming it;
// - sparse files are GNU sparse 1.0 members (what GNU tar --sparse --format=pax writes): the data
//   regions and a map of them, so the holes are neither stored nor expanded.
import type {Writable} from 'node:stream'

import {pack as tarPack, type Pack} from 'tar-stream'

import {NotFoundError} from '../core/errors.js'
import {toHex} from '../core/ids.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {withLock} from '../store/lock.js'
import {type Manifest, rootMetaNode} from '../snapshot/manifest.js'
import {encodePaxRecords, encodeSparseMap1, formatPaxTime} from '../snapshot/tarformat.js'
import {childPath, dataLength, decodeTree, displayName, type TreeNode} from '../snapshot/tree.js'
import {type LinkTarget, type Piece, type ReaderProgress, type RestoreOutput, type SmallFile, TreeReader} from './reader.js'
import {findNamed} from '../inspect/names.js'

export interface ExportOptions {
  lockRetryMs?: number
  /** Only these paths (components below the root, as shown) and what is below them. */
  includes?: readonly string[][]
  onProgress?: (p: ReaderProgress) => void
}

export interface ExportResult {
  entries: number
  files: number
  dirs: number
  symlinks: number
  hardLinks: number
  specials: number
  /** File bytes written (data regions for sparse files). */
  bytes: number
}

/** Largest value of a ustar numeric field of 8 bytes (7 octal digits). */
const USTAR_ID_MAX = 0o7777777

/**
 * Write the snapshot as a tar to `out` (which the caller ends or closes), under a shared lock
 * (prune must not delete what is being read).
 */
export async function exportTar(repo: Repository, manifest: Manifest, out: Writable, opts: ExportOptions = {}): Promise<ExportResult> {
  return withLock(repo.backend, {exclusive: false, readOnly: true, command: 'export', retryMs: opts.lockRetryMs ?? 0}, () => writeTar(repo, manifest, out, opts))
}

async function writeTar(repo: Repository, manifest: Manifest, out: Writable, opts: ExportOptions): Promise<ExportResult> {
  await repo.loadIndex()
  const tree = Buffer.from(manifest.tree, 'hex')
  // The reader restores nothing for a path that is not there; an export of it is a mistake to report.
  let includes: string[][] | undefined
  for (const parts of opts.includes ?? []) (includes ??= []).push(await mustExist(repo, tree, parts))
  const pack = tarPack()
  const flow = new Flow()
  const piping = drainInto(pack, out, flow)
  // The output failing (a closed pipe, a full disk) stops the producer wherever it waits.
  piping.catch((err: unknown) => {
    flow.fail(err)
    pack.destroy(err as Error)
  })
  const output = new TarOutput(pack, flow)
  const reader = new TreeReader(repo, output, opts.onProgress, typeof manifest.summary.bytes === 'number' ? manifest.summary.bytes : undefined)
  try {
    if (!includes) {
      // Its xattrs go as pax records like any member's (tar has no inode flags for it or the rest).
      const r = rootMetaNode(manifest.root)
      const root: TreeNode = {name: Buffer.alloc(0), ...r, ctimeNs: r.mtimeNs, ino: 0n, size: 0}
      await output.member(root, Buffer.from('./'), {type: 'directory'})
    }
    await reader.read(tree, Buffer.alloc(0), includes)
    pack.finalize()
  } catch (err) {
    pack.destroy(err as Error)
    await piping.catch(() => undefined)
    throw flow.error ?? err // the output's own failure, not what it caused here
  }
  await piping
  return {entries: output.entries, files: reader.files, dirs: output.dirs, symlinks: reader.symlinks, hardLinks: reader.links, specials: reader.specials, bytes: reader.bytes}
}

/** NotFoundError unless `parts` (names as typed: see findNamed) lead to an entry of the tree; the parts as the reader compares them. */
async function mustExist(repo: Repository, tree: Buffer, parts: readonly string[]): Promise<string[]> {
  let id = tree
  const shown: string[] = []
  for (let i = 0; i < parts.length; i++) {
    const nodes = decodeTree(await repo.readBlob(id, BlobType.tree), toHex(id))
    const node = findNamed(nodes, parts[i]!)
    if (!node) throw new NotFoundError(`${parts.join('/')} is not in the snapshot`)
    shown.push(displayName(node.name))
    if (i === parts.length - 1) return shown
    if (node.type !== 'dir') throw new NotFoundError(`${parts.join('/')} is not in the snapshot (${parts.slice(0, i + 1).join('/')} is not a directory)`)
    id = node.subtree!
  }
  return shown
}

/**
 * The tar output of the restore reader: an ordered output (each entry whole, in tree order);
 * a directory's handle is its path in the archive, as bytes.
 */
class TarOutput implements RestoreOutput<Buffer> {
  readonly ordered = true
  readonly lanes = 1
  entries = 0
  dirs = 0

  constructor(private readonly pack: Pack, private readonly flow: Flow) {}

  async dir(parent: Buffer, node: TreeNode): Promise<Buffer> {
    const path = join(parent, node.name)
    this.dirs++
    await this.member(node, Buffer.concat([path, Buffer.from('/')]), {type: 'directory'})
    return path
  }

  dirDone(): void {}

  async symlink(parent: Buffer, node: TreeNode): Promise<void> {
    await this.member(node, join(parent, node.name), {type: 'symlink', linkname: ustarName(node.target!)}, node.target)
  }

  async special(parent: Buffer, node: TreeNode): Promise<void> {
    const type = node.type === 'fifo' ? 'fifo' : node.type === 'chardev' ? 'character-device' : 'block-device'
    await this.member(node, join(parent, node.name), {type, devmajor: node.rdev?.major ?? 0, devminor: node.rdev?.minor ?? 0})
  }

  async link(parent: Buffer, node: TreeNode, _rel: string, first: LinkTarget<Buffer>): Promise<void> {
    const target = join(first.dir, first.node.name)
    await this.member(node, join(parent, node.name), {type: 'link', linkname: ustarName(target)}, target)
  }

  async smallFiles(files: readonly SmallFile<Buffer>[]): Promise<void> {
    for (const f of files) await this.file(f.node, join(f.dir, f.node.name), [f.parts])
  }

  async largeFile(dir: Buffer, node: TreeNode, _rel: string, pieces: AsyncIterable<Piece>): Promise<void> {
    await this.file(node, join(dir, node.name), mapParts(pieces))
  }

  /** A member without content: its pax header, then its header. */
  async member(node: TreeNode, name: Buffer, fields: Partial<Member> & Pick<Member, 'type'>, linkpath?: Buffer): Promise<void> {
    this.entries++
    pushPax(this.pack, this.flow, paxFor(node, name, linkpath), memberHeader(node, name).mtime)
    this.flow.produced += 512
    const sink = this.pack.entry({...memberHeader(node, name), ...fields})
    const done = written(sink)
    ;(sink as unknown as {end(): void}).end()
    await done
    await this.flow.room()
  }

  /**
   * A file member: header, then its content as the reader hands it out. The reader's buffers are
   * valid only until it moves on, and the pack keeps what it is given until the output takes it:
   * each piece is copied once.
   */
  private async file(node: TreeNode, path: Buffer, content: AsyncIterable<readonly Uint8Array[]> | Iterable<readonly Uint8Array[]>): Promise<void> {
    this.entries++
    const data = dataLength(node)
    const sparse = node.extents !== undefined && data < node.size
    let name = path
    let map: Buffer | undefined
    const extra: [string, string | Buffer][] = []
    if (sparse) {
      // GNU sparse 1.0: the member is named dir/GNUSparseFile.0/base and holds the map, then the data.
      const slash = path.lastIndexOf(0x2f)
      name = Buffer.concat([path.subarray(0, slash + 1), Buffer.from('GNUSparseFile.0/'), path.subarray(slash + 1)])
      const regions = [...node.extents!]
      const last = regions.at(-1)
      if (!last || last.offset + last.length < node.size) regions.push({offset: node.size, length: 0})
      map = encodeSparseMap1(regions)
      extra.push(['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', path], ['GNU.sparse.realsize', String(node.size)])
    }
    const size = (map?.length ?? 0) + data
    pushPax(this.pack, this.flow, paxFor(node, name, undefined, extra), memberHeader(node, name).mtime)
    this.flow.produced += 512 + (Math.ceil(size / 512) * 512 - size) // the header and the padding; the content as it goes
    const sink = this.pack.entry({...memberHeader(node, name), type: 'file', size})
    const done = written(sink)
    done.catch(() => undefined) // awaited below
    if (map) {
      this.flow.produced += map.length
      await write(sink, map)
    }
    for await (const parts of content) {
      const copy = Buffer.concat(parts as Uint8Array[])
      this.flow.produced += copy.length
      await write(sink, copy)
      await this.flow.room()
    }
    ;(sink as unknown as {end(): void}).end()
    await done
  }
}

async function* mapParts(pieces: AsyncIterable<Piece>): AsyncGenerator<readonly Uint8Array[]> {
  for await (const piece of pieces) yield piece.parts
}

/** The path of `name` inside directory `dir` (the root is the empty path). */
function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 0 ? name : childPath(dir, name)
}

interface Member {
  name: string
  type: 'file' | 'link' | 'symlink' | 'directory' | 'block-device' | 'character-device' | 'fifo'
  size: number
  mode: number
  uid: number
  gid: number
  mtime: Date
  linkname?: string
  devmajor?: number
  devminor?: number
}

/** The ustar header's fields; the pax header before it carries what these cannot hold. */
function memberHeader(node: TreeNode, name: Buffer): Member {
  return {
    name: ustarName(name),
    type: 'file',
    size: 0,
    mode: node.mode,
    uid: node.uid <= USTAR_ID_MAX ? node.uid : 0,
    gid: node.gid <= USTAR_ID_MAX ? node.gid : 0,
    // Whole seconds in the ustar field (pax mtime has the rest); clamped to what the field holds.
    mtime: new Date(Math.min(Math.max(Number(node.mtimeNs / 1_000_000_000n), 0), 0o77777777777) * 1000),
  }
}

/**
 * A printable stand-in for a name in the ustar header, which only readers without pax support
 * use: ASCII, at most 100 bytes (its last 100 when longer), anything else as "_". tar-stream
 * writes such a name as it is.
 */
function ustarName(name: Buffer): string {
  let s = ''
  for (const b of name) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '_'
  return s.length > 100 ? s.slice(s.length - 100) : s
}

function paxFor(node: TreeNode, name: Buffer, linkpath?: Buffer, extra: [string, string | Buffer][] = []): Buffer {
  const records: [string | Buffer, string | Buffer][] = [['path', name], ['mtime', formatPaxTime(node.mtimeNs)], ['ctime', formatPaxTime(node.ctimeNs)]]
  if (linkpath) records.push(['linkpath', linkpath])
  if (node.uid > USTAR_ID_MAX) records.push(['uid', String(node.uid)])
  if (node.gid > USTAR_ID_MAX) records.push(['gid', String(node.gid)])
  records.push(...extra)
  for (const x of node.xattrs ?? []) records.push([Buffer.concat([Buffer.from('SCHILY.xattr.'), x.name]), x.value])
  return encodePaxRecords(records)
}

/**
 * The bytes handed to the pack and those the output has taken: the producer waits while more
 * than FLOW_WINDOW lie between (members without content never wait for the pack otherwise).
 */
class Flow {
  produced = 0
  delivered = 0
  private waiter: (() => void) | undefined
  private failure: {error: unknown} | undefined

  async room(): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure.error
      if (this.produced - this.delivered <= FLOW_WINDOW) return
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
  }

  get error(): unknown {
    return this.failure?.error
  }

  /** The output failed (closed, full): a producer waiting for room gets the error. */
  fail(error: unknown): void {
    this.failure ??= {error}
    this.took(0)
  }

  took(n: number): void {
    this.delivered += n
    const w = this.waiter
    this.waiter = undefined
    w?.()
  }
}

const FLOW_WINDOW = 4 * 1024 * 1024

/**
 * A pax extended header ('x') with its records, padded to whole blocks. Pushed into the pack
 * between members (tar-stream writes pax records as UTF-8 text only); its checksum as ustar's.
 */
function paxBlock(records: Buffer, mtime: Date): Buffer {
  const h = Buffer.alloc(512)
  h.write('PaxHeaders/entry', 0, 'latin1')
  const octal = (n: number, width: number, at: number) => h.write(n.toString(8).padStart(width - 1, '0') + '\0', at, 'latin1')
  octal(0o644, 8, 100)
  octal(0, 8, 108)
  octal(0, 8, 116)
  octal(records.length, 12, 124)
  octal(Math.trunc(mtime.getTime() / 1000), 12, 136)
  h.write('x', 156, 'latin1')
  h.write('ustar\x0000', 257, 'latin1')
  h.fill(0x20, 148, 156)
  let sum = 0
  for (const b of h) sum += b
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
  return Buffer.concat([h, records, Buffer.alloc((512 - (records.length % 512)) % 512)])
}

/** Between members (no entry open): the pax header of the next one. */
function pushPax(pack: Pack, flow: Flow, records: Buffer, mtime: Date): void {
  const block = paxBlock(records, mtime)
  flow.produced += block.length
  ;(pack as unknown as {push(b: Buffer): boolean}).push(block)
}

type Sink = ReturnType<Pack['entry']>

/** Write to an entry's sink, waiting while the pack has more than it wants buffered. */
async function write(sink: Sink, buf: Buffer): Promise<void> {
  const closed = () => new Error('tar entry closed before its content was written')
  // Destroyed with the pack (the output failed) before this write: its close event has passed.
  if ((sink as unknown as {destroying: boolean}).destroying) throw closed()
  if (sink.write(buf)) return
  await new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      sink.off('drain', onDrain)
      sink.off('close', onClose)
    }
    const onDrain = () => {
      cleanup()
      resolve()
    }
    const onClose = () => {
      cleanup()
      reject(closed())
    }
    sink.on('drain', onDrain)
    sink.on('close', onClose)
  })
}

/** Resolves once an entry's sink has finished (its bytes handed to the pack), rejects on its error. */
function written(sink: Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.on('finish', () => resolve())
    sink.on('error', (err: Error) => reject(err))
    sink.on('close', () => resolve())
  })
}

/**
 * Move the pack's bytes to `out`, waiting for `out` to drain: the pack then waits for us. An
 * error or close of `out` at any time (stdout's reader gone: EPIPE) ends it with that error.
 */
async function drainInto(pack: Pack, out: Writable, flow: Flow): Promise<void> {
  const state: {failure?: {error: unknown}} = {}
  let wake: (() => void) | undefined
  const onError = (err: Error) => {
    state.failure ??= {error: err}
    wake?.()
  }
  const onClose = () => {
    state.failure ??= {error: Object.assign(new Error('the output was closed before the archive was written'), {code: 'EPIPE'})}
    wake?.()
  }
  const onDrain = () => wake?.()
  out.on('error', onError)
  out.on('close', onClose)
  out.on('drain', onDrain)
  try {
    for await (const buf of pack as AsyncIterable<Buffer>) {
      flow.took(buf.length)
      if (state.failure) throw state.failure.error
      if (!out.write(buf)) {
        await new Promise<void>((resolve) => {
          wake = resolve
          if (state.failure || !out.writableNeedDrain) resolve()
        })
        wake = undefined
      }
      const failed = state.failure as {error: unknown} | undefined // set by the listeners meanwhile
      if (failed) throw failed.error
    }
  } finally {
    out.off('error', onError)
    out.off('close', onClose)
    out.off('drain', onDrain)
  }
}
