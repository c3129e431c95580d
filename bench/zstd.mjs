// zstd per blob: @mongodb-js/zstd 1.2.2 (a new context and buffer per call) against the zstd built into
// ckpt's addon (a context per thread, frames into and out of reused buffers). The blobs are 128 KiB
// pieces of real SST-like files (semi-compressible, ~2.8x at level 3) and of shard files (random).
//
//   node bench/zstd.mjs [--dir DIR] [--mib N] [--rounds N]
//
// DIR defaults to the default corpus (/tmp/ckpt-bench/corpus, made by `node bench/corpus.mjs --size
// default --out /tmp/ckpt-bench/corpus`). Needs `npm run build`. Prints one line per engine and
// operation: MB/s of plain bytes and microseconds per blob, one blob at a time (each call awaited)
// and with four in flight (libuv's four threads), the best of --rounds. Each engine runs in a
// process of its own (the fallback with CKPT_NATIVE=0).
import {spawnSync} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const {values} = parseArgs({options: {dir: {type: 'string', default: '/tmp/ckpt-bench/corpus'}, mib: {type: 'string', default: '64'}, rounds: {type: 'string', default: '5'}, engine: {type: 'string'}}})
const BLOB = 128 * 1024
const LEVEL = 3

function blobsOf(sub, mib) {
  const dir = path.join(values.dir, sub)
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const data = readFileSync(path.join(dir, name))
    for (let at = 0; at + BLOB <= data.length && out.length * BLOB < mib * 1024 * 1024; at += BLOB) out.push(Buffer.from(data.subarray(at, at + BLOB)))
    if (out.length * BLOB >= mib * 1024 * 1024) break
  }
  return out
}

async function timeIt(rounds, fn) {
  let best = Infinity
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint()
    await fn()
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9)
  }
  return best
}

/** Run `work(i, lane)` for every index, `inFlight` lanes at a time (a lane owns its buffers). */
async function each(n, inFlight, work) {
  let next = 0
  await Promise.all(Array.from({length: inFlight}, async (_, lane) => {
    while (next < n) await work(next++, lane)
  }))
}

async function runEngine(engine) {
  const codec = await import(path.join(root, 'dist/core/codec.js'))
  const rounds = Number(values.rounds)
  const mib = Number(values.mib)
  const sets = {sst: blobsOf('db', mib), shard: blobsOf('model', mib)}
  const lines = []
  for (const [kind, blobs] of Object.entries(sets)) {
    const bytes = blobs.length * BLOB
    const frames = await Promise.all(blobs.map((b) => codec.encodeBlob(b, LEVEL)))
    const stored = frames.map((f) => f.data)
    const ratio = bytes / stored.reduce((n, f) => n + f.length, 0)
    for (const inFlight of [1, 4]) {
      // Compression: the writer's way, into one reused buffer per blob in flight.
      const dsts = Array.from({length: inFlight}, () => Buffer.allocUnsafe(BLOB))
      const c = await timeIt(rounds, () => each(blobs.length, inFlight, async (i, lane) => {
        await codec.compressInto(blobs[i], LEVEL, dsts[lane])
      }))
      lines.push({engine, kind, op: 'compress', inFlight, mbps: bytes / c / 1e6, usPerBlob: (c / blobs.length) * 1e6, ratio})
      if (kind === 'shard') continue // stored as is: nothing to inflate
      // Inflation: decodeBlob per blob (a new buffer each), as restore and verify did.
      const d = await timeIt(rounds, () => each(stored.length, inFlight, async (i) => {
        await codec.decodeBlob(stored[i], 1, BLOB)
      }))
      lines.push({engine, kind, op: 'decodeBlob', inFlight, mbps: bytes / d / 1e6, usPerBlob: (d / blobs.length) * 1e6})
    }
    // Inflate and check in batches of 32 blobs (4 MiB), four batches in flight: restore's and verify's way.
    const batch = 32
    const {blake3} = await import(path.join(root, 'dist/core/hash.js'))
    const ids = blobs.map((b) => blake3(b))
    const packs = []
    for (let i = 0; i < blobs.length; i += batch) {
      const part = frames.slice(i, i + batch)
      let at = 0
      const specs = part.map((f, k) => {
        const s = {offset: at, storedLength: f.data.length, compression: f.compression, rawLength: BLOB, id: ids[i + k]}
        at += f.data.length
        return s
      })
      packs.push({bytes: Buffer.concat(part.map((f) => f.data)), specs})
    }
    const outs = Array.from({length: 4}, () => Buffer.allocUnsafe(batch * BLOB))
    const o = await timeIt(rounds, () => each(packs.length, 4, async (i, lane) => {
      const opened = await codec.openBlobs(packs[i].bytes, packs[i].specs, outs[lane])
      if (!opened.every((x) => x.ok)) throw new Error('a blob failed its check')
    }))
    lines.push({engine, kind, op: 'openBlobs (inflate + BLAKE3)', inFlight: 4, mbps: bytes / o / 1e6, usPerBlob: (o / blobs.length) * 1e6})
  }
  process.stdout.write(JSON.stringify(lines) + '\n')
}

if (values.engine) {
  await runEngine(values.engine)
} else {
  console.log(`zstd level ${LEVEL}, ${BLOB / 1024} KiB blobs, ${values.mib} MiB of each kind from ${values.dir}, best of ${values.rounds}`)
  console.log('| engine | blobs | operation | in flight | MB/s | µs per blob |')
  console.log('| --- | --- | --- | --- | --- | --- |')
  for (const [engine, env] of [['native', {}], ['@mongodb-js/zstd', {CKPT_NATIVE: '0'}]]) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--engine', engine, '--dir', values.dir, '--mib', values.mib, '--rounds', values.rounds], {env: {...process.env, ...env}, encoding: 'utf8'})
    if (r.status !== 0) throw new Error(`${engine}: ${r.stderr}`)
    const lines = JSON.parse(r.stdout.trim().split('\n').pop())
    for (const l of lines) console.log(`| ${l.engine} | ${l.kind}${l.ratio ? ` (${l.ratio.toFixed(2)}x)` : ''} | ${l.op} | ${l.inFlight} | ${l.mbps.toFixed(0)} | ${l.usPerBlob.toFixed(0)} |`)
  }
}
