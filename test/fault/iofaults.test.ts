// I/O faults: snapshot and prune in process over a backend that fails one chosen operation with
// EIO, ENOSPC, a short write (part of a pack's bytes written, then ENOSPC) or a crash (that
// change and every later one fail). After each: the command failed with the error it met (a full
// disk as exit 7's NoSpaceError), left no temp file in the repository, the repository verifies
// with --read-data, every snapshot restores exactly, and the next run succeeds.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {classifyOsError, NoSpaceError} from '../../src/core/errors.js'
import {type PruneOptions, runPrune} from '../../src/prune/prune.js'
import {Repository} from '../../src/repo/repository.js'
import {createSnapshot} from '../../src/snapshot/create.js'
import {LocalBackend} from '../../src/store/local.js'
import {Crash, type FaultKind, type FaultOp, FaultyBackend} from '../helpers/faultbackend.js'
import {spread} from '../helpers/crash.js'
import {type Captured, captureTree, seededBytes} from '../helpers/tree.js'
import {fixture, type Fixture, restoreAllMatches, snap, verifyClean} from '../prune/helpers.js'

let f: Fixture
const captured = new Map<string, Map<string, Captured>>()
let nextTree: Map<string, Captured>
const PRUNE: Omit<PruneOptions, 'now'> = {policy: {last: 1}, groupBy: ['host', 'source'], timeZone: 'UTC', dryRun: false, repackThreshold: 0.3, mergeSmall: true}

beforeAll(async () => {
  // Small packs, so a snapshot commits several and prune repacks.
  f = await fixture({packSize: 1024 * 1024})
  for (let i = 0; i < 4; i++) {
    await fsp.writeFile(path.join(f.src, `f${i % 3}`), seededBytes(600_000 + i * 400_000, 7 + i))
    // Rewritten every time: packs that mix its dead versions with live data are repacked by prune.
    await fsp.writeFile(path.join(f.src, 'g'), seededBytes(800_000, 50 + i))
    const id = await snap(f, {time: `2026-11-0${i + 1}T00:00:00Z`})
    captured.set(id, await captureTree(f.src))
  }
  // What the snapshot under test stores: new data in several packs.
  await fsp.writeFile(path.join(f.src, 'new'), seededBytes(3_000_000, 99))
  nextTree = await captureTree(f.src)
})
afterAll(async () => {
  await f?.cleanup()
})

let n = 0
async function copyRepo(): Promise<string> {
  const dir = path.join(f.root, `copy-${n++}`)
  await fsp.cp(f.repoDir, dir, {recursive: true})
  return dir
}

async function tempFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir, {recursive: true})).filter((p) => path.basename(p).startsWith('.tmp-'))
}

function expectFault(err: unknown, fault: FaultKind): void {
  if (fault === 'crash') expect(err).toBeInstanceOf(Crash)
  else if (fault === 'EIO') expect((err as NodeJS.ErrnoException).code ?? (err as Error).message).toMatch(/EIO/)
  // ENOSPC and a short write (ENOSPC after part of the bytes): what the CLI reports as exit 7.
  else expect(classifyOsError(err, 'the repository')).toBeInstanceOf(NoSpaceError)
}

const CASES: {fault: FaultKind; ops?: FaultOp[]}[] = [{fault: 'EIO'}, {fault: 'ENOSPC'}, {fault: 'short', ops: ['write']}, {fault: 'crash'}]

async function count(run: (repo: Repository) => Promise<unknown>, ops?: FaultOp[]): Promise<number> {
  const counting = new FaultyBackend(new LocalBackend(await copyRepo()), {fault: 'EIO', nth: Infinity, ops})
  await run(await Repository.open(counting))
  return counting.matched
}

describe('snapshot', () => {
  const take = (repo: Repository) => createSnapshot(repo, {source: f.src, program: 'test', time: new Date('2026-11-20T00:00:00Z')})

  test.each(CASES)('$fault on $ops: fails with that error, leaves nothing behind, the next snapshot succeeds', {timeout: 60_000}, async ({fault, ops}) => {
    const total = await count(take, ops)
    expect(total).toBeGreaterThan(2)
    for (const nth of spread(Array.from({length: total}, (_, i) => i + 1), 2)) {
      const dir = await copyRepo()
      const faulty = new FaultyBackend(new LocalBackend(dir), {fault, nth, ops})
      const err = await take(await Repository.open(faulty)).then(() => undefined, (e: unknown) => e)
      expect(faulty.injected, `${fault} at ${nth}`).toBe(1)
      expectFault(err, fault)
      // A crash leaves what a killed process would; every other failure cleans up at once.
      if (fault !== 'crash') expect(await tempFiles(dir), `${fault} at ${nth}`).toEqual([])
      await verifyClean(dir)
      expect(await restoreAllMatches(dir, captured, f.root)).toBe(captured.size)
      const next = await take(await Repository.open(new LocalBackend(dir)))
      expect(await restoreAllMatches(dir, new Map([[next.id, nextTree]]), f.root)).toBe(1)
      if (fault === 'crash') expect(await tempFiles(dir), `temp files after the next snapshot (crash at ${nth})`).toEqual([])
      await fsp.rm(dir, {recursive: true, force: true})
    }
  })
})

describe('prune', () => {
  const prune = (repo: Repository) => runPrune(repo, {...PRUNE, now: Date.now()})

  test.each(CASES)('$fault on $ops: fails with that error, loses nothing, the next prune completes', {timeout: 60_000}, async ({fault, ops}) => {
    const total = await count(prune, ops)
    expect(total).toBeGreaterThan(1)
    for (const nth of spread(Array.from({length: total}, (_, i) => i + 1), 2)) {
      const dir = await copyRepo()
      const faulty = new FaultyBackend(new LocalBackend(dir), {fault, nth, ops})
      const err = await prune(await Repository.open(faulty)).then(() => undefined, (e: unknown) => e)
      expect(faulty.injected, `${fault} at ${nth}`).toBe(1)
      expectFault(err, fault)
      if (fault !== 'crash') expect(await tempFiles(dir), `${fault} at ${nth}`).toEqual([])
      await verifyClean(dir)
      await restoreAllMatches(dir, captured, f.root)
      const done = await prune(await Repository.open(new LocalBackend(dir)))
      expect(done.result).not.toBeNull()
      expect(await restoreAllMatches(dir, captured, f.root)).toBe(1)
      const again = await prune(await Repository.open(new LocalBackend(dir)))
      expect(again.plan.changes, `${fault} at ${nth}`).toEqual([])
      if (fault === 'crash') expect(await tempFiles(dir), `temp files after the next prune (crash at ${nth})`).toEqual([])
      await fsp.rm(dir, {recursive: true, force: true})
    }
  })
})

test('the fault backend injects what it is told, once', async () => {
  // The wrapper itself: a short write puts half the bytes in the temp file, then fails.
  const dir = await copyRepo()
  const faulty = new FaultyBackend(new LocalBackend(dir), {fault: 'short', nth: 1, ops: ['write']})
  const w = await faulty.create('data', 'ab'.repeat(32))
  await expect(w.write(Buffer.alloc(1000, 1), 0)).rejects.toMatchObject({code: 'ENOSPC'})
  const [temp] = await tempFiles(dir)
  expect((await fsp.stat(path.join(dir, temp!))).size).toBe(500)
  await w.abort()
  expect(await tempFiles(dir)).toEqual([])
  expect(faulty.injected).toBe(1)
})
