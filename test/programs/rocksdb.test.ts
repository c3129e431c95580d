// RocksDB under db_bench's writes (WAL on, small memtables so flushes and compactions run in its
// background threads meanwhile), captured with --pause-pid: every restored copy must pass
// `ldb checkconsistency` and open for a full scan (which replays the WAL as after a crash). A plain
// capture beside the same writer is checked too: ckpt must not call it consistent unless ldb agrees.
import {existsSync, promises as fsp, readdirSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt, runCli} from '../helpers/cli.js'
import {describePauses, run, runOk, snapshots, start, waitFor, which} from '../helpers/programs.js'
import {tempDir} from '../helpers/tree.js'

const DB_BENCH = which('db_bench')
const LDB = which('ldb')
const missing = [!DB_BENCH && 'db_bench', !LDB && 'ldb'].filter(Boolean).join(', ')
if (missing) console.warn(`test/programs/rocksdb: skipped, not installed: ${missing} (Debian: rocksdb-tools)`)

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

const sstCount = (db: string): number => (existsSync(db) ? readdirSync(db).filter((n) => n.endsWith('.sst')).length : 0)

test.skipIf(missing !== '')(`RocksDB under db_bench restores to a copy ldb accepts${missing ? ` (skipped: ${missing} not installed)` : ''}`, {timeout: 90_000}, async () => {
  const db = path.join(root, 'db')
  const repo = path.join(root, 'repo')
  await ckpt(['init', '--repo', repo])
  const bench = start(DB_BENCH!, [
    '--benchmarks=fillrandom', `--db=${db}`, '--num=100000000', '--duration=120', '--value_size=100',
    '--threads=1', '--sync=false', '--disable_wal=false',
    '--write_buffer_size=1048576', '--target_file_size_base=1048576', '--max_bytes_for_level_base=4194304',
  ])
  let taken
  let plain: {id: string; consistent: boolean} | undefined
  try {
    // Flushed tables exist: the database has its WAL, MANIFEST and SSTs all in motion.
    await waitFor('db_bench to flush its first tables', () => sstCount(db) >= 2 || (bench.proc.exitCode !== null && new Error(bench.output())))
    let seen = sstCount(db)
    const progressed = () => waitFor('db_bench to flush again', () => {
      const n = sstCount(db)
      if (n === seen) return false
      seen = n
      return true
    })
    taken = await snapshots(db, repo, ['--pause-pid', String(bench.proc.pid)], 3, progressed)
    // The same capture without a pause: flushes and compactions delete and create tables during the
    // walk, so it is (almost always) not a state the database had, and ckpt must not call it one.
    await progressed()
    const r = await runCli(['snapshot', db, '--repo', repo, '--json'])
    const doc = JSON.parse(r.stdout) as {id: string; capture: {consistent: boolean}}
    plain = {id: doc.id, consistent: doc.capture.consistent}
    expect(r.code, r.stderr).toBe(doc.capture.consistent ? 0 : 3)
    expect(bench.proc.exitCode, `db_bench died: ${bench.output()}`).toBe(null)
  } finally {
    await bench.stop('SIGKILL')
  }
  {
    const out = path.join(root, 'restored-plain')
    await ckpt(['restore', plain!.id, '--target', out, '--repo', repo, '-q'])
    const check = await run(LDB!, [`--db=${out}`, 'checkconsistency'])
    console.log(`rocksdb plain ${plain!.id.slice(0, 12)}: consistent=${plain!.consistent}, checkconsistency: ${(check.stdout + check.stderr).trim().slice(0, 200)}`)
    // A plain snapshot called consistent must be one the checker accepts.
    if (plain!.consistent) expect(check.stdout).toMatch(/^OK/)
  }
  console.log(describePauses('rocksdb', taken))
  for (const t of taken) {
    expect(t.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
    const out = path.join(root, `restored-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    // The copy holds db_bench's LOCK file: RocksDB locks it with fcntl, so a copy is not locked.
    const check = await run(LDB!, [`--db=${out}`, 'checkconsistency'])
    expect(check.stdout + check.stderr, `ldb checkconsistency on ${t.id}`).toMatch(/^OK/)
    expect(check.code).toBe(0)
    const scan = await runOk(LDB!, [`--db=${out}`, 'scan'])
    const keys = scan.stdout.split('\n').filter(Boolean).length
    console.log(`rocksdb ${t.id.slice(0, 12)}: checkconsistency ${check.stdout.trim()}, scan ${keys} keys`)
    expect(keys).toBeGreaterThan(0)
    await fsp.rm(out, {recursive: true, force: true})
  }
})
