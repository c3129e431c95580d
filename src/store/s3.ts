// A repository in an S3 bucket (AWS S3, MinIO, Ceph RGW, Swift's s3api), through the official
// AWS SDK, which src/store/registry.ts loads only for an s3:// location. Layout under the
// prefix, as in a directory (docs/FORMAT.md): config, data/<first two chars>/<name>, index/,
// snapshots/, locks/, pins/.
//
// How the contract maps (src/store/backend.ts):
// - put: one PUT of the whole object (an object store makes it atomic), multipart above
//   `multipartAbove`: nothing is visible under the name until CompleteMultipartUpload.
// - create: the writer's pieces are gathered in memory and put at commit (packs are 16 MiB).
// - Temporary objects are unfinished multipart uploads (ListMultipartUploads; removing one is
//   AbortMultipartUpload). They record no owner, so others' are removed only after a day.
// - No rename, no conditional PUT (Swift answers 501 to If-None-Match), no flock: objects are
//   immutable and content-addressed, and locks are objects like the rest, with a listing-lag
//   margin (capabilities.listLagMs; src/store/lock.ts).
// - Every request goes through one limiter (bounded concurrency) and one retry loop: throttling
//   (503 SlowDown, 429), 5xx, timeouts and dropped connections (also mid-body) are retried with
//   full-jitter exponential backoff; when the attempts run out, StorageError (exit 17).
import {createHash} from 'node:crypto'
import http from 'node:http'
import https from 'node:https'

import type * as SDK from '@aws-sdk/client-s3'

import {Limiter} from '../core/concurrency.js'
import {IntegrityError, NoRepositoryError, ObjectMissingError, StorageError} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import {ReadAhead} from './readahead.js'
import {type Backend, type BackendCapabilities, type ByteRange, isValidObjectName, listConfig, type ObjectInfo, type ObjectKind, type ObjectWriter, OBJECT_KINDS, type TempObject} from './backend.js'

export interface S3Tuning {
  /** Requests in flight at once (uploads and downloads together). */
  connections: number
  /** Attempts per request before giving up (1: no retry). */
  attempts: number
  /** Backoff: the nth retry waits a random time up to min(maxDelayMs, baseDelayMs * 2^n). */
  baseDelayMs: number
  maxDelayMs: number
  /** A request whose socket is idle this long is abandoned (and retried). */
  timeoutMs: number
  /** Objects larger than this go up in parts of partSize. */
  multipartAbove: number
  partSize: number
  listLagMs: number
  /** Keys per listing request (S3's maximum, and Swift's cap, is 1000). */
  pageSize: number
  /** Read-ahead of data objects (ReadAhead): bytes fetched at once once a reader goes sequential, 0 for none. */
  readAheadBytes: number
  /** What the read-ahead may hold at once, fetched and being fetched (budget / window windows, each an eighth over: src/store/readahead.ts). */
  readAheadBudget: number
}

export const DEFAULT_TUNING: S3Tuning = {
  connections: 16, attempts: 8, baseDelayMs: 100, maxDelayMs: 10_000, timeoutMs: 60_000,
  multipartAbove: 32 * 1024 * 1024, partSize: 16 * 1024 * 1024, listLagMs: 1000, pageSize: 1000,
  readAheadBytes: 4 * 1024 * 1024, readAheadBudget: 32 * 1024 * 1024,
}

/** The tuning, with the environment's overrides (CKPT_S3_CONNECTIONS, CKPT_S3_ATTEMPTS, CKPT_S3_TIMEOUT_MS, CKPT_S3_LIST_LAG_MS, CKPT_S3_READ_AHEAD). */
export function tuningFromEnv(env: NodeJS.ProcessEnv = process.env): S3Tuning {
  const num = (name: string, fallback: number, min: number) => {
    const v = env[name]
    if (v === undefined || v === '') return fallback
    const n = Number(v)
    return Number.isFinite(n) && n >= min ? n : fallback
  }
  return {
    ...DEFAULT_TUNING,
    connections: num('CKPT_S3_CONNECTIONS', DEFAULT_TUNING.connections, 1),
    attempts: num('CKPT_S3_ATTEMPTS', DEFAULT_TUNING.attempts, 1),
    timeoutMs: num('CKPT_S3_TIMEOUT_MS', DEFAULT_TUNING.timeoutMs, 100),
    listLagMs: num('CKPT_S3_LIST_LAG_MS', DEFAULT_TUNING.listLagMs, 0),
    readAheadBytes: Math.min(num('CKPT_S3_READ_AHEAD', DEFAULT_TUNING.readAheadBytes, 0), DEFAULT_TUNING.readAheadBudget),
  }
}

