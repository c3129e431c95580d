#!/usr/bin/env node
// One deterministic change to a corpus made by corpus.mjs, modelled on what happens between two checkpoints.
//   interval: insert 100 bytes in the middle of one shard (streaming rewrite), overwrite 1 MiB in the middle of
//             another shard in place, add 3 SSTs and delete the 2 oldest, rewrite 50 small files.
//   insert:   insert 100 bytes in the middle of one shard, nothing else.
// Changed entries (and their directories) get mtime = newest mtime in the tree + 60 s, so the result depends
// only on the tree and the seed, and a changed file never keeps its old mtime.
//
//   node bench/mutate.mjs --dir DIR --step interval|insert [--seed N]
import {closeSync, fstatSync, openSync, readSync, renameSync, unlinkSync, writeSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import {writeFile, sstName, sstSize, smallSize} from './corpus.mjs'
import {ByteStream, MiB, Rng, SHAPES, smallContent, smallKindOf, sstContent} from './gen.mjs'
import {stamp, walk} from './tree.mjs'

const CHUNK = 8 * MiB

/** Rewrites `path` with `insert` spliced in at `at`, streaming through a temp file beside it, then renames. */
export function insertBytes(path, at, insert) {
  const tmp = join(dirname(path), `.mutate-${process.pid}.tmp`)
  const src = openSync(path, 'r')
  const dst = openSync(tmp, 'w', fstatSync(src).mode & 0o7777)
  const buf = Buffer.allocUnsafe(CHUNK)
  try {
    const size = fstatSync(src).size
    if (at === 0) writeSync(dst, insert)
    for (let pos = 0; pos < size;) {
      const want = pos < at ? Math.min(CHUNK, at - pos) : CHUNK
      const n = readSync(src, buf, 0, want, pos)
      if (n === 0) break
      writeSync(dst, buf, 0, n)
      pos += n
      if (pos === at) writeSync(dst, insert)
    }
  } finally {
    closeSync(src)
    closeSync(dst)
  }
  renameSync(tmp, path)
}

export function overwriteBytes(path, at, data) {
  const fd = openSync(path, 'r+')
  try {
    writeSync(fd, data, 0, data.length, at)
  } finally {
    closeSync(fd)
  }
}

export function mutate({dir, step, seed}) {
  const entries = walk(dir)
  const newest = Math.max(...entries.map((e) => Math.trunc(e.st.mtimeMs / 1000)))
  const mtime = newest + 60
  const rng = new Rng(seed, `mutate/${step}`)
  const bytes = new ByteStream(seed, `mutate/${step}`)
  const byRel = new Map(entries.map((e) => [e.rel, e]))
  const shards = entries.filter((e) => /^model\/shard-\d+-of-\d+\.bin$/.test(e.rel)).map((e) => e.rel)
  if (shards.length < 2) throw new Error(`${dir}: expected model/shard-*.bin files from corpus.mjs`)
  const changed = new Set()
  const touch = (rel) => {
    changed.add(rel)
    for (let d = dirname(rel); d !== '.'; d = dirname(d)) changed.add(d)
  }
  const log = []

  const a = rng.int(shards.length)
  const sizeA = byRel.get(shards[a]).st.size
  insertBytes(join(dir, shards[a]), Math.floor(sizeA / 2), bytes.next(100))
  touch(shards[a])
  log.push(`insert 100 B at ${Math.floor(sizeA / 2)} of ${shards[a]}`)

  if (step === 'interval') {
    const b = (a + 1 + rng.int(shards.length - 1)) % shards.length
    const sizeB = byRel.get(shards[b]).st.size
    const at = Math.max(0, Math.floor(sizeB / 2) - MiB / 2)
    overwriteBytes(join(dir, shards[b]), at, bytes.next(Math.min(MiB, sizeB)))
    touch(shards[b])
    log.push(`overwrite 1 MiB at ${at} of ${shards[b]}`)

    const ssts = entries.filter((e) => /^db\/\d{6}\.sst$/.test(e.rel))
    const numbers = ssts.map((e) => Number(e.rel.slice(3, 9))).sort((x, y) => x - y)
    const base = Math.round(ssts.reduce((sum, e) => sum + e.st.size, 0) / Math.max(1, ssts.length)) ||
      SHAPES.small.sstBytes
    let next = numbers.length ? numbers[numbers.length - 1] : 100
    for (let i = 0; i < 3; i++) {
      next += rng.range(1, 7)
      const rel = `db/${sstName(next)}`
      writeFile(join(dir, rel), sstContent(seed, `${rel}@${step}`, sstSize(rng, base)))
      touch(rel)
    }
    for (const n of numbers.slice(0, 2)) {
      unlinkSync(join(dir, 'db', sstName(n)))
      touch(`db/${sstName(n)}`)
    }
    log.push(`add 3 SSTs up to ${sstName(next)}, delete ${numbers.slice(0, 2).map(sstName).join(' ')}`)

    const small = entries.filter((e) => e.st.isFile() && e.rel.startsWith('state/')).map((e) => e.rel)
    const picked = new Set()
    while (picked.size < Math.min(50, small.length)) picked.add(small[rng.int(small.length)])
    for (const rel of [...picked].sort()) {
      writeFile(join(dir, rel), smallContent(seed, `${rel}@${step}/${mtime}`, smallKindOf(rel), smallSize(rng)))
      touch(rel)
    }
    log.push(`rewrite ${picked.size} small files`)
  } else if (step !== 'insert') {
    throw new Error(`unknown --step ${step}; use interval or insert`)
  }

  // Deleted paths are gone; stamp what still exists, directories after their contents.
  const now = walk(dir).filter((e) => changed.has(e.rel))
  stamp(now, mtime)
  return log
}

function main() {
  const {values} = parseArgs({options: {
    dir: {type: 'string'},
    step: {type: 'string'},
    seed: {type: 'string', default: '1'},
  }})
  if (!values.dir || !values.step) throw new Error('usage: node bench/mutate.mjs --dir DIR --step interval|insert [--seed N]')
  const log = mutate({dir: resolve(values.dir), step: values.step, seed: Number(values.seed)})
  console.log(`mutate ${values.step} seed=${values.seed}: ${log.join('; ')}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main()
  } catch (err) {
    console.error(`mutate: ${err.message}`)
    process.exitCode = 1
  }
}
