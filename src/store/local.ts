// A repository in a local directory. Layout (docs/FORMAT.md):
//   config, data/<first two chars>/<name>, index/<name>, snapshots/<name>, locks/<name>, pins/<name>
// Writes go to a temp file beside the target, are fsynced, renamed into place, and the
// directory is fsynced, so a crash leaves the old object, the new one, or an ignored temp file
// whose name records its writer (src/store/temp.ts); a failed write removes its own at once.
import {closeSync, constants as fsc, fstatSync, openSync, promises as fsp, read, readdirSync, readSync, statSync} from 'node:fs'
import path from 'node:path'

import {classifyOsError, errnoCode, IntegrityError, ObjectMissingError, UsageError} from '../core/errors.js'
import {mapLimit} from '../core/concurrency.js'
import {atomicWriteFile, fsyncDir} from '../core/durable.js'
import {faultPoint} from '../core/faultpoint.js'
import {onlyLostFound} from '../core/mounts.js'
import {makeDirs} from '../core/mkdirs.js'
import {type Backend, type BackendCapabilities, type ByteRange, isValidObjectName, listConfig, type ObjectInfo, type ObjectKind, type ObjectWriter, OBJECT_KINDS, type TempObject} from './backend.js'
import {parseTempName, TEMP_PREFIX, tempName} from './temp.js'

export {TEMP_PREFIX} from './temp.js'

/**
 * Reads up to this size are synchronous. Open, read and close of a small object or range take
 * microseconds together, while each asynchronous call costs a thread-pool round trip of tens of
 * microseconds: an unchanged snapshot reads a few hundred trees of a few KiB, and read them
 * asynchronously it spent more time in those round trips than in everything else it does with
 * the trees. Larger reads (packs, runs of chunks) stay asynchronous so they overlap with hashing
 * and writing.
 */
export const SYNC_READ_MAX = 64 * 1024

const HEX = '0123456789abcdef'
const FANOUT = Array.from({length: 256}, (_, i) => HEX[i >> 4]! + HEX[i & 15]!)

/** One positional read on the thread pool (a plain fd: no FileHandle object per read). */
function readAt(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))))
}

export class LocalBackend implements Backend {
  readonly location: string
  readonly capabilities: BackendCapabilities

  constructor(readonly root: string) {
    this.location = root
    this.capabilities = {localDirectory: root, listLagMs: 0}
  }

  async isEmpty(): Promise<boolean> {
    if ((await checkRepositoryPath(this.root)) === 'missing') return true
    // A freshly made filesystem (a backup disk) may be the repository itself.
    const names = await fsp.readdir(this.root)
    return names.length === 0 || onlyLostFound(this.root, names)
  }

  /** Create the directory layout (idempotent). */
  async initLayout(): Promise<void> {
    await makeDirs(this.root)
    for (const kind of OBJECT_KINDS) {
      if (kind !== 'config') await fsp.mkdir(path.join(this.root, kind), {recursive: true})
    }
    await Promise.all(FANOUT.map((d) => fsp.mkdir(path.join(this.root, 'data', d), {recursive: true})))
    await Promise.all(OBJECT_KINDS.filter((k) => k !== 'config').map((k) => fsyncDir(path.join(this.root, k))))
    await fsyncDir(path.join(this.root, 'data'))
    await fsyncDir(this.root)
    await fsyncDir(path.dirname(path.resolve(this.root)))
  }

