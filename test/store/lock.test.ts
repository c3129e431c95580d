import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, test, vi} from 'vitest'
import {LockedError, ReadOnlyRepositoryError} from '../../src/core/errors.js'
import {LocalBackend} from '../../src/store/local.js'
import {
  describeHolder, heldLockCount, isStale, type LockInfo, type LockOptions, REFRESH_EVERY_MS, releaseHeldLocks, removeLocks, RepositoryLock,
  setLockReporter, STALE_AFTER_MS, unlockHint, withLock,
} from '../../src/store/lock.js'
import {makeReadOnly} from '../helpers/readonly.js'
import {tempDir} from '../helpers/tree.js'

const MINUTE = 60_000
const HOST = os.hostname()

let root: string
let backend: LocalBackend
const held: RepositoryLock[] = []

async function setUp(): Promise<void> {
  root = await tempDir('ckpt-lock-')
  backend = new LocalBackend(path.join(root, 'repo'))
  await backend.initLayout()
}
async function tearDown(): Promise<void> {
  vi.useRealTimers()
  for (const l of held.splice(0)) await l.release()
  await fsp.rm(root, {recursive: true, force: true})
}

async function acquire(opts: LockOptions): Promise<RepositoryLock> {
  const lock = await RepositoryLock.acquire(backend, opts)
  held.push(lock)
  return lock
}

async function lockNames(): Promise<string[]> {
  const names: string[] = []
  for await (const o of backend.list('locks')) names.push(o.name)
  return names.sort()
}

async function readLock(name: string): Promise<LockInfo> {
  return JSON.parse((await backend.get('locks', name)).toString('utf8')) as LockInfo
}

async function lockedError(p: Promise<unknown>): Promise<LockedError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(LockedError)
  return err as LockedError
}

function foreign(info: Partial<LockInfo>): LockInfo {
  const stamp = new Date().toISOString()
  return {host: 'other-host.example', pid: 4242, pidStart: 777, exclusive: false, command: 'snapshot', created: stamp, refreshed: stamp, ...info}
}

async function putLock(name: string, info: LockInfo): Promise<void> {
  await backend.put('locks', name, Buffer.from(JSON.stringify(info)))
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
  const pid = child.pid!
  await new Promise<void>((resolve) => child.on('exit', () => resolve()))
  // A reaped child's pid is free; make sure nothing took it since.
  expect(() => process.kill(pid, 0)).toThrow()
  return pid
}

