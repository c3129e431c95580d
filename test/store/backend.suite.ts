// The backend contract (src/store/backend.ts) as one suite, run against every backend: the
// local directory, S3 (a real Swift s3api server), and S3 through a fault-injecting proxy.
// A backend that passes it can carry a repository; nothing above the contract knows which one.
import {describe, expect, test} from 'vitest'

import {IntegrityError, ObjectMissingError} from '../../src/core/errors.js'
import type {Backend, ObjectKind} from '../../src/store/backend.js'
import {seededBytes} from '../helpers/tree.js'

export interface BackendHarness {
  backend: Backend
  /** Leave what a writer that died mid-write leaves (a temp file; an unfinished multipart upload). */
  leaveTemporary(kind: ObjectKind, name: string): Promise<void>
  cleanup(): Promise<void>
}

const A = 'ab' + '0'.repeat(62)
const B = 'ab' + '1'.repeat(62)
const C = 'cd' + '2'.repeat(62)

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => {
    throw new Error('expected a rejection')
  }, (err: unknown) => err)
}

/** What list() shows once the backend's listing lag has passed (the contract's bound). */
async function listed(b: Backend, kind: ObjectKind): Promise<Map<string, number>> {
  if (b.capabilities.listLagMs > 0) await new Promise((r) => setTimeout(r, b.capabilities.listLagMs))
  const out = new Map<string, number>()
  for await (const o of b.list(kind)) {
    expect(out.has(o.name), `${o.name} listed twice`).toBe(false)
    out.set(o.name, o.size)
  }
  return out
}

