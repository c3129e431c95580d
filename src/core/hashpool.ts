// BLAKE3 off the main thread, so hashing runs beside chunking (snapshot) and beside writing
// (restore). With the native addon a batch is one job on libuv's thread pool, reading the views
// in place: no worker threads, no copies, no extra V8 heaps. Without it, on worker threads
// running blake3-wasm: data is passed as views over SharedArrayBuffers (no copy; a view over an
// ordinary buffer is copied into shared memory first), each batch one message. Either way
// results come back in the order asked, and the cost of a hand-off is paid per batch, not per
// chunk.
import {createRequire} from 'node:module'
import os from 'node:os'
import {Worker} from 'node:worker_threads'

import {digestFromBytes, ID_BYTES} from './hash.js'
import {type NativeAddon, nativeAddon} from './native.js'

// The worker is CommonJS passed as text, so it runs the same from src/ (tests) and dist/.
const WORKER_SOURCE = `
const {parentPort, workerData} = require('node:worker_threads')
const wasm = require(workerData.blake3)
parentPort.on('message', ({id, views}) => {
  const out = new Uint8Array(${ID_BYTES} * views.length)
  for (let i = 0; i < views.length; i++) {
    const [buffer, offset, length] = views[i]
    const data = new Uint8Array(buffer, offset, length)
    // The wasm module copies its input; 1 MiB pieces keep its memory small.
    if (length <= 1048576) {
      wasm.hash(data, out.subarray(i * ${ID_BYTES}, (i + 1) * ${ID_BYTES}))
    } else {
      const h = wasm.create_hasher()
      for (let at = 0; at < length; at += 1048576) h.update(data.subarray(at, Math.min(at + 1048576, length)))
      h.digest(out.subarray(i * ${ID_BYTES}, (i + 1) * ${ID_BYTES}))
      h.free()
    }
  }
  parentPort.postMessage({id, out}, [out.buffer])
})
`

type View = [SharedArrayBuffer, number, number]

interface Pending {
  resolve: (ids: Buffer[]) => void
  reject: (err: unknown) => void
  count: number
}

export class HashPool {
  private readonly addon: NativeAddon | null
  private readonly workers: Worker[] = []
  private readonly pending = new Map<number, Pending>()
  private readonly load: number[] = []
  private nextId = 0
  private closed = false

  /** `engine: 'workers'` runs blake3-wasm on worker threads even when the addon is built (tests). */
  constructor(size = defaultPoolSize(), engine: 'native' | 'workers' = 'native') {
    this.addon = engine === 'native' ? nativeAddon() : null
    if (this.addon) return
    const blake3 = createRequire(import.meta.url).resolve('blake3-wasm/dist/wasm/nodejs/blake3_js.js')
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, {eval: true, workerData: {blake3}})
      w.unref()
      w.on('message', (m: {id: number; out: Uint8Array}) => this.done(i, m))
      w.on('error', (err) => this.failAll(err))
      this.workers.push(w)
      this.load.push(0)
    }
  }

  /** BLAKE3 of each view, in order. Views over SharedArrayBuffers are not copied. */
  hash(views: readonly Uint8Array[]): Promise<Buffer[]> {
    if (this.closed) return Promise.reject(new Error('hash pool is closed'))
    if (views.length === 0) return Promise.resolve([])
    if (this.addon) return this.hashNative(this.addon, views)
    const id = this.nextId++
    const shared: View[] = views.map(toShared)
    // The least busy worker (by chunks outstanding) takes the batch.
    let w = 0
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[w]!) w = i
    this.load[w]! += views.length
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject, count: views.length})
      this.workers[w]!.postMessage({id, views: shared})
    })
  }

  private async hashNative(addon: NativeAddon, views: readonly Uint8Array[]): Promise<Buffer[]> {
    const out = new Uint8Array(ID_BYTES * views.length)
    await addon.hashMany(views, out)
    const ids: Buffer[] = []
    for (let i = 0; i < views.length; i++) ids.push(digestFromBytes(out.subarray(i * ID_BYTES, (i + 1) * ID_BYTES)))
    return ids
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all(this.workers.map((w) => w.terminate()))
  }

  private done(worker: number, m: {id: number; out: Uint8Array}): void {
    const p = this.pending.get(m.id)
    if (!p) return
    this.pending.delete(m.id)
    this.load[worker]! -= p.count
    const ids: Buffer[] = []
    for (let i = 0; i < p.count; i++) ids.push(digestFromBytes(m.out.subarray(i * ID_BYTES, (i + 1) * ID_BYTES)))
    p.resolve(ids)
  }

  private failAll(err: unknown): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }
}

function toShared(v: Uint8Array): View {
  if (v.buffer instanceof SharedArrayBuffer) return [v.buffer, v.byteOffset, v.byteLength]
  const copy = new Uint8Array(new SharedArrayBuffer(v.byteLength))
  copy.set(v)
  return [copy.buffer as SharedArrayBuffer, 0, v.byteLength]
}

/** One worker per core: on two cores the main thread chunks or writes while two workers hash. */
export function defaultPoolSize(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()))
}

/**
 * A buffer for data that will be hashed on the pool: over shared memory when the pool runs
 * workers, so views of it cross to them without a copy; an ordinary one for the native pool.
 */
export function hashBuffer(size: number): Buffer {
  return nativeAddon() ? Buffer.allocUnsafeSlow(size) : Buffer.from(new SharedArrayBuffer(size))
}