/** Client settings from the standard AWS environment (the SDK reads credentials and shared config itself). */
export function clientConfig(env: NodeJS.ProcessEnv, tuning: S3Tuning): SDK.S3ClientConfig {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined
  // S3-compatible servers are addressed by path (http://host/bucket/key) unless told otherwise:
  // virtual-hosted names need DNS for every bucket, which a MinIO or Swift endpoint rarely has.
  const pathStyle = endpoint !== undefined && env.CKPT_S3_VIRTUAL_HOSTED !== '1'
  const agentOptions = {keepAlive: true, maxSockets: tuning.connections}
  return {
    ...(endpoint ? {endpoint} : {}),
    // Without a region anywhere (a custom endpoint rarely needs one) the SDK would refuse to sign.
    ...(region ? {region} : endpoint ? {region: 'us-east-1'} : {}),
    forcePathStyle: pathStyle,
    // Checksums only where the API requires them: the default (CRC32 trailers, aws-chunked
    // uploads) is refused by several S3-compatible servers (Swift's s3api: 501). Integrity is
    // ours anyway: every blob is checked against its BLAKE3 id when read.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries are ours (one loop for every request, including reading the body).
    maxAttempts: 1,
    requestHandler: {
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
      connectionTimeout: Math.min(tuning.timeoutMs, 10_000),
      requestTimeout: tuning.timeoutMs,
    },
  }
}

export async function openS3Backend(bucket: string, prefix: string, tuning: S3Tuning = tuningFromEnv(), env: NodeJS.ProcessEnv = process.env): Promise<S3Backend> {
  // The SDK warns on stderr that its releases after January 2027 will need Node 22; ours is
  // pinned (package.json), and a cron job's stderr is no place for that notice.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const loaded = await import('@aws-sdk/client-s3')
  // Bundled (bundle.mjs), the CommonJS package's exports arrive as the default export.
  const sdk = ('S3Client' in loaded ? loaded : (loaded as unknown as {default: typeof SDK}).default) as typeof SDK
  const client = new sdk.S3Client(clientConfig(env, tuning))
  return new S3Backend(sdk, client, bucket, prefix, tuning)
}

interface Meta {
  $metadata?: {httpStatusCode?: number}
  name?: string
  code?: string
  Code?: string
}

const RETRY_CODES = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeTooSkewed', 'TimeoutError', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded'])
const NET_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENOTFOUND', 'ERR_STREAM_PREMATURE_CLOSE', 'EHOSTUNREACH', 'ENETUNREACH'])

function status(err: unknown): number | undefined {
  return (err as Meta | undefined)?.$metadata?.httpStatusCode
}

function errName(err: unknown): string {
  const e = err as Meta | undefined
  return e?.name ?? e?.Code ?? ''
}

/** A failure worth another attempt: throttling, a server error, a timeout, a dropped connection. */
export function retryable(err: unknown): boolean {
  if (err instanceof ShortBody) return true
  const s = status(err)
  if (s !== undefined && (s >= 500 || s === 429 || s === 408)) return true
  if (RETRY_CODES.has(errName(err))) return true
  const code = (err as Meta | undefined)?.code
  if (code && NET_CODES.has(code)) return true
  const message = err instanceof Error ? err.message : ''
  return /socket hang up|aborted|premature close|ECONNRESET|EPIPE/i.test(message) && s === undefined
}

function missing(err: unknown): boolean {
  const n = errName(err)
  return status(err) === 404 || n === 'NoSuchKey' || n === 'NotFound' || n === 'NoSuchBucket'
}

/** Objects being written (create) are gathered in slabs of this size, SPARE_SLABS kept for reuse (a pack and some). */
const SLAB = 4 * 1024 * 1024
const SPARE_SLABS = 5

/** The body ended before Content-Length (a dropped connection): retried like one. */
class ShortBody extends Error {}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export class S3Backend implements Backend {
  readonly location: string
  readonly capabilities: BackendCapabilities
  private readonly limiter: Limiter
  /** Ranged reads of packs (src/store/readahead.ts). */
  readonly readAhead: ReadAhead | undefined
  /** Retries made (for tests and progress). */
  retries = 0
  /** GETs made and the bytes they brought (tests, benchmarks: CKPT_S3_STATS). */
  gets = 0
  bytesGot = 0
  /** Slabs of objects being written (create), kept for the next one. */
  private readonly spareSlabs: Buffer[] = []

