// `ckpt prune`, `forget`, `pin`, `unpin` as cron and users run them: the built CLI in a child
// process (run `npm run build` first). Exit codes, output, pins, groups, locks.
import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, test} from 'vitest'

import type {PruneReport} from '../../src/prune/prune.js'
import {ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {seededBytes} from '../helpers/tree.js'
import {type Fixture, fixture, names} from './helpers.js'

let f: Fixture
afterEach(async () => {
  await f?.cleanup()
})

const r = () => ['--repo', f.repoDir]

/** A snapshot through the CLI, of `f.src` after writing `content` to file `x`. */
async function cliSnap(content: string, time: string, extra: string[] = []): Promise<string> {
  await fsp.writeFile(path.join(f.src, 'x'), content)
  const out = await ckpt(['snapshot', f.src, '--time', time, '-q', ...r(), ...extra])
  return out.stdout.trim()
}

async function five(): Promise<string[]> {
  const ids: string[] = []
  for (let i = 1; i <= 5; i++) ids.push(await cliSnap(`v${i} `.repeat(1000 * i), `2026-11-0${i}T10:00:00Z`))
  return ids
}

describe('policy and output', () => {
  test('no --keep flag at all: refused with exit 2, nothing removed', async () => {
    f = await fixture()
    await five()
    for (const args of [[], ['--keep-last', '0'], ['--keep-daily', '0', '--keep-weekly', '0']]) {
      const out = await runCli(['prune', ...args, ...r()])
      expect(out.code).toBe(2)
      expect(out.stderr).toMatch(/^ckpt: refusing to prune without a retention policy/)
      expect(out.stdout).toBe('')
    }
    expect(await names(f, 'snapshots')).toHaveLength(5)
    const json = await runCli(['prune', '--json', ...r()])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.stdout).error).toMatchObject({code: 'USAGE', exitCode: 2})
  })

  test.each([
    [['--keep-within', '5x'], /invalid duration '5x'/],
    [['--keep-last', '1', '--group-by', 'planet'], /invalid group-by 'planet'/],
    [['--keep-last', '1', '--tz', 'Mars/Olympus'], /unknown time zone 'Mars\/Olympus'/],
    [['--keep-last', '1', '--repack-threshold', '150%'], /invalid --repack-threshold/],
    [['--keep-last', '-1'], /./],
  ])('bad flags %j: exit 2', async (args, message) => {
    f = await fixture()
    const out = await runCli(['prune', ...args, ...r()])
    expect(out.code).toBe(2)
    expect(out.stderr).toMatch(message)
  })

  test('not on a terminal: one summary line on stdout, nothing else; --quiet: nothing', async () => {
    f = await fixture()
    await five()
    const out = await ckpt(['prune', '--keep-last', '3', ...r()])
    expect(out.stderr).toBe('')
    expect(out.stdout).toMatch(/^prune: removed 2 of 5 snapshots, freed \S+ \S+ \(\d+ packs? deleted[^\n]*\)\n$/)
    const quiet = await ckpt(['prune', '--keep-last', '2', '-q', ...r()])
    expect(quiet.stdout + quiet.stderr).toBe('')
    expect(await names(f, 'snapshots')).toHaveLength(2)
  })

  test('--dry-run shows every decision with its reasons and the plan, and changes nothing', async () => {
    f = await fixture()
    const ids = await five()
    const before = [await names(f, 'snapshots'), await names(f, 'data'), await names(f, 'index')]
    const out = await ckpt(['prune', '--keep-last', '2', '--keep-daily', '3', '--dry-run', '--tz', 'UTC', ...r()])
    const lines = out.stdout.split('\n')
    const row = (id: string) => lines.find((l) => l.includes(id.slice(0, 12)))!
    expect(row(ids[4]!)).toMatch(/keep\s+newest of group, last 1\/2, daily 2026-11-05$/)
    expect(row(ids[3]!)).toMatch(/keep\s+last 2\/2, daily 2026-11-04$/)
    expect(row(ids[2]!)).toMatch(/keep\s+daily 2026-11-03$/)
    expect(row(ids[1]!)).toMatch(/remove$/)
    expect(row(ids[0]!)).toMatch(/remove$/)
    expect(out.stdout).toMatch(/^packs: \d+ \(/m)
    expect(out.stdout).toMatch(/^prune \(dry run\): would remove 2 of 5 snapshots and free about /m)
    expect([await names(f, 'snapshots'), await names(f, 'data'), await names(f, 'index')]).toEqual(before)
  })

  test('--json: the full report, policy decisions with reasons, plan and result', async () => {
    f = await fixture()
    const ids = await five()
    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--keep-within', '2d', '--tz', 'UTC', ...r()])
    expect(Object.keys(report).sort()).toEqual(['durationMs', 'dryRun', 'groupBy', 'groups', 'now', 'plan', 'policy', 'removed', 'result', 'snapshots', 'timeZone', 'warnings'].sort())
    expect(report.policy).toEqual({last: 1, within: '2d'})
    expect(report.groupBy).toEqual(['host', 'source'])
    expect(report.groups).toHaveLength(1)
    expect(report.groups[0]!.key).toEqual({host: os.hostname(), source: f.src})
    expect(report.groups[0]!.snapshots.map((s) => [s.id, s.keep, s.reasons])).toEqual([
      [ids[4], true, ['newest of group', 'last 1/1']],
      [ids[3], false, []], [ids[2], false, []], [ids[1], false, []], [ids[0], false, []],
    ])
    expect(report.removed.sort()).toEqual(ids.slice(0, 4).sort())
    expect(report.plan.packs.total).toBe(5)
    expect(report.plan.memory.tableBytes).toBeGreaterThan(0)
    expect(report.result).toMatchObject({snapshotsRemoved: 4, attempts: 1})
    expect(report.result!.bytesFreed).toBeGreaterThan(0)
  })
})

