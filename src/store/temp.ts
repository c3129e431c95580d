// Temporary objects: what a write leaves while in flight, and after a failure or a kill. Their
// names say who wrote them, `.tmp-<host>-<pid>-<start>-<random>` (docs/FORMAT.md), so the next
// writer can tell a dead writer's leftovers from a live one's work with the same rule the locks
// use (src/store/lock.ts): same host, and the pid is gone or now belongs to a process started at
// another time. What it cannot prove dead (another host, a name of an older build) is removed
// only once older than a day, as before owners were recorded.
import {createHash, randomBytes} from 'node:crypto'
import os from 'node:os'

import type {Backend, TempObject, TempOwner} from './backend.js'
import {processGone, processStart} from './lock.js'

/** Prefix of in-flight temp objects; list() never reports them. */
export const TEMP_PREFIX = '.tmp-'

/** Temp objects whose owner cannot be proven dead are removed once older than this. */
export const TEMP_MAX_AGE_MS = 24 * 3600 * 1000

export function hostTag(hostname = os.hostname()): string {
  return createHash('sha256').update(hostname).digest('hex').slice(0, 12)
}

let self: TempOwner | undefined

function currentOwner(): TempOwner {
  return (self ??= {host: hostTag(), pid: process.pid, pidStart: processStart(process.pid)})
}

/** A fresh temp name owned by this process. */
export function tempName(owner: TempOwner = currentOwner()): string {
  return `${TEMP_PREFIX}${owner.host}-${owner.pid}-${owner.pidStart ?? 'u'}-${randomBytes(8).toString('hex')}`
}

const NAME = /^\.tmp-([0-9a-f]{12})-([1-9][0-9]{0,9})-([0-9]{1,20}|u)-[0-9a-f]{16}$/

/** The owner a temp name records, or undefined for a name without one (an older build's). */
export function parseTempName(name: string): TempOwner | undefined {
  const m = NAME.exec(name)
  if (!m) return undefined
  return {host: m[1]!, pid: Number(m[2]), pidStart: m[3] === 'u' ? null : Number(m[3])}
}

export type TempState = 'live' | 'dead' | 'unknown'

/** Whether the writer of a temp object is running: 'unknown' when it cannot be told (another host, no owner). */
export function tempState(owner: TempOwner | undefined, localHost = hostTag()): TempState {
  if (!owner || owner.host !== localHost) return 'unknown'
  return processGone(owner.pid, owner.pidStart) ? 'dead' : 'live'
}

/** Why a temp object may go: its writer is dead, or it is older than `maxAgeMs` and its writer cannot be told. */
export function removable(t: TempObject, now: number, maxAgeMs: number, localHost = hostTag()): boolean {
  const state = tempState(t.owner, localHost)
  return state === 'dead' || (state === 'unknown' && now - t.mtimeMs > maxAgeMs)
}

export interface SweepResult {
  removed: number
  bytes: number
}

/**
 * Remove the temp objects of writers that are gone (and old ones nobody can vouch for). Run by
 * every command that opens the repository for writing, under its lock, so the space a killed or
 * failed write took is given back by the next snapshot or prune, not after a day.
 */
export async function sweepTemporaries(backend: Backend, now: number, maxAgeMs = TEMP_MAX_AGE_MS): Promise<SweepResult> {
  const result: SweepResult = {removed: 0, bytes: 0}
  const host = hostTag()
  for await (const t of backend.temporaries()) {
    if (!removable(t, now, maxAgeMs, host)) continue
    await backend.removeTemporary(t.id)
    result.removed++
    result.bytes += t.size
  }
  return result
}
