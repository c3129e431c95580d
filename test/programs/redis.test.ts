// Redis with AOF under redis-benchmark, and a client running MULTI/INCR a/INCR b/EXEC transactions,
// with AOF rewrites (forked children) going on: captured with --pause-pid (the server's process
// tree, its rewrite child included), every restored copy must pass redis-check-aof, load in a
// redis-server started on it, and hold whole transactions only (a = b).
import {existsSync, promises as fsp} from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import {afterAll, beforeAll, expect, test} from 'vitest'

import {ckpt} from '../helpers/cli.js'
import {describePauses, freePort, run, runOk, snapshots, start, type Started, waitFor, which} from '../helpers/programs.js'
import {tempDir} from '../helpers/tree.js'

const SERVER = which('redis-server')
const CLI = which('redis-cli')
const BENCH = which('redis-benchmark')
const CHECK = which('redis-check-aof')
const missing = [!SERVER && 'redis-server', !CLI && 'redis-cli', !BENCH && 'redis-benchmark', !CHECK && 'redis-check-aof'].filter(Boolean).join(', ')
if (missing) console.warn(`test/programs/redis: skipped, not installed: ${missing} (Debian: redis-server redis-tools)`)

let root: string
beforeAll(async () => {
  root = await tempDir()
})
afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

function startRedis(dir: string, port: number, extra: readonly string[] = []): Started {
  return start(SERVER!, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', ...extra])
}

/** PONG only once the data set is loaded (a loading server answers -LOADING). */
const pong = async (port: number): Promise<boolean> => (await run(CLI!, ['-p', String(port), 'PING'])).stdout.trim() === 'PONG'

/** A client running MULTI / INCR a / INCR b / EXEC, one transaction after another, until stopped. */
function transactions(port: number): {count: () => number; stop: () => void} {
  const sock = net.connect({host: '127.0.0.1', port})
  let n = 0
  let buf = ''
  let stopped = false
  const send = () => {
    if (!stopped) sock.write('MULTI\r\nINCR a\r\nINCR b\r\nEXEC\r\n')
  }
  sock.on('connect', send)
  sock.on('data', (d: Buffer) => {
    buf += d.toString()
    // The EXEC reply closes each round trip: the next transaction goes only after it.
    if (/\*2\r\n:\d+\r\n:\d+\r\n$/.test(buf)) {
      n++
      buf = ''
      send()
    }
  })
  sock.on('error', () => {})
  return {count: () => n, stop: () => {
    stopped = true
    sock.destroy()
  }}
}

test.skipIf(missing !== '')(`Redis with AOF under load restores to a copy that loads and redis-check-aof accepts${missing ? ` (skipped: ${missing} not installed)` : ''}`, {timeout: 90_000}, async () => {
  const dir = path.join(root, 'data')
  const repo = path.join(root, 'repo')
  await fsp.mkdir(dir)
  await ckpt(['init', '--repo', repo])
  const port = await freePort()
  // Small rewrite thresholds: the AOF is rewritten (by a forked child) while the snapshots are taken.
  const server = startRedis(dir, port, ['--auto-aof-rewrite-min-size', '1mb', '--auto-aof-rewrite-percentage', '50'])
  let bench: Started | undefined
  let tx: ReturnType<typeof transactions> | undefined
  let taken
  try {
    await waitFor('redis-server to answer', () => pong(port) || (server.proc.exitCode !== null && new Error(server.output())))
    bench = start(BENCH!, ['-p', String(port), '-t', 'set,incr,lpush', '-n', '100000000', '-r', '100000', '-c', '4', '-q'])
    tx = transactions(port)
    await waitFor('100 transactions', () => tx!.count() >= 100)
    let seen = tx.count()
    const progressed = () => waitFor('100 more transactions', () => tx!.count() >= seen + 100 && (seen = tx!.count()) > 0)
    taken = await snapshots(dir, repo, ['--pause-pid', String(server.proc.pid)], 4, progressed)
    expect(server.proc.exitCode, `redis-server died: ${server.output()}`).toBe(null)
  } finally {
    tx?.stop()
    await bench?.stop()
    await server.stop()
  }
  console.log(describePauses('redis', taken))
  for (const t of taken) {
    expect(t.capture).toMatchObject({mode: 'paused', consistent: true, pause: {timedOut: false}})
    const out = path.join(root, `restored-${t.id.slice(0, 12)}`)
    await ckpt(['restore', t.id, '--target', out, '--repo', repo, '-q'])
    // Redis 7 keeps a multi-part AOF (a manifest naming a base and its increments); before, one file.
    const manifest = path.join(out, 'appendonlydir', 'appendonly.aof.manifest')
    const check = await run(CHECK!, [existsSync(manifest) ? manifest : path.join(out, 'appendonly.aof')])
    expect(check.code, `redis-check-aof on ${t.id}: ${check.stdout}${check.stderr}`).toBe(0)
    expect(check.stdout).toMatch(/All AOF files and manifest are valid|AOF is valid/)
    const port2 = await freePort()
    const restored = startRedis(out, port2)
    try {
      await waitFor('redis-server on the restored copy to load it', () => pong(port2) || (restored.proc.exitCode !== null && new Error(restored.output())))
      const size = Number((await runOk(CLI!, ['-p', String(port2), 'DBSIZE'])).stdout.trim())
      const [a, b] = (await runOk(CLI!, ['-p', String(port2), 'MGET', 'a', 'b'])).stdout.trim().split('\n').map(Number)
      console.log(`redis ${t.id.slice(0, 12)}: redis-check-aof valid, DBSIZE ${size}, a=${a} b=${b}`)
      expect(size).toBeGreaterThan(2)
      expect(a).toBeGreaterThan(0)
      expect(b).toBe(a)
    } finally {
      await restored.stop()
    }
    await fsp.rm(out, {recursive: true, force: true})
  }
})
