// verify as CI runs it: exit codes, output streams, --json, locks, snapshot scope, and
// --read-data-subset slices that together read every pack exactly once.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {initLocalRepository} from '../../src/repo/open.js'
import {BlobType} from '../../src/repo/pack.js'
import {LocalBackend} from '../../src/store/local.js'
import {RepositoryLock} from '../../src/store/lock.js'
import {ckpt, runCli} from '../helpers/cli.js'
import {buildTree} from '../helpers/tree.js'
import {buildFixture, copyRepo, type Fixture, flipByte, locate, packFile, removeScratch, scratchDir, verifyJson, withRepo} from './fixture.js'

let fx: Fixture

beforeAll(async () => {
  fx = await buildFixture()
})

afterAll(async () => {
  await removeScratch()
})

describe.concurrent('verify output and exit codes', () => {
  it('is silent on a clean repository except for a one-line summary on stderr; --quiet silences that too', async () => {
    const r = await ckpt(['verify', '--repo', fx.repo])
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^verify: no errors: 4 snapshots, \d+ trees, \d+ chunks, 4 packs, .* read in .*\n$/)
    const q = await ckpt(['verify', '--repo', fx.repo, '--quiet'])
    expect(q.stdout + q.stderr).toBe('')
  })

  it('--json prints one document with the counts', async () => {
    const {code, report} = await verifyJson(['--repo', fx.repo, '--read-data'])
    expect(code).toBe(0)
    expect(report).toMatchObject({ok: true, exitCode: 0, readData: 'all', findings: [], errors: 0, infos: 0})
    expect(report.snapshots.sort()).toEqual(Object.values(fx.snaps).map((s) => s.id).sort())
    const packs = (await fsp.readdir(path.join(fx.repo, 'data'), {recursive: true})).filter((p) => /\/[0-9a-f]{64}$/.test(p)).map((p) => path.basename(p))
    expect(report.packsRead).toEqual(packs.sort())
    expect(report.counts).toMatchObject({snapshots: 4, indexFiles: 4, packs: 4, packsRead: 4})
    expect(report.counts.trees).toBeGreaterThanOrEqual(8)
    expect(report.counts.chunks).toBeGreaterThanOrEqual(9)
    expect(report.counts.blobsRead).toBe(report.counts.chunks + report.counts.trees)
    const packBytes = (await Promise.all(packs.map((p) => fsp.stat(packFile(fx.repo, p))))).reduce((n, st) => n + st.size, 0)
    expect(report.counts.bytesRead).toBeGreaterThanOrEqual(packBytes)
    expect(report.counts.bytesHashed).toBeGreaterThan(1_000_000)
  })

  it('a failing verify prints its findings on stdout even with --quiet, and exits 12', async () => {
    const repo = await copyRepo(fx)
    const chunk = await locate(repo, fx.snaps.c.id, 'c1.bin', 'chunk')
    await fsp.rm(packFile(repo, chunk.pack))
    const r = await runCli(['verify', '--repo', repo, '--quiet'])
    expect(r.code).toBe(12)
    expect(r.stdout).toContain(`error pack-missing: pack ${chunk.pack} is in the index but not in the repository (affects snapshot ${fx.snaps.c.id.slice(0, 12)})`)
    expect(r.stderr).toBe('')
    const loud = await runCli(['verify', '--repo', repo])
    expect(loud.stderr).toMatch(/^verify: 1 error: /)
    expect(loud.stderr).toMatch(/\nckpt repair drops what is damaged/)
  })

  it('exits 10 when there is no repository, and creates nothing', async () => {
    const dir = await scratchDir()
    const missing = path.join(dir, 'nothing-here')
    const r = await runCli(['verify', '--repo', missing])
    expect(r.code).toBe(10)
    expect(r.stderr).toMatch(/^ckpt: no ckpt repository at /)
    await expect(fsp.stat(missing)).rejects.toThrow(/ENOENT/)
    const json = await runCli(['verify', '--repo', dir, '--json'])
    expect(json.code).toBe(10)
    expect(JSON.parse(json.stdout)).toMatchObject({error: {code: 'NO_REPOSITORY', exitCode: 10}})
    expect(await fsp.readdir(dir)).toEqual([])
  })

  it('takes a shared lock: exits 11 while prune holds the exclusive lock, runs beside a snapshot', async () => {
    const repo = await copyRepo(fx) // other tests copy fx.repo, lock files included
    const backend = new LocalBackend(repo)
    const exclusive = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'})
    try {
      const r = await runCli(['verify', '--repo', repo])
      expect(r.code).toBe(11)
      expect(r.stderr).toMatch(/is locked: exclusive lock held by "prune"/)
    } finally {
      await exclusive.release()
    }
    const shared = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'})
    try {
      await ckpt(['verify', '--repo', repo, '--quiet'])
    } finally {
      await shared.release()
    }
  })

  it('with snapshot ids checks only what they reach', async () => {
    const repo = await copyRepo(fx)
    const chunk = await locate(repo, fx.snaps.a.id, 'a1.bin', 'chunk')
    const c1 = await locate(repo, fx.snaps.c.id, 'c1.bin', 'chunk')
    await flipByte(packFile(repo, chunk.pack), chunk.offset + 7)
    // c does not use the damaged pack: clean, and only c's pack is read.
    const c = await verifyJson(['--repo', repo, fx.snaps.c.id.slice(0, 8), '--read-data'])
    expect(c.report.findings).toEqual([])
    expect(c.code).toBe(0)
    expect(c.report.snapshots).toEqual([fx.snaps.c.id])
    expect(c.report.packsRead).toEqual([c1.pack])
    // "latest" is a2, which uses the damaged chunk.
    const latest = await verifyJson(['--repo', repo, 'latest', fx.snaps.b.id, '--read-data'])
    expect(latest.code).toBe(12)
    expect(latest.report.snapshots).toEqual([fx.snaps.a2.id, fx.snaps.b.id].sort())
    expect(latest.report.findings.map((f) => [f.kind, f.id, f.snapshots])).toEqual([['chunk-corrupt', chunk.id, [fx.snaps.a2.id]]])
    const unknown = await runCli(['verify', '--repo', repo, 'ffff0000'])
    expect(unknown.code).toBe(4)
  })

  it('names a damaged manifest given by id instead of saying "not found"', async () => {
    const repo = await copyRepo(fx)
    await flipByte(path.join(repo, 'snapshots', fx.snaps.b.id), 30)
    const {code, report} = await verifyJson(['--repo', repo, fx.snaps.b.id.slice(0, 10)])
    expect(code).toBe(12)
    expect(report.findings.map((f) => [f.kind, f.snapshots])).toEqual([['manifest-damaged', [fx.snaps.b.id]]])
  })

  it('passes right after prune (snapshots removed, packs deleted and repacked)', async () => {
    const repo = await copyRepo(fx)
    await ckpt(['forget', fx.snaps.b.id, '--repo', repo, '--quiet'])
    await ckpt(['prune', '--keep-last', '1', '--group-by', 'none', '--repack-threshold', '1%', '--repo', repo, '--quiet'])
    const {code, report} = await verifyJson(['--repo', repo, '--read-data'])
    expect(report.snapshots).toEqual([fx.snaps.a2.id])
    // a2's parent a was removed: information, not an error.
    expect(report.findings.map((f) => [f.severity, f.kind, f.id, f.snapshots])).toEqual([['info', 'parent-missing', fx.snaps.a.id, [fx.snaps.a2.id]]])
    expect(code).toBe(0)
    expect(report.counts.packsRead).toBeGreaterThan(0)
    const r = await ckpt(['verify', '--repo', repo])
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^verify: no errors, 1 note \(--json lists them\): 1 snapshot, /)
  })

  it('refuses bad flags with exit 2', async () => {
    for (const args of [['--read-data', '--read-data-subset', '1/2'], ['--read-data-subset', '0/3'], ['--read-data-subset', '4/3'], ['--read-data-subset', '150%'], ['--source', fx.base]]) {
      const r = await runCli(['verify', '--repo', fx.repo, ...args])
      expect(r.code, args.join(' ')).toBe(2)
    }
  })
})

