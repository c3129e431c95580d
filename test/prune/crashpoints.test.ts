// Crash at every step: a backend that "dies" at its Nth change (put, delete, commit of a pack)
// - that change and every later one fail - runs prune once for every N. After each crash the
// repository verifies clean, every snapshot restores, and the next prune completes the work,
// after which a prune has nothing to do. Complements crash.test.ts (real SIGKILLs at random
// moments) with every point of the order of operations, deterministically.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {Repository} from '../../src/repo/repository.js'
import {runPrune, type PruneOptions} from '../../src/prune/prune.js'
import type {Backend, ByteRange, ObjectInfo, ObjectKind, ObjectWriter, TempObject} from '../../src/store/backend.js'
import {LocalBackend} from '../../src/store/local.js'
import {type Captured, captureTree, seededBytes} from '../helpers/tree.js'
import {fixture, type Fixture, restoreAllMatches, snap, verifyClean} from './helpers.js'

class Crash extends Error {}

/** Delegates to a local backend; from its `crashAt`th change on, every change fails. Locks are left alone. */
class DyingBackend implements Backend {
  changes = 0
  constructor(private readonly inner: LocalBackend, private readonly crashAt: number) {}
  get location(): string {
    return this.inner.location
  }
  private change(kind: ObjectKind): void {
    if (kind === 'locks') return
    if (++this.changes >= this.crashAt) throw new Crash(`crashed at change ${this.changes}`)
  }
  async put(kind: ObjectKind, name: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    this.change(kind)
    return this.inner.put(kind, name, data)
  }
  async create(kind: ObjectKind, name: string): Promise<ObjectWriter> {
    const w = await this.inner.create(kind, name)
    return {
      write: (data, position) => w.write(data, position),
      commit: async () => {
        this.change(kind)
        return w.commit()
      },
      abort: () => w.abort(),
    }
  }
  get(kind: ObjectKind, name: string, range?: ByteRange): Promise<Buffer> {
    return this.inner.get(kind, name, range)
  }
  stat(kind: ObjectKind, name: string): Promise<ObjectInfo> {
    return this.inner.stat(kind, name)
  }
  list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    return this.inner.list(kind)
  }
  async delete(kind: ObjectKind, name: string): Promise<void> {
    this.change(kind)
    return this.inner.delete(kind, name)
  }
  temporaries(): AsyncIterable<TempObject> {
    return this.inner.temporaries()
  }
  removeTemporary(id: string): Promise<void> {
    return this.inner.removeTemporary(id)
  }
}

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
  const counting = new DyingBackend(new LocalBackend(await copyRepo(path.join(scratch, 'count'))), Infinity)
  await runPrune(await Repository.open(counting), {...OPTS, now: Date.now()})
  const total = counting.changes
  expect(total).toBeGreaterThan(8)

  for (let crashAt = 1; crashAt <= total; crashAt++) {
    const dir = await copyRepo(path.join(scratch, `at-${crashAt}`))
    const dying = new DyingBackend(new LocalBackend(dir), crashAt)
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
