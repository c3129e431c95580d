// BLAKE3-256 through the native addon (src/native/blake3.c: eight compressions at once with
// AVX2, 3-4x blake3-wasm here, no copy of the input). Without the addon, through blake3-wasm
// 2.1.5's wasm-bindgen module, called directly: the package's Node wrapper builds a
// stream.Transform per hash, which costs more than hashing a small chunk. Either is loaded on
// first use so commands that never hash start faster.
import {createRequire} from 'node:module'

import {nativeAddon} from './native.js'

interface WasmHasher {
  update(data: Uint8Array): void
  digest(out: Uint8Array): void
  free(): void
}
interface Blake3Wasm {
  hash(data: Uint8Array, out: Uint8Array): void
  create_hasher(): WasmHasher
}

let wasm: Blake3Wasm | undefined
function load(): Blake3Wasm {
  if (!wasm) {
    const require = createRequire(import.meta.url)
    wasm = require('blake3-wasm/dist/wasm/nodejs/blake3_js.js') as Blake3Wasm
  }
  return wasm
}

export const ID_BYTES = 32

// Digests are carved from slabs that hold nothing but digests. Buffer.allocUnsafe(32) would take
// them from Node's shared 8 KiB pool, where one digest kept alive (in an index entry, a chunk list)
// pins a whole slab of unrelated file data: ~600 bytes per file in a 100k-file snapshot.
const SLAB_BYTES = 64 * 1024
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let slabUsed = 0

function newDigest(): Buffer {
  if (slabUsed + ID_BYTES > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
    slabUsed = 0
  }
  const out = slab.subarray(slabUsed, slabUsed + ID_BYTES)
  slabUsed += ID_BYTES
  return out
}

// The wasm module copies its input into linear memory; pieces this size keep that copy
// (and the module's memory growth) bounded whatever the caller passes.
const PIECE = 1 << 20

/** A copy of a 32-byte id, stored like a fresh digest (see newDigest). */
export function digestFromBytes(bytes: Uint8Array): Buffer {
  const out = newDigest()
  out.set(bytes)
  return out
}

/** An id parsed from 64 hex digits, stored like a fresh digest (see newDigest). */
export function digestFromHex(hex: string): Buffer {
  const out = newDigest()
  out.write(hex, 'hex')
  return out
}

/** BLAKE3-256 of `data`. */
export function blake3(data: Uint8Array): Buffer {
  const addon = nativeAddon()
  if (!addon) return blake3Wasm(data)
  const out = newDigest()
  addon.blake3(data, out)
  return out
}

/** BLAKE3-256 through blake3-wasm: the fallback without the addon (exported for its tests). */
export function blake3Wasm(data: Uint8Array): Buffer {
  const out = newDigest()
  const wasm = load()
  if (data.length <= PIECE) {
    wasm.hash(data, out)
    return out
  }
  const h = wasm.create_hasher()
  for (let off = 0; off < data.length; off += PIECE) h.update(data.subarray(off, Math.min(off + PIECE, data.length)))
  h.digest(out)
  h.free()
  return out
}

/** Which BLAKE3 implementation runs here: 'avx512', 'avx2', 'portable' (native) or 'wasm'. */
export function blake3Implementation(): string {
  return nativeAddon()?.blake3Implementation ?? 'wasm'
}
