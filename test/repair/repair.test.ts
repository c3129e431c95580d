// `ckpt repair`: damaged blobs are dropped from the index and their packs rewritten from what
// still checks out, so that the next snapshot of a source that has the data stores them again
// and heals every snapshot that needs them. Run through the CLI on copies of verify's fixture.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import type {RepairReport} from '../../src/prune/repair.js'
import {BlobType} from '../../src/repo/pack.js'
import {runCli} from '../helpers/cli.js'
import {
  buildFixture, copyRepo, expectRestores, type Fixture, flipByte, locate, type Located, packFile, packLayout, plantSnapshot, removeScratch, scratchDir,
  verifyJson, withRepo,
} from '../verify/fixture.js'

let fx: Fixture
/** First chunk of dirA/a1.bin: used by snapshots a and a2 only. */
let chunk: Located

beforeAll(async () => {
  fx = await buildFixture()
  chunk = await locate(fx.repo, fx.snaps.a.id, 'a1.bin', 'chunk')
})

afterAll(async () => {
  await removeScratch()
})

async function repair(repo: string, ...args: string[]): Promise<{code: number | null; report: RepairReport; stderr: string}> {
  const r = await runCli(['repair', '--repo', repo, '--json', ...args])
  try {
    return {code: r.code, report: JSON.parse(r.stdout) as RepairReport, stderr: r.stderr}
  } catch {
    throw new Error(`repair printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
  }
}

async function listing(repo: string): Promise<string[]> {
  const out: string[] = []
  for (const kind of ['data', 'index', 'snapshots']) {
    for (const e of await fsp.readdir(path.join(repo, kind), {recursive: true, withFileTypes: true})) {
      if (e.isFile()) out.push(path.join(path.relative(repo, e.parentPath), e.name))
    }
  }
  return out.sort()
}

async function ckptOk(args: string[]): Promise<string> {
  const r = await runCli(args)
  expect(r.code, `ckpt ${args.join(' ')}: ${r.stderr}`).toBe(0)
  return r.stdout.trim()
}

const flipChunk = (repo: string) => flipByte(packFile(repo, chunk.pack), chunk.offset + Math.floor(chunk.storedLength / 2))

describe.concurrent('ckpt repair', () => {
  it('a flipped byte: snapshot --force refuses to reference it; repair drops the blob, names the snapshots, and the next snapshot heals them', async () => {
    const repo = await copyRepo(fx)
    await flipChunk(repo)
    // The finding of the issue was that --force stored nothing new and exited 0, referencing the
    // damaged copy. Now --force checks what it reuses: it refuses and points at repair.
    const refused = await runCli(['snapshot', fx.snaps.a2.dir, '--repo', repo, '--force', '--quiet'])
    expect(refused.code, refused.stderr).toBe(12)
    expect(refused.stderr).toMatch(/ckpt repair/)
    expect((await verifyJson(['--repo', repo, '--read-data'])).code).toBe(12)

    const {code, report} = await repair(repo)
    expect(code).toBe(12)
    expect(report.droppedBlobs).toEqual([expect.objectContaining({id: chunk.id, type: 'chunk', pack: chunk.pack})])
    expect(report.packs).toEqual([expect.objectContaining({name: chunk.pack, reasons: ['chunk-corrupt'], present: true, blobsDropped: 1})])
    expect(report.packs[0]!.blobsKept).toBeGreaterThan(5)
    expect(report.brokenSnapshots).toEqual([fx.snaps.a.id, fx.snaps.a2.id].sort())
    expect(report.remaining.map((f) => [f.kind, f.id])).toEqual([['chunk-missing', chunk.id]])
    // The damaged pack is gone: no prune can read its header and index the blob again.
    await expect(fsp.stat(packFile(repo, chunk.pack))).rejects.toThrow(/ENOENT/)
    const keepAll = ['prune', '--repo', repo, '--keep-last', '100', '--quiet']
    expect((await runCli(keepAll)).code).toBe(12) // prune refuses a repository whose kept snapshots miss a blob
    // ... and has not found the damaged copy anywhere to index it again.
    expect((await verifyJson(['--repo', repo])).report.findings.map((f) => [f.kind, f.id])).toEqual([['chunk-missing', chunk.id]])
    // Snapshots that did not use the blob restore from the rewritten pack, byte for byte.
    expect(await expectRestores(repo, fx.snaps.b)).toEqual([])
    expect(await expectRestores(repo, fx.snaps.c)).toEqual([])

    // --force reads everything (independent of the stat cache) and stores the blob again.
    await ckptOk(['snapshot', fx.snaps.a2.dir, '--repo', repo, '--force', '--quiet'])
    const healed = await verifyJson(['--repo', repo, '--read-data'])
    expect(healed.report.findings.filter((f) => f.severity === 'error')).toEqual([])
    expect(healed.code).toBe(0)
    for (const s of [fx.snaps.a, fx.snaps.a2, fx.snaps.b]) expect(await expectRestores(repo, s)).toEqual([])
    expect((await runCli(keepAll)).code).toBe(0)
    expect((await verifyJson(['--repo', repo, '--read-data'])).code).toBe(0)
  })

  it('a clean repository: nothing to do, exit 0, nothing changed', async () => {
    const repo = await copyRepo(fx)
    const before = await listing(repo)
    const {code, report} = await repair(repo)
    expect(report).toMatchObject({exitCode: 0, packs: [], droppedBlobs: [], result: null, brokenSnapshots: []})
    expect(code).toBe(0)
    expect(await listing(repo)).toEqual(before)
  })

  it('--dry-run changes nothing and exits 12 naming the affected snapshots', async () => {
    const repo = await copyRepo(fx)
    await flipChunk(repo)
    const before = await listing(repo)
    const {code, report} = await repair(repo, '--dry-run')
    expect(code).toBe(12)
    expect(report).toMatchObject({dryRun: true, result: null, brokenSnapshots: [fx.snaps.a.id, fx.snaps.a2.id].sort()})
    expect(report.droppedBlobs.map((b) => b.id)).toEqual([chunk.id])
    expect(await listing(repo)).toEqual(before)
  })

  it('--from-verify reads only the packs the report names', async () => {
    const repo = await copyRepo(fx)
    await flipChunk(repo)
    const verified = await verifyJson(['--repo', repo, '--read-data'])
    const file = path.join(await scratchDir(), 'verify.json')
    await fsp.writeFile(file, JSON.stringify(verified.report))
    const {code, report} = await repair(repo, '--from-verify', file)
    expect(verified.report.counts.packs).toBeGreaterThan(1)
    expect(report.found.packsRead).toBe(1)
    expect(report.droppedBlobs.map((b) => b.id)).toEqual([chunk.id])
    expect(code).toBe(12)
  })

  it('a damaged pack header: every blob is kept (located through the index), the pack rewritten, exit 0', async () => {
    const repo = await copyRepo(fx)
    const file = packFile(repo, chunk.pack)
    await flipByte(file, (await packLayout(file)).headerStart + 5)
    const {code, report} = await repair(repo)
    expect(report.packs).toEqual([expect.objectContaining({name: chunk.pack, reasons: ['pack-header-damaged'], blobsDropped: 0})])
    expect(report.brokenSnapshots).toEqual([])
    expect(code).toBe(0)
    expect((await verifyJson(['--repo', repo, '--read-data'])).code).toBe(0)
    for (const s of [fx.snaps.a, fx.snaps.b]) expect(await expectRestores(repo, s)).toEqual([])
  })

  it('a damaged index file is deleted and the packs snapshots need from it indexed again; an unreadable unindexed pack is deleted', async () => {
    const repo = await copyRepo(fx)
    const indexDir = path.join(repo, 'index')
    const damaged = (await fsp.readdir(indexDir)).sort()[0]!
    await flipByte(path.join(indexDir, damaged), 100)
    const junk = 'ab'.repeat(32)
    await fsp.mkdir(path.join(repo, 'data', 'ab'), {recursive: true})
    await fsp.writeFile(path.join(repo, 'data', 'ab', junk), Buffer.alloc(100, 7))
    const {code, report} = await repair(repo)
    expect(report.damagedIndexFiles).toEqual([damaged])
    expect(report.unreadablePacks).toEqual([junk])
    expect(report.droppedBlobs).toEqual([])
    expect(report.brokenSnapshots).toEqual([])
    expect(code).toBe(0)
    expect(await fsp.readdir(indexDir)).not.toContain(damaged)
    await expect(fsp.stat(path.join(repo, 'data', 'ab', junk))).rejects.toThrow(/ENOENT/)
    const after = await verifyJson(['--repo', repo, '--read-data'])
    expect(after.report.findings).toEqual([])
    for (const s of Object.values(fx.snaps)) expect(await expectRestores(repo, s)).toEqual([])
  })

  it('a missing pack loses its index entries; the snapshots that used it are named', async () => {
    const repo = await copyRepo(fx)
    await fsp.rm(packFile(repo, chunk.pack))
    const {code, report} = await repair(repo)
    expect(report.packs).toEqual([expect.objectContaining({name: chunk.pack, reasons: ['pack-missing'], present: false, blobsKept: 0})])
    expect(report.brokenSnapshots).toEqual([fx.snaps.a.id, fx.snaps.a2.id, fx.snaps.b.id].sort())
    expect(report.remaining.every((f) => f.kind === 'chunk-missing' || f.kind === 'tree-missing')).toBe(true)
    expect(code).toBe(12)
    expect(await expectRestores(repo, fx.snaps.c)).toEqual([])
  })

  it('hostile content: a chunk above the chunk bound is dropped without being inflated; a file whose size contradicts its chunks is left and reported', async () => {
    const repo = await copyRepo(fx)
    const {tooLarge, mismatched, big} = await withRepo(repo, async (r) => {
      const plain = Buffer.alloc(r.config.chunker.maxSize * 8)
      const big = blake3(plain).toString('hex')
      const tooLarge = await plantSnapshot(r, fx.snaps.c.id, async (nodes, writer) => {
        await writer.add(BlobType.data, Buffer.from(big, 'hex'), plain)
        return nodes.map((n) => (n.name.toString() === 'c1.bin' ? {...n, size: plain.length, chunks: [Buffer.from(big, 'hex')]} : n))
      })
      const mismatched = await plantSnapshot(r, fx.snaps.b.id, async (nodes) => nodes.map((n) => (n.name.toString() === 'b1.bin' ? {...n, size: n.size - 1} : n)))
      return {tooLarge, mismatched, big}
    })
    const {code, report} = await repair(repo)
    expect(report.droppedBlobs).toEqual([expect.objectContaining({id: big, type: 'chunk', reason: expect.stringMatching(/above the repository's maximum chunk size/)})])
    expect(report.packs.map((p) => p.reasons)).toEqual([['chunk-too-large']])
    expect(report.brokenSnapshots).toEqual([tooLarge, mismatched].sort())
    expect(report.remaining.map((f) => f.kind).sort()).toEqual(['chunk-missing', 'file-size-mismatch'])
    expect(code).toBe(12)
    // The planted trees shared the rewritten pack with the big chunk: they were kept.
    expect((await verifyJson(['--repo', repo, '--read-data'])).report.findings.map((f) => f.kind).sort()).toEqual(['chunk-missing', 'file-size-mismatch'])
  })
})
