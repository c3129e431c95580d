// `ckpt import`: a tar stream (plain, gzip or zstd) into a snapshot, chained by source like
// `ckpt snapshot`. The archive is read once, as a stream: file contents go through the same
// chunk, hash, dedup and store path as a snapshot's (chunkstream.ts), never held whole; only the
// metadata of the entries is kept (one node per entry, grouped by directory), since a tar lists
// its members in any order and a directory's tree can be written only once all of it is known.
// Trees are written bottom up at the end, then the manifest, last, under a shared repository
// lock: a failed or killed import leaves only blobs no manifest names, which prune removes.
//
// A hostile archive is refused (BadArchiveError, exit code 16) before anything is committed:
// "..", NUL in names, a member under a symlink or a file, a path that is both a directory and a
// file, a hard link to anything but an earlier regular file, sizes that cannot be, malformed
// headers, a truncated stream. What is harmless is neutralised as GNU tar does: leading "/" are
// removed; a later member of the same name replaces an earlier one (tar -r appends updates
// that way); symlink targets are stored as they are (they are data: import never follows them,
// and restore creates them as links).
import os from 'node:os'
import {Readable, type Transform} from 'node:stream'
import {createGunzip} from 'node:zlib'

import {extract as tarExtract, type Header} from 'tar-stream'

/** What tar-stream's header holds beyond its declared type. */
type Headers = Header & {byteOffset: number; pax: Record<string, string> | null; type: Header['type'] | null}
type Member = AsyncIterable<Buffer> & {header: Headers}

import {BadArchiveError, CkptError, errnoCode} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {zstdDecompressStream} from '../core/zstdstream.js'
import {blake3} from '../core/hash.js'
import {BlobType} from '../repo/pack.js'
import type {Repository} from '../repo/repository.js'
import {BlobWriter} from '../repo/writer.js'
import {withLock} from '../store/lock.js'
import {sweepTemporaries} from '../store/temp.js'
import {loadCatalog} from './catalog.js'
import {type ByteSource, ContentStore} from './chunkstream.js'
import {encodeManifest, type Manifest, manifestHead, type RootMeta, rootMetaOf} from './manifest.js'
import {archivePath, checkSparseMap, decodePaxRecords, MAX_ARCHIVE_PATH, parsePaxTime, parseSparseMap1, type SparseRegion} from './tarformat.js'
import {displayName, encodeTree, type Extent, isOwnerId, MAX_EXTENTS, type TreeNode, type Xattr, XATTR_LIST_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX} from './tree.js'

export interface ImportOptions {
  input: Readable
  /** Absolute path recorded as the snapshot's source (the chain it joins, and where restore puts it by default). */
  source: string
  tags?: readonly string[]
  time?: Date
  host?: string
  lockRetryMs?: number
  program: string
  onProgress?: (p: {files: number; bytes: number; path: string}) => void
  /** Something neutralised (a leading "/", a duplicate name): one line each. */
  onWarning?: (message: string) => void
  nowNs?: () => bigint
}

export interface ImportResult {
  id: string
  manifest: Manifest
  /** How the input was compressed. */
  compression: 'none' | 'gzip' | 'zstd'
  /** Members replaced by a later one of the same name, and members whose leading "/" was removed. */
  duplicates: number
  absolute: number
}

/** A directory being assembled: its own entry's metadata (when the archive has one) and its children by name. */
class DirRec {
  meta: TreeNode | undefined
  readonly children = new Map<string, DirRec | TreeNode>()
  constructor(readonly name: Buffer) {}
}

const key = (name: Buffer) => name.toString('latin1')

