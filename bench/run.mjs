#!/usr/bin/env node
// Benchmark runner: ckpt against restic, borg and casync on one seeded corpus, phase by phase. Every tool runs
// on the identical tree in each phase (mutations are applied once, between phases). Not part of the tests or CI.
//
//   node bench/run.mjs [--size small|default|large] [--tools ckpt,restic,borg,casync] [--work /tmp/ckpt-bench]
//                      [--out bench/out/results.json] [--seed N] [--timeout SECONDS] [--build] [--keep]
//                      [--warm-memory GIB]   (memory touched and freed before timing, default 16; 0: none)
//
// Measurements: wall time (node's clock around the command), user+sys CPU and peak RSS from GNU time
// (`/usr/bin/time -f '%e %U %S %M'`, children included), repository bytes (du -sb) and regular files in it.
// The page cache is warm: the corpus is read once before anything is timed and never dropped. `sync` runs
// (untimed) after every command, so one tool's deferred writeback does not land in the next tool's time.
import {spawn, spawnSync} from 'node:child_process'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {cpus, release, totalmem} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {renderMarkdown} from './report.mjs'
import {compareTrees, treeStats, walk} from './tree.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(BENCH)
const RUN_JS = join(ROOT, 'bin/run.js')
const ALL_TOOLS = ['ckpt', 'restic', 'borg', 'casync']
const PEER_PACKAGES = {restic: 'restic', borg: 'borgbackup', casync: 'casync'}
const BASE_PACKAGES = {b3sum: 'b3sum', zstd: 'zstd', '/usr/bin/time': 'time'}
const RESTIC_PASSWORD = 'ckpt-bench'

export const PHASES = [
  {id: 'first', title: '1. First snapshot', kind: 'snapshot'},
  {id: 'unchanged', title: '2. Unchanged snapshot (nothing changed since 1)', kind: 'snapshot'},
  {id: 'interval', title: '3. Snapshot after one checkpoint interval (`mutate --step interval`)', kind: 'snapshot',
    mutate: 'interval'},
  {id: 'insert', title: '4. Snapshot after a 100-byte insert into one shard (`mutate --step insert`)',
    kind: 'snapshot', mutate: 'insert'},
  {id: 'restore', title: '5. Restore the latest snapshot into an empty directory', kind: 'restore'},
  {id: 'verify', title: '6. Full read-and-verify of the repository', kind: 'verify'},
  {id: 'prune', title: '7. Prune to the last snapshot', kind: 'prune'},
]

const log = (msg) => process.stderr.write(`[bench] ${msg}\n`)

function sh(command, options = {}) {
  const r = spawnSync('sh', ['-c', command], {encoding: 'utf8', maxBuffer: 64 << 20, ...options})
  return {rc: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? ''}
}

const quote = (s) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`)
const has = (bin) => sh(`command -v ${quote(bin)}`).rc === 0
const tail = (text, n = 1500) => (text.length > n ? `…${text.slice(-n)}` : text)
const readTail = (path, n) => (existsSync(path) ? tail(readFileSync(path, 'utf8'), n) : '')

function duBytes(path) {
  if (!existsSync(path)) return null
  const r = sh(`du -sb ${quote(path)}`)
  return r.rc === 0 ? Number(r.stdout.split(/\s/)[0]) : null
}

function fileCount(path) {
  if (!existsSync(path)) return null
  return walk(path).filter((e) => e.st.isFile()).length
}

/** Installs missing peers and helpers through apt when running as root; otherwise says what to install. */
function ensureInstalled(tools) {
  const wanted = {...BASE_PACKAGES}
  for (const t of tools) if (PEER_PACKAGES[t]) wanted[t] = PEER_PACKAGES[t]
  const missing = Object.entries(wanted).filter(([bin]) => !has(bin))
  if (missing.length === 0) return []
  const packages = [...new Set(missing.map(([, p]) => p))]
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.map(([b]) => b).join(', ')}; run as root or: ` +
      `apt-get update && apt-get install -y ${packages.join(' ')}`)
  }
  log(`installing ${packages.join(' ')} with apt-get`)
  const env = {...process.env, DEBIAN_FRONTEND: 'noninteractive'}
  const update = spawnSync('apt-get', ['update'], {stdio: 'inherit', env})
  const install = spawnSync('apt-get', ['install', '-y', ...packages], {stdio: 'inherit', env})
  if (update.status !== 0 || install.status !== 0) throw new Error(`apt-get install ${packages.join(' ')} failed`)
  return packages
}

