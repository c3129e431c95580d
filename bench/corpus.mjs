#!/usr/bin/env node
// Deterministic corpus modelled on a process state directory:
//   model/shard-0000i-of-0000n.bin   incompressible checkpoint shards (+ model/optimizer-state.bin in `large`)
//   db/NNNNNN.sst                     SST-like files, about 2.5x with zstd -3
//   db/MANIFEST-000001, db/CURRENT -> MANIFEST-000001, db/LOG, db/OPTIONS-000005
//   state/rank-RR/step-SSSSSS/*.json|*.idx|*.log   many small semi-compressible files
//   tmp/                              an empty directory
// Same --size and --seed give a byte-identical tree, modes and mtimes included.
//
//   node bench/corpus.mjs --size small|default|large --out DIR [--seed N] [--force]
import {chmodSync, closeSync, mkdirSync, openSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync,
  writeSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {parseArgs} from 'node:util'
import {BASE_MTIME, Rng, SHAPES, SMALL_KINDS, smallContent, sstContent, writeRandom} from './gen.mjs'
import {stamp, treeStats, walk} from './tree.mjs'

const pad = (n, width) => String(n).padStart(width, '0')

/** Writes a seeded file of `size` random bytes without holding it in memory. */
export function writeRandomFile(path, seed, label, size) {
  mkdirSync(dirname(path), {recursive: true})
  const fd = openSync(path, 'w')
  try {
    writeRandom((buf) => writeSync(fd, buf), seed, label, size)
  } finally {
    closeSync(fd)
  }
}

export function writeFile(path, data) {
  mkdirSync(dirname(path), {recursive: true})
  writeFileSync(path, data)
}

export const sstName = (n) => `${pad(n, 6)}.sst`

/** Size of an SST-like file: the shape's size give or take an eighth. */
export const sstSize = (rng, base) => base - (base >> 3) + rng.int(base >> 2)

export const smallSize = (rng) => rng.range(1024, 16 * 1024)

/** Fixes permission bits and mtimes on every entry, so the tree's metadata is as deterministic as its bytes. */
export function normalize(root, mtime, entries = walk(root)) {
  for (const e of entries) {
    if (e.st.isDirectory()) chmodSync(e.path, 0o755)
    else if (e.st.isFile()) chmodSync(e.path, 0o644)
  }
  stamp(entries, mtime)
  chmodSync(root, 0o755)
  utimesSync(root, mtime, mtime)
}

export function generate({size, out, seed}) {
  const shape = SHAPES[size]
  if (!shape) throw new Error(`unknown --size ${size}; use small, default or large`)
  const rng = new Rng(seed, 'layout')
  mkdirSync(out, {recursive: true})

  for (let i = 0; i < shape.shards; i++) {
    const name = `model/shard-${pad(i, 5)}-of-${pad(shape.shards, 5)}.bin`
    writeRandomFile(join(out, name), seed, name, shape.shardBytes)
  }
  if (shape.bigFileBytes) writeRandomFile(join(out, 'model/optimizer-state.bin'), seed, 'optimizer', shape.bigFileBytes)
  writeFile(join(out, 'model/config.json'), smallContent(seed, 'model/config.json', 'json', 2048))

  let number = 100
  for (let i = 0; i < shape.ssts; i++) {
    number += rng.range(1, 7)
    const name = `db/${sstName(number)}`
    writeFile(join(out, name), sstContent(seed, name, sstSize(rng, shape.sstBytes)))
  }
  writeFile(join(out, 'db/MANIFEST-000001'), sstContent(seed, 'db/MANIFEST-000001', 4096))
  writeFile(join(out, 'db/LOG'), smallContent(seed, 'db/LOG', 'log', 8192))
  writeFile(join(out, 'db/OPTIONS-000005'), smallContent(seed, 'db/OPTIONS-000005', 'log', 3000))
  symlinkSync('MANIFEST-000001', join(out, 'db/CURRENT'))

  const ranks = 8
  const perDir = 12
  for (let i = 0; i < shape.smallFiles; i++) {
    const rank = i % ranks
    const step = Math.floor(i / (ranks * perDir))
    const kind = rng.pick(SMALL_KINDS)
    const name = `state/rank-${pad(rank, 2)}/step-${pad((step + 1) * 100, 7)}/${kind}-${pad(i, 6)}.${kind}`
    writeFile(join(out, name), smallContent(seed, name, kind, smallSize(rng)))
  }
  mkdirSync(join(out, 'tmp'), {recursive: true})
  normalize(out, BASE_MTIME)
}

function main() {
  const {values} = parseArgs({options: {
    size: {type: 'string', default: 'default'},
    out: {type: 'string'},
    seed: {type: 'string', default: '1'},
    force: {type: 'boolean', default: false},
  }})
  if (!values.out) throw new Error('usage: node bench/corpus.mjs --size small|default|large --out DIR [--seed N] [--force]')
  const out = resolve(values.out)
  let existing = []
  try {
    existing = readdirSync(out)
  } catch {
    // does not exist yet
  }
  if (existing.length > 0) {
    if (!values.force) throw new Error(`${out} is not empty; pass --force to replace it`)
    rmSync(out, {recursive: true, force: true})
  }
  const started = process.hrtime.bigint()
  generate({size: values.size, out, seed: Number(values.seed)})
  const s = treeStats(out)
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  console.log(`corpus size=${values.size} seed=${values.seed} files=${s.files} dirs=${s.dirs} symlinks=${s.symlinks} ` +
    `bytes=${s.bytes} (${(s.bytes / 2 ** 20).toFixed(1)} MiB) in ${seconds.toFixed(1)} s -> ${out}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main()
  } catch (err) {
    console.error(`corpus: ${err.message}`)
    process.exitCode = 1
  }
}