describe('safety snapshots', () => {
  test('prune --keep-last 1 keeps the checkpoint, not the two pre-restore snapshots restore took; snapshots marks them', async () => {
    f = await fixture()
    const checkpoint = await cliSnap('the checkpoint', '2026-11-01T10:00:00Z')
    for (const edit of ['edit 1', 'edit 2']) {
      await fsp.writeFile(path.join(f.src, 'x'), edit)
      await ckpt(['restore', 'latest', '-q', ...r()])
    }
    const list = await ckptJson<{id: string; safety: boolean; tags: string[]}[]>(['snapshots', ...r()])
    expect(list.map((s) => [s.id === checkpoint, s.safety])).toEqual([[true, false], [false, true], [false, true]])
    const table = (await ckpt(['snapshots', ...r()])).stdout.split('\n')
    expect(table[0]).toMatch(/^ID\s+TIME\s+KIND\s/)
    expect(table.filter((l) => /\ssafety\s/.test(l))).toHaveLength(2)
    expect(table.filter((l) => /\scheckpoint\s/.test(l))).toHaveLength(1)

    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--keep-pre-restore', '1', ...r()])
    const decisions = report.groups.flatMap((g) => g.snapshots.map((s) => [s.id === checkpoint, s.keep, s.reasons.join(', ')]))
    expect(decisions).toEqual([[false, true, 'pre-restore 1/1'], [false, false, ''], [true, true, 'newest of group, last 1/1']])
    const after = await ckptJson<{id: string; safety: boolean}[]>(['snapshots', ...r()])
    expect(after.map((s) => s.id === checkpoint)).toEqual([true, false])
    // restore latest still means the checkpoint.
    await ckpt(['restore', 'latest', '--no-safety-snapshot', '-q', ...r()])
    expect(await fsp.readFile(path.join(f.src, 'x'), 'utf8')).toBe('the checkpoint')
  })
})

describe('groups', () => {
  test('--keep-last 1 keeps one per host; --group-by none keeps one in all', async () => {
    f = await fixture()
    const a1 = await cliSnap('a1', '2026-11-01T00:00:00Z', ['--host', 'alpha'])
    const z1 = await cliSnap('z1', '2026-11-02T00:00:00Z', ['--host', 'zeta'])
    const a2 = await cliSnap('a2', '2026-11-03T00:00:00Z', ['--host', 'alpha'])
    const z2 = await cliSnap('z2', '2026-11-04T00:00:00Z', ['--host', 'zeta'])
    const dry = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--group-by', 'host', '--dry-run', ...r()])
    expect(dry.groups.map((g) => [g.key, g.snapshots.map((s) => [s.id, s.keep])])).toEqual([
      [{host: 'alpha'}, [[a2, true], [a1, false]]],
      [{host: 'zeta'}, [[z2, true], [z1, false]]],
    ])
    await ckpt(['prune', '--keep-last', '1', '--group-by', 'host', ...r()])
    expect(await names(f, 'snapshots')).toEqual([a2, z2].sort())
    const all = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--group-by', 'none', ...r()])
    expect(all.groups.map((g) => g.key)).toEqual([{}])
    expect(await names(f, 'snapshots')).toEqual([z2])
  })

  test('--keep-tag keeps tagged snapshots, whatever else', async () => {
    f = await fixture()
    const rel = await cliSnap('r', '2026-11-01T00:00:00Z', ['--tag', 'release'])
    await cliSnap('b', '2026-11-02T00:00:00Z')
    const c = await cliSnap('c', '2026-11-03T00:00:00Z')
    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--keep-tag', 'release', ...r()])
    expect(report.groups[0]!.snapshots.find((s) => s.id === rel)!.reasons).toEqual(['tag release'])
    expect(await names(f, 'snapshots')).toEqual([rel, c].sort())
  })
})

