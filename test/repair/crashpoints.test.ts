// Repair crashing at each of its changes (a backend that "dies" at its Nth put, delete or pack
// commit: that change and every later one fail). After each crash no index entry points at a
// deleted pack, the snapshots that did not need the damaged blob still restore, and the next
// repair finishes the work: the damaged pack is gone and only the damaged blob is missing.
import {afterAll, beforeAll, expect, test} from 'vitest'

import {runRepair} from '../../src/prune/repair.js'
import {Repository} from '../../src/repo/repository.js'
import {LocalBackend} from '../../src/store/local.js'
import {verifyRepository} from '../../src/verify/verify.js'
import {Crash, FaultyBackend} from '../helpers/faultbackend.js'
import {buildFixture, copyRepo, expectRestores, type Fixture, flipByte, locate, type Located, packFile, removeScratch} from '../verify/fixture.js'

let fx: Fixture
let chunk: Located

beforeAll(async () => {
  fx = await buildFixture()
  chunk = await locate(fx.repo, fx.snaps.a.id, 'a1.bin', 'chunk')
})

afterAll(async () => {
  await removeScratch()
})

test('repair crashing at each of its changes leaves a repository the next repair completes', async () => {
  let completed = false
  let crashAt = 0
  while (!completed) {
    crashAt++
    expect(crashAt, 'repair should finish within a few changes').toBeLessThan(20)
    const dir = await copyRepo(fx)
    await flipByte(packFile(dir, chunk.pack), chunk.offset + Math.floor(chunk.storedLength / 2))
    const local = new LocalBackend(dir)
    try {
      await runRepair(await Repository.open(new FaultyBackend(local, {fault: 'crash', nth: crashAt})), {dryRun: false})
      completed = true
    } catch (err) {
      if (!(err instanceof Crash)) throw err
    }
    const after = await verifyRepository(local)
    expect(after.findings.filter((f) => f.kind === 'pack-missing' || f.kind === 'index-damaged'), `crash at ${crashAt}`).toEqual([])
    for (const s of [fx.snaps.b, fx.snaps.c]) expect(await expectRestores(dir, s), `crash at ${crashAt}`).toEqual([])

    const again = await runRepair(await Repository.open(local), {dryRun: false})
    expect(again.remaining.map((f) => [f.kind, f.id]), `crash at ${crashAt}`).toEqual([['chunk-missing', chunk.id]])
    expect(again.brokenSnapshots).toEqual([fx.snaps.a.id, fx.snaps.a2.id].sort())
    const data = new Set<string>()
    for await (const o of local.list('data')) data.add(o.name)
    expect(data.has(chunk.pack), `crash at ${crashAt}`).toBe(false)
    const finalCheck = await verifyRepository(local, {readData: {kind: 'all'}})
    expect(finalCheck.findings.filter((f) => f.severity === 'error').map((f) => f.kind)).toEqual(['chunk-missing'])
  }
  // Four changes (the new pack, its index file, the old index file deleted, the damaged pack
  // deleted; the old index file listed only that pack, so nothing is left to rewrite): the fifth run completes.
  expect(crashAt).toBe(5)
})
