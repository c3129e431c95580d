#!/usr/bin/env node
// How long pausing and resuming a running program takes (src/live/pause.ts), and how long the
// watchdog takes to start (src/live/watchdog.ts). Writers: a shell appending to a file in a loop
// with a `sleep` child, times N (a tree of 2N+1 processes under one sh); paused by process tree,
// by cgroup v2 cgroup.freeze and by the v1 freezer (where mounted; needs root).
// Usage: node bench/live-pause.mjs [--reps 50] [--tree 1,10]   (needs `npm run build`)
import {spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {parseArgs} from 'node:util'

const {cgroupMounts, pause} = await import('../dist/live/pause.js')
const {Watchdog} = await import('../dist/live/watchdog.js')

const {values} = parseArgs({options: {reps: {type: 'string', default: '50'}, tree: {type: 'string', default: '1,10'}}})
const reps = Number(values.reps)
const dir = mkdtempSync(path.join(tmpdir(), 'ckpt-live-bench-'))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** n loops under one sh, which first moves itself into the cgroup, if one is given. */
function writer(n, cgroup) {
  const loops = Array.from({length: n}, (_, i) => `(while :; do echo x >> '${dir}/w${i}'; sleep 0.005; done) &`).join(' ')
  const move = cgroup ? `echo $$ > '${cgroup}/cgroup.procs'; ` : ''
  return spawn('/bin/sh', ['-c', `${move}${loops} wait`], {stdio: 'ignore', detached: true})
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  return `median ${at(0.5)} µs, p90 ${at(0.9)} µs, max ${s.at(-1)} µs`
}

async function measure(label, targets) {
  const stop = []
  const cont = []
  const failed = []
  let procs = 0
  for (let i = 0; i < reps; i++) {
    let p
    try {
      p = pause(targets, {timeoutMs: 2000})
    } catch (err) {
      failed.push(err.message) // resumed already: counted, and the run goes on
      continue
    }
    procs = p.pids().length
    const r = p.resume()
    stop.push(p.pauseUs)
    cont.push(r.resumeUs)
    await sleep(10)
  }
  console.log(`${label} (${procs} processes): pause ${stats(stop)}; resume ${stats(cont)}${failed.length ? `; ${failed.length} of ${reps} did not pause within 2 s: ${failed[0]}` : ''}`)
}

const kill = (w) => {
  try {
    process.kill(-w.pid, 'SIGKILL')
  } catch {
    // gone
  }
}

try {
  for (const n of values.tree.split(',').map(Number)) {
    const w = writer(n)
    try {
      await sleep(300)
      await measure(`process tree, ${n} writer loop${n > 1 ? 's' : ''}`, {pids: [w.pid]})
    } finally {
      kill(w)
    }
  }
  const mounts = cgroupMounts()
  for (const [label, root] of [['cgroup v2 cgroup.freeze', mounts.v2[0]], ['cgroup v1 freezer', mounts.freezer[0]]]) {
    if (!root) continue
    const cg = path.join(root, `ckpt-bench-${process.pid}`)
    mkdirSync(cg)
    const n = 10
    const w = writer(n, cg)
    try {
      await sleep(300)
      await measure(`${label}, ${n} writer loops`, {cgroups: [cg]})
    } finally {
      kill(w)
      while (readFileSync(path.join(cg, 'cgroup.procs'), 'latin1').trim() !== '') await sleep(5)
      rmdirSync(cg)
    }
  }
  const starts = []
  for (let i = 0; i < 10; i++) {
    const wd = await Watchdog.start({maxPauseMs: 5000})
    starts.push(Math.round(wd.startMs * 1000))
    await wd.resumed()
  }
  console.log(`watchdog start (spawn to ready): ${stats(starts)}`)
} finally {
  rmSync(dir, {recursive: true, force: true})
}
