// The storage contract. Everything above this file sees the repository as a handful of verbs
// over named, immutable objects grouped by kind; a local directory (store/local.ts) and an S3
// bucket (store/s3.ts) implement it, chosen from the repository's location in one place
// (store/registry.ts), and nothing above knows which one it has.
//
// Contract, for every implementation:
// - put is atomic: a reader sees the whole object or nothing, never a prefix, also after a crash.
//   When put resolves the object is durable (locks excepted: they coordinate live processes and
//   need not survive a crash). Putting a name that exists replaces it whole (content-addressed
//   names make that a no-op; locks rely on it for refresh).
// - get of a name put earlier by this or another process returns its bytes (read-after-write).
//   A range that runs past the end is an error, never a short read. Given `into`, get reads into
//   that buffer (which must be large enough) and returns a view of it: hot paths reuse buffers.
// - list returns every object of a kind whose put has completed more than capabilities.listLagMs
//   ago, each once, in no given order (object stores update listings asynchronously: a just-put
//   object may be missing for a moment, a just-deleted one still listed; locks wait that out).
// - delete of a missing name succeeds (prune may be finishing a crashed prune's work).
//   deleteMany deletes several of one kind (an object store: one request per thousand); when it
//   fails, any subset of them may be gone.
// - Temporary objects (required of every backend): a put or create that has not committed may
//   leave one behind when its process fails or dies (a local file before its rename; an object
//   store's unfinished multipart upload). temporaries() lists them, each with its size and, when
//   the backend can recover it, the owner that wrote it; list() never does. removeTemporary()
//   deletes one (missing: success). A failed put, commit or abort removes its own before it
//   rejects, whenever the failure leaves the backend able to (ENOSPC above all: the space is
//   given back before the error reaches the user). Who may remove another writer's temporary
//   object is decided above, by src/store/temp.ts.
// - Names are [0-9A-Za-z_-] strings chosen by the repository layer; backends may lay them out
//   as they like (the local backend fans data out by the first two characters).
import {ObjectMissingError} from '../core/errors.js'

export const OBJECT_KINDS = ['config', 'data', 'index', 'snapshots', 'locks', 'pins'] as const
export type ObjectKind = (typeof OBJECT_KINDS)[number]

export interface ObjectInfo {
  name: string
  size: number
  /** Last modification time, milliseconds since the epoch (used for grace periods and stale locks). */
  mtimeMs: number
}

/** Who wrote a temporary object. */
export interface TempOwner {
  /** First 12 hex digits of SHA-256 of the host name (host names may hold any character). */
  host: string
  pid: number
  /** Process start time in clock ticks since boot, null where it cannot be read. */
  pidStart: number | null
}

/** A temporary object (see the contract above). */
export interface TempObject {
  /** Opaque to callers: what removeTemporary takes (the local backend: the path under the root). */
  id: string
  size: number
  mtimeMs: number
  /** The writer recorded in its name; undefined when there is none (written by an older build). */
  owner?: TempOwner
}

export interface ByteRange {
  offset: number
  length: number
}

/**
 * An object being written piece by piece (packs are streamed, not held in memory). Nothing is
 * visible under the name until commit() resolves; commit makes the object durable. abort()
 * discards it. An implementation for an object store may buffer and upload at commit.
 */
export interface ObjectWriter {
  /** Write bytes at `position`. Writes may overlap in time; each byte is written once before commit. */
  write(data: Uint8Array, position: number): Promise<void>
  commit(): Promise<void>
  abort(): Promise<void>
}

/** What a backend is or can do beyond the verbs: stated, never found by probing. */
export interface BackendCapabilities {
  /**
   * The directory that holds the repository, when it is on this machine's filesystem: a snapshot
   * of a directory that contains it skips it, an in-place restore keeps it (and puts it back if a
   * killed restore carried it away). Undefined for a remote store.
   */
  readonly localDirectory?: string
  /**
   * How long after a put or delete resolves list() may still miss (or still show) the object:
   * 0 for a local directory; an assumed bound for object stores, whose listings are updated
   * asynchronously. Lock acquisition and prune wait it out (src/store/lock.ts, docs/DESIGN.md).
   */
  readonly listLagMs: number
}

export interface Backend {
  /** Human-readable location, for messages. */
  readonly location: string
  readonly capabilities: BackendCapabilities
  /** True when nothing at all is stored at the location (init refuses anything else). */
  isEmpty(): Promise<boolean>
  /** Make the location able to hold a repository (directories; the bucket). Idempotent. */
  initLayout(): Promise<void>
  put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>
  /** Start writing an object whose size is not known yet (same atomicity as put). */
  create(kind: ObjectKind, name: string): Promise<ObjectWriter>
  get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer>
  stat(kind: ObjectKind, name: string): Promise<ObjectInfo>
  list(kind: ObjectKind): AsyncIterable<ObjectInfo>
  delete(kind: ObjectKind, name: string): Promise<void>
  deleteMany(kind: ObjectKind, names: readonly string[]): Promise<void>
  /** Temporary objects of writes not committed: in flight, or left by a writer that failed or died. */
  temporaries(): AsyncIterable<TempObject>
  removeTemporary(id: string): Promise<void>
  /** What this backend fetched so far (requests, bytes), for benchmarks; absent where nothing is counted. */
  fetchStats?(): Record<string, number>
}

/**
 * The listing of kind 'config', in every backend: the one object named "config", when it is
 * there (its stat; nothing when it is missing).
 */
export async function* listConfig(backend: Pick<Backend, 'stat'>): AsyncIterable<ObjectInfo> {
  try {
    yield await backend.stat('config', 'config')
  } catch (err) {
    if (!(err instanceof ObjectMissingError)) throw err
  }
}

const NAME = /^[0-9A-Za-z_-]{1,128}$/

/** Names come from our own code, but a hostile repository may list anything: check before use. */
export function isValidObjectName(name: string): boolean {
  return NAME.test(name)
}