  private file(kind: ObjectKind, name: string): string {
    if (kind === 'config') return path.join(this.root, 'config')
    if (!isValidObjectName(name)) throw new IntegrityError(`invalid object name ${JSON.stringify(name)} in ${kind}`)
    if (kind === 'data') {
      // Data objects fan out by their first two characters, which must name one of the 256 directories list() reads.
      if (!/^[0-9a-f]{2}/.test(name)) throw new IntegrityError(`invalid data object name ${JSON.stringify(name)}`)
      return path.join(this.root, 'data', name.slice(0, 2), name)
    }
    return path.join(this.root, kind, name)
  }

  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const target = this.file(kind, name)
    // Locks coordinate live processes; after a crash their holder is gone anyway, so they are
    // written atomically but not fsynced (an fsync is milliseconds, on every command's path).
    const durable = kind !== 'locks'
    try {
      await atomicWriteFile(target, data, 0o444, durable, tempName())
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' && kind !== 'config') {
        // A kind's directory is missing (removed by hand, or a repository older than the kind): recreate it once.
        await fsp.mkdir(path.dirname(target), {recursive: true})
        await atomicWriteFile(target, data, 0o444, durable, tempName())
        return
      }
      throw err
    }
  }

  async create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    const target = this.file(kind, name)
    const dir = path.dirname(target)
    const temp = path.join(dir, tempName())
    let fh: fsp.FileHandle
    try {
      fh = await fsp.open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444)
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw classifyOsError(err, target)
      await fsp.mkdir(dir, {recursive: true})
      fh = await fsp.open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o444)
    }
    let closed = false
    const close = async () => {
      if (!closed) {
        closed = true
        await fh.close()
      }
    }
    return {
      async write(data: Uint8Array, position: number) {
        try {
          let done = 0
          while (done < data.byteLength) {
            const {bytesWritten} = await fh.write(data, done, data.byteLength - done, position + done)
            done += bytesWritten
          }
        } catch (err) {
          throw classifyOsError(err, target)
        }
      },
      async commit() {
        try {
          faultPoint('pack.written')
          await fh.sync()
          faultPoint('pack.synced')
          await close()
          await fsp.rename(temp, target)
          faultPoint('pack.renamed')
        } catch (err) {
          await close().catch(() => undefined)
          await fsp.rm(temp, {force: true})
          throw classifyOsError(err, target)
        }
        await fsyncDir(dir)
        faultPoint('pack.dirsynced')
      },
      async abort() {
        await close().catch(() => undefined)
        await fsp.rm(temp, {force: true})
      },
    }
  }

  async get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    const file = this.file(kind, name)
    // Open, stat and close are metadata calls, synchronous (see SYNC_READ_MAX); so is a small read.
    let fd: number
    try {
      fd = openSync(file, fsc.O_RDONLY)
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new ObjectMissingError(`${kind} object ${name} is missing`, {kind, name}, {cause: err})
      throw err
    }
    try {
      const offset = range ? range.offset : 0
      const length = range ? range.length : fstatSync(fd).size
      if (into && into.length < length) throw new RangeError(`buffer of ${into.length} bytes cannot hold ${length}`)
      const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length)
      const sync = length <= SYNC_READ_MAX
      let done = 0
      while (done < length) {
        const bytesRead = sync ? readSync(fd, buf, done, length - done, offset + done) : await readAt(fd, buf, done, length - done, offset + done)
        if (bytesRead === 0) {
          throw new IntegrityError(`${kind} object ${name} is truncated: wanted bytes ${offset}..${offset + length}, it ends at ${offset + done}`, {kind, name})
        }
        done += bytesRead
      }
      return buf
    } finally {
      closeSync(fd)
    }
  }

  async stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    try {
      const st = await fsp.stat(this.file(kind, name))
      return {name, size: st.size, mtimeMs: st.mtimeMs}
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new ObjectMissingError(`${kind} object ${name} is missing`, {kind, name}, {cause: err})
      throw err
    }
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    if (kind === 'config') {
      yield* listConfig(this)
      return
    }
    const dirs = kind === 'data' ? FANOUT.map((d) => path.join(this.root, 'data', d)) : [path.join(this.root, kind)]
    // Metadata calls, synchronous: each takes microseconds, less than a thread-pool round trip.
    for (const dir of dirs) {
      let names: string[]
      try {
        names = readdirSync(dir)
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue
        throw err
      }
      for (const name of names) {
        if (!isValidObjectName(name)) continue
        try {
          const st = statSync(path.join(dir, name))
          if (st.isFile()) yield {name, size: st.size, mtimeMs: st.mtimeMs}
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err // deleted while listing: not listed
        }
      }
    }
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    const file = this.file(kind, name)
    if (kind !== 'locks') faultPoint('delete.before')
    await fsp.rm(file, {force: true})
    if (kind !== 'locks') await fsyncDir(path.dirname(file))
    if (kind !== 'locks') faultPoint('delete.done')
  }

  async deleteMany(kind: ObjectKind, names: readonly string[]): Promise<void> {
    await mapLimit(names, 16, (name) => this.delete(kind, name))
  }

  /** Directories temp files can be in: the root and every object directory. */
  private tempDirs(): string[] {
    return [this.root, ...OBJECT_KINDS.filter((k) => k !== 'config').map((k) => path.join(this.root, k)), ...FANOUT.map((d) => path.join(this.root, 'data', d))]
  }

  async *temporaries(): AsyncIterable<TempObject> {
    // Synchronous metadata calls, as list(): each takes microseconds, and every snapshot runs this.
    for (const dir of this.tempDirs()) {
      let names: string[]
      try {
        names = readdirSync(dir)
      } catch (err) {
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue
        throw err
      }
      for (const name of names) {
        if (!name.startsWith(TEMP_PREFIX)) continue
        try {
          const st = statSync(path.join(dir, name))
          if (!st.isFile()) continue
          const owner = parseTempName(name)
          yield {id: path.relative(this.root, path.join(dir, name)), size: st.size, mtimeMs: st.mtimeMs, ...(owner ? {owner} : {})}
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err // its write committed or failed meanwhile
        }
      }
    }
  }

  async removeTemporary(id: string): Promise<void> {
    // Only ever a temp file in one of our directories, whatever the caller passes.
    const file = path.join(this.root, id)
    if (!path.basename(file).startsWith(TEMP_PREFIX) || !this.tempDirs().includes(path.dirname(file))) {
      throw new UsageError(`not a temporary object of ${this.root}: ${id}`)
    }
    await fsp.rm(file, {force: true})
  }
}

/** Refuse a repository path that exists but is not a directory, with a one-line message. */
export async function checkRepositoryPath(root: string): Promise<'missing' | 'directory'> {
  try {
    // Synchronous, as the backend's other metadata calls: every command makes it first, and the
    // first asynchronous fs call starts libuv's thread pool (~4 MB of RSS for `ckpt snapshots`).
    const st = statSync(root)
    if (!st.isDirectory()) throw new UsageError(`repository path ${root} exists and is not a directory`)
    return 'directory'
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing'
    throw err
  }
}
