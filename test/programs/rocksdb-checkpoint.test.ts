// A RocksDB checkpoint (`ldb checkpoint`, what Checkpoint::Create makes): its table files are
// hard links into the live database. Snapshot the directory holding both and restore it: the
// tables come back as one inode per pair of names (stored and written once), and the restored
// checkpoint passes `ldb checkconsistency` and scans the same rows.
import {promises as fsp, statSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt, ckptJson} from '../helpers/cli.js'
import {runOk, which} from '../helpers/programs.js'
import {tempDir} from '../helpers/tree.js'

const DB_BENCH = which('db_bench')
const LDB = which('ldb')
const missing = [!DB_BENCH && 'db_bench', !LDB && 'ldb'].filter(Boolean).join(', ')
if (missing) console.warn(`test/programs/rocksdb-checkpoint: skipped, not installed: ${missing} (Debian: rocksdb-tools)`)

let root: string
beforeAll(async () => {
  root = await fsp.realpath(await tempDir('ckpt-rocksdb-ck-'))
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

test.skipIf(missing !== '')(`an ldb checkpoint round-trips with its hard links and ldb accepts it${missing ? ` (skipped: ${missing} not installed)` : ''}`, {timeout: 60_000}, async () => {
  const state = path.join(root, 'state')
  const db = path.join(state, 'db')
  const ck = path.join(state, 'ck')
  await fsp.mkdir(state)
  // Small memtables and tables: a few dozen SSTs.
  await runOk(DB_BENCH!, ['--benchmarks=fillrandom', `--db=${db}`, '--num=30000', '--value_size=100', '--write_buffer_size=262144', '--target_file_size_base=262144'])
  await runOk(LDB!, [`--db=${db}`, 'checkpoint', `--checkpoint_dir=${ck}`])
  const tables = (await fsp.readdir(ck)).filter((n) => n.endsWith('.sst'))
  expect(tables.length).toBeGreaterThan(3)
  expect(tables.every((t) => statSync(path.join(ck, t)).nlink === 2)).toBe(true)
  const rows = (await runOk(LDB!, [`--db=${ck}`, 'scan'])).stdout
  // The tables, and whatever else the checkpoint linked rather than copied.
  const linked = (await fsp.readdir(ck)).filter((n) => statSync(path.join(ck, n)).nlink === 2)

  const repo = path.join(root, 'repo')
  await ckpt(['init', '--repo', repo])
  const snap = await ckptJson<{id: string; bytes: number; bytesRead: number}>(['snapshot', state, '--repo', repo])
  // Each linked table read once.
  const tableBytes = tables.reduce((n, t) => n + statSync(path.join(ck, t)).size, 0)
  expect(snap.bytesRead).toBeLessThanOrEqual(snap.bytes - tableBytes)
  const out = path.join(root, 'out')
  const restored = await ckptJson<{files: number; hardLinks: number; warnings: unknown[]}>(['restore', snap.id, '--target', out, '--repo', repo])
  expect(restored.hardLinks).toBe(linked.length)
  expect(restored.warnings).toEqual([])
  for (const t of linked) {
    const a = statSync(path.join(out, 'ck', t))
    const b = statSync(path.join(out, 'db', t))
    expect([a.nlink, b.nlink, a.ino]).toEqual([2, 2, b.ino])
  }
  await runOk(LDB!, [`--db=${path.join(out, 'ck')}`, 'checkconsistency'])
  expect((await runOk(LDB!, [`--db=${path.join(out, 'ck')}`, 'scan'])).stdout).toBe(rows)
  await runOk(LDB!, [`--db=${path.join(out, 'db')}`, 'checkconsistency'])
})