export async function importTar(repo: Repository, opts: ImportOptions): Promise<ImportResult> {
  return withLock(repo.backend, {exclusive: false, command: 'import', retryMs: opts.lockRetryMs ?? 0}, async () => {
    const nowNs = opts.nowNs ?? (() => BigInt(Date.now()) * 1_000_000n)
    const startNs = nowNs()
    const started = process.hrtime.bigint()
    const host = opts.host ?? os.hostname()
    await sweepTemporaries(repo.backend, Date.now())
    await repo.loadIndex()
    await repo.upgradeFormat()
    const {snapshots} = await loadCatalog(repo)
    const parent = [...snapshots].reverse().find((s) => s.manifest.source === opts.source && s.manifest.host === host)
    const writer = new BlobWriter(repo)
    const store = new ContentStore(repo, writer)
    try {
      const reader = new TarImport(store, writer, startNs, opts)
      const {compression, stats, root} = await reader.run()
      await store.drain()
      const tree = await reader.writeTrees()
      const written = await writer.flush()
      const manifest: Manifest = {
        ...manifestHead({time: opts.time, startNs, parent: parent?.id, host, source: opts.source, tags: opts.tags}),
        tree: tree.toString('hex'),
        root,
        summary: {
          files: stats.files,
          dirs: stats.dirs,
          symlinks: stats.symlinks,
          bytes: stats.bytes,
          newBytes: written.rawBytes,
          storedBytes: written.storedBytes,
          newBlobs: written.blobs,
          bytesRead: stats.bytes,
          filesRead: stats.files,
          durationMs: Number((process.hrtime.bigint() - started) / 1_000_000n),
          warnings: 0,
          incomplete: 0,
        },
        warnings: [],
        program: opts.program,
      }
      faultPoint('import.before-manifest')
      const id = await repo.writeSnapshotBytes(encodeManifest(manifest))
      return {id, manifest, compression, duplicates: stats.duplicates, absolute: stats.absolute}
    } catch (err) {
      await store.close()
      await writer.abort()
      throw err
    } finally {
      await store.close()
    }
  })
}

interface Stats {
  files: number
  dirs: number
  symlinks: number
  specials: number
  bytes: number
  duplicates: number
  absolute: number
}

/** Anything the tar stream itself throws (tar-stream, zlib, zstd) is a bad archive, said in one line. */
function archiveError(err: unknown): unknown {
  if (err instanceof CkptError) return err
  const code = errnoCode(err)
  if (code && /^E[A-Z]+$/.test(code) && code !== 'EPIPE') return err // the input file itself (EIO, EISDIR...)
  const message = err instanceof Error ? err.message : String(err)
  return new BadArchiveError(`not a readable tar archive: ${message.split('\n')[0]}`, {cause: message})
}

class TarImport {
  private readonly root = new DirRec(Buffer.alloc(0))
  private readonly stats: Stats = {files: 0, dirs: 0, symlinks: 0, specials: 0, bytes: 0, duplicates: 0, absolute: 0}
  private nextIno = 1n
  /** Where the last member's data ends in the (decompressed) stream: the end marker must follow. */
  private lastEnd = 0
  private fed = 0
  private readonly uid = process.getuid?.() ?? 0
  private readonly gid = process.getgid?.() ?? 0

  constructor(private readonly store: ContentStore, private readonly writer: BlobWriter, private readonly nowNs: bigint, private readonly opts: ImportOptions) {}