  constructor(
    private readonly sdk: typeof SDK,
    readonly client: SDK.S3Client,
    readonly bucket: string,
    readonly prefix: string,
    private readonly tuning: S3Tuning = DEFAULT_TUNING,
  ) {
    this.location = `s3://${bucket}${prefix ? `/${prefix}` : ''}`
    this.capabilities = {listLagMs: tuning.listLagMs}
    this.limiter = new Limiter(tuning.connections)
    if (tuning.readAheadBytes > 0) {
      this.readAhead = new ReadAhead(tuning.readAheadBytes, tuning.readAheadBudget, (name, offset, length, into) => this.fetch('data', name, this.key('data', name), {offset, length}, into, true))
    }
    addContentMd5(client)
  }

  /** GETs made, bytes they brought, and what the read-ahead served (benchmarks: CKPT_S3_STATS, src/cli/repository.ts). */
  fetchStats(): Record<string, number> {
    return {gets: this.gets, bytes: this.bytesGot, ...this.readAhead?.stats()}
  }

  /** The key of an object; every name is checked first (a hostile listing may hold anything). */
  private key(kind: ObjectKind, name: string): string {
    if (kind === 'config') return this.base('config')
    if (!isValidObjectName(name)) throw new IntegrityError(`invalid object name ${JSON.stringify(name)} in ${kind}`)
    if (kind === 'data') {
      if (!/^[0-9a-f]{2}/.test(name)) throw new IntegrityError(`invalid data object name ${JSON.stringify(name)}`)
      return this.base(`data/${name.slice(0, 2)}/${name}`)
    }
    return this.base(`${kind}/${name}`)
  }

  private base(rest: string): string {
    return this.prefix ? `${this.prefix}/${rest}` : rest
  }

