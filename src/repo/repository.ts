// The repository: config, the in-memory index over all index files, verified blob reads, and
// snapshot manifests as named objects. Everything here goes through the Backend interface.
import path from 'node:path'

import {decodeBlob} from '../core/codec.js'
import {mapLimit} from '../core/concurrency.js'
import {IntegrityError, NoRepositoryError, NotFoundError, ObjectMissingError, UsageError} from '../core/errors.js'
import {blake3} from '../core/hash.js'
import {isHexId, toHex} from '../core/ids.js'
import type {Backend} from '../store/backend.js'
import {cacheRoot, ObjectCache} from '../store/cache.js'
import {BlobIndex, type BlobLocation} from './blobindex.js'
import {decodeConfig, encodeConfig, FORMAT_VERSION, type RepoConfig} from './config.js'
import {checkIndex, decodeIndex, encodeIndex, indexedBlobCount, type IndexedPack, type IndexPackCount} from './indexfile.js'
import {BlobType, type BlobTypeValue} from './pack.js'

export type {BlobLocation} from './blobindex.js'

export class Repository {
  /** Every indexed blob's location (the first copy loaded, for a blob stored twice). */
  readonly index = new BlobIndex()
  /** Names of the index files loaded, for prune. */
  readonly indexFiles: string[] = []
  /** Index files that could not be read or failed their hash. */
  readonly damagedIndexFiles: {name: string; error: IntegrityError}[] = []
  private indexLoaded = false
  /**
   * Index files, manifests and trees of a repository not on this machine, kept locally (each
   * checked against its hash when read, as from the repository): an unchanged snapshot into S3
   * then downloads only what changed.
   */
  readonly cache: ObjectCache | undefined

  private constructor(readonly backend: Backend, private config_: RepoConfig) {
    if (backend.capabilities.localDirectory === undefined && /^[0-9a-zA-Z_-]{1,128}$/.test(config_.id) && process.env.CKPT_NO_CACHE !== '1') {
      this.cache = new ObjectCache(path.join(cacheRoot(), config_.id))
      this.cache.trim()
    }
  }

  get config(): RepoConfig {
    return this.config_
  }

  /**
   * Raise the repository to this build's format version before anything of that version is
   * written into it (a snapshot's trees): a ckpt that knows only the older version then refuses
   * the repository (exit 13) instead of misreading the new trees. Replacing the config is one
   * atomic put; everything else in it stays readable by this build. Returns true when raised.
   */
  async upgradeFormat(): Promise<boolean> {
    if (this.config_.version >= FORMAT_VERSION) return false
    const upgraded = {...this.config_, version: FORMAT_VERSION}
    await this.backend.put('config', 'config', encodeConfig(upgraded))
    this.config_ = upgraded
    return true
  }

  static async open(backend: Backend): Promise<Repository> {
    let bytes: Buffer
    try {
      bytes = await backend.get('config', 'config')
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new NoRepositoryError(`no ckpt repository at ${backend.location} (run "ckpt init" to create one)`, {location: backend.location})
      throw err
    }
    return new Repository(backend, decodeConfig(bytes))
  }

  /** Write the config of a new repository. The backend's layout must exist already. */
  static async create(backend: Backend, config: RepoConfig): Promise<Repository> {
    const existing = await backend.get('config', 'config').catch((err: unknown) => {
      if (err instanceof ObjectMissingError) return undefined
      throw err
    })
    if (existing) throw new UsageError(`a repository already exists at ${backend.location}`)
    await backend.put('config', 'config', encodeConfig(config))
    return new Repository(backend, config)
  }

  // ---- index ----

  /**
   * Load every index file (idempotent), in name order so a blob stored twice always resolves to the
   * same copy. A damaged index file is set aside in `damagedIndexFiles`: the snapshots it does not
   * concern still restore, a read of a blob only it listed fails as missing, verify reports it, and
   * prune refuses to delete anything while one exists.
   */
  async loadIndex(): Promise<void> {
    if (this.indexLoaded) return
    const files = await readIndexFiles(this.backend, (name, err) => {
      const error = err instanceof ObjectMissingError ? new IntegrityError(`index ${name} vanished while loading`, {index: name}, {cause: err}) : err
      this.damagedIndexFiles.push({name, error})
    }, undefined, this.cache)
    // Room for every blob up front, so the map is allocated once instead of doubling its way there.
    this.index.reserve(this.index.size + indexedBlobCount(files.map((file) => file?.packs)))
    const onPack = (pack: string, size: number) => this.packNumber(pack, size)
    files.forEach((file, i) => {
      if (!file) return
      // A blob already indexed keeps its first location.
      this.index.addIndexFile(file.bytes, file.name, onPack)
      files[i] = undefined // the bytes are garbage from here on
      this.indexFiles.push(file.name)
    })
    this.indexLoaded = true
  }