/**
 * Runs one command under GNU time with stdout/stderr in log files. Resolves with its measurements; never throws
 * for a failing command (a failure is a result).
 */
function timed(spec, logBase, timeoutSeconds) {
  const files = {out: `${logBase}.out`, err: `${logBase}.err`, time: `${logBase}.time`}
  rmSync(files.time, {force: true})
  const out = openSync(files.out, 'w')
  const err = openSync(files.err, 'w')
  const started = process.hrtime.bigint()
  return new Promise((done) => {
    let timedOut = false
    const child = spawn('/usr/bin/time', ['-f', '%e %U %S %M', '-o', files.time, '--', ...spec.argv], {
      cwd: spec.cwd, env: {...process.env, LC_ALL: 'C', ...spec.env}, stdio: ['ignore', out, err], detached: true,
    })
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }, timeoutSeconds * 1000)
    let finished = false
    const finish = (rc, spawnError) => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      closeSync(out)
      closeSync(err)
      const wall = Number(process.hrtime.bigint() - started) / 1e9
      const line = existsSync(files.time) ?
        readFileSync(files.time, 'utf8').trim().split('\n').pop() : ''
      const [, user, sys, rss] = line.split(/\s+/).map(Number)
      const stdout = existsSync(files.out) ? readFileSync(files.out, 'utf8') : ''
      const stderr = readTail(files.err, 4000)
      const r = {argv: spec.argv, cwd: spec.cwd ?? null, env: spec.env ?? {}, rc, wall,
        user: Number.isFinite(user) ? user : null, sys: Number.isFinite(sys) ? sys : null,
        maxRssKiB: Number.isFinite(rss) ? rss : null, timedOut, stdoutTail: tail(stdout, 1500),
        stderrTail: tail(stderr, 1500)}
      r.ok = !timedOut && !spawnError && (spec.okCodes ?? [0]).includes(rc)
      if (spawnError) r.error = spawnError.message
      else if (timedOut) r.error = `timed out after ${timeoutSeconds} s`
      else if (!r.ok) r.error = `exit code ${rc}`
      if (r.ok && spec.check) {
        const problem = spec.check(stdout)
        if (problem) {
          r.ok = false
          r.error = problem
        }
      }
      if (r.ok && rc !== 0) r.warning = `exit code ${rc} (warning)`
      if (spec.json) {
        try {
          r.json = JSON.parse(stdout)
        } catch {
          // not JSON; stdoutTail keeps what it said
        }
      }
      sh('sync')
      done(r)
    }
    child.on('error', (e) => finish(null, e))
    child.on('close', (code, signal) => finish(code ?? (signal ? 128 : null)))
  })
}

const cmd = (argv, extra = {}) => ({argv, ...extra})