export function backendSuite(label: string, make: () => Promise<BackendHarness>): void {
  const withBackend = (name: string, fn: (h: BackendHarness) => Promise<void>, timeout?: number) =>
    test(name, async () => {
      const h = await make()
      try {
        await fn(h)
      } finally {
        await h.cleanup()
      }
    }, timeout)

  describe(`backend contract: ${label}`, () => {
    withBackend('a new location is empty; initLayout is idempotent; a put makes it non-empty', async ({backend}) => {
      expect(await backend.isEmpty()).toBe(true)
      await backend.initLayout()
      await backend.initLayout()
      await backend.put('config', 'config', Buffer.from('cfg'))
      expect(await backend.isEmpty()).toBe(false)
    })

    withBackend('put, get and stat; parts are joined; a put replaces the object whole', async ({backend}) => {
      await backend.initLayout()
      const before = Date.now()
      await backend.put('data', A, [Buffer.from('hel'), new Uint8Array([0x6c, 0x6f])])
      expect((await backend.get('data', A)).toString()).toBe('hello')
      const st = await backend.stat('data', A)
      expect(st.size).toBe(5)
      // Object stores keep whole seconds (Swift's Last-Modified).
      expect(st.mtimeMs).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 2000)
      await backend.put('locks', 'x1', Buffer.from('first version, longer'))
      await backend.put('locks', 'x1', Buffer.from('second'))
      expect((await backend.get('locks', 'x1')).toString()).toBe('second')
      await backend.put('pins', A, new Uint8Array(0))
      expect((await backend.get('pins', A)).length).toBe(0)
    })

    withBackend('ranged reads, into a caller buffer; a range past the end is an error, never short', async ({backend}) => {
      await backend.initLayout()
      const bytes = seededBytes(100_000, 7)
      await backend.put('data', A, bytes)
      expect((await backend.get('data', A, {offset: 1000, length: 5000})).equals(bytes.subarray(1000, 6000))).toBe(true)
      const into = Buffer.alloc(10_000)
      const view = await backend.get('data', A, {offset: 99_000, length: 1000}, into)
      expect(view.buffer).toBe(into.buffer)
      expect(view.equals(bytes.subarray(99_000))).toBe(true)
      expect(await caught(backend.get('data', A, {offset: 99_500, length: 1000}))).toBeInstanceOf(IntegrityError)
      expect(await caught(backend.get('data', A, {offset: 200_000, length: 10}))).toBeInstanceOf(IntegrityError)
    })

    withBackend('a missing object: get and stat say so; delete succeeds', async ({backend}) => {
      await backend.initLayout()
      expect(await caught(backend.get('index', C))).toBeInstanceOf(ObjectMissingError)
      expect(await caught(backend.get('data', A, {offset: 0, length: 10}))).toBeInstanceOf(ObjectMissingError)
      expect(await caught(backend.stat('snapshots', C))).toBeInstanceOf(ObjectMissingError)
      await backend.delete('data', A)
      await backend.put('index', C, Buffer.from('x'))
      await backend.delete('index', C)
      await backend.delete('index', C)
      expect(await caught(backend.get('index', C))).toBeInstanceOf(ObjectMissingError)
    })

    withBackend('deleteMany: the named objects go, missing ones are no error, others stay', async ({backend}) => {
      await backend.initLayout()
      await Promise.all([A, B, C].map((n) => backend.put('data', n, Buffer.from(n))))
      await backend.deleteMany('data', [A, C, 'ef' + '3'.repeat(62)])
      await backend.deleteMany('data', [])
      expect(await caught(backend.get('data', A))).toBeInstanceOf(ObjectMissingError)
      expect(await caught(backend.get('data', C))).toBeInstanceOf(ObjectMissingError)
      expect((await backend.get('data', B)).toString()).toBe(B)
      expect([...(await listed(backend, 'data')).keys()]).toEqual([B])
    })

    withBackend('create: pieces written in any order; nothing visible before commit; abort leaves nothing', async ({backend}) => {
      await backend.initLayout()
      const bytes = seededBytes(3 * 1024 * 1024 + 17, 3)
      const w = await backend.create('data', A)
      const cut = [0, 1_000_000, 2_500_000, bytes.length]
      // Out of order and overlapping in time, from buffers reused once each write resolves.
      const scratch = Buffer.alloc(1_500_000)
      for (const i of [2, 0, 1]) {
        const piece = scratch.subarray(0, cut[i + 1]! - cut[i]!)
        bytes.copy(piece, 0, cut[i], cut[i + 1])
        await w.write(piece, cut[i]!)
        scratch.fill(0)
      }
      expect(await caught(backend.get('data', A))).toBeInstanceOf(ObjectMissingError)
      expect((await listed(backend, 'data')).has(A)).toBe(false)
      await w.commit()
      expect((await backend.get('data', A)).equals(bytes)).toBe(true)

      const aborted = await backend.create('data', B)
      await aborted.write(Buffer.from('partial'), 0)
      await aborted.abort()
      expect(await caught(backend.get('data', B))).toBeInstanceOf(ObjectMissingError)
      const data = await listed(backend, 'data')
      expect([...data.keys()]).toEqual([A])
      const temps = []
      for await (const t of backend.temporaries()) temps.push(t)
      expect(temps).toEqual([])
    })

    withBackend('large objects (multipart on object stores) round-trip, by put and by create', async ({backend}) => {
      await backend.initLayout()
      const bytes = seededBytes(13 * 1024 * 1024, 11)
      await backend.put('data', A, bytes)
      expect((await backend.get('data', A)).equals(bytes)).toBe(true)
      const w = await backend.create('data', B)
      await Promise.all([w.write(bytes.subarray(0, 7_000_000), 0), w.write(bytes.subarray(7_000_000), 7_000_000)])
      await w.commit()
      expect((await backend.get('data', B, {offset: 6_999_990, length: 20})).equals(bytes.subarray(6_999_990, 7_000_010))).toBe(true)
      expect((await backend.stat('data', B)).size).toBe(bytes.length)
    }, 120_000)

    withBackend('list: every object of a kind once, with its size, across pages; kinds are apart', async ({backend}) => {
      await backend.initLayout()
      const names = Array.from({length: 23}, (_, i) => i.toString(16).padStart(2, '0') + 'e'.repeat(62))
      await Promise.all(names.map((n, i) => backend.put('data', n, Buffer.alloc(i + 1))))
      await backend.put('index', C, Buffer.from('idx'))
      await backend.put('config', 'config', Buffer.from('cfg'))
      const data = await listed(backend, 'data')
      expect([...data.keys()].sort()).toEqual(names)
      names.forEach((n, i) => expect(data.get(n)).toBe(i + 1))
      expect([...(await listed(backend, 'index')).keys()]).toEqual([C])
      expect([...(await listed(backend, 'config')).keys()]).toEqual(['config'])
      expect([...(await listed(backend, 'snapshots')).keys()]).toEqual([])
    })

    withBackend('temporaries: what a dead writer left is listed (never by list) and can be removed', async (h) => {
      const {backend} = h
      await backend.initLayout()
      await h.leaveTemporary('data', A)
      const temps = []
      for await (const t of backend.temporaries()) temps.push(t)
      expect(temps.length).toBe(1)
      expect(temps[0]!.size).toBeGreaterThan(0)
      expect(temps[0]!.mtimeMs).toBeGreaterThan(Date.now() - 120_000)
      expect((await listed(backend, 'data')).size).toBe(0)
      await backend.removeTemporary(temps[0]!.id)
      await backend.removeTemporary(temps[0]!.id)
      const after = []
      for await (const t of backend.temporaries()) after.push(t)
      expect(after).toEqual([])
    })

    withBackend('names outside [0-9A-Za-z_-] are refused before any request', async ({backend}) => {
      await backend.initLayout()
      for (const bad of ['../x', 'a/b', '', 'a b', 'x'.repeat(129)]) {
        expect(await caught(backend.put('index', bad, Buffer.from('x')))).toBeInstanceOf(IntegrityError)
        expect(await caught(backend.get('snapshots', bad))).toBeInstanceOf(IntegrityError)
      }
      expect(await caught(backend.put('data', 'zz' + '0'.repeat(62), Buffer.from('x')))).toBeInstanceOf(IntegrityError)
    })
  })
}
