import {execFileSync} from 'node:child_process'
import {describe, expect, test} from 'vitest'
import {blake3, blake3Wasm, ID_BYTES} from '../../src/core/hash.js'
import {seededBytes} from '../helpers/tree.js'

const MiB = 1024 * 1024

// The official vectors: BLAKE3-team/BLAKE3 test_vectors/test_vectors.json, the first 32 bytes of
// each "hash" (input: bytes i % 251). Also checked against b3sum when this table was written.
const VECTORS: [number, string][] = [
  [0, 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'],
  [1, '2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213'],
  [1023, '10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11'],
  [1024, '42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7'],
  [1025, 'd00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444'],
  [2048, 'e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a'],
  [2049, '5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030'],
  [3072, 'b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2'],
  [3073, '7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3'],
  [4096, '015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969'],
  [4097, '9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995'],
  [5120, '9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833'],
  [5121, '628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff'],
  [6144, '3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205'],
  [6145, 'f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f'],
  [7168, '61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a'],
  [7169, 'a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817'],
  [8192, 'aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63'],
  [8193, 'bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b'],
  [16384, 'f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4'],
  [31744, '62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47'],
  [102400, 'bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085'],
]

function vectorInput(length: number): Buffer {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = i % 251
  return b
}

function b3sum(data: Uint8Array): string {
  return execFileSync('b3sum', ['--no-names'], {input: data, maxBuffer: 1024, encoding: 'utf8'}).trim()
}

// Every test runs on both implementations: the native one blake3() uses when the addon is built,
// and the blake3-wasm fallback (one call up to 1 MiB, the incremental hasher in 1 MiB pieces above).
describe.each([
  ['blake3', blake3],
  ['blake3Wasm', blake3Wasm],
] as const)('%s', (_name, hash) => {
  test('the empty input', () => {
    expect(hash(new Uint8Array(0)).toString('hex')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262')
  })

  test.each(VECTORS)('official vector, %i bytes', (length, expected) => {
    const oneShot = hash(vectorInput(length))
    expect(Buffer.isBuffer(oneShot)).toBe(true)
    expect(oneShot.length).toBe(ID_BYTES)
    expect(oneShot.toString('hex')).toBe(expected)
  })

  test('hashes the view it is given, not the whole underlying buffer', () => {
    const backing = vectorInput(2000)
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 977, 1023)
    // Bytes 977.. of the i % 251 sequence are the vector input shifted by 977 % 251 = 224.
    const expected = Buffer.alloc(1023)
    for (let i = 0; i < 1023; i++) expected[i] = (i + 977) % 251
    expect(hash(view).equals(hash(expected))).toBe(true)
    expect(hash(view).toString('hex')).not.toBe(VECTORS[2]![1])
    expect(hash(new Uint8Array(vectorInput(1023))).toString('hex')).toBe(VECTORS[2]![1])
  })

  test('13 MiB + 7 bytes and 40 MiB match b3sum', () => {
    for (const [size, seed] of [[13 * MiB + 7, 42], [40 * MiB, 3]] as const) {
      const data = seededBytes(size, seed)
      const expected = b3sum(data)
      expect(expected).toMatch(/^[0-9a-f]{64}$/)
      expect(hash(data).toString('hex')).toBe(expected)
    }
  })

  test('around the 1 MiB piece boundary matches b3sum', () => {
    const data = seededBytes(MiB + 1, 8)
    for (const n of [MiB - 1, MiB, MiB + 1]) {
      const slice = data.subarray(0, n)
      expect(hash(slice).toString('hex')).toBe(b3sum(slice))
    }
  })
})
