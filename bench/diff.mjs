// ckpt diff of two snapshots of a 100,000-file tree with 10 files changed, against `diff -r` of
// the two snapshots restored side by side. What it shows: diff reads only the trees on the paths
// to what changed (trees read, from --json), so it costs what changed, not the tree's size.
// Not part of the tests.
//
//   npm run build && node bench/diff.mjs [--files 100000] [--changed 10] [--work DIR] [--keep]
//
// The tree: --files small files (100 B - 4 KiB, seeded) in 100 top directories of 10
// subdirectories each. Both snapshots are taken with the library (setup, not measured); the
// diffs run through the built CLI, each 3 times (the best is reported, start-up included).
// `diff -r` runs warm (both copies were just written, so they are in the page cache).
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const {initLocalRepository, openLocalRepository} = await import(path.join(ROOT, 'dist/repo/open.js'))
const {createSnapshot} = await import(path.join(ROOT, 'dist/snapshot/create.js'))

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const FILES = Number(opt('files', 100_000))
const CHANGED = Number(opt('changed', 10))
const WORK = path.resolve(opt('work', path.join(os.tmpdir(), 'ckpt-bench-diff')))
const KEEP = args.includes('--keep')

function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

const run = (cmd, argv, opts = {}) => {
  const t0 = performance.now()
  const r = spawnSync(cmd, argv, {encoding: 'utf8', maxBuffer: 1 << 28, ...opts})
  const ms = performance.now() - t0
  if (r.status !== 0 && !(opts.okCodes ?? []).includes(r.status)) throw new Error(`${cmd} ${argv.join(' ')}: exit ${r.status}\n${r.stderr}`)
  return {...r, ms}
}
const best = (n, fn) => {
  let out
  for (let i = 0; i < n; i++) {
    const r = fn()
    if (!out || r.ms < out.ms) out = r
  }
  return out
}

await fsp.rm(WORK, {recursive: true, force: true})
const src = path.join(WORK, 'src')
const repoDir = path.join(WORK, 'repo')
await fsp.mkdir(src, {recursive: true})
const next = rng(42)
const perDir = Math.ceil(FILES / 1000)
const files = []
for (let top = 0; top < 100; top++) {
  for (let sub = 0; sub < 10; sub++) {
    const dir = path.join(src, `t${String(top).padStart(3, '0')}`, `s${sub}`)
    await fsp.mkdir(dir, {recursive: true})
    for (let f = 0; f < perDir && files.length < FILES; f++) {
      const p = path.join(dir, `f${String(f).padStart(4, '0')}.dat`)
      const len = 100 + Math.floor(next() * 4000)
      const buf = Buffer.allocUnsafe(len)
      for (let i = 0; i < len; i++) buf[i] = 0x20 + Math.floor(next() * 90)
      await fsp.writeFile(p, buf)
      files.push(p)
    }
  }
}
await initLocalRepository(repoDir, {now: Date.now()})
const repo = await openLocalRepository(repoDir)
const t0 = performance.now()
const a = await createSnapshot(repo, {source: src, program: 'bench'})
const snapMs = performance.now() - t0
// Changed files spread over distinct directories.
const step = Math.floor(files.length / CHANGED)
for (let i = 0; i < CHANGED; i++) await fsp.appendFile(files[i * step + 7], `changed ${i}\n`)
const b = await createSnapshot(await openLocalRepository(repoDir), {source: src, program: 'bench'})

const env = {...process.env, CKPT_REPO: repoDir}
const json = best(3, () => run(process.execPath, [BIN, 'diff', a.id, b.id, '--json'], {env}))
const doc = JSON.parse(json.stdout)
const human = best(3, () => run(process.execPath, [BIN, 'diff', a.id, b.id], {env}))
const noop = best(3, () => run(process.execPath, [BIN, '--version'], {env}))

const ra = path.join(WORK, 'a')
const rb = path.join(WORK, 'b')
const restoreA = run(process.execPath, [BIN, 'restore', a.id, '--target', ra, '-q'], {env})
run(process.execPath, [BIN, 'restore', b.id, '--target', rb, '-q'], {env})
const diffR = best(3, () => run('diff', ['-r', '-q', ra, rb], {okCodes: [1]}))

const result = {
  files: FILES, directories: 1000 + 100 + 1, changed: CHANGED, snapshotSeconds: +(snapMs / 1000).toFixed(2),
  ckptDiff: {ms: Math.round(json.ms), humanMs: Math.round(human.ms), startupMs: Math.round(noop.ms), changes: doc.changes.length, treesRead: doc.stats.treesRead},
  restoreSeconds: +(restoreA.ms / 1000).toFixed(2),
  diffR: {ms: Math.round(diffR.ms), linesOut: diffR.stdout.trim().split('\n').length},
  cpus: os.cpus().length, load: os.loadavg().map((l) => +l.toFixed(2)),
}
console.log(JSON.stringify(result, null, 1))
if (!KEEP) await fsp.rm(WORK, {recursive: true, force: true})