  /** One request, under the limiter, retried with full-jitter backoff; StorageError when attempts run out or it is refused. */
  private async call<T>(what: string, fn: () => Promise<T>, passThrough: (err: unknown) => boolean = missing): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.limiter.run(fn)
      } catch (err) {
        if (passThrough(err)) throw err
        if (!retryable(err)) throw this.refused(what, err)
        if (attempt >= this.tuning.attempts) {
          throw new StorageError(`${this.location}: ${what} failed ${attempt} times (last: ${describe(err)}); the object store is unreachable or overloaded`, {location: this.location, attempts: attempt}, {cause: err})
        }
        this.retries++
        const cap = Math.min(this.tuning.maxDelayMs, this.tuning.baseDelayMs * 2 ** attempt)
        await sleep(Math.random() * cap)
      }
    }
  }

  private refused(what: string, err: unknown): StorageError {
    const n = errName(err)
    const message = err instanceof Error ? err.message : ''
    const hint = /credential/i.test(message) || n === 'InvalidAccessKeyId' || n === 'SignatureDoesNotMatch'
      ? ' (credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials)'
      : /region is missing/i.test(message) ? ' (set AWS_REGION or a region in ~/.aws/config; for an S3-compatible server, AWS_ENDPOINT_URL_S3)'
      : n === 'AccessDenied' ? ' (permissions of these credentials on the bucket)' : ''
    return new StorageError(`${this.location}: ${what}: ${describe(err)}${hint}`, {location: this.location, status: status(err) ?? null, error: n}, {cause: err})
  }

  async isEmpty(): Promise<boolean> {
    try {
      const res = await this.call('list', () => this.client.send(new this.sdk.ListObjectsV2Command({Bucket: this.bucket, Prefix: this.base(''), MaxKeys: 1})))
      return (res.KeyCount ?? res.Contents?.length ?? 0) === 0
    } catch (err) {
      if (missing(err)) return true // no bucket yet: initLayout creates it
      throw err
    }
  }

  async initLayout(): Promise<void> {
    const region = await this.client.config.region()
    try {
      await this.call('create bucket', () => this.client.send(new this.sdk.CreateBucketCommand({
        Bucket: this.bucket,
        ...(region && region !== 'us-east-1' ? {CreateBucketConfiguration: {LocationConstraint: region as SDK.BucketLocationConstraint}} : {}),
      })), (err) => status(err) === 409)
    } catch (err) {
      // 409: BucketAlreadyOwnedByYou, or (Swift) the bucket exists; if it is someone else's, the first write says so.
      if (status(err) !== 409) throw err
    }
  }

  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const body = data instanceof Uint8Array ? data : Buffer.concat(data as Uint8Array[])
    await this.upload(this.key(kind, name), body)
  }

  private async upload(key: string, body: Uint8Array): Promise<void> {
    if (body.byteLength <= this.tuning.multipartAbove) {
      await this.call(`put ${key}`, () => this.client.send(new this.sdk.PutObjectCommand({Bucket: this.bucket, Key: key, Body: body, ContentLength: body.byteLength})), () => false)
      return
    }
    const {UploadId} = await this.call(`start upload ${key}`, () => this.client.send(new this.sdk.CreateMultipartUploadCommand({Bucket: this.bucket, Key: key})), () => false)
    try {
      const size = this.tuning.partSize
      const count = Math.ceil(body.byteLength / size)
      const parts = await Promise.all(Array.from({length: count}, async (_, i) => {
        const part = body.subarray(i * size, Math.min(body.byteLength, (i + 1) * size))
        const res = await this.call(`upload part ${i + 1} of ${key}`, () => this.client.send(new this.sdk.UploadPartCommand({Bucket: this.bucket, Key: key, UploadId, PartNumber: i + 1, Body: part, ContentLength: part.byteLength})), () => false)
        return {PartNumber: i + 1, ETag: res.ETag}
      }))
      await this.call(`complete upload ${key}`, () => this.client.send(new this.sdk.CompleteMultipartUploadCommand({Bucket: this.bucket, Key: key, UploadId, MultipartUpload: {Parts: parts}})), () => false)
    } catch (err) {
      // A failed upload gives its parts back before the error surfaces (the contract's temporaries).
      await this.abortUpload(key, UploadId!).catch(() => undefined)
      throw err
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.call(`abort upload ${key}`, () => this.client.send(new this.sdk.AbortMultipartUploadCommand({Bucket: this.bucket, Key: key, UploadId: uploadId})))
    } catch (err) {
      if (!missing(err)) throw err // NoSuchUpload: gone already
    }
  }

  async create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    const key = this.key(kind, name)
    // The caller reuses its buffers once write resolves: bytes are copied into slabs, which go
    // back to the backend's spares at commit. (One buffer grown by doubling cost a first snapshot
    // of 63 MiB 0.65 s of CPU in copies and page faults of fresh memory.)
    let slabs: Buffer[] = []
    let end = 0
    let written = 0
    let done = false
    const release = () => {
      for (const slab of slabs) if (this.spareSlabs.length < SPARE_SLABS) this.spareSlabs.push(slab)
      slabs = []
    }
    return {
      write: async (data: Uint8Array, position: number) => {
        if (done) throw new Error(`write to ${key} after commit or abort`)
        for (let from = 0, at = position; from < data.byteLength; ) {
          const i = Math.floor(at / SLAB)
          while (slabs.length <= i) slabs.push(this.spareSlabs.pop() ?? Buffer.allocUnsafe(SLAB))
          const n = Math.min(SLAB - (at % SLAB), data.byteLength - from)
          slabs[i]!.set(data.subarray(from, from + n), at % SLAB)
          from += n
          at += n
        }
        end = Math.max(end, position + data.byteLength)
        written += data.byteLength
      },
      commit: async () => {
        if (done) throw new Error(`commit of ${key} after commit or abort`)
        done = true
        if (written !== end) {
          release()
          throw new Error(`object ${key}: ${written} bytes written for ${end} (a gap or an overlap)`)
        }
        const body = Buffer.allocUnsafe(end)
        slabs.forEach((slab, i) => slab.copy(body, i * SLAB, 0, Math.min(SLAB, end - i * SLAB)))
        release()
        await this.upload(key, body)
      },
      abort: async () => {
        done = true
        release()
      },
    }
  }

  async get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    const key = this.key(kind, name)
    if (range && range.length === 0) {
      await this.stat(kind, name)
      return (into ?? Buffer.alloc(0)).subarray(0, 0)
    }
    if (kind !== 'data' || !range || !this.readAhead) return this.fetch(kind, name, key, range, into, false)
    if (into && into.length < range.length) throw new RangeError(`buffer of ${into.length} bytes cannot hold ${range.length}`)
    const got = await this.readAhead.read(name, range.offset, range.length, into)
    if (got.length !== range.length) throw new IntegrityError(`${kind} object ${name} is truncated: wanted bytes ${range.offset}..${range.offset + range.length}, it ends at ${range.offset + got.length}`, {kind, name})
    return got
  }

  /** One GET; with `short`, a range that runs past the end returns the bytes there are. */
  private async fetch(kind: ObjectKind, name: string, key: string, range: ByteRange | undefined, into: Buffer | undefined, short: boolean): Promise<Buffer> {
    try {
      return await this.call(`get ${key}`, async () => {
        const res = await this.client.send(new this.sdk.GetObjectCommand({
          Bucket: this.bucket, Key: key, ...(range ? {Range: `bytes=${range.offset}-${range.offset + range.length - 1}`} : {}),
        }))
        const length = res.ContentLength ?? 0
        if (range && (short ? length > range.length : length !== range.length)) {
          // A range that runs past the end comes back short: an error, never a short read.
          ;(res.Body as NodeJS.ReadableStream | undefined)?.resume?.()
          throw new IntegrityError(`${kind} object ${name} is truncated: wanted bytes ${range.offset}..${range.offset + range.length}, it ends at ${range.offset + length}`, {kind, name})
        }
        if (into && into.length < length) throw new RangeError(`buffer of ${into.length} bytes cannot hold ${length}`)
        const out = into ? into.subarray(0, length) : Buffer.allocUnsafe(length)
        let at = 0
        for await (const chunk of res.Body as AsyncIterable<Buffer>) {
          if (at + chunk.length > length) throw new ShortBody(`${key}: more bytes than Content-Length`)
          chunk.copy(out, at)
          at += chunk.length
        }
        if (at !== length) throw new ShortBody(`${key}: body ended at ${at} of ${length} bytes`)
        this.gets++
        this.bytesGot += length
        return out
      }, (err) => missing(err) || err instanceof IntegrityError || err instanceof RangeError || status(err) === 416)
    } catch (err) {
      if (missing(err)) throw new ObjectMissingError(`${kind} object ${name} is missing`, {kind, name}, {cause: err})
      if (status(err) === 416) {
        const size = (await this.stat(kind, name)).size
        throw new IntegrityError(`${kind} object ${name} is truncated: wanted bytes ${range!.offset}..${range!.offset + range!.length}, it ends at ${size}`, {kind, name})
      }
      throw err
    }
  }

  async stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    const key = this.key(kind, name)
    try {
      const res = await this.call(`stat ${key}`, () => this.client.send(new this.sdk.HeadObjectCommand({Bucket: this.bucket, Key: key})))
      return {name, size: res.ContentLength ?? 0, mtimeMs: res.LastModified?.getTime() ?? 0}
    } catch (err) {
      if (missing(err)) throw new ObjectMissingError(`${kind} object ${name} is missing`, {kind, name}, {cause: err})
      throw err
    }
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    if (kind === 'config') {
      yield* listConfig(this)
      return
    }
    const dir = this.base(`${kind}/`)
    for await (const obj of this.listKeys(dir)) {
      const rest = obj.key.slice(dir.length)
      const parts = rest.split('/')
      // data/<two chars>/<name>; every other kind flat. Anything else is not ours.
      const name = kind === 'data' ? (parts.length === 2 && parts[1]!.startsWith(parts[0]!) && parts[0]!.length === 2 ? parts[1]! : '') : parts.length === 1 ? parts[0]! : ''
      if (isValidObjectName(name)) yield {name, size: obj.size, mtimeMs: obj.mtimeMs}
    }
  }

  private async *listKeys(prefix: string): AsyncIterable<{key: string; size: number; mtimeMs: number}> {
    let token: string | undefined
    do {
      let res: SDK.ListObjectsV2CommandOutput
      try {
        res = await this.call(`list ${prefix}`, () => this.client.send(new this.sdk.ListObjectsV2Command({Bucket: this.bucket, Prefix: prefix, MaxKeys: this.tuning.pageSize, ContinuationToken: token})))
      } catch (err) {
        if (missing(err)) throw new NoRepositoryError(`no ckpt repository at ${this.location}: the bucket does not exist (run "ckpt init" to create it)`, {location: this.location})
        throw err
      }
      for (const o of res.Contents ?? []) if (o.Key) yield {key: o.Key, size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0}
      token = res.IsTruncated ? res.NextContinuationToken : undefined
    } while (token)
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    const key = this.key(kind, name)
    if (kind !== 'locks') faultPoint('delete.before')
    try {
      await this.call(`delete ${key}`, () => this.client.send(new this.sdk.DeleteObjectCommand({Bucket: this.bucket, Key: key})))
    } catch (err) {
      if (!missing(err)) throw err
    }
    if (kind !== 'locks') faultPoint('delete.done')
  }

  /** DeleteObjects, a thousand keys a request (with the Content-MD5 some servers require: addContentMd5). */
  async deleteMany(kind: ObjectKind, names: readonly string[]): Promise<void> {
    const keys = names.map((name) => this.key(kind, name))
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      faultPoint('delete.before')
      const res = await this.call(`delete ${batch.length} ${kind} objects`, () => this.client.send(new this.sdk.DeleteObjectsCommand({
        Bucket: this.bucket, Delete: {Objects: batch.map((Key) => ({Key})), Quiet: true},
      })), () => false)
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey')
      if (failed.length > 0) {
        throw new StorageError(`${this.location}: ${failed.length} of ${batch.length} deletes failed (first: ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''})`, {location: this.location})
      }
      faultPoint('delete.done')
    }
  }

  async *temporaries(): AsyncIterable<TempObject> {
    let keyMarker: string | undefined
    let uploadMarker: string | undefined
    const prefix = this.base('')
    do {
      let res: SDK.ListMultipartUploadsCommandOutput
      try {
        res = await this.call('list uploads', () => this.client.send(new this.sdk.ListMultipartUploadsCommand({Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadMarker, MaxUploads: 1000})))
      } catch (err) {
        if (missing(err)) return
        throw err
      }
      for (const u of res.Uploads ?? []) {
        if (!u.Key || !u.UploadId || !this.isOurKey(u.Key)) continue
        yield {id: `${u.UploadId} ${u.Key}`, size: await this.uploadedBytes(u.Key, u.UploadId), mtimeMs: u.Initiated?.getTime() ?? 0}
      }
      keyMarker = res.IsTruncated ? res.NextKeyMarker : undefined
      uploadMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined
    } while (keyMarker)
  }

  private async uploadedBytes(key: string, uploadId: string): Promise<number> {
    try {
      const res = await this.call('list parts', () => this.client.send(new this.sdk.ListPartsCommand({Bucket: this.bucket, Key: key, UploadId: uploadId})))
      return (res.Parts ?? []).reduce((n, p) => n + (p.Size ?? 0), 0)
    } catch (err) {
      if (missing(err)) return 0 // completed or aborted meanwhile
      throw err
    }
  }

  private isOurKey(key: string): boolean {
    const rest = key.slice(this.base('').length)
    return key.startsWith(this.base('')) && (rest === 'config' || OBJECT_KINDS.some((k) => rest.startsWith(`${k}/`)))
  }

  async removeTemporary(id: string): Promise<void> {
    const space = id.indexOf(' ')
    const key = id.slice(space + 1)
    if (space <= 0 || !this.isOurKey(key)) throw new IntegrityError(`not a temporary object of ${this.location}: ${id}`)
    await this.abortUpload(key, id.slice(0, space))
  }
}

