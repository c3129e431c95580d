// Crash points: SIGKILL snapshot, in-place restore, restore --target and prune at a sample of the
// fault points each passes through (src/core/faultpoint.ts) and at random moments after one;
// after each the repository verifies, no committed snapshot lost a byte, the destination of a
// restore is wholly old or wholly new, and the next run succeeds and leaves nothing behind.
// A bounded sample for CI, one file per command (crash-*.test.ts) so each stays under ~30 s;
// bench/soak.mjs runs the same trials by the thousand.
import {promises as fsp} from 'node:fs'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {CRASH_OPS, type CrashOp, crashTrial, describeTrial, enumeratePoints, type Problem, spread, type TrialResult, type Workspace, createWorkspace} from '../helpers/crash.js'
import {seededRandom, tempDir} from '../helpers/tree.js'

const SEED = Number(process.env.CKPT_TEST_SEED ?? 11)
const POINTS_PER_OP = 2
const RANDOM_PER_OP = 1

const show = (t: TrialResult, kinds: readonly Problem['kind'][]) =>
  t.problems.filter((p) => kinds.includes(p.kind)).map((p) => `${describeTrial(t)}: ${p.kind}: ${p.message.slice(0, 400)}`)

export function crashSuite(op: CrashOp): void {
  let ws: Workspace
  const results: TrialResult[] = []
  beforeAll(async () => {
    ws = await createWorkspace(await tempDir('ckpt-crash-'), SEED)
  }, 60_000)
  afterAll(async () => {
    if (ws) await fsp.rm(ws.root, {recursive: true, force: true})
  })

  test('killed at fault points and at random moments: verify clean, no snapshot lost, destination whole, next run succeeds', {timeout: 120_000}, async () => {
    const points = await enumeratePoints(ws, op, SEED)
    expect(points.length).toBeGreaterThan(1)
    const rand = seededRandom(SEED + 7919 * CRASH_OPS.indexOf(op))
    const faults = [
      ...spread(points, POINTS_PER_OP).map((point) => ({point})),
      ...Array.from({length: RANDOM_PER_OP}, () => ({afterHits: 1 + Math.floor(rand() * points.length), delayMs: Math.floor(rand() * 20)})),
    ]
    for (const fault of faults) {
      const t = await crashTrial(ws, op, SEED, fault, {restoreAll: false})
      results.push(t)
      if ('point' in fault) expect(t.killed, `${describeTrial(t)} was not killed`).toBe(true)
      expect(show(t, ['hang', 'exit', 'stack-trace', 'atomicity', 'verify', 'lost', 'next-run'])).toEqual([])
      expect(t.bytesLost).toBe(0)
    }
  })

  test('the next run leaves no temp file in the repository and no temp tree beside a restore target', () => {
    expect(results.length).toBeGreaterThan(0)
    expect(results.flatMap((t) => show(t, ['leftover']))).toEqual([])
  })
}