describe('RepositoryLock', () => {
  beforeEach(setUp)
  afterEach(tearDown)

  test('the lock object describes its holder', async () => {
    const lock = await acquire({exclusive: false, command: 'snapshot'})
    expect(lock.name).toMatch(/^s[0-9a-f]{24}$/)
    expect(await lockNames()).toEqual([lock.name])
    const info = await readLock(lock.name)
    expect(info).toEqual({host: HOST, pid: process.pid, pidStart: info.pidStart, exclusive: false, command: 'snapshot', created: info.created, refreshed: info.created})
    expect(typeof info.pidStart).toBe('number')
    expect(Math.abs(Date.parse(info.created) - Date.now())).toBeLessThan(MINUTE)
    await lock.release()
    const exclusive = await acquire({exclusive: true, command: 'prune'})
    expect(exclusive.name).toMatch(/^x[0-9a-f]{24}$/)
  })

  test('shared locks coexist', async () => {
    const a = await acquire({exclusive: false, command: 'snapshot'})
    const b = await acquire({exclusive: false, command: 'restore'})
    expect(await lockNames()).toEqual([a.name, b.name].sort())
    await a.release()
    await b.release()
    expect(await lockNames()).toEqual([])
  })

  test('exclusive after shared: LockedError naming the holder, and no lock of ours left behind', async () => {
    const a = await acquire({exclusive: false, command: 'snapshot ./state'})
    const info = await readLock(a.name)
    const err = await lockedError(RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'}))
    expect(err.message).toBe(`repository ${backend.location} is locked: shared lock held by "snapshot ./state" (pid ${process.pid} on ${HOST}, since ${info.created}); if no ckpt is running there, break the lock with: ckpt unlock --remove-all --repo ${backend.location}`)
    expect(err.data.holder).toEqual(info)
    expect(err.exitCode).toBe(11)
    expect(await lockNames()).toEqual([a.name])
  })

  test('shared after exclusive: LockedError naming the holder', async () => {
    const x = await acquire({exclusive: true, command: 'prune'})
    const info = await readLock(x.name)
    const err = await lockedError(RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'}))
    expect(err.message).toBe(`repository ${backend.location} is locked: exclusive lock held by "prune" (pid ${process.pid} on ${HOST}, since ${info.created}); ${unlockHint(backend.location)}`)
    expect(await lockNames()).toEqual([x.name])
  })

  test('a holder on another host is named with its pid, host and command', async () => {
    const other = foreign({exclusive: true, command: 'prune --keep-last 3', pid: 31337, created: '2024-01-01T00:00:00.000Z', refreshed: new Date(Date.now() - MINUTE).toISOString()})
    await putLock('xforeign', other)
    const err = await lockedError(RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'}))
    expect(err.message).toBe(`repository ${backend.location} is locked: exclusive lock held by "prune --keep-last 3" (pid 31337 on other-host.example, since 2024-01-01T00:00:00.000Z); ${unlockHint(backend.location)}`)
    expect(err.data.holder).toEqual(other)
  })

  test('a lock of a dead process on this host is removed automatically', async () => {
    const pid = await deadPid()
    const dead = foreign({host: HOST, pid, exclusive: true, command: 'crashed prune'})
    await putLock('xdead', dead)
    const removed: [LockInfo | undefined, string][] = []
    const lock = await acquire({exclusive: true, command: 'prune', onStaleRemoved: (info, name) => removed.push([info, name])})
    expect(removed).toEqual([[dead, 'xdead']])
    expect(await lockNames()).toEqual([lock.name])
  })

  test('a lock from another host refreshed 31 minutes ago is stale and removed', async () => {
    const old = foreign({exclusive: true, refreshed: new Date(Date.now() - 31 * MINUTE).toISOString()})
    await putLock('xold', old)
    const removed: string[] = []
    const lock = await acquire({exclusive: false, command: 'snapshot', onStaleRemoved: (_info, name) => removed.push(name)})
    expect(removed).toEqual(['xold'])
    expect(await lockNames()).toEqual([lock.name])
  })

  test('a lock from another host refreshed 1 minute ago is not stale', async () => {
    const recent = foreign({exclusive: false, refreshed: new Date(Date.now() - MINUTE).toISOString()})
    await putLock('srecent', recent)
    const removed: string[] = []
    const err = await lockedError(RepositoryLock.acquire(backend, {exclusive: true, command: 'prune', onStaleRemoved: (_info, name) => removed.push(name)}))
    expect(err.data.holder).toEqual(recent)
    expect(removed).toEqual([])
    expect(await lockNames()).toEqual(['srecent'])
    // A shared lock can join it.
    const shared = await acquire({exclusive: false, command: 'snapshot'})
    expect(await lockNames()).toEqual(['srecent', shared.name].sort())
  })

  test('an unparsable lock is removed at once and reported (a live ckpt never leaves one: put is atomic)', async () => {
    await backend.put('locks', 'sgarbage', Buffer.from('not json'))
    await backend.put('locks', 'xhalf', Buffer.from('{"host":'))
    const removed: [LockInfo | undefined, string][] = []
    const lock = await acquire({exclusive: true, command: 'prune', onStaleRemoved: (info, name) => removed.push([info, name])})
    expect(removed.sort((a, b) => a[1].localeCompare(b[1]))).toEqual([[undefined, 'sgarbage'], [undefined, 'xhalf']])
    expect(await lockNames()).toEqual([lock.name])
  })

  test('a lock whose refresh time lies in the future is judged by when it was stored', async () => {
    const future = foreign({exclusive: true, refreshed: new Date(Date.now() + 10 * MINUTE).toISOString()})
    await putLock('xfuture', future)
    // Stored just now: a live holder with a fast clock. It blocks.
    await lockedError(RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'}))
    // Stored 31 minutes ago and never refreshed since: stale, whatever its own clock says.
    const old = (Date.now() - 31 * MINUTE) / 1000
    await fsp.utimes(path.join(backend.root, 'locks', 'xfuture'), old, old)
    const removed: string[] = []
    const lock = await acquire({exclusive: false, command: 'snapshot', onStaleRemoved: (_info, name) => removed.push(name)})
    expect(removed).toEqual(['xfuture'])
    expect(await lockNames()).toEqual([lock.name])
  })

  test('a lock dated further ahead than a lock lives is stale even with a forged mtime', async () => {
    const ahead = new Date(Date.now() + 24 * 60 * MINUTE)
    await putLock('xforged', foreign({exclusive: true, refreshed: ahead.toISOString()}))
    await fsp.utimes(path.join(backend.root, 'locks', 'xforged'), ahead, ahead)
    const removed: string[] = []
    await acquire({exclusive: true, command: 'prune', onStaleRemoved: (_info, name) => removed.push(name)})
    expect(removed).toEqual(['xforged'])
  })

  test('a same-host lock of pid 1 without a start time goes stale by its refresh time', async () => {
    await putLock('xinit', foreign({host: HOST, pid: 1, pidStart: null, exclusive: true, refreshed: new Date(Date.now() - 31 * MINUTE).toISOString()}))
    const removed: string[] = []
    await acquire({exclusive: true, command: 'prune', onStaleRemoved: (_info, name) => removed.push(name)})
    expect(removed).toEqual(['xinit'])
  })

  test('without a callback, stale removals go to the process reporter, with the location', async () => {
    const seen: string[] = []
    setLockReporter({staleRemoved: (info, name, location) => seen.push(`${name} ${info ? 'parsed' : 'unparsable'} ${location}`)})
    try {
      await backend.put('locks', 'sgarbage', Buffer.from('{}'))
      await acquire({exclusive: false, command: 'snapshot'})
      expect(seen).toEqual([`sgarbage unparsable ${backend.location}`])
    } finally {
      setLockReporter({})
    }
  })

  test('retryMs waits until the holder releases', async () => {
    const holder = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'})
    const start = Date.now()
    const timer = setTimeout(() => void holder.release(), 300)
    try {
      const lock = await acquire({exclusive: false, command: 'snapshot', retryMs: 10_000})
      const waited = Date.now() - start
      expect(waited).toBeGreaterThanOrEqual(290)
      expect(waited).toBeLessThan(5000)
      expect(await lockNames()).toEqual([lock.name])
    } finally {
      clearTimeout(timer)
      await holder.release()
    }
  })

  test('retryMs gives up at the deadline (fake clock)', async () => {
    const other = foreign({exclusive: true})
    await putLock('xother', other)
    let t = Date.now()
    const sleeps: number[] = []
    const err = await lockedError(RepositoryLock.acquire(backend, {
      exclusive: false, command: 'snapshot', retryMs: 5000,
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms)
        t += ms
      },
    }))
    expect(err.data.holder).toEqual(other)
    expect(sleeps.length).toBeGreaterThan(2)
    // Sleeps are jittered fractions of a ms: they add up to the deadline, give or take rounding and the 10 ms floor.
    const slept = sleeps.reduce((a, b) => a + b, 0)
    expect(slept).toBeGreaterThan(4999)
    expect(slept).toBeLessThanOrEqual(5010)
    for (const ms of sleeps) {
      expect(ms).toBeGreaterThanOrEqual(10)
      expect(ms).toBeLessThanOrEqual(3000)
    }
    expect(await lockNames()).toEqual(['xother'])
  })

  test('a held lock is refreshed every REFRESH_EVERY_MS', async () => {
    vi.useFakeTimers({toFake: ['setInterval', 'clearInterval']})
    let t = Date.parse('2024-05-06T07:00:00.000Z')
    const lock = await acquire({exclusive: false, command: 'snapshot', now: () => t})
    expect((await readLock(lock.name)).refreshed).toBe('2024-05-06T07:00:00.000Z')
    t += REFRESH_EVERY_MS
    vi.advanceTimersByTime(REFRESH_EVERY_MS)
    await vi.waitFor(async () => expect((await readLock(lock.name)).refreshed).toBe('2024-05-06T07:05:00.000Z'), {timeout: 5000, interval: 10})
    const info = await readLock(lock.name)
    expect(info.created).toBe('2024-05-06T07:00:00.000Z')
    await lock.release()
    vi.advanceTimersByTime(REFRESH_EVERY_MS * 3)
    await new Promise((r) => setTimeout(r, 50))
    expect(await lockNames()).toEqual([])
  })

  test('release is idempotent', async () => {
    const lock = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'})
    await lock.release()
    await lock.release()
    expect(await lockNames()).toEqual([])
  })
})

describe('withLock', () => {
  beforeEach(setUp)
  afterEach(tearDown)

  test('returns fn\'s value and releases', async () => {
    const result = await withLock(backend, {exclusive: true, command: 'prune'}, async (lock) => {
      expect(await lockNames()).toEqual([lock.name])
      return 42
    })
    expect(result).toBe(42)
    expect(await lockNames()).toEqual([])
  })

  test('releases when fn throws', async () => {
    await expect(withLock(backend, {exclusive: false, command: 'snapshot'}, async () => {
      throw new Error('boom')
    })).rejects.toThrow('boom')
    expect(await lockNames()).toEqual([])
  })
})

describe('isStale', () => {
  const now = Date.parse('2024-05-06T12:00:00.000Z')
  const ago = (ms: number) => new Date(now - ms).toISOString()

  test.each<[string, Partial<LockInfo>, boolean]>([
    ['other host, refreshed 1 minute ago', {refreshed: ago(MINUTE)}, false],
    ['other host, refreshed exactly 30 minutes ago', {refreshed: ago(STALE_AFTER_MS)}, false],
    ['other host, refreshed 30 minutes and 1 ms ago', {refreshed: ago(STALE_AFTER_MS + 1)}, true],
    ['other host, refreshed 31 minutes ago', {refreshed: ago(31 * MINUTE)}, true],
    ['other host, refreshed in the future', {refreshed: new Date(now + MINUTE).toISOString()}, false],
    ['other host, unreadable refresh time', {refreshed: 'soon'}, true],
    ['other host, empty refresh time', {refreshed: ''}, true],
  ])('%s', (_what, info, stale) => {
    expect(isStale(foreign(info), now, {hostname: 'this-host'})).toBe(stale)
  })

  test.each<[string, Partial<LockInfo>, number | undefined, boolean]>([
    ['10 minutes ahead, no mtime known', {refreshed: new Date(now + 10 * MINUTE).toISOString()}, undefined, false],
    ['10 minutes ahead, stored 1 minute ago', {refreshed: new Date(now + 10 * MINUTE).toISOString()}, now - MINUTE, false],
    ['10 minutes ahead, stored 31 minutes ago', {refreshed: new Date(now + 10 * MINUTE).toISOString()}, now - 31 * MINUTE, true],
    ['a day ahead, stored a day ahead too', {refreshed: new Date(now + 24 * 60 * MINUTE).toISOString()}, now + 24 * 60 * MINUTE, true],
    ['a day ahead, no mtime known', {refreshed: new Date(now + 24 * 60 * MINUTE).toISOString()}, undefined, true],
    ['29 minutes ahead, stored 29 minutes ahead', {refreshed: new Date(now + 29 * MINUTE).toISOString()}, now + 29 * MINUTE, false],
    ['in the past: the mtime does not extend it', {refreshed: ago(31 * MINUTE)}, now, true],
  ])('other host, refresh time %s', (_what, info, mtimeMs, stale) => {
    expect(isStale(foreign(info), now, {hostname: 'this-host', mtimeMs})).toBe(stale)
  })

  test('same host without a start time: stale when the pid is gone or the refresh is older than the limit', async () => {
    const init = foreign({host: 'this-host', pid: 1, pidStart: null})
    expect(isStale({...init, refreshed: ago(MINUTE)}, now, {hostname: 'this-host'})).toBe(false)
    expect(isStale({...init, refreshed: ago(31 * MINUTE)}, now, {hostname: 'this-host'})).toBe(true)
    expect(isStale({...init, pid: await deadPid(), refreshed: ago(MINUTE)}, now, {hostname: 'this-host'})).toBe(true)
  })

  test('same host: the process is judged, not the refresh time', async () => {
    await setUp()
    let mine: LockInfo
    try {
      const lock = await acquire({exclusive: false, command: 'snapshot'})
      mine = await readLock(lock.name)
    } finally {
      await tearDown()
    }
    const longAgo = {refreshed: ago(24 * 60 * MINUTE)}
    expect(isStale({...mine, ...longAgo}, now)).toBe(false)
    expect(isStale({...mine, pidStart: null, refreshed: ago(MINUTE)}, now)).toBe(false)
    // Same pid, another start time: the pid was reused by another process.
    expect(isStale({...mine, pidStart: mine.pidStart! + 1}, now)).toBe(true)
    const pid = await deadPid()
    expect(isStale({...mine, pid, refreshed: new Date(now).toISOString()}, now)).toBe(true)
  })

  test('the limits', () => {
    expect(STALE_AFTER_MS).toBe(30 * MINUTE)
    expect(REFRESH_EVERY_MS).toBe(5 * MINUTE)
  })
})

describe('describeHolder', () => {
  test('names kind, command, pid, host and time', () => {
    expect(describeHolder(foreign({exclusive: true, command: 'prune', pid: 12, host: 'h1', created: '2024-01-02T03:04:05.000Z'})))
      .toBe('exclusive lock held by "prune" (pid 12 on h1, since 2024-01-02T03:04:05.000Z)')
    expect(describeHolder(foreign({exclusive: false, command: 'snapshot', pid: 1, host: 'h2', created: 'x'})))
      .toBe('shared lock held by "snapshot" (pid 1 on h2, since x)')
  })
})

describe('held locks', () => {
  beforeEach(setUp)
  afterEach(tearDown)

  test('the registry holds what this process holds; releaseHeldLocks releases them all', async () => {
    expect(heldLockCount()).toBe(0)
    const a = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'})
    await RepositoryLock.acquire(backend, {exclusive: false, command: 'restore'})
    expect(heldLockCount()).toBe(2)
    await a.release()
    expect(heldLockCount()).toBe(1)
    await releaseHeldLocks()
    expect(heldLockCount()).toBe(0)
    expect(await lockNames()).toEqual([])
  })
})

describe('removeLocks (ckpt unlock)', () => {
  beforeEach(setUp)
  afterEach(tearDown)

  test('removes stale and unparsable locks, keeps live ones; all removes every lock', async () => {
    await putLock('sold', foreign({refreshed: new Date(Date.now() - 31 * MINUTE).toISOString()}))
    await putLock('xlive', foreign({exclusive: true}))
    await backend.put('locks', 'sjunk', Buffer.from('junk'))
    const first = await removeLocks(backend, {all: false, now: Date.now()})
    expect(first.removed.map((e) => e.name).sort()).toEqual(['sjunk', 'sold'])
    expect(first.remaining.map((e) => e.name)).toEqual(['xlive'])
    expect(await lockNames()).toEqual(['xlive'])
    const all = await removeLocks(backend, {all: true, now: Date.now()})
    expect(all.removed.map((e) => e.name)).toEqual(['xlive'])
    expect(all.remaining).toEqual([])
    expect(await lockNames()).toEqual([])
  })
})

describe('a read-only repository', () => {
  beforeEach(setUp)
  afterEach(tearDown)

  for (const how of ['ro-bind-mount', 'chattr +i'] as const) {
    test(`(${how}) a read-only command runs without a lock and says so once; a writer fails with ReadOnlyRepositoryError`, async (ctx) => {
      const locks = path.join(backend.root, 'locks')
      const ro = makeReadOnly(locks, how)
      if (!ro) {
        ctx.skip(`this machine allows neither a read-only bind mount nor chattr +i on ${locks}`)
        return
      }
      const said: string[] = []
      setLockReporter({unlocked: (location, code) => said.push(`${location} ${code}`)})
      try {
        const ran = await withLock(backend, {exclusive: false, readOnly: true, command: 'verify'}, async (lock) => {
          expect(lock.locked).toBe(false)
          return 'read'
        })
        expect(ran).toBe('read')
        expect(said).toEqual([`${backend.location} ${ro.how === 'chattr +i' ? 'EPERM' : 'EROFS'}`])
        const err = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'}).then(() => undefined, (e: unknown) => e)
        expect(err).toBeInstanceOf(ReadOnlyRepositoryError)
        expect((err as ReadOnlyRepositoryError).exitCode).toBe(14)
        expect((err as Error).message).toMatch(/is read-only \(E(ROFS|PERM)\): "snapshot" must write to it/)
        await expect(RepositoryLock.acquire(backend, {exclusive: true, readOnly: true, command: 'prune'})).rejects.toBeInstanceOf(ReadOnlyRepositoryError)
        expect(heldLockCount()).toBe(0)
      } finally {
        setLockReporter({})
        ro.undo()
      }
    })
  }

  test('a live exclusive lock on a read-only repository still stops a reader', async (ctx) => {
    await putLock('xlive', foreign({exclusive: true}))
    const locks = path.join(backend.root, 'locks')
    const ro = makeReadOnly(locks)
    if (!ro) {
      ctx.skip(`this machine allows neither a read-only bind mount nor chattr +i on ${locks}`)
      return
    }
    try {
      await lockedError(RepositoryLock.acquire(backend, {exclusive: false, readOnly: true, command: 'verify'}))
    } finally {
      ro.undo()
    }
  })
})