function describe(err: unknown): string {
  const s = status(err)
  const n = errName(err)
  const message = err instanceof Error ? err.message : String(err)
  return [s ? `HTTP ${s}` : '', n && n !== 'Error' && !message.startsWith(n) ? n : '', message].filter(Boolean).join(' ')
}

const md5Clients = new WeakSet<object>()

/**
 * DeleteObjects must carry Content-MD5 on several S3-compatible servers (Swift's s3api answers
 * 400 to the CRC32 the SDK sends instead); AWS accepts it too.
 */
function addContentMd5(client: SDK.S3Client): void {
  if (md5Clients.has(client)) return
  md5Clients.add(client)
  type Handler = (args: {request: unknown}) => Promise<unknown>
  const middleware = (next: Handler): Handler => async (args) => {
    const req = args.request as {query?: Record<string, unknown>; method?: string; headers?: Record<string, string>; body?: unknown}
    if (req.method === 'POST' && req.query && 'delete' in req.query && req.headers && (typeof req.body === 'string' || req.body instanceof Uint8Array)) {
      for (const h of Object.keys(req.headers)) if (/^x-amz-(sdk-)?checksum-/i.test(h)) delete req.headers[h]
      req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64')
    }
    return next(args)
  }
  client.middlewareStack.addRelativeTo(middleware as never, {relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'ckptContentMd5', override: true})
}