describe('pin, unpin, forget', () => {
  test('a pinned snapshot survives every policy; unpinned it goes', async () => {
    f = await fixture()
    const ids = await five()
    const pinned = await ckptJson<{id: string; changed: boolean}>(['pin', ids[0]!.slice(0, 8), ...r()])
    expect(pinned).toEqual({id: ids[0], changed: true})
    expect(await ckptJson(['pin', ids[0]!, ...r()])).toEqual({id: ids[0], changed: false})
    expect(await names(f, 'pins')).toEqual([ids[0]])
    expect((await fsp.stat(path.join(f.repoDir, 'pins', ids[0]!))).size).toBe(0)
    expect(await ckptJson(['pin', ...r()])).toEqual([{id: ids[0], time: '2026-11-01T10:00:00.000Z', source: f.src}])

    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '1', ...r()])
    expect(report.groups[0]!.snapshots.find((s) => s.id === ids[0])).toMatchObject({pinned: true, keep: true, reasons: ['pinned']})
    expect(await names(f, 'snapshots')).toEqual([ids[0], ids[4]].sort())

    expect(await ckptJson(['unpin', ids[0]!.slice(0, 6), ...r()])).toEqual({id: ids[0], changed: true})
    expect(await names(f, 'pins')).toEqual([])
    await ckpt(['prune', '--keep-last', '1', ...r()])
    expect(await names(f, 'snapshots')).toEqual([ids[4]])
    const out = await runCli(['pin', 'ffff', ...r()])
    expect(out.code).toBe(4)
  })

  test('forget checks every id first, refuses pinned ones without --force, and prune then frees the data', async () => {
    f = await fixture()
    const ids = await five()
    const unknown = await runCli(['forget', ids[0]!, 'ffffffff', ...r()])
    expect(unknown.code).toBe(4)
    expect(unknown.stderr).toMatch(/no snapshot matches ffffffff/)
    expect(await names(f, 'snapshots')).toHaveLength(5)

    await ckpt(['pin', ids[1]!, ...r()])
    const refused = await runCli(['forget', ids[0]!, ids[1]!, ...r()])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/refusing to forget pinned snapshot .*unpin first, or use --force/)
    expect(await names(f, 'snapshots')).toHaveLength(5)

    const out = await ckpt(['forget', ids[0]!.slice(0, 10), ids[2]!, ...r()])
    expect(out.stdout).toMatch(/^forgot 2 snapshots: /)
    expect(await names(f, 'snapshots')).toEqual([ids[1], ids[3], ids[4]].sort())
    const forced = await ckptJson<{forgotten: {id: string; pinned: boolean}[]}>(['forget', ids[1]!, '--force', ...r()])
    expect(forced.forgotten).toEqual([expect.objectContaining({id: ids[1], pinned: true})])
    expect(await names(f, 'pins')).toEqual([])

    const packs = (await names(f, 'data')).length
    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '10', '--no-merge-small', ...r()])
    expect(report.removed).toEqual([])
    expect(report.result!.packsDeleted).toBeGreaterThan(0)
    expect((await names(f, 'data')).length).toBeLessThan(packs)
    await ckpt(['verify', '--read-data', ...r()])
  })

  test('forget with no id is a usage error', async () => {
    f = await fixture()
    const out = await runCli(['forget', ...r()])
    expect(out.code).toBe(2)
  })
})