  async run(): Promise<{compression: ImportResult['compression']; stats: Stats; root: RootMeta}> {
    const {stream, compression} = await decompressed(this.opts.input)
    const ex = tarExtract({filenameEncoding: 'latin1'} as Parameters<typeof tarExtract>[0])
    binaryPax(ex)
    // Fed by hand rather than piped: tar-stream's streams are streamx, not Node streams.
    const feeding = (async () => {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        this.fed += chunk.length
        if (!ex.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              ex.off('drain', done)
              ex.off('close', done)
              resolve()
            }
            ex.on('drain', done)
            ex.on('close', done)
          })
        }
        if (ex.destroyed) return
      }
      (ex as unknown as {end(): void}).end()
    })()
    feeding.catch((err: unknown) => ex.destroy(err as Error)) // the entry iteration then reports it
    try {
      const entries = ex[Symbol.asyncIterator]() as AsyncIterator<Member>
      for (;;) {
        let next: IteratorResult<Member>
        try {
          next = await entries.next()
        } catch (err) {
          throw archiveError(err)
        }
        if (next.done) break
        await this.entry(next.value)
      }
      await feeding.catch((err: unknown) => {
        throw archiveError(err)
      })
    } catch (err) {
      ex.destroy(null)
      stream.destroy()
      throw err
    }
    if (this.fed === 0) throw new BadArchiveError('the input is empty: not a tar archive')
    if (this.fed < this.lastEnd + 512) throw new BadArchiveError(`the archive ends after ${this.fed} bytes without its end-of-archive blocks: truncated`)
    const meta = this.root.meta
    // The "./" member's pax xattrs are the root's, as any directory member's are its own.
    const root: RootMeta = meta ? rootMetaOf(meta, meta) : rootMetaOf({mode: 0o755, uid: this.uid, gid: this.gid, mtimeNs: this.nowNs}, {})
    return {compression, stats: this.stats, root}
  }

  private async entry(stream: Member): Promise<void> {
    const h = stream.header
    const pax = (h.pax ?? {}) as Record<string, string>
    if (!Number.isSafeInteger(h.size) || h.size < 0) throw new BadArchiveError(`member ${JSON.stringify(h.name)} declares an impossible size (${String(h.size)})`)
    this.lastEnd = h.byteOffset + Math.ceil(h.size / 512) * 512
    if (pax['GNU.sparse.offset'] !== undefined || (pax['GNU.sparse.major'] !== undefined && (pax['GNU.sparse.major'] !== '1' || pax['GNU.sparse.minor'] !== '0'))) {
      throw new BadArchiveError(`member ${JSON.stringify(h.name)} is a GNU sparse file of a format ckpt does not import (0.0): recreate the archive with GNU tar 1.28 or later`)
    }
    const sparse = pax['GNU.sparse.major'] !== undefined || pax['GNU.sparse.map'] !== undefined
    // A sparse member's header names a placeholder ("GNUSparseFile.PID/name"); the real name is in the pax records.
    const where = archivePath(Buffer.from(pax['GNU.sparse.name'] ?? h.name, 'latin1'))
    if (where.absolute) {
      if (this.stats.absolute++ === 0) this.opts.onWarning?.('removing leading "/" from member names')
    }
    const shown = where.parts.map(displayName).join('/') || '.'
    const node = this.meta(h, pax, where.parts.at(-1) ?? Buffer.alloc(0), shown)
    const reader = new EntryReader(stream)
    try {
      switch (h.type) {
        case 'directory':
          this.putDir(where.parts, node, shown)
          break
        case 'file':
        case 'contiguous-file':
          await this.file(node, pax, reader, h.size, sparse, shown)
          this.put(where.parts, node, shown)
          break
        case 'link':
          this.put(where.parts, this.hardLink(node, h.linkname, shown), shown)
          break
        case 'symlink': {
          const target = Buffer.from(h.linkname ?? '', 'latin1')
          if (target.length === 0 || target.length > MAX_ARCHIVE_PATH) throw new BadArchiveError(`symlink ${shown} has a target of ${target.length} bytes`)
          node.type = 'symlink'
          node.target = target
          this.put(where.parts, node, shown)
          this.stats.symlinks++
          break
        }
        case 'fifo':
        case 'character-device':
        case 'block-device':
          node.type = h.type === 'fifo' ? 'fifo' : h.type === 'character-device' ? 'chardev' : 'blockdev'
          if (node.type !== 'fifo') node.rdev = {major: h.devmajor ?? 0, minor: h.devminor ?? 0}
          this.put(where.parts, node, shown)
          this.stats.specials++
          break
        default:
          // tar-stream names what it knows; anything else (GNU old sparse 'S', multi-volume, dump
          // directories) would be stored wrong if guessed at.
          throw new BadArchiveError(`member ${shown} has an entry type ckpt does not import (old GNU sparse, multi-volume or unknown): recreate the archive with --format=pax`)
      }
      await reader.finish()
    } catch (err) {
      await reader.discard()
      throw err
    }
    this.opts.onProgress?.({files: this.stats.files, bytes: this.stats.bytes, path: shown})
  }

  /** A node with the member's metadata; type and content are filled in by the caller. */
  private meta(h: Headers, pax: Record<string, string>, name: Buffer, shown: string): TreeNode {
    const uid = pax.uid !== undefined ? Number(pax.uid) : h.uid
    const gid = pax.gid !== undefined ? Number(pax.gid) : h.gid
    if (!isOwnerId(uid) || !isOwnerId(gid)) throw new BadArchiveError(`member ${shown} has an owner id out of range (uid ${pax.uid ?? h.uid}, gid ${pax.gid ?? h.gid})`)
    if (!Number.isInteger(h.mode)) throw new BadArchiveError(`member ${shown} has a malformed mode`)
    let mtimeNs = parsePaxTime(pax.mtime)
    if (pax.mtime !== undefined && mtimeNs === undefined) throw new BadArchiveError(`member ${shown} has a malformed pax mtime`)
    mtimeNs ??= BigInt(Math.trunc((h.mtime?.getTime() ?? 0) / 1000)) * 1_000_000_000n
    const ctimeNs = parsePaxTime(pax.ctime) ?? mtimeNs
    const node: TreeNode = {name, type: 'file', mode: (h.mode ?? 0) & 0o7777, uid, gid, mtimeNs, ctimeNs, ino: this.nextIno++, size: 0}
    const xattrs = paxXattrs(pax, shown)
    if (xattrs) node.xattrs = xattrs
    return node
  }

  /** A regular file's content into the repository (and its holes into extents for a GNU sparse member). */
  private async file(node: TreeNode, pax: Record<string, string>, reader: EntryReader, stored: number, sparse: boolean, shown: string): Promise<void> {
    node.type = 'file'
    if (!sparse) {
      node.size = stored
      node.chunks = await this.store.store(reader, stored)
    } else {
      const realSize = Number(pax['GNU.sparse.realsize'] ?? pax['GNU.sparse.size'])
      if (!Number.isSafeInteger(realSize) || realSize < 0) throw new BadArchiveError(`sparse member ${shown} has no valid real size`)
      let regions: SparseRegion[]
      let mapBytes = 0
      if (pax['GNU.sparse.map'] !== undefined) {
        // Format 0.1: the map is in the header, "offset,length,offset,length,...".
        const numbers = pax['GNU.sparse.map'].split(',').map(Number)
        if (numbers.length % 2 !== 0 || numbers.length / 2 > MAX_EXTENTS * 4) throw new BadArchiveError(`sparse member ${shown} has a malformed map`)
        regions = []
        for (let i = 0; i < numbers.length; i += 2) regions.push({offset: numbers[i]!, length: numbers[i + 1]!})
      } else {
        const parsed = await reader.sparseMap()
        regions = parsed.regions
        mapBytes = parsed.mapBytes
      }
      const data = checkSparseMap(regions, realSize)
      if (mapBytes + data !== stored) throw new BadArchiveError(`sparse member ${shown}: its map holds ${data} bytes of data but the member stores ${stored - mapBytes}`)
      // GNU tar ends a map with an empty region at the real size; empty regions hold nothing.
      const extents: Extent[] = regions.filter((r) => r.length > 0)
      if (extents.length > MAX_EXTENTS) throw new BadArchiveError(`sparse member ${shown} has ${extents.length} data regions (ckpt records at most ${MAX_EXTENTS})`)
      node.size = realSize
      node.chunks = await this.store.store(reader, data)
      if (data < realSize) node.extents = extents
    }
    this.stats.files++
    this.stats.bytes += node.size
  }

  private hardLink(node: TreeNode, linkname: string | null | undefined, shown: string): TreeNode {
    const to = archivePath(Buffer.from(linkname ?? '', 'latin1'), 'hard link target')
    let dir: DirRec | TreeNode | undefined = this.root
    for (const part of to.parts) dir = dir instanceof DirRec ? dir.children.get(key(part)) : undefined
    if (!dir || dir instanceof DirRec || dir.type !== 'file') {
      throw new BadArchiveError(`hard link ${shown} points to ${JSON.stringify(linkname)}, which is not a regular file earlier in the archive`)
    }
    // One inode under two names: the target's metadata and content, and its inode number (the
    // link count is worked out once every member is known).
    this.stats.files++
    this.stats.bytes += dir.size
    return {...dir, name: node.name}
  }

  /** The directory that will hold `parts`' last component, made as needed; refuses to go through a non-directory. */
  private parentOf(parts: readonly Buffer[], shown: string): DirRec {
    let dir = this.root
    for (let i = 0; i < parts.length - 1; i++) {
      const k = key(parts[i]!)
      let next = dir.children.get(k)
      if (next === undefined) {
        next = new DirRec(parts[i]!)
        dir.children.set(k, next)
      } else if (!(next instanceof DirRec)) {
        const through = parts.slice(0, i + 1).map(displayName).join('/')
        throw new BadArchiveError(`member ${shown} lies under ${through}, which the archive makes a ${next.type === 'symlink' ? 'symlink' : next.type}: extracting it would write through it`)
      }
      dir = next
    }
    return dir
  }

  private putDir(parts: readonly Buffer[], node: TreeNode, shown: string): void {
    node.type = 'dir'
    if (parts.length === 0) {
      this.root.meta = node
      return
    }
    const parent = this.parentOf(parts, shown)
    const k = key(parts.at(-1)!)
    const existing = parent.children.get(k)
    if (existing === undefined) {
      const dir = new DirRec(parts.at(-1)!)
      dir.meta = node
      parent.children.set(k, dir)
    } else if (existing instanceof DirRec) {
      existing.meta = node // a directory listed again (tar -r): its last metadata
    } else {
      throw new BadArchiveError(`the archive names ${shown} both as a ${existing.type} and as a directory`)
    }
  }

  private put(parts: readonly Buffer[], node: TreeNode, shown: string): void {
    if (parts.length === 0) throw new BadArchiveError(`a ${node.type} member names the archive's root`)
    const parent = this.parentOf(parts, shown)
    const k = key(parts.at(-1)!)
    const existing = parent.children.get(k)
    if (existing instanceof DirRec) throw new BadArchiveError(`the archive names ${shown} both as a directory and as a ${node.type}`)
    if (existing !== undefined) {
      this.stats.duplicates++
      this.opts.onWarning?.(`${shown} appears more than once: the last one is kept`)
      if (existing.type === 'file') {
        this.stats.files--
        this.stats.bytes -= existing.size
      } else if (existing.type === 'symlink') {
        this.stats.symlinks--
      }
    }
    parent.children.set(k, node)
  }

  /** Write every directory's tree, bottom up; returns the root tree's id. */
  async writeTrees(): Promise<Buffer> {
    // Link counts: names per inode among the members that remain.
    const names = new Map<bigint, number>()
    const count = (d: DirRec): void => {
      for (const c of d.children.values()) {
        if (c instanceof DirRec) count(c)
        else if (c.type === 'file') names.set(c.ino, (names.get(c.ino) ?? 0) + 1)
      }
    }
    count(this.root)
    return this.writeDir(this.root, names)
  }

  private async writeDir(dir: DirRec, names: Map<bigint, number>): Promise<Buffer> {
    const nodes: TreeNode[] = []
    for (const c of dir.children.values()) {
      if (c instanceof DirRec) {
        const subtree = await this.writeDir(c, names)
        const meta = c.meta ?? this.impliedDir(c.name)
        nodes.push({...meta, name: c.name, type: 'dir', subtree})
        this.stats.dirs++
      } else {
        const n = c.type === 'file' ? names.get(c.ino) ?? 1 : 1
        nodes.push(n > 1 ? {...c, nlink: n, dev: 0n} : c)
      }
    }
    dir.children.clear() // what is written need not be held
    const bytes = encodeTree(nodes)
    const id = blake3(bytes)
    await this.writer.add(BlobType.tree, id, bytes)
    return id
  }

  /** A directory the archive implies (a member below it) without listing it: as GNU tar would make it. */
  private impliedDir(name: Buffer): TreeNode {
    return {name, type: 'dir', mode: 0o755, uid: this.uid, gid: this.gid, mtimeNs: this.nowNs, ctimeNs: this.nowNs, ino: this.nextIno++, size: 0}
  }
}

