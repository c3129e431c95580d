// Prune of a repository with 1,000 snapshots: wall time and peak memory of `ckpt prune`, run as
// cron would run it (the built CLI under GNU time). Not part of the tests.
//
//   npm run build && node bench/prune-1000.mjs [--snapshots 1000] [--files 2000] [--work DIR] [--keep] [--setup-only]
//
// The repository: one directory of --files files (1-64 KiB, a few of 1 MiB), snapshotted once an
// hour for --snapshots hours (snapshot --time), 8 files rewritten and a log appended between
// snapshots. Then `ckpt prune --keep-hourly 24 --keep-daily 14 --keep-weekly 8 --keep-monthly 12`
// (removes ~95%, repacks and merges), and the same prune again (nothing to do).
import {spawnSync} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')
const {initLocalRepository} = await import(path.join(ROOT, 'dist/repo/open.js'))
const {createSnapshot} = await import(path.join(ROOT, 'dist/snapshot/create.js'))

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const SNAPSHOTS = Number(opt('snapshots', 1000))
const FILES = Number(opt('files', 2000))
const WORK = path.resolve(opt('work', path.join(os.tmpdir(), 'ckpt-bench-prune')))
const KEEP = args.includes('--keep')
/** Only build the repository (kept in --work), e.g. to profile prune on copies of it. */
const SETUP_ONLY = args.includes('--setup-only')

// xorshift32, seeded: the same repository every run.
function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}
function bytes(length, seed) {
  const out = Buffer.allocUnsafe(length)
  const next = rng(seed)
  for (let i = 0; i + 4 <= length; i += 4) out.writeUInt32LE((next() * 0x1_0000_0000) >>> 0, i)
  // Half the bytes are text-like, so zstd has something to do.
  out.fill(0x61, Math.floor(length / 2))
  return out
}

const src = path.join(WORK, 'src')
const repoDir = path.join(WORK, 'repo')
await fsp.rm(WORK, {recursive: true, force: true})
await fsp.mkdir(src, {recursive: true})
const pick = rng(42)
const sizeOf = (n) => (n % 500 === 0 ? 1024 * 1024 : 1024 + Math.floor(pick() * 63 * 1024))
for (let n = 0; n < FILES; n++) {
  const dir = path.join(src, `d${n % 40}`)
  await fsp.mkdir(dir, {recursive: true})
  await fsp.writeFile(path.join(dir, `f${n}`), bytes(sizeOf(n), n + 1))
}

const repo = await initLocalRepository(repoDir, {now: Date.now()})
const HOUR = 3_600_000
const base = Date.now() - SNAPSHOTS * HOUR
const started = Date.now()
for (let i = 0; i < SNAPSHOTS; i++) {
  for (let k = 0; k < 8; k++) {
    const n = Math.floor(pick() * FILES)
    await fsp.writeFile(path.join(src, `d${n % 40}`, `f${n}`), bytes(sizeOf(n), 1_000_000 + i * 8 + k))
  }
  await fsp.appendFile(path.join(src, 'log'), `snapshot ${i}\n`.repeat(20))
  await createSnapshot(repo, {source: await fsp.realpath(src), program: 'bench', time: new Date(base + i * HOUR)})
  if ((i + 1) % 100 === 0) process.stderr.write(`${i + 1}/${SNAPSHOTS} snapshots (${Math.round((Date.now() - started) / 1000)} s)\n`)
}

if (SETUP_ONLY) {
  console.log(`repository with ${SNAPSHOTS} snapshots in ${repoDir}`)
  process.exit(0)
}

async function countFiles(dir) {
  let n = 0
  let bytes = 0
  for (const e of await fsp.readdir(dir, {withFileTypes: true, recursive: true})) {
    if (!e.isFile()) continue
    n++
    bytes += (await fsp.stat(path.join(e.parentPath ?? e.path, e.name))).size
  }
  return {n, bytes}
}

function timed(cliArgs) {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, BIN, ...cliArgs], {encoding: 'utf8', maxBuffer: 1 << 30, env: {...process.env, CI: '1'}})
  const field = (label) => r.stderr.match(new RegExp(`${label}: (.*)`))?.[1]?.trim()
  const wall = field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)')
  const [m, s] = wall.split(':').slice(-2).map(Number)
  return {code: r.status, stdout: r.stdout, wallS: m * 60 + s, maxRssKiB: Number(field('Maximum resident set size \\(kbytes\\)')), stderr: r.stderr}
}

const before = {packs: await countFiles(path.join(repoDir, 'data')), index: await countFiles(path.join(repoDir, 'index'))}
const policy = ['--keep-hourly', '24', '--keep-daily', '14', '--keep-weekly', '8', '--keep-monthly', '12', '--tz', 'UTC']
const baseline = timed(['--version'])
const first = timed(['prune', ...policy, '--json', '--repo', repoDir])
if (first.code !== 0) throw new Error(`prune failed: ${first.stdout}\n${first.stderr}`)
const report = JSON.parse(first.stdout)
const second = timed(['prune', ...policy, '--json', '--repo', repoDir])
const again = JSON.parse(second.stdout)
const after = {packs: await countFiles(path.join(repoDir, 'data')), index: await countFiles(path.join(repoDir, 'index'))}
const verify = timed(['verify', '--repo', repoDir])

const mib = (b) => `${(b / 1048576).toFixed(1)} MiB`
console.log(`
## ckpt prune, ${SNAPSHOTS} snapshots (${os.cpus().length} cores, Node ${process.version})

Repository: ${FILES} files, ${SNAPSHOTS} hourly snapshots, ${report.plan.blobs.total} distinct blobs; before: ${before.packs.n} packs (${mib(before.packs.bytes)}), ${before.index.n} index files.
Policy: ${policy.join(' ')}.

| run | wall | peak RSS | removed | packs deleted / written | freed | exclusive phase |
| --- | --- | --- | --- | --- | --- | --- |
| prune | ${first.wallS.toFixed(2)} s | ${(first.maxRssKiB / 1024).toFixed(0)} MiB | ${report.result.snapshotsRemoved} of ${report.snapshots.total} | ${report.result.packsDeleted} / ${report.result.packsWritten} | ${mib(report.result.bytesFreed)} | ${report.result.exclusiveMs} ms |
| prune again | ${second.wallS.toFixed(2)} s | ${(second.maxRssKiB / 1024).toFixed(0)} MiB | ${again.result.snapshotsRemoved} | ${again.result.packsDeleted} / ${again.result.packsWritten} | ${mib(again.result.bytesFreed)} | ${again.result.exclusiveMs} ms |
| ckpt --version (start-up) | ${baseline.wallS.toFixed(2)} s | ${(baseline.maxRssKiB / 1024).toFixed(0)} MiB | | | | |

Blob table (index + mark bits, one IdMap): ${report.plan.memory.tableBytes} bytes for ${report.plan.blobs.total} blobs = ${report.plan.memory.bytesPerBlob} bytes per blob.
Trees read while marking: ${report.plan.treesRead}. After: ${after.packs.n} packs (${mib(after.packs.bytes)}), ${after.index.n} index files; verify exit ${verify.code}.
`)
if (!KEEP) await fsp.rm(WORK, {recursive: true, force: true})