describe('locks', () => {
  async function putLock(name: string, info: Record<string, unknown>): Promise<void> {
    const file = path.join(f.repoDir, 'locks', name)
    await fsp.writeFile(file, JSON.stringify(info))
  }
  const stamp = () => new Date().toISOString()

  test('a lock left by a dead process on this host is broken automatically', async () => {
    f = await fixture()
    await five()
    const child = spawn(process.execPath, ['-e', ''], {stdio: 'ignore'})
    const pid = child.pid!
    await new Promise((resolve) => child.on('exit', resolve))
    await putLock('xdeadbeef', {host: os.hostname(), pid, pidStart: 1, exclusive: true, command: 'prune (crashed)', created: stamp(), refreshed: stamp()})
    const out = await ckpt(['prune', '--keep-last', '1', ...r()])
    expect(out.stderr).toMatch(/removed stale lock xdeadbeef \(exclusive lock held by "prune \(crashed\)"/)
    expect(out.stdout).toMatch(/^prune: removed 4 of 5 snapshots/)
    expect(await names(f, 'locks')).toEqual([])
  })

  test('a live holder: exit 11 naming it; --retry-lock waits for it', async () => {
    f = await fixture()
    await five()
    const info = {host: 'backup-host.example', pid: 4242, pidStart: 9, exclusive: true, command: 'prune --keep-daily 7', created: '2026-11-21T03:00:00.000Z', refreshed: stamp()}
    await putLock('xremote', info)
    const out = await runCli(['prune', '--keep-last', '1', ...r()])
    expect(out.code).toBe(11)
    expect(out.stderr).toBe(`ckpt: repository ${f.repoDir} is locked: exclusive lock held by "prune --keep-daily 7" (pid 4242 on backup-host.example, since 2026-11-21T03:00:00.000Z); if no ckpt is running there, break the lock with: ckpt unlock --remove-all --repo ${f.repoDir}\n`)
    const json = await runCli(['prune', '--keep-last', '1', '--json', ...r()])
    expect(JSON.parse(json.stdout).error).toMatchObject({code: 'LOCKED', exitCode: 11, data: {holder: info}})
    expect(await names(f, 'snapshots')).toHaveLength(5)

    setTimeout(() => void fsp.rm(path.join(f.repoDir, 'locks', 'xremote')), 700)
    const waited = await ckpt(['prune', '--keep-last', '1', '--retry-lock', '20s', ...r()])
    expect(waited.stdout).toMatch(/^prune: removed 4 of 5 snapshots/)
  })

  test('ckpt unlock removes stale and unparsable locks and leaves live ones; --remove-all removes them too', async () => {
    f = await fixture()
    const live = {host: 'backup-host.example', pid: 4242, pidStart: 9, exclusive: true, command: 'prune', created: stamp(), refreshed: stamp()}
    await putLock('xremote', live)
    await putLock('sold', {...live, exclusive: false, refreshed: new Date(Date.now() - 31 * 60_000).toISOString()})
    await fsp.writeFile(path.join(f.repoDir, 'locks', 'sjunk'), 'not a lock')
    const first = await ckptJson<{removed: {name: string}[]; remaining: {name: string; holder: unknown}[]}>(['unlock', ...r()])
    expect(first.removed.map((e) => e.name).sort()).toEqual(['sjunk', 'sold'])
    expect(first.remaining).toEqual([{name: 'xremote', holder: live, stale: false}])
    const human = await ckpt(['unlock', ...r()])
    expect(human.stderr).toMatch(/^left lock xremote: exclusive lock held by "prune" \(pid 4242 on backup-host\.example, since [^)]+\) \(live; --remove-all removes it\)\nunlock: removed 0 locks, 1 live left\n$/)
    expect(await names(f, 'locks')).toEqual(['xremote'])
    const all = await ckpt(['unlock', '--remove-all', '-q', ...r()])
    expect(all.stderr + all.stdout).toBe('')
    expect(await names(f, 'locks')).toEqual([])
  })

  test('a snapshot holding a shared lock does not stop planning; prune waits for it to delete', async () => {
    f = await fixture()
    await five()
    const info = {host: os.hostname(), pid: process.pid, pidStart: null, exclusive: false, command: 'snapshot (test)', created: stamp(), refreshed: stamp()}
    await putLock('sbusy', info)
    setTimeout(() => void fsp.rm(path.join(f.repoDir, 'locks', 'sbusy')), 1000)
    const report = await ckptJson<PruneReport>(['prune', '--keep-last', '1', '--retry-lock', '20s', ...r()])
    expect(report.result!.snapshotsRemoved).toBe(4)
  })
})

describe('damage', () => {
  test('a kept snapshot needing a missing pack: exit 12, the problems listed, nothing deleted', async () => {
    f = await fixture()
    await fsp.writeFile(path.join(f.src, 'big'), seededBytes(50_000, 9))
    await five()
    // The largest pack holds "big", which every snapshot has.
    const file = (p: string) => path.join(f.repoDir, 'data', p.slice(0, 2), p)
    const sized = await Promise.all((await names(f, 'data')).map(async (p) => [(await fsp.stat(file(p))).size, p] as const))
    const largest = sized.sort((a, b) => b[0] - a[0])[0]![1]
    await fsp.rm(file(largest))
    const before = [await names(f, 'snapshots'), await names(f, 'data'), await names(f, 'index')]
    const out = await runCli(['prune', '--keep-last', '1', '--json', ...r()])
    expect(out.code).toBe(12)
    const error = JSON.parse(out.stdout).error
    expect(error.code).toBe('INTEGRITY')
    expect(error.message).toMatch(/prune deleted nothing/)
    expect(error.data.problemCount).toBeGreaterThan(0)
    expect(error.data.problems[0]).toMatchObject({kind: expect.stringMatching(/missing/)})
    expect([await names(f, 'snapshots'), await names(f, 'data'), await names(f, 'index')]).toEqual(before)
  })
})