/** SCHILY.xattr.NAME=VALUE records as xattrs (bytes both), sorted; refused past what Linux holds. */
function paxXattrs(pax: Record<string, string>, shown: string): Xattr[] | undefined {
  const out: Xattr[] = []
  let listed = 0
  for (const [k, v] of Object.entries(pax)) {
    if (!k.startsWith('SCHILY.xattr.')) continue
    const name = Buffer.from(k.slice('SCHILY.xattr.'.length), 'latin1')
    const value = Buffer.from(v, 'latin1')
    if (name.length === 0 || name.length > XATTR_NAME_MAX || name.includes(0)) throw new BadArchiveError(`member ${shown} has an xattr with a bad name`)
    if (value.length > XATTR_SIZE_MAX) throw new BadArchiveError(`member ${shown} has an xattr value of ${value.length} bytes (Linux holds at most ${XATTR_SIZE_MAX})`)
    listed += name.length + 1
    if (listed > XATTR_LIST_MAX) throw new BadArchiveError(`member ${shown} has more xattrs than Linux holds`)
    out.push({name, value})
  }
  if (out.length === 0) return undefined
  return out.sort((a, b) => Buffer.compare(a.name, b.name))
}

/**
 * Read a member's bytes from its stream in the sizes asked for. Errors of the stream are the
 * archive's (truncated, corrupt): they are reported as such.
 */
