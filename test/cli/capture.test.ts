// Plain capture tells the truth: snapshots taken while a real writer changes its directory in every
// way programs do. Each snapshot that ckpt calls consistent must restore to a state the writer
// logged; each one it does not is flagged (exit 3, a warning naming what moved). Snapshots taken
// while the writer is stopped by hand are consistent and real states, so the test sees both sides.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt, runCli} from '../helpers/cli.js'
import {startStateWriter, stateDigest} from '../helpers/statewriter.js'
import {tempDir} from '../helpers/tree.js'

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

interface Taken {id: string; code: number | null; consistent: boolean; stderr: string}

test('a plain capture beside a running writer never claims a state the directory did not have', {timeout: 180_000}, async () => {
  const src = path.join(root, 'state')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(src)
  await ckpt(['init', '--repo', repo])
  const writer = await startStateWriter(src, path.join(root, 'states.log'), {seed: 11, burst: 15, idleMs: 40})
  const taken: Taken[] = []
  let states = new Set<string>()
  try {
    for (let i = 0; i < 12; i++) {
      const stopped = i % 3 === 2
      if (stopped) {
        writer.proc.kill('SIGSTOP')
        // Past the racy window of the writer's last change: what a consistent claim needs.
        const t = Date.now()
        while (Date.now() < t + 80) await new Promise((r) => setTimeout(r, 10))
      }
      const r = await runCli(['snapshot', src, '--repo', repo, '--json'])
      if (stopped) writer.proc.kill('SIGCONT')
      expect([0, 3], r.stderr).toContain(r.code)
      const doc = JSON.parse(r.stdout) as {id: string; capture: {consistent: boolean; moveCount: number}}
      taken.push({id: doc.id, code: r.code, consistent: doc.capture.consistent, stderr: r.stderr})
      if (stopped) expect(doc.capture.consistent, r.stderr).toBe(true)
    }
  } finally {
    states = await writer.stop()
  }
  let flagged = 0
  for (const t of taken) {
    const out = path.join(root, `restore-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    const real = states.has(await stateDigest(out))
    if (t.consistent) {
      expect(real, `snapshot ${t.id} claimed consistent but is not a state the writer had`).toBe(true)
    } else {
      flagged++
      expect(t.code).toBe(3)
      expect(t.stderr).toMatch(/changed while it was captured/)
    }
    await fsp.rm(out, {recursive: true, force: true})
  }
  // The writer ran during the unstopped captures: at least one must have been caught moving.
  expect(flagged).toBeGreaterThan(0)
})
