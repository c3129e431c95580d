#!/usr/bin/env node
// Delta restore against a full restore, against copying only the changed files, and the full restore against
// restic and `cp -r && sync`, in one run (issue 16). Each round:
//   1. snapshot the corpus (untimed; the corpus holds the first snapshot's content);
//   2. `mutate --step interval` (untimed), then roll back in place: `ckpt restore S --no-safety-snapshot`;
//   3. snapshot again, mutate again, roll back with the safety snapshot (the default);
//   4. mutate again and roll back to the same snapshot once more, without a safety snapshot: no snapshot knows
//      the files step 3 linked or wrote (their ctime or inode is new), the record step 3 left does
//      (snapshot/restorerecord.ts), so only what the mutation changed is hashed;
//   5. full restore of S into an empty directory; restic's restore of the same content; `cp -r && sync`;
//   6. mutate again, then `cp -a` of only the changed files (from a pristine copy) and `sync`; an untimed
//      rollback then puts the directories' mtimes back for the next round.
// Every rollback is compared with the pristine copy (names, types, sizes, bytes, modes, mtimes in seconds).
// Wall: monotonic clock; CPU and peak RSS: GNU time. The median of the rounds is reported.
//
//   node bench/delta.mjs [--size default|small] [--rounds 3] [--work /tmp/ckpt-delta] [--warm-memory 16] [--no-restic]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {generate} from './corpus.mjs'
import {mutate} from './mutate.mjs'
import {compareTrees, walk} from './tree.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const RUN_JS = join(ROOT, 'bin', 'run.js')
const RESTIC_PASSWORD = 'ckpt-bench'

const {values} = parseArgs({options: {
  size: {type: 'string', default: 'default'},
  rounds: {type: 'string', default: '3'},
  work: {type: 'string', default: '/tmp/ckpt-delta'},
  'warm-memory': {type: 'string', default: '16'},
  'no-restic': {type: 'boolean', default: false},
  out: {type: 'string', default: join(ROOT, 'bench', 'out', 'delta.json')},
}})
const work = resolve(values.work)
const corpus = join(work, 'corpus')
const pristine = join(work, 'pristine')
const repo = join(work, 'repo-ckpt')
const resticRepo = join(work, 'repo-restic')
const log = (m) => process.stderr.write(`[delta] ${m}\n`)

/** Run argv under GNU time: wall (monotonic), CPU, peak RSS, stdout. Throws on failure. */
function timed(argv, env = {}) {
  const timeFile = join(work, 'time.txt')
  const t0 = process.hrtime.bigint()
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', timeFile, '--', ...argv], {env: {...process.env, ...env}, encoding: 'utf8', maxBuffer: 64 << 20})
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`)
  const [, user, sys, rss] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(/\s+/).map(Number)
  return {wall, cpu: user + sys, rssMiB: rss / 1024, stdout: r.stdout, stderr: r.stderr}
}

const run = (argv, env = {}) => {
  const r = spawnSync(argv[0], argv.slice(1), {env: {...process.env, ...env}, encoding: 'utf8', maxBuffer: 64 << 20})
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`)
  return r.stdout
}
const sync = () => run(['sync'])
const ckpt = (...args) => ['node', RUN_JS, ...args, '--repo', repo]
const restic = (...args) => ['restic', '-r', resticRepo, '--cache-dir', join(work, 'cache-restic'), ...args]

function snapshot() {
  const out = run(ckpt('snapshot', corpus, '--json'))
  sync()
  return JSON.parse(out).id
}

function mutateCorpus() {
  mutate({dir: corpus, step: 'interval', seed: 2})
  sync()
}

/** Files whose pristine version differs from the corpus's (or is missing there), and files only in the corpus. */
function changedFiles() {
  const now = new Map(walk(corpus).map((e) => [e.rel, e.st]))
  const changed = []
  let bytes = 0
  for (const e of walk(pristine)) {
    if (!e.st.isFile()) continue
    const c = now.get(e.rel)
    if (!c || c.size !== e.st.size || c.mtimeMs !== e.st.mtimeMs) {
      changed.push(e.rel)
      bytes += e.st.size
    }
  }
  const p = new Set(walk(pristine).map((e) => e.rel))
  const extra = [...now.keys()].filter((rel) => !p.has(rel) && now.get(rel).isFile())
  return {changed, extra, bytes}
}

function mustEqual(what, exact = true) {
  const c = compareTrees(pristine, corpus)
  if (!c.equal || (exact && (c.mode || c.mtime))) throw new Error(`${what}: the corpus is not the pristine tree: ${JSON.stringify(c)}`)
}

