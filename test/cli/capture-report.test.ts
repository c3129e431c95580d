// What was captured is said where it matters: `ckpt snapshots` shows the capture mode and whether
// the snapshot is consistent (and --json the record), and restoring one that is not consistent
// warns. The records besides the real plain one are written as a capture would write them.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {openLocalRepository} from '../../src/repo/open.js'
import {type CaptureRecord, decodeManifest, encodeManifest} from '../../src/snapshot/manifest.js'
import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {buildTree, tempDir} from '../helpers/tree.js'

let work: string
let src: string
let repo: string
const ids: Record<string, string> = {}

const INCONSISTENT: CaptureRecord = {
  mode: 'plain', consistent: false,
  moves: [{path: 'db/CURRENT', change: 'replaced'}, {path: 'db/LOG', change: 'changed'}, {path: 'db/000012.sst', change: 'appeared'}, {path: 'db/000009.sst', change: 'vanished'}],
  moveCount: 7,
}
const PAUSED: CaptureRecord = {
  mode: 'paused', consistent: true, moves: [], moveCount: 0,
  pause: {pauseMs: 12.3, rounds: 2, copiedFiles: 1, copiedBytes: 10, copyKind: 'memory', timedOut: false},
}

/** The plain snapshot's manifest again, an hour earlier per step (or at `time`), with another capture record (or none: an old manifest). */
async function variant(base: string, step: number, capture: CaptureRecord | undefined, time?: string, tags: string[] = []): Promise<string> {
  const r = await openLocalRepository(repo)
  const m = decodeManifest(await r.readSnapshotBytes(base), base)
  const {capture: _, ...rest} = m
  return r.writeSnapshotBytes(encodeManifest({...rest, tags, time: time ?? new Date(Date.parse(m.time) - step * 3_600_000).toISOString(), ...(capture ? {capture} : {})}))
}

beforeAll(async () => {
  work = await tempDir('ckpt-capture-report-')
  src = path.join(work, 'src')
  await fsp.mkdir(src)
  await buildTree(src, {db: {dir: {'CURRENT': 'MANIFEST-000001\n', 'LOG': 'log'}}})
  repo = path.join(work, 'repo')
  await ckpt(['init', '--repo', repo])
  ids.plain = (await ckptJson<{id: string}>(['snapshot', src, '--repo', repo])).id
  ids.old = await variant(ids.plain, 3, undefined)
  ids.inconsistent = await variant(ids.plain, 2, INCONSISTENT)
  ids.paused = await variant(ids.plain, 1, PAUSED)
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe('ckpt snapshots', () => {
  it('has a CAPTURE column: mode, pause, inconsistent, or - when not recorded', async () => {
    const r = await runCli(['snapshots', '--repo', repo])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^ID +TIME +KIND +CAPTURE +PARENT/)
    const capture = (id: string): string => {
      const line = lines.find((l) => l.startsWith(id.slice(0, 8)))!
      return line.slice(lines[0]!.indexOf('CAPTURE'), lines[0]!.indexOf('PARENT')).trim()
    }
    expect(capture(ids.plain!)).toBe('plain')
    expect(capture(ids.old!)).toBe('-')
    expect(capture(ids.inconsistent!)).toBe('plain, inconsistent')
    expect(capture(ids.paused!)).toBe('paused 12ms')
  })

  it('--json carries the capture record (null when not recorded)', async () => {
    const list = await ckptJson<{id: string; capture: CaptureRecord | null}[]>(['snapshots', '--repo', repo])
    const byId = new Map(list.map((s) => [s.id, s.capture]))
    expect(byId.get(ids.plain!)).toEqual({mode: 'plain', consistent: true, moves: [], moveCount: 0})
    expect(byId.get(ids.old!)).toBeNull()
    expect(byId.get(ids.inconsistent!)).toEqual(INCONSISTENT)
    expect(byId.get(ids.paused!)).toEqual(PAUSED)
  })
})

describe('ckpt restore', () => {
  it('of a snapshot that is not consistent warns in one line (mode, first moves) and restores', async () => {
    const target = path.join(work, 'out-inconsistent')
    const r = await runCli(['restore', ids.inconsistent!, '--target', target, '--repo', repo])
    expect(r.code).toBe(0)
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'))
    expect(warnings).toEqual([
      `warning: snapshot ${ids.inconsistent!.slice(0, 12)} is not a consistent image of one instant (plain capture; moved while it was taken: db/CURRENT (replaced), db/LOG (changed), db/000012.sst (appeared) and 4 more): it may not be a state the directory ever had`,
    ])
    expect(await fsp.readFile(path.join(target, 'db', 'CURRENT'), 'utf8')).toBe('MANIFEST-000001\n')
  })

  it('of a consistent snapshot, or one with no record, does not warn', async () => {
    for (const id of [ids.paused!, ids.old!]) {
      const r = await runCli(['restore', id, '--target', path.join(work, `out-${id.slice(0, 8)}`), '--repo', repo])
      expect(r.code).toBe(0)
      expect(r.stderr).not.toContain('warning')
    }
  })
})

describe('ckpt prune --prefer-consistent', () => {
  it('keeps the newest consistent snapshot of a period instead of its newest', async () => {
    // A group of its own (by tag): a day with a newer inconsistent and an older paused snapshot, and an older day with only an unknown one.
    const late = await variant(ids.plain!, 0, INCONSISTENT, '2026-11-21T18:00:00Z', ['retention'])
    const early = await variant(ids.plain!, 0, PAUSED, '2026-11-21T09:00:00Z', ['retention'])
    const unknown = await variant(ids.plain!, 0, undefined, '2026-11-20T12:00:00Z', ['retention'])
    type Report = {groups: {snapshots: {id: string; keep: boolean; reasons: string[]}[]}[]}
    const kept = async (extra: string[]): Promise<string[]> => {
      const report = await ckptJson<Report>(['prune', '--keep-daily', '1', '--group-by', 'tags', '--tz', 'UTC', '--dry-run', '--repo', repo, ...extra])
      return report.groups.flatMap((g) => g.snapshots).filter((s) => [late, early, unknown].includes(s.id) && s.keep).map((s) => `${s.id === late ? 'late' : s.id === early ? 'early' : 'unknown'}: ${s.reasons.join(', ')}`)
    }
    expect(await kept([])).toEqual(['late: newest of group, daily 2026-11-21'])
    // The newest of the group is still kept.
    expect(await kept(['--prefer-consistent'])).toEqual(['late: newest of group', 'early: daily 2026-11-21 (consistent)'])
  })
})