/** What each tool runs. Paths are absolute; `n` is the snapshot number (1..4). */
function toolDefs({work, corpus}) {
  const cacheResticDir = join(work, 'cache-restic')
  const borgHome = join(work, 'cache-borg')
  const casyncCache = join(work, 'cache-casync')
  const repos = Object.fromEntries(ALL_TOOLS.map((t) => [t, join(work, `repo-${t}`)]))
  const restic = (...args) => cmd(['restic', '-r', repos.restic, '--cache-dir', cacheResticDir, ...args],
    {env: {RESTIC_PASSWORD}})
  const borgEnv = {BORG_BASE_DIR: borgHome, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes'}
  const borg = (args, extra = {}) => cmd(['borg', ...args], {env: borgEnv, okCodes: [0, 1], ...extra})
  const ckpt = (...args) => cmd(['node', RUN_JS, ...args])
  const store = join(repos.casync, 'store')
  const index = (n) => join(repos.casync, `snap-${n}.caidx`)
  const stripRoot = (target) => join(target, corpus)
  const state = {casyncDigest: null}

  return {
    ckpt: {
      repo: repos.ckpt, caches: [],
      version: ['node', RUN_JS, '--version'],
      settings: 'ckpt defaults (FastCDC, BLAKE3, zstd); `node bin/run.js` from this checkout.',
      init: () => [ckpt('init', '--repo', repos.ckpt)],
      snapshot: () => [{...ckpt('snapshot', corpus, '--repo', repos.ckpt, '--json'), json: true}],
      restore: (_n, target) => ({commands: [ckpt('restore', 'latest', '--target', target, '--repo', repos.ckpt)],
        root: target}),
      verify: () => [ckpt('verify', '--read-data', '--repo', repos.ckpt)],
      prune: () => [ckpt('prune', '--keep-last', '1', '--repo', repos.ckpt)],
    },
    restic: {
      repo: repos.restic, caches: [cacheResticDir],
      version: ['restic', 'version'],
      settings: 'repository format 2, `--compression auto` (zstd), always encrypted (AES-256 + Poly1305; fixed ' +
        `password via RESTIC_PASSWORD), default chunker (512 KiB..8 MiB, ~1 MiB average) and 16 MiB packs, ` +
        'default cache kept under the work dir (`--cache-dir`). Snapshots the absolute corpus path. Every ' +
        'command first derives the key with scrypt (~0.7 s here). The chunker polynomial is chosen at random by ' +
        '`init`, so restic\'s dedup figures vary a little from run to run. `forget --prune` keeps its default ' +
        '`--max-unused 5%`, so partly used packs stay and little space may come back.',
      init: () => [restic('init', '--repository-version', '2')],
      snapshot: () => [restic('backup', '--compression', 'auto', '--host', 'bench', corpus)],
      restore: (_n, target) => ({commands: [restic('restore', 'latest', '--target', target)],
        root: stripRoot(target)}),
      verify: () => [restic('check', '--read-data')],
      prune: () => [restic('forget', '--keep-last', '1', '--prune')],
    },
    borg: {
      repo: repos.borg, caches: [borgHome],
      version: ['borg', '--version'],
      settings: '`init -e none` (no encryption, no authentication), `create --compression zstd,3`, default ' +
        'chunker (buzhash, 2^19..2^23, ~2 MiB target) and files cache (ctime,size,inode). Exit code 1 (warning) ' +
        'counts as success. BORG_BASE_DIR (cache, security, config) is under the work dir. Its files cache ' +
        'never keeps the file with the newest ctime of a run (a timestamp-granularity guard), so every ' +
        '`create` reads that file again; in this corpus it is a small file under state/.',
      init: () => [borg(['init', '-e', 'none', repos.borg])],
      snapshot: (n) => [borg(['create', '--compression', 'zstd,3', `${repos.borg}::snap-${n}`, corpus])],
      restore: (n, target) => ({commands: [borg(['extract', `${repos.borg}::snap-${n}`], {cwd: target})],
        root: stripRoot(target)}),
      verify: () => [borg(['check', '--verify-data', repos.borg])],
      prune: () => [borg(['prune', '--keep-last', '1', repos.borg]), borg(['compact', repos.borg])],
    },
    casync: {
      repo: repos.casync, caches: [],
      version: ['casync', '--version'],
      settings: 'one `.caidx` index per snapshot beside a chunk store (`--store`), `--compression=zstd` (level not ' +
        'settable), default chunk sizes (16/64/256 KiB) and digest (sha512-256), default feature set. ' +
        'No encoder cache for the measured snapshots: casync 2\'s `--cache` can write a corrupt index (see the ' +
        '"casync (--cache)" rows, made into a scratch index beside every snapshot and compared with it). ' +
        'No snapshot list: "latest" is the newest index file; prune deletes older index files and runs ' +
        '`casync gc` with the newest.',
      init: () => [cmd(['mkdir', '-p', store])],
      snapshot: (n) => [cmd(['casync', 'make', `--store=${store}`, '--compression=zstd', index(n), corpus])],
      restore: (n, target) => ({commands: [cmd(['casync', 'extract', `--store=${store}`, index(n), target])],
        root: target}),
      // casync has no repository check: `digest` of the newest index reads and decompresses every chunk it
      // references; the digest must equal `casync digest` of the source tree (computed untimed beforehand).
      verify: (n) => [cmd(['casync', 'digest', `--store=${store}`, index(n)], {check: (stdout) => {
        if (!state.casyncDigest) return null
        return stdout.trim() === state.casyncDigest ? null :
          `digest ${stdout.trim().slice(0, 16)}… != source ${state.casyncDigest.slice(0, 16)}…`
      }})],
      beforeVerify: () => {
        const r = sh(`casync digest ${quote(corpus)}`)
        state.casyncDigest = r.rc === 0 ? r.stdout.trim() : null
        return state.casyncDigest ? `source digest ${state.casyncDigest}` : `casync digest of source failed: ${r.stderr}`
      },
      prune: (n) => [
        ...(n > 1 ? [cmd(['rm', '-f', ...Array.from({length: n - 1}, (_, i) => index(i + 1))])] : []),
        cmd(['casync', 'gc', `--store=${store}`, index(n)]),
      ],
      // The same snapshot again with the encoder cache (kept warm across phases), into a scratch index that
      // must equal the uncached one; if it does not, `casync digest` of it tells whether it is readable.
      variants: Object.fromEntries(['first', 'unchanged', 'interval', 'insert'].map((phase) => [phase, (n) => {
        const scratch = join(work, `casync-cached-${n}.caidx`)
        const check = () => {
          if (readFileSync(scratch).equals(readFileSync(index(n)))) return null
          const r = sh(`casync digest --store=${quote(store)} ${quote(scratch)}`)
          return r.rc !== 0 ? `index differs from the uncached one and is unreadable (${r.stderr.trim()})` :
            'index differs from the uncached one'
        }
        const make = cmd(['casync', 'make', `--store=${store}`, '--compression=zstd', `--cache=${casyncCache}`,
          scratch, corpus], {check})
        // Only the unchanged phase ranks it against ckpt: elsewhere it runs into a store that already holds
        // the chunks the measured make just wrote.
        return [{name: 'casync (--cache)', ranked: phase === 'unchanged', caches: [casyncCache], cleanup: [scratch],
          commands: [make]}]
      }])),
    },
  }
}

function nativeLimits({work, corpus, stats}) {
  const q = quote(corpus)
  const shards = stats.largestFiles.filter((f) => /\.bin$/.test(f.rel)).map((f) => join(corpus, f.rel))
  const ssts = walk(corpus).filter((e) => /\.sst$/.test(e.rel)).map((e) => e.path)
  const size = (paths) => paths.reduce((sum, p) => sum + statSync(p).size, 0)
  const files = (paths) => paths.map(quote).join(' ')
  const copy = join(work, 'cp-copy')
  return [
    {id: 'read', title: 'read every file (cat)', command: `find ${q} -type f -print0 | xargs -0 cat > /dev/null`,
      bytes: stats.bytes},
    {id: 'cp', title: 'cp -r of the corpus', command: `cp -r ${q} ${quote(copy)}`, bytes: stats.bytes,
      before: () => rmSync(copy, {recursive: true, force: true}),
      after: () => rmSync(copy, {recursive: true, force: true})},
    // A restore that returns only once the tree is on disk (ckpt's does) is closer to this.
    {id: 'cp-sync', title: 'cp -r of the corpus, then sync', command: `cp -r ${q} ${quote(copy)} && sync`,
      bytes: stats.bytes, before: () => rmSync(copy, {recursive: true, force: true}),
      after: () => rmSync(copy, {recursive: true, force: true})},
    {id: 'b3sum', title: 'b3sum of every file (default threads)',
      command: `find ${q} -type f -print0 | xargs -0 b3sum > /dev/null`, bytes: stats.bytes},
    {id: 'b3sum-t1', title: 'b3sum of every file, 1 thread',
      command: `find ${q} -type f -print0 | xargs -0 b3sum --num-threads 1 > /dev/null`, bytes: stats.bytes},
    {id: 'zstd-shards-t1', title: 'zstd -3 -T1 over model/*.bin (incompressible)',
      command: `zstd -3 -T1 -c ${files(shards)} | wc -c`, bytes: size(shards), compressed: true},
    {id: 'zstd-shards-t2', title: 'zstd -3 -T2 over model/*.bin (incompressible)',
      command: `zstd -3 -T2 -c ${files(shards)} | wc -c`, bytes: size(shards), compressed: true},
    {id: 'zstd-sst-t1', title: 'zstd -3 -T1 over the SSTs', command: `zstd -3 -T1 -c ${files(ssts)} | wc -c`,
      bytes: size(ssts), compressed: true},
    {id: 'zstd-sst-t2', title: 'zstd -3 -T2 over the SSTs', command: `zstd -3 -T2 -c ${files(ssts)} | wc -c`,
      bytes: size(ssts), compressed: true},
  ]
}

function versionOf(argv) {
  const r = spawnSync(argv[0], argv.slice(1), {encoding: 'utf8', timeout: 60_000})
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? ''
  return r.status === 0 ? text : `unavailable (${r.error?.message ?? `exit ${r.status}`}: ${text.slice(0, 200)})`
}

function machine(work) {
  const c = cpus()
  const first = (command) => sh(command).stdout.trim()
  return {
    cores: c.length, cpu: c[0]?.model ?? 'unknown', memoryBytes: totalmem(), kernel: release(),
    uname: first('uname -srvmo'), os: first('. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"'),
    disk: first(`df -hT ${quote(work)}`), node: process.version, user: first('id -un'),
  }
}

function parseOptions() {
  const {values} = parseArgs({options: {
    size: {type: 'string', default: 'default'},
    tools: {type: 'string', default: ALL_TOOLS.join(',')},
    work: {type: 'string', default: '/tmp/ckpt-bench'},
    out: {type: 'string', default: join(BENCH, 'out/results.json')},
    seed: {type: 'string', default: '1'},
    timeout: {type: 'string', default: '7200'},
    build: {type: 'boolean', default: false},
    keep: {type: 'boolean', default: false},
    'warm-memory': {type: 'string', default: '16'},
  }})
  const tools = values.tools.split(',').map((t) => t.trim()).filter(Boolean)
  for (const t of tools) if (!ALL_TOOLS.includes(t)) throw new Error(`unknown tool ${t}; use ${ALL_TOOLS.join(',')}`)
  if (!['small', 'default', 'large'].includes(values.size)) throw new Error(`unknown --size ${values.size}`)
  return {size: values.size, tools, work: resolve(values.work), out: resolve(values.out), seed: Number(values.seed),
    timeoutSeconds: Number(values.timeout), build: values.build, keep: values.keep,
    warmMemoryGiB: Number(values['warm-memory'])}
}

// On a VM the host may back guest memory only on first touch: a page the guest has never used costs
// a trip to the hypervisor when the page cache first takes it. Measured here: writing 1.2 GiB to a
// new file took 2.0-2.8 s of system time on untouched memory and 0.2-0.3 s once the same amount
// had been touched and freed before. Every tool writes gigabytes of repository and restore, so
// without this the phases that run first pay for the machine's memory, whoever they are. Filling
// buffers in a child process and exiting leaves the pages touched and free for the page cache.
function touchMemory(gib) {
  if (!(gib > 0)) return 0
  const free = Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024
  const n = Math.max(0, Math.min(gib, Math.floor(free / 2 ** 30) - 3))
  if (n === 0) return 0
  log(`touching ${n} GiB of memory (untimed)`)
  const r = spawnSync(process.execPath, ['-e', `const keep = []; for (let i = 0; i < ${n}; i++) keep.push(Buffer.alloc(2 ** 30, 1))`],
    {stdio: 'inherit'})
  return r.status === 0 ? n : 0
}

async function main() {
  const opts = parseOptions()
  const started = new Date()
  const {work, tools, timeoutSeconds} = opts
  const corpus = join(work, 'corpus')
  const logs = join(work, 'logs')
  const results = {schema: 1, startedAt: started.toISOString(), options: {...opts}, notes: []}

  results.installed = ensureInstalled(tools)
  for (const name of ['corpus', 'logs', 'cp-copy', ...[1, 2, 3, 4].map((n) => `casync-cached-${n}.caidx`),
    ...ALL_TOOLS.flatMap((t) => [`repo-${t}`, `restore-${t}`, `cache-${t}`])]) {
    rmSync(join(work, name), {recursive: true, force: true})
  }
  mkdirSync(logs, {recursive: true})
  results.machine = machine(work)

  if (opts.build && tools.includes('ckpt')) {
    log('building ckpt (npm run build)')
    const r = sh('npm run build', {cwd: ROOT})
    results.ckptBuild = {rc: r.rc, stderrTail: tail(r.stderr)}
    if (r.rc !== 0) results.notes.push('`npm run build` failed; ckpt ran from whatever dist/ held')
  }
  if (tools.includes('ckpt') && !existsSync(join(ROOT, 'dist/commands/index.js'))) {
    results.notes.push('ckpt: dist/commands/index.js is missing (not built); its commands are expected to fail')
  }

  const defs = toolDefs({work, corpus})
  results.versions = {node: process.version}
  for (const t of tools) results.versions[t] = versionOf(defs[t].version)
  results.versions.b3sum = versionOf(['b3sum', '--version'])
  results.versions.zstd = versionOf(['zstd', '--version'])
  results.versions.time = versionOf(['/usr/bin/time', '--version'])
  const git = sh('git rev-parse --short HEAD', {cwd: ROOT})
  results.versions.ckptCommit = git.rc === 0 ? git.stdout.trim() : 'unknown'
  results.settings = Object.fromEntries(tools.map((t) => [t, defs[t].settings]))
  results.settings.restic_env = `RESTIC_PASSWORD=${RESTIC_PASSWORD}`

  log(`generating ${opts.size} corpus in ${corpus}`)
  const gen = sh(`node ${quote(join(BENCH, 'corpus.mjs'))} --size ${opts.size} --seed ${opts.seed} ` +
    `--out ${quote(corpus)} --force`)
  if (gen.rc !== 0) throw new Error(`corpus generation failed: ${gen.stderr}`)
  const stats = treeStats(corpus)
  results.corpus = {path: corpus, size: opts.size, seed: opts.seed, summary: gen.stdout.trim(), initial: stats}
  log(gen.stdout.trim())

  log('warm-up read of the corpus (untimed)')
  sh(`find ${quote(corpus)} -type f -print0 | xargs -0 cat > /dev/null`)
  const touched = touchMemory(opts.warmMemoryGiB)
  if (touched > 0) {
    results.notes.push(`${touched} GiB of memory was written and freed before timing (see --warm-memory)`)
  }

  results.native = []
  for (const m of nativeLimits({work, corpus, stats})) {
    m.before?.()
    const r = await timed(cmd(['sh', '-c', m.command]), join(logs, `native-${m.id}`), timeoutSeconds)
    m.after?.()
    const entry = {id: m.id, title: m.title, command: m.command, bytes: m.bytes, ok: r.ok, wall: r.wall,
      user: r.user, sys: r.sys, maxRssKiB: r.maxRssKiB, error: r.error}
    if (m.compressed && r.ok) entry.compressedBytes = Number(r.stdoutTail.trim())
    results.native.push(entry)
    log(`native ${m.id}: ${r.wall.toFixed(2)} s, ${(m.bytes / 2 ** 20 / r.wall).toFixed(0)} MiB/s`)
  }

  const last = Object.fromEntries(tools.map((t) => [t, {repoBytes: null}]))
  const runPhase = async (tool, phase, commands, extra = {}, caches = defs[tool].caches) => {
    const def = defs[tool]
    const run = {tool, phase, ok: true, wall: 0, user: 0, sys: 0, maxRssKiB: 0, commands: []}
    for (const [i, spec] of commands.entries()) {
      const r = await timed(spec, join(logs, `${tool}-${phase}-${i}`), timeoutSeconds)
      run.commands.push(r)
      run.wall += r.wall
      run.user += r.user ?? 0
      run.sys += r.sys ?? 0
      run.maxRssKiB = Math.max(run.maxRssKiB, r.maxRssKiB ?? 0)
      if (r.json !== undefined) run.json = r.json
      if (r.warning) (run.warnings ??= []).push(r.warning)
      if (!r.ok) {
        run.ok = false
        run.error = `${spec.argv.slice(0, 3).join(' ')}…: ${r.error}`
        run.stderrTail = tail(r.stderrTail, 800)
        break
      }
    }
    run.cpu = run.user + run.sys
    run.repoBytes = duBytes(def.repo)
    run.addedBytes = run.repoBytes !== null && last[tool].repoBytes !== null ?
      run.repoBytes - last[tool].repoBytes : null
    run.repoFiles = fileCount(def.repo)
    run.cacheBytes = caches.length ? caches.reduce((s, c) => s + (duBytes(c) ?? 0), 0) : null
    last[tool].repoBytes = run.repoBytes
    Object.assign(run, extra)
    const status = run.ok ? 'ok' : `FAILED (${run.error})`
    log(`${phase.padEnd(9)} ${tool.padEnd(6)} ${run.wall.toFixed(2)} s  cpu ${run.cpu.toFixed(2)} s  ` +
      `rss ${(run.maxRssKiB / 1024).toFixed(0)} MiB  repo ${fmtMiB(run.repoBytes)}  ${status}`)
    return run
  }

  results.init = []
  for (const t of tools) results.init.push(await runPhase(t, 'init', defs[t].init()))

  results.mutations = []
  results.phases = []
  let n = 0
  for (const phase of PHASES) {
    if (phase.mutate) {
      const seed = opts.seed + (phase.mutate === 'interval' ? 1 : 2)
      const r = sh(`node ${quote(join(BENCH, 'mutate.mjs'))} --dir ${quote(corpus)} --step ${phase.mutate} ` +
        `--seed ${seed}`)
      if (r.rc !== 0) throw new Error(`mutate ${phase.mutate} failed: ${r.stderr}`)
      // Like every command's: the mutation's writeback (a rewritten 256 MiB shard) is not billed
      // to the tool that happens to run first.
      sh('sync')
      results.mutations.push({step: phase.mutate, seed, log: r.stdout.trim().replace(/^mutate [^:]*: /, '')})
      log(r.stdout.trim())
    }
    if (phase.kind === 'snapshot') n++
    const current = phase.kind === 'snapshot' || phase.id === 'restore' ? treeStats(corpus) : null
    const entry = {id: phase.id, title: phase.title, kind: phase.kind, snapshot: n, runs: []}
    if (current) entry.corpus = {files: current.files, bytes: current.bytes}
    else entry.corpus = results.phases.at(-1)?.corpus
    for (const t of tools) {
      const def = defs[t]
      if (phase.kind === 'snapshot') {
        entry.runs.push(await runPhase(t, phase.id, def.snapshot(n)))
        for (const v of def.variants?.[phase.id]?.(n) ?? []) {
          const saved = last[t].repoBytes
          const run = await runPhase(t, `${phase.id}-variant`, v.commands, {variant: v.name, ranked: v.ranked},
            v.caches ?? [])
          for (const p of v.cleanup) rmSync(p, {force: true})
          last[t].repoBytes = saved
          run.repoBytes = saved
          run.addedBytes = null
          entry.runs.push(run)
        }
      } else if (phase.kind === 'restore') {
        const target = join(work, `restore-${t}`)
        rmSync(target, {recursive: true, force: true})
        mkdirSync(target, {recursive: true})
        const {commands, root} = def.restore(n, target)
        const run = await runPhase(t, phase.id, commands)
        if (run.ok) {
          run.compare = existsSync(root) ? compareTrees(corpus, root) :
            {equal: false, examples: [`restored root ${root} does not exist`]}
          log(`restore  ${t.padEnd(6)} identical=${run.compare.equal} ${run.compare.examples?.slice(0, 3).join('; ')}`)
        }
        if (!opts.keep) rmSync(target, {recursive: true, force: true})
        entry.runs.push(run)
      } else if (phase.kind === 'verify') {
        const note = def.beforeVerify?.()
        entry.runs.push(await runPhase(t, phase.id, def.verify(n), note ? {note} : {}))
      } else {
        entry.runs.push(await runPhase(t, phase.id, def.prune(n)))
      }
    }
    results.phases.push(entry)
  }

  results.corpus.final = treeStats(corpus)
  results.finishedAt = new Date().toISOString()
  results.durationSeconds = (Date.now() - started.getTime()) / 1000
  if (!opts.keep) {
    for (const t of tools) rmSync(defs[t].repo, {recursive: true, force: true})
    for (const name of ['cache-restic', 'cache-borg', 'cache-casync']) {
      rmSync(join(work, name), {recursive: true, force: true})
    }
  }
  mkdirSync(dirname(opts.out), {recursive: true})
  writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`)
  const markdown = renderMarkdown(results)
  const md = opts.out.replace(/\.json$/, '') + '.md'
  writeFileSync(md, markdown)
  process.stdout.write(markdown)
  log(`done in ${results.durationSeconds.toFixed(0)} s; results: ${opts.out}, report: ${md}; logs: ${logs}`)
}

const fmtMiB = (b) => (b === null || b === undefined ? '-' : `${(b / 2 ** 20).toFixed(1)} MiB`)

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err.message}`)
  process.exitCode = 1
})