class EntryReader implements ByteSource {
  private readonly it: AsyncIterator<Buffer>
  private cur: Buffer | undefined
  private pos = 0
  private ended = false

  constructor(stream: AsyncIterable<Buffer>) {
    this.it = stream[Symbol.asyncIterator]()
  }

  async read(dst: Buffer, offset: number, want: number): Promise<number> {
    let n = 0
    while (n < want) {
      if (!this.cur || this.pos === this.cur.length) {
        if (!(await this.pull())) break
        continue
      }
      const k = Math.min(want - n, this.cur.length - this.pos)
      this.cur.copy(dst, offset + n, this.pos, this.pos + k)
      this.pos += k
      n += k
    }
    if (n < want) throw new BadArchiveError(`the archive ends inside a member (${n} of ${want} bytes): truncated`)
    return n
  }

  /** The GNU sparse 1.0 map at the start of the data. */
  async sparseMap(): Promise<{regions: SparseRegion[]; mapBytes: number}> {
    let head = Buffer.alloc(0)
    for (;;) {
      const parsed = parseSparseMap1(head)
      if (parsed) {
        // The map is padded to whole blocks: skip the rest of its last block.
        const skip = parsed.mapBytes - head.length
        if (skip < 0) {
          // Read past the map: give the extra bytes back.
          const extra = head.subarray(parsed.mapBytes)
          this.cur = Buffer.concat([extra, this.cur ? this.cur.subarray(this.pos) : Buffer.alloc(0)])
          this.pos = 0
        } else if (skip > 0) {
          await this.read(Buffer.alloc(skip), 0, skip)
        }
        return parsed
      }
      if (head.length > 64 * 1024 * 1024) throw new BadArchiveError('GNU sparse map is too large')
      const block = Buffer.alloc(512)
      await this.read(block, 0, 512)
      head = Buffer.concat([head, block])
    }
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false
    let r: IteratorResult<Buffer>
    try {
      r = await this.it.next()
    } catch (err) {
      throw archiveError(err)
    }
    if (r.done) {
      this.ended = true
      return false
    }
    this.cur = r.value
    this.pos = 0
    return true
  }

