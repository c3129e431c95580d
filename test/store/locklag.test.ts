// Locks on a store whose listings lag (src/store/lock.ts, "Listing lag"): a backend that hides
// objects from list() for `lag` ms after their put, and keeps listing deleted ones as long, as
// Swift's asynchronous container updates do. An exclusive and a shared acquirer started at any
// offset never both hold; with the margin switched off (the backend claiming no lag), they do.
import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, test} from 'vitest'

import {LockedError} from '../../src/core/errors.js'
import type {Backend, BackendCapabilities, ByteRange, ObjectInfo, ObjectKind, ObjectWriter, TempObject} from '../../src/store/backend.js'
import {LocalBackend} from '../../src/store/local.js'
import {RepositoryLock} from '../../src/store/lock.js'
import {tempDir} from '../helpers/tree.js'

class LaggyBackend implements Backend {
  private readonly changed = new Map<string, {at: number; deleted: boolean; info?: ObjectInfo}>()
  readonly capabilities: BackendCapabilities

  constructor(private readonly inner: LocalBackend, private readonly lag: number, claimedLag: number) {
    this.capabilities = {listLagMs: claimedLag}
  }

  get location(): string {
    return this.inner.location
  }

  isEmpty(): Promise<boolean> {
    return this.inner.isEmpty()
  }

  initLayout(): Promise<void> {
    return this.inner.initLayout()
  }

  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    await this.inner.put(kind, name, data)
    if (!this.changed.has(`${kind}/${name}`)) this.changed.set(`${kind}/${name}`, {at: Date.now(), deleted: false})
  }

  create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    return this.inner.create(kind, name)
  }

  get(kind: ObjectKind, name: string, range?: ByteRange, into?: Buffer): Promise<Buffer> {
    return this.inner.get(kind, name, range, into)
  }

  stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    return this.inner.stat(kind, name)
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    const now = Date.now()
    const seen = new Set<string>()
    for await (const o of this.inner.list(kind)) {
      const c = this.changed.get(`${kind}/${o.name}`)
      seen.add(o.name)
      if (c && !c.deleted && now - c.at < this.lag) continue // written too recently to be listed
      yield o
    }
    for (const [key, c] of this.changed) {
      const [k, name] = key.split('/') as [string, string]
      if (k === kind && c.deleted && now - c.at < this.lag && !seen.has(name) && c.info) yield c.info // deleted too recently to be gone
    }
  }

  async delete(kind: ObjectKind, name: string): Promise<void> {
    const info = await this.inner.stat(kind, name).catch(() => undefined)
    await this.inner.delete(kind, name)
    this.changed.set(`${kind}/${name}`, {at: Date.now(), deleted: true, info})
  }

  async deleteMany(kind: ObjectKind, names: readonly string[]): Promise<void> {
    for (const name of names) await this.delete(kind, name)
  }

  temporaries(): AsyncIterable<TempObject> {
    return this.inner.temporaries()
  }

  removeTemporary(id: string): Promise<void> {
    return this.inner.removeTemporary(id)
  }
}

const LAG = 60
let root: string

beforeEach(async () => {
  root = await tempDir('ckpt-locklag-')
})
afterEach(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

/** Start an exclusive and a shared acquirer `offset` ms apart (negative: shared first); how many held at once. */
async function race(claimedLag: number, offset: number): Promise<number> {
  const backend = new LaggyBackend(new LocalBackend(path.join(root, `r${claimedLag}-${offset}`)), LAG, claimedLag)
  await backend.initLayout()
  let holding = 0
  let maxHolding = 0
  const take = async (exclusive: boolean, delay: number) => {
    await new Promise((r) => setTimeout(r, Math.max(0, delay)))
    try {
      const lock = await RepositoryLock.acquire(backend, {exclusive, command: exclusive ? 'prune' : 'snapshot'})
      holding++
      maxHolding = Math.max(maxHolding, holding)
      // Hold long enough for the other to decide (its whole acquisition, margins included).
      await new Promise((r) => setTimeout(r, 6 * LAG))
      holding--
      await lock.release()
    } catch (err) {
      if (!(err instanceof LockedError)) throw err
    }
  }
  await Promise.all([take(true, offset), take(false, -offset)])
  return maxHolding
}

describe('locks under listing lag', () => {
  test('with the margin, an exclusive and a shared lock are never held at once, at any offset', async () => {
    for (const offset of [-2 * LAG, -LAG / 2, 0, LAG / 3, LAG, 2 * LAG, 3 * LAG, 4 * LAG]) {
      expect(await race(LAG, offset), `offset ${offset}`).toBeLessThanOrEqual(1)
    }
  })

  test('without it (the backend claims no lag), some offset lets both hold: the margin is what makes it safe', async () => {
    const results = []
    for (const offset of [-LAG / 2, 0, LAG / 3]) results.push(await race(0, offset))
    expect(Math.max(...results)).toBe(2)
  })
})
