#!/usr/bin/env node
// A sparse file (issue 13): `--size` GiB apparent (default 10) holding 8 extents of 512 KiB of
// random data, the rest holes. ckpt snapshot and restore against `cp --sparse=always` and restic
// backup and restore of the same file. Per command: wall time, CPU time, bytes it read (rchar of /proc/PID/io,
// which counts a reaped child's reads: the file and anything else it read) and, for the copies,
// the bytes allocated (st_blocks x 512). Plain Node, no dependencies; run as root or as a user
// who can write --work. restic must be on the PATH (RESTIC_PASSWORD is set here).
//
//   node bench/sparse.mjs [--size 10] [--work /tmp/ckpt-bench-sparse] [--keep]
import {spawnSync} from 'node:child_process'
import {randomFillSync} from 'node:crypto'
import {closeSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync, writeSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const GiB = 1024 ** 3
const size = Number(opt('size', '10')) * GiB
const work = path.resolve(opt('work', '/tmp/ckpt-bench-sparse'))
const keep = args.includes('--keep')
const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'run.js')
const EXTENTS = 8
const EXTENT = 512 * 1024

rmSync(work, {recursive: true, force: true})
const src = path.join(work, 'src')
mkdirSync(src, {recursive: true})
const file = path.join(src, 'disk.img')
const fd = openSync(file, 'w')
const data = Buffer.alloc(EXTENT)
for (let i = 0; i < EXTENTS; i++) {
  randomFillSync(data)
  writeSync(fd, data, 0, EXTENT, Math.floor((i * size) / EXTENTS))
}
ftruncateSync(fd, size)
closeSync(fd)
spawnSync('sync')

/** Run a command; wall ms, bytes read (rchar), stdout. */
function measure(label, cmd, argv, env = {}) {
  const script = '"$@" >"$OUT" 2>"$ERR"; rc=$?; cat /proc/$$/io; echo "stat: $(cat /proc/$$/stat)"; exit $rc'
  const out = path.join(work, `${label}.out`)
  const err = path.join(work, `${label}.err`)
  const t0 = process.hrtime.bigint()
  const r = spawnSync('sh', ['-c', script, 'sh', cmd, ...argv], {encoding: 'utf8', env: {...process.env, ...env, OUT: out, ERR: err}})
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  spawnSync('sync')
  if (r.status !== 0) throw new Error(`${label}: ${cmd} ${argv.join(' ')} exited ${r.status}: ${spawnSync('cat', [err], {encoding: 'utf8'}).stdout}`)
  const rchar = Number(/^rchar: (\d+)$/m.exec(r.stdout)?.[1] ?? NaN)
  // The reaped child's user and system CPU (cutime, cstime: fields 16 and 17 of the shell's stat, in ticks of 1/100 s).
  const stat = /^stat: .*\) (.*)$/m.exec(r.stdout)?.[1]?.split(' ') ?? []
  const cpu = (Number(stat[13]) + Number(stat[14])) / 100
  return {label, ms, rchar, cpu, stdout: spawnSync('cat', [out], {encoding: 'utf8'}).stdout}
}

const allocated = (p) => statSync(p).blocks * 512
const rows = []
const row = (m, alloc) => rows.push({what: m.label, seconds: (m.ms / 1000).toFixed(2), cpu: m.cpu.toFixed(2), read: m.rchar, allocated: alloc})

// ckpt
const repo = path.join(work, 'ckpt-repo')
measure('ckpt-init', process.execPath, [bin, 'init', '--repo', repo])
const snap = measure('ckpt snapshot', process.execPath, [bin, 'snapshot', src, '--repo', repo, '--json'])
const snapDoc = JSON.parse(snap.stdout)
row(snap)
const ckptOut = path.join(work, 'ckpt-out')
row(measure('ckpt restore', process.execPath, [bin, 'restore', snapDoc.id, '--target', ckptOut, '--repo', repo]), allocated(path.join(ckptOut, 'disk.img')))

// cp
const cpOut = path.join(work, 'cp-out.img')
row(measure('cp --sparse=always', 'cp', ['--sparse=always', file, cpOut]), allocated(cpOut))

// restic
const env = {RESTIC_PASSWORD: 'bench', RESTIC_REPOSITORY: path.join(work, 'restic-repo'), RESTIC_CACHE_DIR: path.join(work, 'restic-cache')}
measure('restic-init', 'restic', ['init'], env)
row(measure('restic backup', 'restic', ['backup', src], env))
const resticOut = path.join(work, 'restic-out')
row(measure('restic restore', 'restic', ['restore', 'latest', '--target', resticOut], env), allocated(path.join(resticOut, src, 'disk.img')))

const mib = (n) => (n === undefined ? '' : `${(n / 1024 / 1024).toFixed(1)} MiB`)
console.log(`${(size / GiB).toFixed(0)} GiB sparse file, ${EXTENTS} extents of ${EXTENT / 1024} KiB (${mib(EXTENTS * EXTENT)} of data, source allocation ${mib(allocated(file))}); ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM, ${spawnSync('df', ['--output=fstype', work], {encoding: 'utf8'}).stdout.trim().split('\n').pop()}; ckpt snapshot bytesRead ${mib(snapDoc.bytesRead)}; restic ${spawnSync('restic', ['version'], {encoding: 'utf8'}).stdout.trim()}`)
console.log('')
console.log('| command | wall s | CPU s (user+sys) | bytes read (rchar) | allocated |')
console.log('| --- | ---: | ---: | ---: | ---: |')
for (const r of rows) console.log(`| ${r.what} | ${r.seconds} | ${r.cpu} | ${mib(r.read)} | ${mib(r.allocated)} |`)
if (!keep) rmSync(work, {recursive: true, force: true})
