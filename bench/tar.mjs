#!/usr/bin/env node
// Tar export and import against their nearest peers, on bench/corpus.mjs's seeded tree:
//   export: `ckpt export latest -o X.tar`        against `tar -cf X.tar` (GNU tar) of a restored copy
//   import: `ckpt import X.tar` (new repository) against `restic backup --stdin` of the same tar
//           (new repository), and `ckpt import` into the repository that already holds the snapshot
// Each timed under GNU time (wall, user+sys CPU, peak RSS); `sync` runs untimed after each command.
// Not part of the tests or CI.
//
//   node bench/tar.mjs [--size small|default|large] [--work /tmp/ckpt-bench-tar] [--seed N] [--keep]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, rmSync, statSync} from 'node:fs'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {generate} from './corpus.mjs'

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))
const RUN_JS = join(ROOT, 'bin/run.js')
const {values: opts} = parseArgs({options: {
  size: {type: 'string', default: 'default'},
  work: {type: 'string', default: '/tmp/ckpt-bench-tar'},
  seed: {type: 'string', default: '1'},
  keep: {type: 'boolean', default: false},
}})

const log = (msg) => process.stderr.write(`[bench-tar] ${msg}\n`)
const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`

/** Run a shell command under GNU time; returns wall s, cpu s and peak RSS MB. */
function timed(label, command, env = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', 'sh', '-c', command], {encoding: 'utf8', env: {...process.env, CI: '1', ...env}, maxBuffer: 64 << 20})
  const last = r.stderr.trim().split('\n').at(-1)
  if (r.status !== 0) throw new Error(`${label} failed (${r.status}): ${r.stderr.slice(-2000)}`)
  const [wall, user, sys, rssKb] = last.split(' ').map(Number)
  spawnSync('sync')
  const result = {label, wall, cpu: user + sys, rssMb: rssKb / 1024}
  log(`${label}: ${wall.toFixed(2)} s wall, ${(user + sys).toFixed(2)} s CPU, ${(rssKb / 1024).toFixed(0)} MB peak`)
  return result
}

const work = opts.work
rmSync(work, {recursive: true, force: true})
mkdirSync(work, {recursive: true})
const corpus = join(work, 'corpus')
log(`generating the ${opts.size} corpus`)
generate({size: opts.size, out: corpus, seed: Number(opts.seed)})
spawnSync('sh', ['-c', `cat $(find ${q(corpus)} -type f) > /dev/null`]) // warm the page cache, as bench/run.mjs does

const ckpt = (args) => `node ${q(RUN_JS)} ${args}`
const repo = join(work, 'repo')
spawnSync('node', [RUN_JS, 'init', '--repo', repo], {stdio: 'ignore'})
timed('ckpt snapshot (setup)', ckpt(`snapshot ${q(corpus)} --repo ${q(repo)} -q`))

const results = []
const restored = join(work, 'restored')
timed('ckpt restore (setup)', ckpt(`restore latest --target ${q(restored)} --repo ${q(repo)} -q`))
results.push(timed('ckpt export -o', ckpt(`export latest -o ${q(join(work, 'ckpt.tar'))} --repo ${q(repo)} -q`)))
results.push(timed('tar -c of a restored copy', `tar --format=pax -cf ${q(join(work, 'gnu.tar'))} -C ${q(restored)} .`))
const tarBytes = statSync(join(work, 'ckpt.tar')).size
const gnuBytes = statSync(join(work, 'gnu.tar')).size

const fresh = join(work, 'repo-import')
spawnSync('node', [RUN_JS, 'init', '--repo', fresh], {stdio: 'ignore'})
results.push(timed('ckpt import (new repository)', ckpt(`import ${q(join(work, 'gnu.tar'))} --source /bench --repo ${q(fresh)} -q`)))
const resticRepo = join(work, 'restic')
const resticEnv = {RESTIC_PASSWORD: 'ckpt-bench', RESTIC_REPOSITORY: resticRepo}
spawnSync('restic', ['init', '--quiet'], {env: {...process.env, ...resticEnv}, stdio: 'ignore'})
results.push(timed('restic backup --stdin (new repository)', `restic backup --quiet --stdin --stdin-filename corpus.tar < ${q(join(work, 'gnu.tar'))}`, resticEnv))
results.push(timed('ckpt import (repository holding the snapshot)', ckpt(`import ${q(join(work, 'gnu.tar'))} --source /bench --repo ${q(repo)} -q`)))

const du = (p) => Number(spawnSync('du', ['-sb', p], {encoding: 'utf8'}).stdout.split(/\s/)[0])
const mib = (n) => n / 1024 / 1024
console.log(`corpus: ${opts.size}, tar of ${mib(gnuBytes).toFixed(0)} MiB (ckpt's export: ${mib(tarBytes).toFixed(0)} MiB)`)
console.log('')
console.log('| | wall | CPU | peak RSS | throughput |')
console.log('|---|---:|---:|---:|---:|')
for (const r of results) console.log(`| ${r.label} | ${r.wall.toFixed(2)} s | ${r.cpu.toFixed(2)} s | ${r.rssMb.toFixed(0)} MB | ${(mib(gnuBytes) / r.wall).toFixed(0)} MiB/s |`)
console.log('')
console.log(`repository after import: ckpt ${mib(du(fresh)).toFixed(0)} MiB, restic ${mib(du(resticRepo)).toFixed(0)} MiB`)
if (!opts.keep && existsSync(work)) rmSync(work, {recursive: true, force: true})
