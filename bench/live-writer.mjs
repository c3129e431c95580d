#!/usr/bin/env node
// A writer shaped like an LSM store (RocksDB, LevelDB): a write-ahead log appended with periodic
// fdatasync, memtable flushes to new immutable table files (temp + fsync + rename), compactions that
// delete the oldest tables so the directory keeps its size, a MANIFEST replaced atomically, and a
// small file rewritten in place. It runs at a fixed rate of operations, and a slot it misses (because
// it was paused or starved of CPU) is lost, not caught up: ops completed / time is its throughput.
//
//   node bench/live-writer.mjs DIR --ops-per-sec N --record-kib K --stats FILE [--budget-mib M]
//
// On SIGTERM it writes {ops, bytes, elapsedMs, flushes} to FILE and exits.
import {closeSync, fdatasyncSync, fsyncSync, openSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync} from 'node:fs'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import {ByteStream, sstContent} from './gen.mjs'

const {values, positionals} = parseArgs({allowPositionals: true, options: {
  'ops-per-sec': {type: 'string', default: '200'},
  'record-kib': {type: 'string', default: '8'},
  'table-mib': {type: 'string', default: '4'},
  'budget-mib': {type: 'string', default: '1024'},
  stats: {type: 'string'},
  seed: {type: 'string', default: '7'},
}})
const dir = positionals[0]
if (!dir || !values.stats) throw new Error('usage: live-writer.mjs DIR --stats FILE [--ops-per-sec N] [--record-kib K]')
const opsPerSec = Number(values['ops-per-sec'])
const record = Number(values['record-kib']) * 1024
const tableBytes = Number(values['table-mib']) * 1024 * 1024
const budget = Number(values['budget-mib']) * 1024 * 1024
const seed = Number(values.seed)

let seq = Math.max(0, ...readdirSync(dir).filter((n) => n.endsWith('.sst')).map((n) => Number.parseInt(n, 10) || 0)) + 1
let wal = openSync(join(dir, `${String(seq).padStart(6, '0')}.log`), 'a')
let walBytes = 0
const stats = {ops: 0, bytes: 0, flushes: 0, elapsedMs: 0}
const started = performance.now()
const records = new ByteStream(seed, 'live-records')

function durableReplace(name, data) {
  const tmp = join(dir, `${name}.tmp`)
  const fd = openSync(tmp, 'w')
  writeSync(fd, data)
  fsyncSync(fd)
  closeSync(fd)
  renameSync(tmp, join(dir, name))
}

function flush() {
  const name = `${String(seq).padStart(6, '0')}.sst`
  durableReplace(name, sstContent(seed, `live/${seq}`, tableBytes))
  // Compaction: keep the directory within its budget by dropping the oldest tables.
  const tables = readdirSync(dir).filter((n) => n.endsWith('.sst')).sort()
  let total = tables.reduce((sum, n) => sum + statSync(join(dir, n)).size, 0)
  for (const old of tables) {
    if (total <= budget) break
    total -= statSync(join(dir, old)).size
    unlinkSync(join(dir, old))
  }
  durableReplace('MANIFEST', Buffer.from(`${tables.filter((n) => n <= name).slice(-64).join('\n')}\n`))
  writeFileSync(join(dir, 'CURRENT'), `MANIFEST seq ${seq}\n`)
  // A new log for the next memtable; the old one is obsolete once the table is durable.
  const oldLog = join(dir, `${String(seq).padStart(6, '0')}.log`)
  closeSync(wal)
  seq++
  wal = openSync(join(dir, `${String(seq).padStart(6, '0')}.log`), 'a')
  unlinkSync(oldLog)
  walBytes = 0
  stats.flushes++
}

function op() {
  const data = records.next(record)
  writeSync(wal, data)
  walBytes += record
  if (stats.ops % 8 === 7) fdatasyncSync(wal)
  if (stats.ops % 50 === 0) {
    // A small file rewritten in place (options, stats), as stores do beside their log.
    const fd = openSync(join(dir, 'LOCK-STATS'), 'w')
    writeSync(fd, `ops ${stats.ops}\n`)
    closeSync(fd)
  }
  if (walBytes >= tableBytes) flush()
  stats.ops++
  stats.bytes += record
}

function finish() {
  stats.elapsedMs = performance.now() - started
  writeFileSync(values.stats, JSON.stringify(stats))
  process.exit(0)
}
process.on('SIGTERM', finish)
process.on('SIGINT', finish)

// Fixed slots: slot k is due at started + k/opsPerSec; a slot already past when we get to it is
// dropped, so a pause or a starved CPU shows as lost throughput.
const period = 1000 / opsPerSec
let slot = 0
function tick() {
  const now = performance.now()
  const due = Math.floor((now - started) / period)
  if (due > slot) slot = due // missed slots are lost
  op()
  slot++
  const wait = started + slot * period - performance.now()
  setTimeout(tick, Math.max(0, wait))
}
tick()
