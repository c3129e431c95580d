// Repository locks: writers (snapshot, restore, verify) hold shared locks, prune's deleting
// phase holds an exclusive one. A lock is an object in `locks/`, refreshed while held.
// Acquire = write ours, then list: if a conflicting live lock exists, remove ours and retry
// or fail. Both sides write before they look, so two conflicting holders can never both
// proceed (at worst both back off and retry with jitter). An exclusive lock is first written
// as pending, which nobody counts as held, so a prune waiting for running snapshots to finish
// never makes a snapshot that starts meanwhile fail.
//
// Staleness, so that no lock blocks cron forever (docs/DESIGN.md, "Locks"):
// - same host: the holder's pid is gone, or belongs to a process started at another time; a
//   lock with no start time (one we cannot check for pid reuse) also by its refresh time;
// - other host: not refreshed for STALE_AFTER_MS. A refresh time in the future is judged by the
//   lock object's mtime instead, and one further ahead than STALE_AFTER_MS is stale at once;
// - unparsable: stale at once (put is atomic, so no live ckpt ever shows a partial lock).
//
// Listing lag: an object store's listing may miss a lock put up to L = capabilities.listLagMs
// ago. An exclusive acquirer waits 2L between writing its lock and listing; a shared one lists
// at once. If a shared acquirer's listing (at tS) missed the exclusive lock written at tX, then
// tS < tX + L, so the shared lock is listed from tS + L < tX + 2L: the exclusive side sees it.
// Two exclusive acquirers both wait, and the later one sees the earlier. Once held, the
// exclusive side waits L more, so the manifest of a writer whose lock is already gone (written
// before that lock was deleted) is in every listing it makes from then on.
//
// A read-only command (readOnly) on a repository it cannot write to runs without a lock.
// Every lock this process holds is in a registry, so a signal handler can release them.
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import os from 'node:os'

import {errnoCode, LockedError, ObjectMissingError, ReadOnlyRepositoryError} from '../core/errors.js'
import {faultPoint} from '../core/faultpoint.js'
import type {Backend} from './backend.js'

export const REFRESH_EVERY_MS = 5 * 60 * 1000
export const STALE_AFTER_MS = 30 * 60 * 1000

export interface LockInfo {
  host: string
  pid: number
  /** Process start time in clock ticks since boot (Linux), to tell a reused pid apart. */
  pidStart: number | null
  exclusive: boolean
  command: string
  created: string
  refreshed: string
  /** An exclusive lock written but not yet confirmed (see acquire): it conflicts with nothing. */
  pending?: boolean
}

export interface LockOptions {
  exclusive: boolean
  command: string
  /** How long to keep trying while another process holds a conflicting lock. */
  retryMs?: number
  /** Called when a stale lock is removed (info undefined: it was unparsable); default: the process's LockReporter. */
  onStaleRemoved?: (info: LockInfo | undefined, name: string) => void
  /**
   * The command only reads the repository: when the lock cannot be written because the
   * repository is read-only (EROFS, EACCES, EPERM), run without one, after checking that no live
   * exclusive lock is there, and say so (LockReporter.unlocked). A writer gets ReadOnlyRepositoryError.
   */
  readOnly?: boolean
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

export function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const start = Number(fields[19])
    return Number.isFinite(start) ? start : null
  } catch {
    return null
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return errnoCode(err) === 'EPERM'
  }
}

/**
 * For a process of this host: true when it is gone, or its pid now belongs to a process started
 * at another time. The one liveness rule of locks and temp objects (src/store/temp.ts).
 */
export function processGone(pid: number, pidStart: number | null): boolean {
  // kill(0 or a negative pid) signals a process group and "succeeds": such an owner could never be gone.
  if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return true
  const start = processStart(pid)
  return pidStart !== null && start !== null && start !== pidStart
}

export interface StaleCheck {
  hostname?: string
  /** The lock object's mtime (the clock of whoever stored it), to judge a refresh time in the future. */
  mtimeMs?: number
}

export function isStale(info: LockInfo, now: number, check: StaleCheck = {}): boolean {
  if (info.host === (check.hostname ?? os.hostname())) {
    if (processGone(info.pid, info.pidStart)) return true
    // Without a start time a running pid may be a reused one (pid 1 always runs): the refresh
    // time decides, as for another host. A live ckpt refreshes every REFRESH_EVERY_MS.
    return info.pidStart === null && refreshStale(info, now, check.mtimeMs)
  }
  return refreshStale(info, now, check.mtimeMs)
}

function refreshStale(info: LockInfo, now: number, mtimeMs: number | undefined): boolean {
  let refreshed = Date.parse(info.refreshed)
  if (!Number.isFinite(refreshed)) return true
  // A refresh time in the future (a skewed clock, or a forged file) would never age: judge it by
  // when the object was stored. A time further ahead than a lock lives (both clocks agreeing)
  // comes from no live holder.
  if (refreshed > now && mtimeMs !== undefined) refreshed = Math.min(refreshed, mtimeMs)
  if (refreshed > now + STALE_AFTER_MS) return true
  return now - refreshed > STALE_AFTER_MS
}

