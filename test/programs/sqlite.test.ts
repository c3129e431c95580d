// SQLite in WAL mode under a writer committing transactions as fast as it can (inserts, deletes of
// old batches, a running total; the WAL is checkpointed into the database file every 1000 pages), captured with
// --pause-pid: every restored copy must pass `PRAGMA integrity_check` and hold whole transactions
// only (the running total equals the row count, every batch has all its rows or none).
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt} from '../helpers/cli.js'
import {describePauses, runOk, snapshots, start, waitFor, which} from '../helpers/programs.js'
import {PYTHON} from '../helpers/statewriter.js'
import {tempDir} from '../helpers/tree.js'

const SQLITE = which('sqlite3')
const missing = [!SQLITE && 'sqlite3', !which(path.basename(PYTHON), [path.dirname(PYTHON)]) && 'python3'].filter(Boolean).join(', ')
if (missing) console.warn(`test/programs/sqlite: skipped, not installed: ${missing} (Debian: sqlite3 python3)`)

// Prints "batch N" every 100 transactions, so the test can wait for progress.
const WRITER = `
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('PRAGMA journal_mode=WAL')
db.execute('PRAGMA synchronous=NORMAL')
db.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, batch INTEGER, payload BLOB)')
db.execute('CREATE INDEX t_batch ON t(batch)')
db.execute('CREATE TABLE total(n INTEGER)')
db.execute('INSERT INTO total VALUES (0)')
b = 0
while True:
    b += 1
    db.execute('BEGIN')
    for i in range(10):
        db.execute('INSERT INTO t(batch, payload) VALUES (?, randomblob(300))', (b,))
    gone = db.execute('DELETE FROM t WHERE batch = ?', (b - 300,)).rowcount
    db.execute('UPDATE total SET n = n + ?', (10 - gone,))
    db.execute('COMMIT')
    if b % 100 == 0:
        print('batch', b, flush=True)
`

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

test.skipIf(missing !== '')(`SQLite in WAL mode under a writer restores to a copy integrity_check accepts${missing ? ` (skipped: ${missing} not installed)` : ''}`, {timeout: 90_000}, async () => {
  const dir = path.join(root, 'data')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(dir)
  await ckpt(['init', '--repo', repo])
  const writer = start(PYTHON, ['-c', WRITER, path.join(dir, 'app.db')])
  const batches = () => [...writer.output().matchAll(/batch (\d+)/g)].length
  let taken
  try {
    await waitFor('the writer to commit 100 transactions', () => batches() > 0 || (writer.proc.exitCode !== null && new Error(writer.output())))
    let seen = batches()
    const progressed = () => waitFor('the writer to commit 100 more', () => batches() > seen && (seen = batches()) > 0)
    taken = await snapshots(dir, repo, ['--pause-pid', String(writer.proc.pid)], 4, progressed)
    expect(writer.proc.exitCode, `the writer died: ${writer.output()}`).toBe(null)
  } finally {
    await writer.stop()
  }
  console.log(describePauses('sqlite', taken))
  for (const t of taken) {
    expect(t.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
    const out = path.join(root, `restored-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    // The copy holds app.db-wal (and app.db-shm): opening it replays the WAL, as after a crash.
    const db = path.join(out, 'app.db')
    const check = await runOk(SQLITE!, [db, 'PRAGMA integrity_check;'])
    expect(check.stdout.trim(), `integrity_check on ${t.id}`).toBe('ok')
    const q = await runOk(SQLITE!, [db, `SELECT count(*), (SELECT n FROM total), (SELECT count(*) FROM (SELECT batch FROM t GROUP BY batch HAVING count(*) <> 10)), max(batch) FROM t;`])
    const [rows, total, torn, last] = q.stdout.trim().split('|').map(Number)
    console.log(`sqlite ${t.id.slice(0, 12)}: integrity_check ${check.stdout.trim()}, ${rows} rows, total ${total}, partial batches ${torn}, last batch ${last}`)
    expect(rows).toBeGreaterThan(0)
    expect(total).toBe(rows)
    expect(torn).toBe(0)
    // The last 300 batches, every one whole: no transaction lost between them, none half there.
    expect(rows).toBe(10 * Math.min(last!, 300))
    await fsp.rm(out, {recursive: true, force: true})
  }
})