  /** Consume what is left (a hard link or special file's body, if any). */
  async finish(): Promise<void> {
    while (await this.pull()) this.pos = this.cur!.length
  }

  async discard(): Promise<void> {
    await this.it.return?.().catch(() => undefined)
  }
}

/**
 * tar-stream decodes pax records as UTF-8 text, which loses a name that is not UTF-8 (GNU tar
 * writes those as raw bytes) and binary xattr values. This instance decodes them byte for byte
 * instead (tarformat.ts), as latin1 strings like every other name it reads with
 * filenameEncoding 'latin1'. It overrides one method of tar-stream 3's Extract, pinned in
 * package.json; test/tar covers it, so an upgrade that renames it fails there.
 */
function binaryPax(ex: object): void {
  const self = ex as {_header: {type: string}; _pax: Record<string, string> | null; _paxGlobal: Record<string, string> | null; _decodeLongHeader: (buf: Buffer) => void}
  const original = self._decodeLongHeader
  if (typeof original !== 'function') throw new Error('tar-stream has changed: Extract._decodeLongHeader is gone')
  self._decodeLongHeader = function (this: typeof self, buf: Buffer) {
    if (this._header.type === 'pax-header') this._pax = {...(this._paxGlobal ?? {}), ...decodePaxRecords(buf)}
    else if (this._header.type === 'pax-global-header') this._paxGlobal = decodePaxRecords(buf)
    else original.call(this, buf)
  }
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b])

/** The input, decompressed when its first bytes are a gzip or zstd magic number. */
async function decompressed(input: Readable): Promise<{stream: Readable; compression: ImportResult['compression']}> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  const head: Buffer[] = []
  let have = 0
  let done = false
  while (have < 4) {
    const r = await it.next()
    if (r.done) {
      done = true
      break
    }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value
    head.push(chunk)
    have += chunk.length
  }
  const first = Buffer.concat(head)
  const rest = Readable.from((async function* () {
    if (first.length > 0) yield first
    if (done) return
    for (;;) {
      const r = await it.next()
      if (r.done) return
      yield r.value
    }
  })(), {objectMode: false})
  if (first.subarray(0, 4).equals(ZSTD_MAGIC)) return {stream: rest.pipe(zstdDecompressor()), compression: 'zstd'}
  if (first.subarray(0, 2).equals(GZIP_MAGIC)) {
    const gunzip = createGunzip()
    rest.on('error', (err) => gunzip.destroy(err))
    return {stream: rest.pipe(gunzip), compression: 'gzip'}
  }
  return {stream: rest, compression: 'none'}
}

/** A streaming zstd decompressor, or a one-line refusal where zstd-napi is not installed. */
function zstdDecompressor(): Transform {
  const stream = zstdDecompressStream()
  if (!stream) throw new BadArchiveError('the input is zstd-compressed and zstd-napi is not installed: decompress it first (zstd -dc FILE | ckpt import -)')
  return stream
}