function parseLock(bytes: Buffer): LockInfo | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as Partial<LockInfo>
    if (typeof v.host !== 'string' || typeof v.pid !== 'number' || typeof v.exclusive !== 'boolean') return undefined
    return {
      host: v.host, pid: v.pid, pidStart: typeof v.pidStart === 'number' ? v.pidStart : null, exclusive: v.exclusive,
      command: typeof v.command === 'string' ? v.command : '?', created: String(v.created ?? ''), refreshed: String(v.refreshed ?? ''),
      ...(v.pending === true ? {pending: true} : {}),
    }
  } catch {
    return undefined
  }
}

export function describeHolder(info: LockInfo): string {
  return `${info.exclusive ? 'exclusive' : 'shared'} lock held by "${info.command}" (pid ${info.pid} on ${info.host}, since ${info.created})`
}

/** How to break a lock by hand: part of every "locked" message (exit code 11). */
export function unlockHint(location: string): string {
  return `if no ckpt is running there, break the lock with: ckpt unlock --remove-all --repo ${location}`
}

/** What the CLI says about locks when a call does not ask itself (set once per process). */
export interface LockReporter {
  staleRemoved?: (info: LockInfo | undefined, name: string, location: string) => void
  /** A read-only command runs without a lock: the repository could not be written (errno code). */
  unlocked?: (location: string, code: string) => void
}

let reporter: LockReporter = {}

export function setLockReporter(r: LockReporter): void {
  reporter = r
}

/** Every lock this process holds: what a signal handler releases before exiting. */
const held = new Set<RepositoryLock>()

/** Release every lock this process holds (for SIGINT/SIGTERM); never throws. */
export async function releaseHeldLocks(): Promise<void> {
  await Promise.allSettled([...held].map((lock) => lock.release()))
}

export function heldLockCount(): number {
  return held.size
}

export class RepositoryLock {
  private timer: NodeJS.Timeout | undefined
  private refreshing: Promise<void> | undefined
  private released = false

  /** locked false: a read-only command on a read-only repository, running without a lock object. */
  private constructor(private readonly backend: Backend, readonly name: string, private info: LockInfo, private readonly now: () => number, readonly locked: boolean) {}

  static async acquire(backend: Backend, opts: LockOptions): Promise<RepositoryLock> {
    const now = opts.now ?? Date.now
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
    const deadline = now() + (opts.retryMs ?? 0)
    const hostname = os.hostname()
    // Listings may lag puts by up to `lag` (object stores): only the exclusive side waits (see
    // "Listing lag" above), so snapshots, restores and verify start without delay.
    const lag = backend.capabilities.listLagMs
    const settle = async (ms: number) => {
      if (ms > 0) await sleep(ms)
    }
    const onStale = (info: LockInfo | undefined, name: string) =>
      opts.onStaleRemoved ? opts.onStaleRemoved(info, name) : reporter.staleRemoved?.(info, name, backend.location)
    for (let attempt = 0; ; attempt++) {
      const stamp = new Date(now()).toISOString()
      const info: LockInfo = {host: hostname, pid: process.pid, pidStart: processStart(process.pid), exclusive: opts.exclusive, command: opts.command, created: stamp, refreshed: stamp}
      const name = `${opts.exclusive ? 'x' : 's'}${randomBytes(12).toString('hex')}`
      let conflict: LockInfo | undefined
      try {
        if (opts.exclusive) {
          // Two steps, so that waiting for the exclusive lock never makes a snapshot that starts
          // meanwhile fail: first announce the lock as pending (which every acquirer ignores)
          // and look; only with no conflict write it as held and look again. A shared acquirer
          // that read "pending" wrote its own lock before this second look, which then sees it.
          await putLock(backend, name, {...info, pending: true}, opts.command)
          await settle(2 * lag)
          conflict = await findConflict(backend, name, opts.exclusive, now(), hostname, onStale)
          if (!conflict) {
            await backend.put('locks', name, Buffer.from(JSON.stringify(info)))
            await settle(2 * lag)
            conflict = await findConflict(backend, name, opts.exclusive, now(), hostname, onStale)
            // A writer whose lock we no longer see released it after writing its manifest: wait
            // until that manifest (and its index files) can be missing from no listing.
            if (!conflict) await settle(lag)
          }
        } else {
          await putLock(backend, name, info, opts.command)
          conflict = await findConflict(backend, name, opts.exclusive, now(), hostname, onStale)
        }
      } catch (err) {
        if (err instanceof ReadOnlyRepositoryError && opts.readOnly && !opts.exclusive) {
          conflict = await findConflict(backend, undefined, false, now(), hostname, undefined)
          if (!conflict) {
            reporter.unlocked?.(backend.location, String(err.data.errno))
            return new RepositoryLock(backend, '', info, now, false)
          }
        } else {
          // Do not leave our lock behind when looking failed (it would block others until we exit).
          await backend.delete('locks', name).catch(() => undefined)
          throw err
        }
      }
      if (!conflict) {
        const lock = new RepositoryLock(backend, name, info, now, true)
        held.add(lock)
        lock.startRefresh()
        return lock
      }
      await backend.delete('locks', name).catch(() => undefined)
      // A test waits here for "this acquirer met a conflict" (it cannot list a lock that lives milliseconds).
      faultPoint('lock.conflict')
      if (now() >= deadline) {
        throw new LockedError(`repository ${backend.location} is locked: ${describeHolder(conflict)}; ${unlockHint(backend.location)}`, {holder: conflict})
      }
      const wait = Math.min(2000, 100 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random())
      await sleep(Math.max(10, Math.min(wait, deadline - now())))
    }
  }

