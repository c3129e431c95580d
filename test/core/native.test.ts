// The native addon's BLAKE3 and FastCDC scan against their references: blake3-wasm (the
// published implementation) and the JavaScript scan in chunker.ts. Every SIMD path this CPU has
// is checked, each in a child process (the path is chosen once per process, capped by CKPT_SIMD).
import {execFileSync} from 'node:child_process'
import {createRequire} from 'node:module'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {Chunker, DEFAULT_CHUNKER, type ChunkerParams} from '../../src/core/chunker.js'
import {nativeAddon} from '../../src/core/native.js'
import {ROOT} from '../helpers/cli.js'
import {seededBytes, seededRandom} from '../helpers/tree.js'

const require = createRequire(import.meta.url)
const wasm = require('blake3-wasm/dist/wasm/nodejs/blake3_js.js') as {hash(data: Uint8Array, out: Uint8Array): void}
const ADDON = path.join(ROOT, 'build', 'Release', 'ckpt_native.node')

function wasmHex(data: Uint8Array): string {
  const out = Buffer.alloc(32)
  wasm.hash(data, out)
  return out.toString('hex')
}

const addon = nativeAddon()
function native() {
  if (!addon) throw new Error('the native addon is not built (npm ci builds it)')
  return addon
}

// Lengths at every edge of the tree: blocks (64 B), chunks (1 KiB), the 8-wide batches and the
// aligned subtrees of 8..64 chunks that the SIMD path takes, and the lazy merges between them.
const EDGE_LENGTHS = [...new Set([
  0, 1, 63, 64, 65, 127, 128, 129,
  ...[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 72, 127, 128, 129, 200, 256, 257].flatMap((k) => [k * 1024 - 1, k * 1024, k * 1024 + 1]),
  128 * 1024 + 4321, 512 * 1024 + 3, 3 * 1024 * 1024 + 77,
])].filter((n) => n >= 0)