describe('--read-data-subset', () => {
  let repo: string
  let packs: string[]

  beforeAll(async () => {
    const dir = await scratchDir()
    repo = path.join(dir, 'repo')
    // 1 MiB packs (the smallest allowed), so a few MiB of data make several packs.
    await initLocalRepository(repo, {now: Date.now(), packSize: 1024 * 1024})
    const src = path.join(dir, 'src')
    await fsp.mkdir(src)
    await buildTree(src, Object.fromEntries(Array.from({length: 6}, (_, i) => [`f${i}`, {file: {random: 1_100_000, seed: i + 10}}])))
    await ckpt(['snapshot', src, '--repo', repo, '--quiet'])
    packs = (await fsp.readdir(path.join(repo, 'data'), {recursive: true})).filter((p) => /\/[0-9a-f]{64}$/.test(p)).map((p) => path.basename(p)).sort()
    expect(packs.length).toBeGreaterThanOrEqual(6)
  })

  it('1/3, 2/3 and 3/3 together read every pack exactly once', async () => {
    const slices = await Promise.all([1, 2, 3].map((n) => verifyJson(['--repo', repo, '--read-data-subset', `${n}/3`])))
    const read = slices.flatMap((s) => s.report.packsRead)
    expect(read.sort()).toEqual(packs)
    expect(slices.reduce((n, s) => n + s.report.counts.packsRead, 0)).toBe(packs.length)
    for (const [i, s] of slices.entries()) {
      expect(s.code).toBe(0)
      expect(s.report).toMatchObject({readData: 'subset', subset: `${i + 1}/3`})
      // Every slice still checks every pack's size and header.
      expect(s.report.counts.packs).toBe(packs.length)
    }
    // Deterministic: the same slice reads the same packs again.
    const again = await verifyJson(['--repo', repo, '--read-data-subset', '2/3'])
    expect(again.report.packsRead).toEqual(slices[1]!.report.packsRead)
  })

  it('a damaged chunk is found by exactly one slice', async () => {
    const copy = path.join(await scratchDir(), 'repo')
    await fsp.cp(repo, copy, {recursive: true})
    // A byte in the middle of a data blob (offset 100 of some pack can be a tree's, which is
    // reported as tree-corrupt).
    const {pack: victim, at} = await withRepo(copy, async (r) => {
      let hit: {pack: string; at: number} | undefined
      r.index.forEach((id) => {
        const loc = r.lookup(id)!
        if (!hit && loc.type === BlobType.data && loc.storedLength > 100) hit = {pack: loc.pack, at: loc.offset + (loc.storedLength >> 1)}
      })
      return hit!
    })
    await flipByte(packFile(copy, victim), at)
    const slices = await Promise.all([1, 2, 3].map((n) => verifyJson(['--repo', copy, '--read-data-subset', `${n}/3`])))
    const found = slices.filter((s) => s.report.findings.some((f) => f.kind === 'chunk-corrupt' && f.pack === victim))
    expect(found).toHaveLength(1)
    expect(found[0]!.code).toBe(12)
    expect(slices.map((s) => s.code).sort()).toEqual([0, 0, 12])
  })

  it('N% reads a random sample of that size', async () => {
    const {code, report} = await verifyJson(['--repo', repo, '--read-data-subset', '34%'])
    expect(code).toBe(0)
    expect(report.subset).toBe('34%')
    expect(report.packsRead).toHaveLength(Math.ceil(packs.length * 0.34))
    for (const p of report.packsRead) expect(packs).toContain(p)
  })
})