  async readIndexFile(name: string): Promise<IndexedPack[]> {
    let bytes: Buffer
    try {
      bytes = await this.backend.get('index', name)
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new IntegrityError(`index ${name} vanished while loading`, {index: name}, {cause: err})
      throw err
    }
    checkIndexHash(bytes, name)
    return decodeIndex(bytes, name)
  }

  /** Record a pack's blobs in the in-memory index. A blob already indexed keeps its first location. */
  addPack(p: IndexedPack): void {
    const packNo = this.packNumber(p.name, p.size)
    for (const e of p.entries) this.index.addEntry(packNo, e)
  }

  /** packNo -> pack name and size */
  get packs(): readonly {name: string; size: number}[] {
    return this.index.packs
  }

  /** A pack's number in the index; a known pack takes the new size (the writer numbers a pack before it knows its size). */
  packNumber(name: string, size: number): number {
    const {packNo, isNew} = this.index.addPack(name, size)
    if (!isNew) this.index.packs[packNo]!.size = size
    return packNo
  }

  /** Write an index file for packs that are already durable; returns its name. */
  async writeIndex(packs: readonly IndexedPack[]): Promise<string> {
    const bytes = encodeIndex(packs)
    const name = toHex(blake3(bytes))
    await this.backend.put('index', name, bytes)
    this.cache?.put('index', name, bytes)
    this.indexFiles.push(name)
    return name
  }

  has(id: Uint8Array): boolean {
    return this.index.has(id)
  }

  lookup(id: Uint8Array): BlobLocation | undefined {
    return this.index.location(id)
  }

  /** Read a blob, inflate it and check it against its id. Never returns bytes that fail the check. */
  async readBlob(id: Uint8Array, type?: BlobTypeValue): Promise<Buffer> {
    const loc = this.lookup(id)
    if (!loc) throw new ObjectMissingError(`blob ${toHex(id)} is not in the index`, {blob: toHex(id)})
    if (type !== undefined && loc.type !== type) throw new IntegrityError(`blob ${toHex(id)} has the wrong type`, {blob: toHex(id)})
    if (loc.type !== BlobType.tree || !this.cache) return this.readBlobAt(id, loc)
    const hex = toHex(id)
    const cached = this.cache.get('trees', hex)
    if (cached && blake3(cached).equals(id)) return cached
    if (cached) this.cache.drop('trees', hex)
    const plain = await this.readBlobAt(id, loc)
    this.cache.put('trees', hex, plain)
    return plain
  }

  async readBlobAt(id: Uint8Array, loc: BlobLocation): Promise<Buffer> {
    checkBlobBound(id, loc, this.config)
    const stored = await this.backend.get('data', loc.pack, {offset: loc.offset, length: loc.storedLength})
    return checkBlob(id, loc, stored)
  }

  // ---- snapshots ----

  async listSnapshotNames(): Promise<string[]> {
    const names: string[] = []
    for await (const obj of this.backend.list('snapshots')) if (isHexId(obj.name)) names.push(obj.name)
    return names.sort()
  }

  /** A manifest's bytes, checked against its name (the snapshot id is the BLAKE3 of the manifest). */
  async readSnapshotBytes(name: string): Promise<Buffer> {
    const cached = this.cache?.get('snapshots', name)
    if (cached && toHex(blake3(cached)) === name) return cached
    let bytes: Buffer
    try {
      bytes = await this.backend.get('snapshots', name)
    } catch (err) {
      if (err instanceof ObjectMissingError) throw new NotFoundError(`snapshot ${name} not found`, {snapshot: name})
      throw err
    }
    if (toHex(blake3(bytes)) !== name) throw new IntegrityError(`snapshot ${name} does not match its hash`, {snapshot: name})
    this.cache?.put('snapshots', name, bytes)
    return bytes
  }

