// A training job that writes checkpoints as such jobs do (a new file written to a temporary name,
// fsync'd and renamed, then a `latest` pointer replaced the same way, old checkpoints deleted),
// captured with --pause-pid: in every restored copy `latest` must name a checkpoint that is there
// and whole (its recorded digest matches its bytes), as must every other checkpoint kept.
import {createHash} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt} from '../helpers/cli.js'
import {describePauses, snapshots, start, waitFor, which} from '../helpers/programs.js'
import {PYTHON} from '../helpers/statewriter.js'
import {tempDir} from '../helpers/tree.js'

const missing = which(path.basename(PYTHON), [path.dirname(PYTHON)]) ? '' : 'python3'
if (missing) console.warn('test/programs/training: skipped, not installed: python3')

// Each checkpoint: a line of JSON (step, sha256 of the payload), then the payload (the "weights").
const JOB = `
import hashlib, json, os, sys
d = sys.argv[1]
def atomic(name, data):
    tmp = os.path.join(d, '.' + name + '.tmp')
    with open(tmp, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, os.path.join(d, name))
step = 0
while True:
    step += 1
    weights = os.urandom(256 * 1024)
    head = json.dumps({'step': step, 'sha256': hashlib.sha256(weights).hexdigest()}).encode() + b'\\n'
    atomic('ckpt-%06d.bin' % step, head + weights)
    atomic('latest', b'ckpt-%06d.bin' % step)
    old = os.path.join(d, 'ckpt-%06d.bin' % (step - 3))
    if os.path.exists(old):
        os.unlink(old)
    print('step', step, flush=True)
`

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

async function wholeCheckpoint(file: string): Promise<number> {
  const buf = await fsp.readFile(file)
  const nl = buf.indexOf(10)
  const head = JSON.parse(buf.subarray(0, nl).toString()) as {step: number; sha256: string}
  expect(createHash('sha256').update(buf.subarray(nl + 1)).digest('hex'), `${file} is torn`).toBe(head.sha256)
  return head.step
}

test.skipIf(missing !== '')(`a training job's checkpoints restore whole, with latest pointing at one${missing ? ' (skipped: python3 not installed)' : ''}`, {timeout: 60_000}, async () => {
  const dir = path.join(root, 'run')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(dir)
  await ckpt(['init', '--repo', repo])
  const job = start(PYTHON, ['-c', JOB, dir])
  const steps = () => [...job.output().matchAll(/step (\d+)/g)].length
  let taken
  try {
    await waitFor('the job to write 5 checkpoints', () => steps() >= 5 || (job.proc.exitCode !== null && new Error(job.output())))
    let seen = steps()
    const progressed = () => waitFor('the job to write another checkpoint', () => steps() > seen && (seen = steps()) > 0)
    taken = await snapshots(dir, repo, ['--pause-pid', String(job.proc.pid)], 4, progressed)
  } finally {
    await job.stop()
  }
  console.log(describePauses('training', taken))
  for (const t of taken) {
    expect(t.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
    const out = path.join(root, `restored-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    const latest = (await fsp.readFile(path.join(out, 'latest'), 'utf8')).trim()
    const step = await wholeCheckpoint(path.join(out, latest))
    const kept = (await fsp.readdir(out)).filter((n) => /^ckpt-\d+\.bin$/.test(n))
    for (const n of kept) await wholeCheckpoint(path.join(out, n))
    console.log(`training ${t.id.slice(0, 12)}: latest = ${latest} (step ${step}), ${kept.length} whole checkpoints`)
    await fsp.rm(out, {recursive: true, force: true})
  }
})
