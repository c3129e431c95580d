// Crash at every step: a backend that "dies" at its Nth change (put, delete, commit of a pack;
// FaultyBackend of test/helpers/faultbackend.ts) - that change and every later one fail - runs
// prune once for every N. After each crash the repository verifies clean, every snapshot
// restores, and the next prune completes the work, after which a prune has nothing to do.
// Complements crash.test.ts (real SIGKILLs at random moments) with every point of the order of
// operations, deterministically.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {Repository} from '../../src/repo/repository.js'
import {runPrune, type PruneOptions} from '../../src/prune/prune.js'
import {LocalBackend} from '../../src/store/local.js'
import {Crash, FaultyBackend} from '../helpers/faultbackend.js'
import {type Captured, captureTree, seededBytes} from '../helpers/tree.js'
import {fixture, type Fixture, restoreAllMatches, snap, verifyClean} from './helpers.js'

let template: Fixture
const captured = new Map<string, Map<string, Captured>>()
const OPTS: Omit<PruneOptions, 'now'> = {policy: {last: 3}, groupBy: ['host', 'source'], timeZone: 'UTC', dryRun: false, repackThreshold: 0.3, mergeSmall: true}

beforeAll(async () => {
  template = await fixture({packSize: 1024 * 1024})
  for (let i = 0; i < 7; i++) {
    await fsp.writeFile(path.join(template.src, `f${i % 4}`), seededBytes(30_000 + i * 20_000, 1 + (i % 5)))
    const id = await snap(template, {time: `2026-11-0${i + 1}T00:00:00Z`})
    captured.set(id, await captureTree(template.src))
  }
})
afterAll(async () => {
  await template?.cleanup()
})

async function copyRepo(to: string): Promise<string> {
  await fsp.cp(template.repoDir, to, {recursive: true})
  return to
}

test('prune crashing at each of its changes leaves a repository the next prune completes', {timeout: 120_000}, async () => {
  const scratch = path.join(template.root, 'scratch')
  await fsp.mkdir(scratch)
  // How many changes a whole prune makes.
  const counting = new FaultyBackend(new LocalBackend(await copyRepo(path.join(scratch, 'count'))))
  await runPrune(await Repository.open(counting), {...OPTS, now: Date.now()})
  const total = counting.changes
  expect(total).toBeGreaterThan(8)

  for (let crashAt = 1; crashAt <= total; crashAt++) {
    const dir = await copyRepo(path.join(scratch, `at-${crashAt}`))
    const dying = new FaultyBackend(new LocalBackend(dir), {fault: 'crash', nth: crashAt})
    const err = await runPrune(await Repository.open(dying), {...OPTS, now: Date.now()}).then(() => undefined, (e: unknown) => e)
    expect(err, `crash at ${crashAt}`).toBeInstanceOf(Crash)
    await verifyClean(dir)
    const done = await runPrune(await Repository.open(new LocalBackend(dir)), {...OPTS, now: Date.now()})
    expect(done.result).not.toBeNull()
    const again = await runPrune(await Repository.open(new LocalBackend(dir)), {...OPTS, now: Date.now()})
    expect(again.removed, `crash at ${crashAt}`).toEqual([])
    expect(again.plan.changes, `crash at ${crashAt}: ${JSON.stringify(again.plan.changes)} after ${JSON.stringify(done.result)}`).toEqual([])
    if (crashAt % 5 === 0 || crashAt === total) await verifyClean(dir)
    expect(await restoreAllMatches(dir, captured, scratch)).toBe(3)
    await fsp.rm(dir, {recursive: true, force: true})
  }
})
