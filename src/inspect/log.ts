// ckpt log: a snapshot and its ancestors, newest first, following the parent each manifest names
// (the previous snapshot of the same source on the same host when it was taken). Pure: the
// catalog and the pins come in.
import type {SnapshotRecord} from '../snapshot/catalog.js'
import {isSafetySnapshot} from '../snapshot/catalog.js'
import type {CaptureMode} from '../snapshot/manifest.js'

export interface LogEntry {
  id: string
  time: string
  parent: string | null
  host: string
  source: string
  tags: string[]
  pinned: boolean
  safety: boolean
  /** How it was captured, and whether it is one instant's state; null: not recorded (older ckpt). */
  capture: CaptureMode | null
  consistent: boolean | null
  files: number
  bytes: number
  /** Bytes this snapshot stored for the first time (plain, then as stored). */
  newBytes: number
  storedBytes: number
  durationMs: number
  warnings: number
}

export interface LogResult {
  entries: LogEntry[]
  /** The parent the chain ends at when that snapshot is gone (forgotten), else null. */
  missingParent: string | null
}

export function logEntry(s: SnapshotRecord, pins: ReadonlySet<string>): LogEntry {
  const m = s.manifest
  return {
    id: s.id, time: m.time, parent: m.parent, host: m.host, source: m.source, tags: m.tags, pinned: pins.has(s.id), safety: isSafetySnapshot(m.tags),
    capture: m.capture?.mode ?? null, consistent: m.capture ? m.capture.consistent : null,
    files: m.summary.files, bytes: m.summary.bytes, newBytes: m.summary.newBytes, storedBytes: m.summary.storedBytes, durationMs: m.summary.durationMs, warnings: m.summary.warnings,
  }
}

/** `start` and its ancestors, newest first; a cycle (a hostile repository) ends the chain. */
export function parentChain(snapshots: readonly SnapshotRecord[], start: SnapshotRecord, pins: ReadonlySet<string>): LogResult {
  const byId = new Map(snapshots.map((s) => [s.id, s]))
  const entries: LogEntry[] = []
  const seen = new Set<string>()
  let at: SnapshotRecord | undefined = start
  let missingParent: string | null = null
  while (at && !seen.has(at.id)) {
    seen.add(at.id)
    entries.push(logEntry(at, pins))
    const parent: string | null = at.manifest.parent
    at = parent ? byId.get(parent) : undefined
    if (parent && !at) missingParent = parent
  }
  return {entries, missingParent}
}