describe('native BLAKE3', () => {
  it('is built by npm ci and runs the fastest path this CPU has', () => {
    expect(addon).not.toBeNull()
    expect(['avx512', 'avx2', 'portable']).toContain(native().blake3Implementation)
  })

  it('equals blake3-wasm at every tree edge and on 200 seeded random lengths', () => {
    const data = seededBytes(3 * 1024 * 1024 + 77, 11)
    const rand = seededRandom(5)
    const lengths = [...EDGE_LENGTHS, ...Array.from({length: 200}, () => Math.floor(rand() * 700_000))]
    const out = Buffer.alloc(32)
    for (const n of lengths) {
      const view = data.subarray(0, n)
      native().blake3(view, out)
      expect(`${n}:${out.toString('hex')}`).toBe(`${n}:${wasmHex(view)}`)
    }
    native().blake3(Buffer.alloc(0), out)
    expect(out.toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')
  })

  it('runs the portable, AVX2 and AVX-512 paths to the same digests', () => {
    const lengths = [...EDGE_LENGTHS, 1_000_003]
    const script = `
      const n = require(${JSON.stringify(ADDON)})
      const {createHash} = require('node:crypto')
      let x = 7, data = Buffer.alloc(${Math.max(...lengths)})
      for (let i = 0; i < data.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; data[i] = x & 255 }
      const out = Buffer.alloc(32), all = []
      for (const len of ${JSON.stringify(lengths)}) { n.blake3(data.subarray(0, len), out); all.push(out.toString('hex')) }
      console.log(JSON.stringify({impl: n.blake3Implementation, data: createHash('sha256').update(data).digest('hex'), all}))`
    let x = 7
    const data = Buffer.alloc(Math.max(...lengths))
    for (let i = 0; i < data.length; i++) {
      x ^= x << 13
      x ^= x >>> 17
      x ^= x << 5
      data[i] = x & 255
    }
    const expected = lengths.map((len) => wasmHex(data.subarray(0, len)))
    const seen = new Set<string>()
    for (const cap of ['portable', 'avx2', '']) {
      const got = JSON.parse(execFileSync(process.execPath, ['-e', script], {env: {...process.env, CKPT_SIMD: cap}}).toString()) as {impl: string; all: string[]}
      seen.add(got.impl)
      expect(got.all, `${got.impl} path`).toEqual(expected)
    }
    expect(seen.has('portable')).toBe(true)
  })

  it('hashMany hashes a batch off the main thread, in order, over ordinary and shared memory', async () => {
    const plain = seededBytes(2 * 1024 * 1024, 3)
    const shared = Buffer.from(new SharedArrayBuffer(300_000))
    seededBytes(shared.length, 4).copy(shared)
    const views = [plain.subarray(0, 0), plain.subarray(5, 70_000), shared, plain, shared.subarray(1, 2), plain.subarray(1024 * 1024)]
    const out = new Uint8Array(32 * views.length)
    await native().hashMany(views, out)
    views.forEach((v, i) => expect(Buffer.from(out.subarray(32 * i, 32 * i + 32)).toString('hex')).toBe(wasmHex(v)))
    // Many batches at once keep their results apart.
    const outs = Array.from({length: 24}, () => new Uint8Array(64))
    await Promise.all(outs.map((o, i) => native().hashMany([plain.subarray(i, i + 100_000), plain.subarray(i * 1000)], o)))
    outs.forEach((o, i) => {
      expect(Buffer.from(o.subarray(0, 32)).toString('hex')).toBe(wasmHex(plain.subarray(i, i + 100_000)))
      expect(Buffer.from(o.subarray(32)).toString('hex')).toBe(wasmHex(plain.subarray(i * 1000)))
    })
    await native().hashMany([], new Uint8Array(0))
  })

  it('refuses wrong arguments with an error instead of reading or writing out of bounds', () => {
    const out = new Uint8Array(32)
    expect(() => native().blake3('text' as unknown as Uint8Array, out)).toThrow(TypeError)
    expect(() => native().blake3(Buffer.from('x'), new Uint8Array(31))).toThrow(RangeError)
    expect(() => native().hashMany('x' as unknown as Uint8Array[], out)).toThrow(TypeError)
    expect(() => native().hashMany([Buffer.from('a'), Buffer.from('b')], out)).toThrow(RangeError)
    expect(() => native().hashMany([Buffer.from('a'), 7 as unknown as Uint8Array], new Uint8Array(64))).toThrow(TypeError)
    const gear = new Int32Array(256)
    expect(() => native().gearNext(Buffer.alloc(10), 11, gear, new Uint32Array(5), new Uint32Array(2))).toThrow(RangeError)
    expect(() => native().gearNext(Buffer.alloc(10), 0, new Int32Array(255), new Uint32Array(5), new Uint32Array(2))).toThrow(RangeError)
  })
})

describe('native FastCDC scan', () => {
  const paramSets: ChunkerParams[] = [
    DEFAULT_CHUNKER,
    {minSize: 64, avgSize: 256, maxSize: 1024, normalization: 2, seed: 1},
    {minSize: 2048, avgSize: 8192, maxSize: 65536, normalization: 0, seed: 0xffffffff},
    {minSize: 4000, avgSize: 16384, maxSize: 20000, normalization: 4, seed: 12345},
  ]

  function cuts(c: Chunker, data: Buffer, split: () => number): number[] {
    const out: number[] = []
    for (let off = 0; off < data.length; ) {
      const buf = data.subarray(off, Math.min(data.length, off + split()))
      for (let from = 0; ; ) {
        const cut = c.next(buf, from)
        if (cut < 0) break
        out.push(off + cut)
        from = cut
      }
      off += buf.length
    }
    return out
  }

  it('cuts exactly where the JavaScript reference cuts, for several parameter sets and splits', () => {
    expect(addon).not.toBeNull()
    const data = seededBytes(6 * 1024 * 1024 + 5, 21)
    // Long runs of one byte never cut on content: only max-size cuts.
    data.fill(0, 1024 * 1024, 3 * 1024 * 1024)
    for (const params of paramSets) {
      const rand = seededRandom(params.seed + 1)
      const reference = cuts(new Chunker(params, 'js'), data, () => 1 << 20)
      expect(reference.length).toBeGreaterThan(10)
      for (const split of [() => 1 << 20, () => 1 + Math.floor(rand() * 70_000), () => 2_500_000]) {
        expect(cuts(new Chunker(params, 'native'), data, split)).toEqual(reference)
      }
    }
  })
})
