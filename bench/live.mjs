#!/usr/bin/env node
// Live capture benchmark: how long a running writer is stopped per checkpoint, and what checkpointing
// costs its throughput. One seeded state directory (LSM-shaped: ~1 GiB of table files, a write-ahead
// log, a MANIFEST), one writer (bench/live-writer.mjs) changing about 1 % of it per checkpoint interval,
// and for each method N checkpoints taken while it runs:
//
//   ckpt-live     ckpt snapshot DIR --pause-pid PID     (pre-copy, short pause; pause as ckpt reports it)
//   stop-ckpt     kill -STOP; ckpt snapshot DIR; kill -CONT   (stop the world; pause timed here)
//   stop-restic   kill -STOP; restic backup DIR; kill -CONT   (the same with restic)
//   ckpt-reflink  ckpt-live on a loop-mounted XFS image made with reflink=1 (needs root; skipped with a
//                 message where the machine refuses)
//
// plus the writer alone for the same time (its throughput without checkpoints).
//
//   node bench/live.mjs [--work /tmp/ckpt-live] [--size-mib 1024] [--checkpoints 20] [--interval-ms 3000]
//                       [--methods ckpt-live,stop-ckpt,stop-restic,ckpt-reflink] [--out bench/out/live.json]
//
// Not part of the tests or CI. Writes JSON and a markdown table (beside --out, .md).
import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {cpus, release, totalmem} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {sstContent} from './gen.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const RUN_JS = join(dirname(BENCH), 'bin/run.js')
const WRITER = join(BENCH, 'live-writer.mjs')
const ALL = ['ckpt-live', 'stop-ckpt', 'stop-restic', 'ckpt-reflink']
const log = (m) => process.stderr.write(`[live] ${m}\n`)

const {values} = parseArgs({options: {
  work: {type: 'string', default: '/tmp/ckpt-live'},
  'size-mib': {type: 'string', default: '1024'},
  checkpoints: {type: 'string', default: '20'},
  'interval-ms': {type: 'string', default: '3000'},
  'ops-per-sec': {type: 'string', default: '200'},
  methods: {type: 'string', default: ALL.join(',')},
  out: {type: 'string', default: join(BENCH, 'out/live.json')},
}})
const work = resolve(values.work)
const sizeMiB = Number(values['size-mib'])
const N = Number(values.checkpoints)
const intervalMs = Number(values['interval-ms'])
const opsPerSec = Number(values['ops-per-sec'])
const methods = values.methods.split(',').filter(Boolean)
for (const m of methods) if (!ALL.includes(m)) throw new Error(`unknown method ${m}`)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const sh = (cmd, opts = {}) => spawnSync('sh', ['-c', cmd], {encoding: 'utf8', maxBuffer: 64 << 20, ...opts})

