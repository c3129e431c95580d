#!/usr/bin/env node
// Chooses the FastCDC defaults by measurement: for each average chunk size, on seeded data,
//  - throughput of chunking + BLAKE3 on one core (MB/s),
//  - chunks per GiB, and what the index costs for them (46 bytes an index-file entry, ~80 bytes in memory),
//  - bytes stored after inserting 100 bytes in the middle of a 256 MiB file: the new chunks plus the
//    file's new chunk list (67 bytes of tree JSON per chunk id),
//  - the same after overwriting 1 MiB in place.
// Usage: node bench/chunk-params.mjs [--mib 256]   (needs `npm run build`)
import {createCipheriv} from 'node:crypto'

const {Chunker} = await import('../dist/core/chunker.js')
const {blake3} = await import('../dist/core/hash.js')

const mib = Number(process.argv[process.argv.indexOf('--mib') + 1] || 256) || 256
const size = mib * 1024 * 1024

function seeded(length, seed) {
  const key = Buffer.alloc(16)
  key.writeUInt32LE(seed)
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(length))
}

function chunkIds(params, data) {
  const chunker = new Chunker(params)
  const ids = []
  const sizes = []
  let start = 0
  for (let cut = chunker.next(data, 0); cut >= 0; cut = chunker.next(data, cut)) {
    ids.push(blake3(data.subarray(start, cut)).toString('hex'))
    sizes.push(cut - start)
    start = cut
  }
  if (start < data.length) {
    ids.push(blake3(data.subarray(start)).toString('hex'))
    sizes.push(data.length - start)
  }
  return {ids, sizes}
}

function newBytes(before, after) {
  const known = new Set(before.ids)
  let bytes = 0
  after.ids.forEach((id, i) => {
    if (!known.has(id)) bytes += after.sizes[i]
  })
  return bytes + after.ids.length * 67
}

const base = seeded(size, 1)
const inserted = Buffer.concat([base.subarray(0, size / 2), seeded(100, 2), base.subarray(size / 2)])
const overwritten = Buffer.from(base)
seeded(1024 * 1024, 3).copy(overwritten, size / 3)

const rows = []
for (const avg of [32, 64, 128, 256, 512, 1024].map((k) => k * 1024)) {
  const params = {minSize: avg / 4, avgSize: avg, maxSize: avg * 4, normalization: 2, seed: 0x636b7074}
  const t = process.hrtime.bigint()
  const before = chunkIds(params, base)
  const seconds = Number(process.hrtime.bigint() - t) / 1e9
  const chunksPerGiB = (before.ids.length * 1024) / mib
  rows.push({
    avg: `${avg / 1024} KiB`,
    mbPerS: Math.round(size / 1e6 / seconds),
    chunksPerGiB: Math.round(chunksPerGiB),
    indexMiBPerTiB: ((chunksPerGiB * 1024 * 46) / 1048576).toFixed(1),
    memMiBPerTiB: ((chunksPerGiB * 1024 * 80) / 1048576).toFixed(0),
    insertKiB: (newBytes(before, chunkIds(params, inserted)) / 1024).toFixed(0),
    overwriteKiB: (newBytes(before, chunkIds(params, overwritten)) / 1024).toFixed(0),
  })
}
console.log(`${mib} MiB of random data, one core, node ${process.version}`)
console.log('| avg chunk | chunk+hash MB/s | chunks per GiB | index file MiB per TiB | index memory MiB per TiB | stored after 100 B insert (KiB) | stored after 1 MiB overwrite (KiB) |')
console.log('| --- | --- | --- | --- | --- | --- | --- |')
for (const r of rows) console.log(`| ${r.avg} | ${r.mbPerS} | ${r.chunksPerGiB} | ${r.indexMiBPerTiB} | ${r.memMiBPerTiB} | ${r.insertKiB} | ${r.overwriteKiB} |`)