  /** Store a manifest. This write is a snapshot's commit point. */
  async writeSnapshotBytes(bytes: Buffer): Promise<string> {
    const name = toHex(blake3(bytes))
    await this.backend.put('snapshots', name, bytes)
    this.cache?.put('snapshots', name, bytes)
    return name
  }

  async deleteSnapshot(name: string): Promise<void> {
    await this.backend.delete('snapshots', name)
  }
}

/** An index file read whole and checked (its hash against its name, then its structure). */
export interface CheckedIndexFile {
  name: string
  bytes: Buffer
  packs: IndexPackCount[]
}

function checkIndexHash(bytes: Uint8Array, name: string): void {
  if (toHex(blake3(bytes)) !== name) throw new IntegrityError(`index ${name} does not match its hash (damaged or truncated)`, {index: name})
}

/**
 * Read and check every index file of a repository, eight at a time; in name order, so that which
 * copy of a blob stored twice comes first never depends on timing. A file that vanished since it
 * was listed, or fails its checks, goes to `onProblem` and leaves a hole; other errors throw.
 * `onBytes` counts what was read.
 */
export async function readIndexFiles(backend: Backend, onProblem: (name: string, err: IntegrityError | ObjectMissingError) => void, onBytes?: (n: number) => void, cache?: ObjectCache): Promise<(CheckedIndexFile | undefined)[]> {
  const names: string[] = []
  for await (const obj of backend.list('index')) names.push(obj.name)
  names.sort()
  return mapLimit(names, 8, async (name) => {
    try {
      const cached = cache?.get('index', name)
      if (cached && toHex(blake3(cached)) === name) return {name, bytes: cached, packs: checkIndex(cached, name)}
      const bytes = await backend.get('index', name)
      onBytes?.(bytes.length)
      checkIndexHash(bytes, name)
      const checked = {name, bytes, packs: checkIndex(bytes, name)}
      cache?.put('index', name, bytes)
      return checked
    } catch (err) {
      if (!(err instanceof IntegrityError || err instanceof ObjectMissingError)) throw err
      onProblem(name, err)
      return undefined
    }
  })
}

/**
 * Refuse a blob whose index entry claims more than the repository can hold: a data blob (a chunk)
 * is never larger than the chunker's maxSize, stored or plain, since the writer stores a chunk as
 * is whenever compressing would not shrink it. Checked before anything is read or allocated, so a
 * hostile index (a small zstd frame claiming 1 GiB) costs nothing. Trees have no such bound (one
 * large directory is one large tree). Restore calls this for every chunk; verify should too.
 */
export function checkBlobBound(id: Uint8Array, loc: BlobLocation, config: Pick<RepoConfig, 'chunker'>): void {
  if (loc.type !== BlobType.data) return
  const max = config.chunker.maxSize
  if (loc.rawLength <= max && loc.storedLength <= max) return
  const blob = toHex(id)
  throw new IntegrityError(`blob ${blob} in pack ${loc.pack} claims ${Math.max(loc.rawLength, loc.storedLength)} bytes, more than the repository's largest chunk (${max} bytes)`, {blob, pack: loc.pack})
}

/** Inflate a stored blob and check its hash. */
export async function checkBlob(id: Uint8Array, loc: BlobLocation, stored: Buffer): Promise<Buffer> {
  let plain: Buffer
  try {
    plain = await decodeBlob(stored, loc.compression, loc.rawLength)
  } catch (err) {
    throw err instanceof IntegrityError ? damagedBlob(id, loc.pack, err) : err
  }
  if (!blake3(plain).equals(id)) throw damagedBlob(id, loc.pack)
  return plain
}

/**
 * The error for a blob of `pack` that failed its check: `cause` says why it could not be read (a
 * corrupt frame, a size the index contradicts); without one, it read fine but hashes to another id.
 */
export function damagedBlob(id: Uint8Array, pack: string, cause?: IntegrityError): IntegrityError {
  const blob = toHex(id)
  if (cause) return new IntegrityError(`blob ${blob} in pack ${pack} is corrupt: ${cause.message}`, {blob, pack}, {cause})
  return new IntegrityError(`blob ${blob} in pack ${pack} fails its BLAKE3 check`, {blob, pack})
}