function touchMemory(gib) {
  if (!(gib > 0)) return
  const free = Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024
  const n = Math.max(0, Math.min(gib, Math.floor(free / 2 ** 30) - 3))
  if (n === 0) return
  log(`touching ${n} GiB of memory (untimed)`)
  spawnSync(process.execPath, ['-e', `const keep = []; for (let i = 0; i < ${n}; i++) keep.push(Buffer.alloc(2 ** 30, 1))`], {stdio: 'inherit'})
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function main() {
  rmSync(work, {recursive: true, force: true})
  mkdirSync(work, {recursive: true})
  log(`corpus --size ${values.size}`)
  generate({size: values.size, out: corpus, seed: 1})
  run(['cp', '-a', corpus, pristine])
  run(ckpt('init'))
  if (!values['no-restic']) {
    run(restic('init', '--repository-version', '2'), {RESTIC_PASSWORD})
    run(restic('backup', '--compression', 'auto', '--host', 'bench', corpus), {RESTIC_PASSWORD})
  }
  sync()
  run(['sh', '-c', `find ${corpus} -type f -print0 | xargs -0 cat > /dev/null`])
  touchMemory(Number(values['warm-memory']))

  const rounds = []
  for (let i = 0; i < Number(values.rounds); i++) {
    log(`round ${i + 1}`)
    const r = {}
    const id = snapshot()
    mutateCorpus()
    const {changed, extra, bytes} = changedFiles()
    r.changedFiles = changed.length
    r.changedBytes = bytes
    const delta = timed(ckpt('restore', id, '--json', '--no-safety-snapshot'))
    r.delta = {...delta, report: JSON.parse(delta.stdout)}
    mustEqual('delta restore')

    const id2 = snapshot()
    mutateCorpus()
    const safe = timed(ckpt('restore', id2, '--json'))
    r.deltaSafety = {...safe, report: JSON.parse(safe.stdout)}
    mustEqual('delta restore with the safety snapshot')

    mutateCorpus()
    const again = timed(ckpt('restore', id2, '--json', '--no-safety-snapshot'))
    r.deltaAgain = {...again, report: JSON.parse(again.stdout)}
    mustEqual('second delta restore')

    const full = join(work, 'full')
    const f = timed(ckpt('restore', id2, '--target', full, '--json'))
    r.full = {...f, report: JSON.parse(f.stdout)}
    rmSync(full, {recursive: true, force: true})
    sync()

    if (!values['no-restic']) {
      const rt = join(work, 'restic-out')
      r.restic = timed(restic('restore', 'latest', '--target', rt), {RESTIC_PASSWORD})
      rmSync(rt, {recursive: true, force: true})
      sync()
    }

    const cpr = join(work, 'cp-copy')
    // --reflink=never: a copy of the bytes. cp's default (auto, since coreutils 9) clones on XFS or
    // btrfs, which would time a clone, not a copy.
    r.cpr = timed(['sh', '-c', `cp -r --reflink=never ${corpus} ${cpr} && sync`])
    rmSync(cpr, {recursive: true, force: true})
    sync()

    mutateCorpus()
    const list = join(work, 'changed.txt')
    writeFileSync(list, changed.map((p) => `${p}\0`).join(''))
    const rmExtra = extra.length ? ` && rm -f -- ${extra.map((p) => `'${join(corpus, p)}'`).join(' ')}` : ''
    r.cpChanged = timed(['sh', '-c', `cd ${pristine} && xargs -0 cp -a --reflink=never --parents -t ${corpus} < ${list}${rmExtra} && sync`])
    mustEqual('cp of the changed files', false) // directories keep the mutation's mtimes
    // Directories keep the mutation's mtimes after cp: a rollback (untimed) makes the corpus pristine again.
    run(ckpt('restore', id2, '--no-safety-snapshot', '-q'))
    sync()
    mustEqual('rollback after cp')
    rounds.push(r)
    log(JSON.stringify({delta: r.delta.wall, safety: r.deltaSafety.wall, again: r.deltaAgain.wall, full: r.full.wall, restic: r.restic?.wall, cpr: r.cpr.wall, cpChanged: r.cpChanged.wall}))
  }

  const m = (f) => median(rounds.map(f))
  const fs = run(['df', '--output=fstype', work]).trim().split('\n').pop()
  const summary = {
    filesystem: fs, size: values.size, rounds: rounds.length, changedFiles: rounds[0].changedFiles, changedMiB: rounds[0].changedBytes / 2 ** 20,
    wall: {
      delta: m((r) => r.delta.wall), deltaSafety: m((r) => r.deltaSafety.wall), deltaAgain: m((r) => r.deltaAgain.wall),
      full: m((r) => r.full.wall), restic: values['no-restic'] ? null : m((r) => r.restic.wall), cpr: m((r) => r.cpr.wall), cpChanged: m((r) => r.cpChanged.wall),
    },
    rssMiB: {delta: m((r) => r.delta.rssMiB), deltaSafety: m((r) => r.deltaSafety.rssMiB), deltaAgain: m((r) => r.deltaAgain.rssMiB), full: m((r) => r.full.rssMiB), restic: values['no-restic'] ? null : m((r) => r.restic.rssMiB)},
    cpu: {delta: m((r) => r.delta.cpu), full: m((r) => r.full.cpu), restic: values['no-restic'] ? null : m((r) => r.restic.cpu)},
    report: {delta: rounds[0].delta.report, deltaSafety: rounds[0].deltaSafety.report, deltaAgain: rounds[0].deltaAgain.report, full: rounds[0].full.report},
  }
  summary.ratios = {
    deltaVsFull: summary.wall.delta / summary.wall.full,
    deltaVsCpChanged: summary.wall.delta / summary.wall.cpChanged,
    deltaSafetyVsFull: summary.wall.deltaSafety / summary.wall.full,
    fullVsRestic: summary.wall.restic ? summary.wall.full / summary.wall.restic : null,
    fullVsCpr: summary.wall.full / summary.wall.cpr,
  }
  mkdirSync(dirname(values.out), {recursive: true})
  writeFileSync(values.out, JSON.stringify({summary, rounds}, null, 2))
  console.log(JSON.stringify(summary, null, 2))
  if (existsSync(work)) rmSync(work, {recursive: true, force: true})
}

main()
