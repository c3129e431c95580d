// The pieces of a paused capture put together as `ckpt snapshot --pause-pid` will (pre-copy while
// the writer runs, pause, stat again, plan, copy aside, resume), against a real writer whose states
// can be told from torn images: it replaces `state` atomically (temp + rename over) with n, then
// appends n to `log`. In every state it ever has, the last line of log is state or state - 1.
import {type ChildProcess, spawn} from 'node:child_process'
import {lstatSync, mkdirSync, readdirSync, readFileSync, rmSync} from 'node:fs'
import path from 'node:path'

import {afterAll, expect, it} from 'vitest'

import {Aside} from '../../src/live/aside.js'
import {pause} from '../../src/live/pause.js'
import {planCapture, type ReadRecord, type StatRecord} from '../../src/live/plan.js'
import {filesBeingWritten} from '../../src/live/procfs.js'
import {stopChild, tempDir, waitFor} from './helpers.js'

const base = tempDir()
const dir = path.join(base, 'state')
let writer: ChildProcess | undefined
afterAll(async () => {
  if (writer) await stopChild(writer)
  rmSync(base, {recursive: true, force: true})
})

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n

function stat(rel: string): StatRecord {
  const st = lstatSync(path.join(dir, rel), {bigint: true})
  return {path: rel, type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file', size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino}
}

const pauseArray = new Int32Array(new SharedArrayBuffer(4))

/**
 * The pre-copy: read every file while the writer runs, noting its stat and when the read ended.
 * `state` before `log`, 20 ms apart, as a walk of a large directory would: the writer moves on
 * meanwhile, so the pre-copy alone is torn.
 */
function preCopy(): {records: ReadRecord[]; content: Map<string, Buffer>} {
  const records: ReadRecord[] = []
  const content = new Map<string, Buffer>()
  for (const name of readdirSync(dir).sort().reverse()) {
    Atomics.wait(pauseArray, 0, 0, 20)
    try {
      const before = stat(name)
      const data = readFileSync(path.join(dir, name))
      records.push({...before, readNs: nowNs()})
      content.set(name, data)
    } catch {
      // renamed away between the listing and the read: the pause finds what is there
    }
  }
  return {records, content}
}

function consistent(image: Map<string, Buffer>): boolean {
  const state = Number(image.get('state')?.toString() ?? 'NaN')
  const lines = image.get('log')?.toString().trim().split('\n') ?? []
  const last = Number(lines.at(-1) ?? 0)
  return last === state || last === state - 1
}

it('every paused capture is a state the writer had, even when the pre-copy alone is torn', async () => {
  mkdirSync(dir)
  writer = spawn('/bin/sh', ['-c', 'n=0; while :; do n=$((n+1)); echo $n > state.tmp; mv state.tmp state; echo $n >> log; done'], {cwd: dir, stdio: 'ignore', detached: true})
  await waitFor(() => readdirSync(dir).includes('log'), 'the writer to start')
  let torn = 0
  let copiedFiles = 0
  for (let i = 0; i < 20; i++) {
    const {records, content} = preCopy()
    if (!consistent(content)) torn++
    const p = pause({pids: [writer.pid!]}, {timeoutMs: 5000, resumeOnExit: false})
    let plan
    const aside = new Aside({stagingDir: base})
    try {
      const paused = readdirSync(dir).map(stat)
      plan = planCapture(records, paused, filesBeingWritten(p.pids(), dir))
      for (const c of plan.copy) aside.copy(path.join(dir, c.path), c.path)
    } finally {
      p.resume()
    }
    // After the pause: the image is the pre-copy, with what the plan says applied.
    const image = new Map(content)
    for (const r of plan.removed) image.delete(r)
    for (const m of plan.moved) image.set(m.to, content.get(m.from)!)
    for (const m of plan.moved) if (!plan.moved.some((x) => x.to === m.from)) image.delete(m.from)
    for (const c of aside.copies) image.set(c.path, c.data ?? readFileSync(c.file!))
    copiedFiles += aside.copies.length
    aside.dispose()
    expect(consistent(image), `capture ${i}: state ${image.get('state')}, log ends ${image.get('log')?.toString().trim().split('\n').at(-1)}`).toBe(true)
  }
  console.log(`20 paused captures consistent; ${torn} of the pre-copies alone were torn; ${copiedFiles} files copied inside the pauses`)
  expect(torn).toBeGreaterThan(0) // else this test would not show the plan doing anything
})