  private startRefresh(): void {
    this.timer = setInterval(() => {
      if (this.released || this.refreshing) return
      this.info = {...this.info, refreshed: new Date(this.now()).toISOString()}
      this.refreshing = this.backend.put('locks', this.name, Buffer.from(JSON.stringify(this.info))).then(
        () => {
          this.refreshing = undefined
        },
        () => {
          // A failed refresh is retried at the next tick; the lock only goes stale after STALE_AFTER_MS.
          this.refreshing = undefined
        },
      )
    }, REFRESH_EVERY_MS)
    this.timer.unref()
  }

  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    held.delete(this)
    if (this.timer) clearInterval(this.timer)
    if (!this.locked) return
    // A refresh still being written would put the lock back after the delete, leaving a lock
    // that names this (live) process: wait for it first.
    await this.refreshing
    await this.backend.delete('locks', this.name)
  }
}

/** Errors that say "this repository cannot be written", whatever the reason. */
const READ_ONLY_CODES = new Set(['EROFS', 'EACCES', 'EPERM'])

/** A write to the repository failed because it cannot be written: ReadOnlyRepositoryError; else the error. */
export function readOnlyError(err: unknown, location: string, command: string): unknown {
  const code = errnoCode(err)
  if (code === undefined || !READ_ONLY_CODES.has(code)) return err
  return new ReadOnlyRepositoryError(
    `repository ${location} is read-only (${code}): "${command}" must write to it (what only reads works: verify, snapshots, restore --target or --no-safety-snapshot)`,
    {errno: code},
    {cause: err},
  )
}

async function putLock(backend: Backend, name: string, info: LockInfo, command: string): Promise<void> {
  try {
    await backend.put('locks', name, Buffer.from(JSON.stringify(info)))
  } catch (err) {
    throw readOnlyError(err, backend.location, command)
  }
}

export interface LockEntry {
  name: string
  /** undefined: the object is not a lock ckpt wrote (unparsable). */
  info: LockInfo | undefined
  stale: boolean
}

/** Every lock in the repository but `own`, judged by the staleness rules. */
export async function listLocks(backend: Backend, now: number, hostname = os.hostname(), own?: string): Promise<LockEntry[]> {
  const out: LockEntry[] = []
  for await (const obj of backend.list('locks')) {
    if (obj.name === own) continue // ours: no need to read it back (a round trip on an object store)
    let info: LockInfo | undefined
    try {
      info = parseLock(await backend.get('locks', obj.name))
    } catch (err) {
      if (err instanceof ObjectMissingError) continue // released while we looked
      throw err
    }
    out.push({name: obj.name, info, stale: info === undefined || isStale(info, now, {hostname, mtimeMs: obj.mtimeMs})})
  }
  return out
}

/**
 * The first live lock that conflicts with ours (`own`: our lock's name, skipped). Stale locks are
 * removed on the way when `onStale` is given; without it (a read-only repository) they are skipped.
 */
async function findConflict(
  backend: Backend, own: string | undefined, exclusive: boolean, now: number, hostname: string,
  onStale: ((info: LockInfo | undefined, name: string) => void) | undefined,
): Promise<LockInfo | undefined> {
  for (const {name, info, stale} of await listLocks(backend, now, hostname, own)) {
    if (stale) {
      if (onStale) {
        await backend.delete('locks', name)
        onStale(info, name)
      }
      continue
    }
    if (info!.pending) continue // an exclusive lock still being acquired holds nothing
    if (exclusive || info!.exclusive) return info
  }
  return undefined
}

/** `ckpt unlock`: remove the stale locks, or with `all` every lock. Returns what was removed and what is left. */
export async function removeLocks(backend: Backend, opts: {all: boolean; now: number}): Promise<{removed: LockEntry[]; remaining: LockEntry[]}> {
  const removed: LockEntry[] = []
  const remaining: LockEntry[] = []
  for (const entry of await listLocks(backend, opts.now)) {
    if (!(opts.all || entry.stale)) {
      remaining.push(entry)
      continue
    }
    try {
      await backend.delete('locks', entry.name)
    } catch (err) {
      throw readOnlyError(err, backend.location, 'unlock')
    }
    removed.push(entry)
  }
  return {removed, remaining}
}

/** Run `fn` under a lock, releasing it however `fn` ends. */
export async function withLock<T>(backend: Backend, opts: LockOptions, fn: (lock: RepositoryLock) => Promise<T>): Promise<T> {
  const lock = await RepositoryLock.acquire(backend, opts)
  try {
    return await fn(lock)
  } finally {
    await lock.release()
  }
}
