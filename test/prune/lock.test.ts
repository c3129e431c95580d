// The lock behaviour prune relies on (test/store/lock.test.ts covers the rest): a prune waiting
// for its exclusive lock never makes a snapshot fail, and releasing a lock during a refresh
// leaves no lock behind.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, beforeEach, expect, test, vi} from 'vitest'

import {LockedError} from '../../src/core/errors.js'
import type {ObjectKind} from '../../src/store/backend.js'
import {LocalBackend} from '../../src/store/local.js'
import {REFRESH_EVERY_MS, RepositoryLock} from '../../src/store/lock.js'
import {tempDir} from '../helpers/tree.js'

let root: string
let backend: LocalBackend

beforeEach(async () => {
  root = await tempDir('ckpt-prune-lock-')
  backend = new LocalBackend(path.join(root, 'repo'))
  await backend.initLayout()
})
afterEach(async () => {
  vi.useRealTimers()
  await fsp.rm(root, {recursive: true, force: true})
})

async function lockNames(b = backend): Promise<string[]> {
  const out: string[] = []
  for await (const o of b.list('locks')) out.push(o.name)
  return out.sort()
}

test('while prune waits for the exclusive lock, snapshots starting meanwhile get their shared lock', async () => {
  const running = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot (long)'})
  // The waiting prune retries as fast as it can, so its lock object exists most of the time.
  let stop = false
  const prune = RepositoryLock.acquire(backend, {
    exclusive: true, command: 'prune', retryMs: 60_000,
    sleep: () => new Promise((r) => setTimeout(r, stop ? 0 : 1)),
  })
  const failures: string[] = []
  for (let i = 0; i < 100; i++) {
    try {
      const s = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'})
      await s.release()
    } catch (err) {
      if (!(err instanceof LockedError)) throw err
      failures.push(err.message)
    }
  }
  expect(failures).toEqual([])
  stop = true
  await running.release()
  const x = await prune
  expect(await lockNames()).toEqual([x.name])
  // Held (not pending) now: a snapshot fails, naming prune.
  await expect(RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'})).rejects.toThrow(/exclusive lock held by "prune"/)
  await x.release()
})

test('two exclusive acquirers never both hold the lock', async () => {
  let holders = 0
  let most = 0
  await Promise.all(Array.from({length: 4}, async () => {
    for (let i = 0; i < 5; i++) {
      const x = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune', retryMs: 30_000, sleep: (ms) => new Promise((r) => setTimeout(r, ms / 20))})
      holders++
      most = Math.max(most, holders)
      await new Promise((r) => setTimeout(r, 2))
      holders--
      await x.release()
    }
  }))
  expect(most).toBe(1)
  expect(await lockNames()).toEqual([])
})

test('releasing a lock while its refresh is being written leaves no lock behind', async () => {
  let gate: (() => void) | undefined
  class SlowLocks extends LocalBackend {
    override async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
      if (kind === 'locks' && gate === undefined && slow) await new Promise<void>((r) => (gate = r))
      return super.put(kind, name, data)
    }
  }
  let slow = false
  const b = new SlowLocks(backend.root)
  vi.useFakeTimers({toFake: ['setInterval', 'clearInterval']})
  const lock = await RepositoryLock.acquire(b, {exclusive: false, command: 'snapshot'})
  slow = true
  vi.advanceTimersByTime(REFRESH_EVERY_MS) // the refresh starts, and waits at the gate
  await vi.waitFor(() => expect(gate).toBeDefined())
  const released = lock.release()
  await new Promise((r) => setTimeout(r, 20))
  gate!()
  await released
  await new Promise((r) => setTimeout(r, 20))
  expect(await lockNames(b)).toEqual([])
})
