// Repository locks: writers (snapshot, restore, verify) hold shared locks, prune's deleting
// phase holds an exclusive one. A lock is an object in `locks/`, refreshed while held.
// Acquire = write ours, then list: if a conflicting live lock exists, remove ours and retry
// or fail. Both sides write before they look, so two conflicting holders can never both
// proceed (at worst both back off and retry with jitter). An exclusive lock is first written
// as pending, which nobody counts as held, so a prune waiting for running snapshots to finish
// never makes a snapshot that starts meanwhile fail.
//
// Staleness, so a crashed process never blocks cron forever:
// - same host: the holder's pid is gone, or belongs to a process started at another time;
// - other host: not refreshed for STALE_AFTER_MS.
import {randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import os from 'node:os'

import {errnoCode, LockedError, ObjectMissingError} from '../core/errors.js'
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
  /** Called when a stale lock is removed (so the CLI can say so). */
  onStaleRemoved?: (info: LockInfo | undefined, name: string) => void
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

export function isStale(info: LockInfo, now: number, hostname = os.hostname()): boolean {
  if (info.host === hostname) return processGone(info.pid, info.pidStart)
  const refreshed = Date.parse(info.refreshed)
  return !Number.isFinite(refreshed) || now - refreshed > STALE_AFTER_MS
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

export class RepositoryLock {
  private timer: NodeJS.Timeout | undefined
  private refreshing: Promise<void> | undefined
  private released = false

  private constructor(private readonly backend: Backend, readonly name: string, private info: LockInfo, private readonly now: () => number) {}

  static async acquire(backend: Backend, opts: LockOptions): Promise<RepositoryLock> {
    const now = opts.now ?? Date.now
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
    const deadline = now() + (opts.retryMs ?? 0)
    const hostname = os.hostname()
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
          await backend.put('locks', name, Buffer.from(JSON.stringify({...info, pending: true})))
          conflict = await findConflict(backend, name, opts, now(), hostname)
          if (!conflict) {
            await backend.put('locks', name, Buffer.from(JSON.stringify(info)))
            conflict = await findConflict(backend, name, opts, now(), hostname)
          }
        } else {
          await backend.put('locks', name, Buffer.from(JSON.stringify(info)))
          conflict = await findConflict(backend, name, opts, now(), hostname)
        }
      } catch (err) {
        // Do not leave our lock behind when looking failed (it would block others until we exit).
        await backend.delete('locks', name).catch(() => undefined)
        throw err
      }
      if (!conflict) {
        const lock = new RepositoryLock(backend, name, info, now)
        lock.startRefresh()
        return lock
      }
      await backend.delete('locks', name)
      if (now() >= deadline) {
        throw new LockedError(`repository ${backend.location} is locked: ${describeHolder(conflict)}`, {holder: conflict})
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
    if (this.timer) clearInterval(this.timer)
    // A refresh still being written would put the lock back after the delete, leaving a lock
    // that names this (live) process: wait for it first.
    await this.refreshing
    await this.backend.delete('locks', this.name)
  }
}

async function findConflict(backend: Backend, own: string, opts: LockOptions, now: number, hostname: string): Promise<LockInfo | undefined> {
  for await (const obj of backend.list('locks')) {
    if (obj.name === own) continue
    let info: LockInfo | undefined
    try {
      info = parseLock(await backend.get('locks', obj.name))
    } catch (err) {
      if (err instanceof ObjectMissingError) continue // released while we looked
      throw err
    }
    // An unreadable lock is treated as held until it is old enough to be stale.
    const stale = info ? isStale(info, now, hostname) : now - obj.mtimeMs > STALE_AFTER_MS
    if (stale) {
      await backend.delete('locks', obj.name)
      opts.onStaleRemoved?.(info, obj.name)
      continue
    }
    if (info?.pending) continue // an exclusive lock still being acquired holds nothing
    const holder = info ?? {host: '?', pid: 0, pidStart: null, exclusive: true, command: 'unreadable lock ' + obj.name, created: new Date(obj.mtimeMs).toISOString(), refreshed: ''}
    if (opts.exclusive || holder.exclusive) return holder
  }
  return undefined
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