function run(cmd, args, env = {}) {
  return new Promise((resolveRun) => {
    const started = performance.now()
    const child = spawn(cmd, args, {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => resolveRun({code, out, err, ms: performance.now() - started}))
  })
}

function makeState(dir) {
  rmSync(dir, {recursive: true, force: true})
  mkdirSync(dir, {recursive: true})
  const tableMiB = 16
  for (let i = 1; i <= Math.max(1, Math.floor(sizeMiB / tableMiB)); i++) {
    writeFileSync(join(dir, `${String(i).padStart(6, '0')}.sst`), sstContent(7, `base/${i}`, tableMiB * 1024 * 1024))
  }
  writeFileSync(join(dir, 'MANIFEST'), 'base\n')
  writeFileSync(join(dir, 'CURRENT'), 'MANIFEST\n')
  sh('sync')
}

function startWriter(dir, statsFile) {
  const child = spawn(process.execPath, [WRITER, dir, '--stats', statsFile, '--ops-per-sec', String(opsPerSec), '--budget-mib', String(sizeMiB)],
    {stdio: ['ignore', 'ignore', 'inherit']})
  return child
}

async function stopWriter(child, statsFile) {
  const closed = new Promise((r) => child.on('close', r))
  child.kill('SIGTERM')
  await closed
  const s = JSON.parse(readFileSync(statsFile, 'utf8'))
  return {...s, opsPerSec: s.ops / (s.elapsedMs / 1000)}
}

function summary(pauses) {
  const sorted = [...pauses].sort((a, b) => a - b)
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return {n: sorted.length, medianMs: at(0.5), p90Ms: at(0.9), maxMs: sorted[sorted.length - 1], minMs: sorted[0]}
}

/** One method's N checkpoints beside a running writer. */
async function phase(name, dir, repo, checkpoint) {
  const statsFile = join(work, `writer-${name}.json`)
  const writer = startWriter(dir, statsFile)
  await sleep(1000)
  const pauses = []
  const failures = []
  let inconsistent = 0
  for (let i = 0; i < N; i++) {
    await sleep(intervalMs)
    const r = await checkpoint(writer.pid, i)
    if (r.pauseMs !== undefined) pauses.push(r.pauseMs)
    if (r.failure) failures.push(r.failure)
    if (r.consistent === false) inconsistent++
  }
  const writerStats = await stopWriter(writer, statsFile)
  log(`${name}: pause median ${summary(pauses).medianMs?.toFixed(1)} ms, max ${summary(pauses).maxMs?.toFixed(1)} ms; writer ${writerStats.opsPerSec.toFixed(1)} ops/s`)
  return {pause: summary(pauses), pauses, writer: writerStats, failures, inconsistent}
}

const ckpt = (args) => run(process.execPath, [RUN_JS, ...args])

async function ckptLive(dir, repo) {
  return phase('ckpt-live', dir, repo, async (pid) => {
    const r = await ckpt(['snapshot', dir, '--repo', repo, '--pause-pid', String(pid), '--json'])
    if (r.code !== 0) return {failure: `exit ${r.code}: ${r.err.trim().slice(-300)}`}
    const doc = JSON.parse(r.out)
    return {pauseMs: doc.capture?.pause?.pauseMs, wallMs: r.ms, consistent: doc.capture?.consistent}
  })
}

async function stopTheWorld(name, dir, command) {
  return phase(name, dir, undefined, async (pid) => {
    const t0 = performance.now()
    process.kill(pid, 'SIGSTOP')
    let r
    try {
      r = await command()
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    const pauseMs = performance.now() - t0
    return r.code === 0 ? {pauseMs} : {pauseMs, failure: `exit ${r.code}: ${r.err.trim().slice(-300)}`}
  })
}

function mountReflinkXfs(mnt) {
  const image = join(work, 'xfs.img')
  mkdirSync(mnt, {recursive: true})
  const bytes = Math.ceil(sizeMiB * 3.2) * 1024 * 1024
  const steps = [`truncate -s ${bytes} ${image}`, `mkfs.xfs -q -f -m reflink=1 ${image}`, `mount -o loop ${image} ${mnt}`]
  for (const s of steps) {
    const r = sh(s)
    if (r.status !== 0) return `${s}: ${(r.stderr || r.stdout).trim()}`
  }
  return undefined
}

async function main() {
  rmSync(work, {recursive: true, force: true})
  mkdirSync(work, {recursive: true})
  const dir = join(work, 'state')
  log(`making a ${sizeMiB} MiB state directory`)
  makeState(dir)
  const results = {machine: {cores: cpus().length, cpu: cpus()[0]?.model, memoryBytes: totalmem(), kernel: release(), node: process.version},
    config: {sizeMiB, checkpoints: N, intervalMs, opsPerSec, recordKiB: 8}, date: new Date().toISOString(), methods: {}}

  log('writer alone')
  {
    const statsFile = join(work, 'writer-alone.json')
    const w = startWriter(dir, statsFile)
    await sleep(1000 + N * (intervalMs + 600))
    results.alone = await stopWriter(w, statsFile)
    log(`alone: ${results.alone.opsPerSec.toFixed(1)} ops/s`)
  }

  const repo = join(work, 'repo')
  const init = await ckpt(['init', '--repo', repo])
  if (init.code !== 0) throw new Error(`ckpt init: ${init.err}`)
  if ((await ckpt(['snapshot', dir, '--repo', repo, '-q'])).code !== 0) throw new Error('first ckpt snapshot failed')

  if (methods.includes('ckpt-live')) results.methods['ckpt-live'] = await ckptLive(dir, repo)
  if (methods.includes('stop-ckpt')) {
    results.methods['stop-ckpt'] = await stopTheWorld('stop-ckpt', dir, () => ckpt(['snapshot', dir, '--repo', repo, '-q']))
  }
  if (methods.includes('stop-restic')) {
    if (sh('command -v restic').status !== 0) {
      results.methods['stop-restic'] = {skipped: 'restic is not installed (apt-get install restic)'}
    } else {
      const rrepo = join(work, 'restic')
      const env = {RESTIC_PASSWORD: 'ckpt-live', RESTIC_REPOSITORY: rrepo}
      await run('restic', ['init', '-q'], env)
      await run('restic', ['backup', '-q', dir], env)
      results.methods['stop-restic'] = await stopTheWorld('stop-restic', dir, () => run('restic', ['backup', '-q', dir], env))
    }
  }
  if (methods.includes('ckpt-reflink')) {
    const mnt = join(work, 'xfs')
    const refused = mountReflinkXfs(mnt)
    if (refused) {
      results.methods['ckpt-reflink'] = {skipped: `no reflink filesystem: ${refused}`}
      log(`ckpt-reflink skipped: ${refused}`)
    } else {
      try {
        const xdir = join(mnt, 'state')
        const xrepo = join(mnt, 'repo')
        sh(`cp -a ${dir} ${xdir} && sync`)
        await ckpt(['init', '--repo', xrepo])
        await ckpt(['snapshot', xdir, '--repo', xrepo, '-q'])
        results.methods['ckpt-reflink'] = await ckptLive(xdir, xrepo)
      } finally {
        sh(`umount ${mnt}`)
      }
    }
  }
  mkdirSync(dirname(values.out), {recursive: true})
  writeFileSync(values.out, JSON.stringify(results, null, 2))
  writeFileSync(values.out.replace(/\.json$/, '.md'), markdown(results))
  process.stdout.write(markdown(results))
}

function markdown(r) {
  const f = (x) => (x === undefined ? '-' : x.toFixed(1))
  const rows = Object.entries(r.methods).map(([name, m]) => m.skipped
    ? `| ${name} | skipped: ${m.skipped} | | | | |`
    : `| ${name} | ${m.pause.n} | ${f(m.pause.medianMs)} | ${f(m.pause.p90Ms)} | ${f(m.pause.maxMs)} | ${f(m.writer.opsPerSec)} (${f(100 * m.writer.opsPerSec / r.alone.opsPerSec)} %) |${m.failures.length ? ` ${m.failures.length} failed` : ''}${m.inconsistent ? ` ${m.inconsistent} not consistent` : ''}`)
  return [
    `Live capture, ${r.config.sizeMiB} MiB state, ${r.config.checkpoints} checkpoints ${r.config.intervalMs} ms apart, writer at ${r.config.opsPerSec} ops/s`,
    `(${r.date}, ${r.machine.cores} cores, ${r.machine.cpu}, node ${r.machine.node}). Writer alone: ${f(r.alone.opsPerSec)} ops/s.`,
    '',
    '| method | checkpoints | pause median (ms) | p90 (ms) | max (ms) | writer ops/s (vs alone) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n')
}

main().catch((err) => {
  process.stderr.write(`live bench: ${err.stack ?? err}\n`)
  process.exit(1)
})
