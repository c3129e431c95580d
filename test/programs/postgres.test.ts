// PostgreSQL under pgbench, captured with --pause-pid-file DATA/postmaster.pid (the postmaster and
// every backend it forked) and --exclude postmaster.pid: every restored copy must start with
// `pg_ctl start` and nothing else (crash recovery replays the WAL), answer queries, pass pg_amcheck,
// and hold whole pgbench transactions only (each one moves the same delta into accounts, tellers,
// branches and history: their four sums are equal).
import {existsSync, promises as fsp, readdirSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt} from '../helpers/cli.js'
import {describePauses, freePort, run, runOk, snapshots, start, type Started, userIds, waitFor, which} from '../helpers/programs.js'
import {tempDir} from '../helpers/tree.js'

// The server's own directory first, newest version first: Debian's /usr/bin wrappers pick a version by cluster.
const PG_LIB = '/usr/lib/postgresql'
const PG_BIN = (existsSync(PG_LIB) ? readdirSync(PG_LIB) : []).filter((v) => /^\d+$/.test(v)).sort((x, y) => Number(y) - Number(x)).map((v) => path.join(PG_LIB, v, 'bin'))
const bin = (name: string) => which(name, PG_BIN)
const tools = ['initdb', 'pg_ctl', 'pgbench', 'psql', 'pg_amcheck'] as const
const PG = Object.fromEntries(tools.map((t) => [t, bin(t)])) as Record<(typeof tools)[number], string | undefined>
// PostgreSQL refuses to run as root: as root the test runs it as the user the package creates.
const AS = process.getuid?.() === 0 ? userIds('postgres') : undefined
const missing = [
  ...tools.filter((t) => !PG[t]),
  ...(process.getuid?.() === 0 && !AS ? ['a "postgres" user (PostgreSQL will not run as root)'] : []),
].join(', ')
if (missing) console.warn(`test/programs/postgres: skipped, not installed: ${missing} (Debian: postgresql)`)

let root: string
beforeAll(async () => {
  root = await tempDir()
  // The server's user must reach its directories under the test's (mode 0700) temp directory.
  await fsp.chmod(root, 0o755)
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

const asUser = {...(AS ?? {}), env: {...process.env, PGUSER: 'postgres', PGDATABASE: 'postgres', PGHOST: '127.0.0.1'}}
const pg = (tool: (typeof tools)[number], args: readonly string[]) => runOk(PG[tool]!, args, asUser)
const sql = async (port: number, query: string): Promise<string> => (await pg('psql', ['-p', String(port), '-XAtc', query])).stdout.trim()
const mkdirOwned = async (dir: string) => {
  await fsp.mkdir(dir)
  if (AS) await fsp.chown(dir, AS.uid, AS.gid)
}

/** Start a server on `data`; pg_ctl -w returns once it accepts connections. */
async function startServer(data: string, port: number, sock: string, log: string): Promise<void> {
  const r = await run(PG.pg_ctl!, ['-D', data, '-w', '-t', '60', '-l', log, '-o', `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1`, 'start'], asUser)
  if (r.code !== 0) throw new Error(`pg_ctl start ${data} exited ${r.code}: ${r.stdout}${r.stderr}\n${await fsp.readFile(log, 'utf8').catch(() => '')}`)
}
const stopServer = (data: string) => run(PG.pg_ctl!, ['-D', data, '-w', '-m', 'fast', 'stop'], asUser)

test.skipIf(missing !== '')(`PostgreSQL under pgbench restores to a copy that starts with no manual step${missing ? ` (skipped: ${missing})` : ''}`, {timeout: 120_000}, async () => {
  const home = path.join(root, 'pg')
  const sock = path.join(root, 'sock')
  await mkdirOwned(home)
  await mkdirOwned(sock)
  const data = path.join(home, 'data')
  const repo = path.join(root, 'repo')
  await ckpt(['init', '--repo', repo])
  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
  const port = await freePort()
  await startServer(data, port, sock, path.join(home, 'server.log'))
  let bench: Started | undefined
  let taken
  try {
    await pg('pgbench', ['-p', String(port), '-i', '-s', '1', '-q'])
    await sql(port, 'CREATE EXTENSION amcheck')
    bench = start(PG.pgbench!, ['-p', String(port), '-c', '2', '-T', '300', '-n'], asUser)
    let seen = 0
    const progressed = () => waitFor('pgbench to commit 50 more transactions', async () => {
      if (bench!.proc.exitCode !== null) return new Error(`pgbench exited: ${bench!.output()}`)
      const n = Number(await sql(port, 'SELECT count(*) FROM pgbench_history'))
      return n >= seen + 50 && (seen = n) > 0
    })
    await progressed()
    taken = await snapshots(data, repo, ['--pause-pid-file', path.join(data, 'postmaster.pid'), '--exclude', 'postmaster.pid'], 3, progressed)
  } finally {
    await bench?.stop('SIGINT')
    await stopServer(data)
  }
  console.log(describePauses('postgres', taken))
  for (const t of taken) {
    expect(t.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
    // Restored as root, the copy keeps its owner (postgres) and mode (0700), as the server demands.
    const out = path.join(home, `restored-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    const port2 = await freePort()
    const log = path.join(home, `restored-${t.id.slice(0, 12)}.log`)
    await startServer(out, port2, sock, log)
    try {
      const accounts = Number(await sql(port2, 'SELECT count(*) FROM pgbench_accounts'))
      const sums = (await sql(port2, `SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
        (SELECT sum(bbalance) FROM pgbench_branches), (SELECT coalesce(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`)).split('|').map(Number)
      const amcheck = await pg('pg_amcheck', ['-p', String(port2), '--heapallindexed', 'postgres'])
      const recovered = /automatic recovery in progress/.test(await fsp.readFile(log, 'utf8'))
      console.log(`postgres ${t.id.slice(0, 12)}: started (crash recovery: ${recovered}), ${accounts} accounts, ${sums[4]} transactions in history, sums ${sums.slice(0, 4).join(' = ')}, pg_amcheck exit ${amcheck.code}`)
      expect(accounts).toBe(100_000)
      expect(sums[4]).toBeGreaterThan(0)
      expect(new Set(sums.slice(0, 4)).size, `pgbench sums differ: ${sums.join(' ')}`).toBe(1)
    } finally {
      await stopServer(out)
    }
    await fsp.rm(out, {recursive: true, force: true})
  }
})
