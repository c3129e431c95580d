// Seeded data for the benchmark corpus: a small PRNG for decisions and AES-128-CTR over zeros for bulk bytes.
// Every generator is keyed by (seed, label), so a file's bytes depend only on the seed and its own label,
// never on the order in which files are written.
import {createCipheriv, createHash} from 'node:crypto'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

// Every entry in a fresh corpus gets this mtime (2024-01-01T00:00:00Z), so the tree is byte- and stat-identical.
export const BASE_MTIME = Date.UTC(2024, 0, 1) / 1000

// Shapes share proportions: incompressible shards dominate, SSTs are a quarter, small files are many but light.
export const SHAPES = {
  small: {shards: 4, shardBytes: 10 * MiB, ssts: 8, sstBytes: 2 * MiB, smallFiles: 800, bigFileBytes: 0},
  default: {shards: 4, shardBytes: 256 * MiB, ssts: 24, sstBytes: 16 * MiB, smallFiles: 3000, bigFileBytes: 0},
  large: {shards: 4, shardBytes: 256 * MiB, ssts: 24, sstBytes: 16 * MiB, smallFiles: 100_000, bigFileBytes: 4 * GiB},
}

const digest = (label) => createHash('sha256').update(`ckpt-bench/${label}`).digest()

// xoshiro128**: tiny, fast, good enough for choosing sizes and names.
export class Rng {
  constructor(seed, label) {
    const h = digest(`rng/${seed}/${label}`)
    this.s = new Uint32Array([h.readUInt32LE(0), h.readUInt32LE(4), h.readUInt32LE(8), h.readUInt32LE(12)])
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1
  }

  u32() {
    const s = this.s
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0
    const t = s[1] << 9
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 11)
    return r
  }

  /** Integer in [0, n). */
  int(n) {
    return Math.floor(this.float() * n)
  }

  /** Integer in [lo, hi], both inclusive. */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1)
  }

  float() {
    return this.u32() / 4294967296
  }

  pick(list) {
    return list[this.int(list.length)]
  }
}

const rotl = (x, k) => (x << k) | (x >>> (32 - k))

const ZERO = Buffer.alloc(8 * MiB)

// Incompressible bytes at >1 GB/s: AES-128-CTR keystream keyed by (seed, label).
export class ByteStream {
  constructor(seed, label) {
    this.cipher = createCipheriv('aes-128-ctr', digest(`bytes/${seed}/${label}`).subarray(0, 16), Buffer.alloc(16))
  }

  /** n fresh bytes; n at most 8 MiB per call. */
  next(n) {
    if (n > ZERO.length) throw new RangeError(`ByteStream.next: ${n} > ${ZERO.length}`)
    return this.cipher.update(ZERO.subarray(0, n))
  }
}

/** Writes `size` seeded random bytes to an open fd through `write(buf)`. */
export function writeRandom(write, seed, label, size) {
  const bytes = new ByteStream(seed, label)
  for (let left = size; left > 0;) {
    const n = Math.min(left, ZERO.length)
    write(bytes.next(n))
    left -= n
  }
}

const pad = (n, width) => String(n).padStart(width, '0')

// SST-like content: sorted keys in runs sharing a row prefix, a LevelDB-like 8-byte sequence trailer, values
// that are part random bytes and part repetitive text. Tuned to compress about 2.5x with zstd -3.
const TABLES = ['orders', 'users', 'sessions', 'events', 'metrics', 'inventory']
const FRAGMENTS = [
  '{"status":"ok","region":"eu-west-1","tier":"gold"}',
  '{"status":"pending","region":"us-east-2","retries":0}',
  'application/json;charset=utf-8',
  '{"kind":"event","source":"worker","level":"info"}',
  'tombstone',
  '{"currency":"EUR","amount":',
  '"tags":["alpha","beta","gamma"]',
  'user-agent=Mozilla/5.0 (X11; Linux x86_64)',
].map((s) => Buffer.from(s, 'latin1'))

export function sstContent(seed, label, size) {
  const rng = new Rng(seed, `sst/${label}`)
  const bytes = new ByteStream(seed, `sst/${label}`)
  const random = bytes.next(Math.min(size, 8 * MiB))
  let rp = 0
  const out = Buffer.alloc(size)
  const table = rng.pick(TABLES)
  let row = rng.range(0, 1e9)
  let seq = rng.range(0, 1e6)
  let pos = 0
  // Fixed block header, as a real SST has magic and properties at known places.
  pos += out.write(`SSTv1 ${label} table=${table}\n`, pos, 'latin1')
  while (pos < size) {
    row += rng.range(1, 40)
    const columns = rng.range(1, 6)
    for (let c = 0; c < columns && pos < size; c++) {
      const key = `${table}/${pad(row, 12)}/c${pad(c, 2)}`
      const valueRandom = rng.range(12, 36)
      const fragment = rng.pick(FRAGMENTS)
      const head = Buffer.allocUnsafe(4 + key.length)
      head.writeUInt16LE(key.length, 0)
      head.writeUInt16LE(valueRandom + fragment.length, 2)
      head.write(key, 4, 'latin1')
      pos += head.copy(out, pos)
      if (pos + 8 <= size) {
        out.writeUInt32LE(seq++ & 0xffffffff, pos)
        out.writeUInt32LE(0x01000000, pos + 4)
        pos += 8
      }
      if (rp + valueRandom > random.length) rp = 0
      pos += random.copy(out, pos, rp, rp + valueRandom)
      rp += valueRandom
      pos += fragment.copy(out, pos)
    }
  }
  return out
}

// Small state files: JSON-ish metadata, offset tables and logs; semi-compressible text.
const WORDS = ['checkpoint', 'flush', 'gradient', 'allreduce', 'barrier', 'shard', 'tensor', 'optimizer', 'epoch',
  'warmup', 'scheduler', 'loader', 'prefetch', 'compaction', 'memtable', 'snapshot', 'replica', 'leader', 'commit']
const LAYERS = ['attn.q_proj', 'attn.k_proj', 'attn.v_proj', 'attn.o_proj', 'mlp.up', 'mlp.down', 'norm1', 'norm2']

export const SMALL_KINDS = ['json', 'idx', 'log']

export function smallContent(seed, label, kind, size) {
  const rng = new Rng(seed, `small/${label}`)
  const hex = new ByteStream(seed, `small/${label}`)
  const lines = []
  let length = 0
  const push = (line) => {
    lines.push(line)
    length += line.length
  }
  const time = () => new Date((BASE_MTIME + rng.int(86400)) * 1000 + rng.int(1000)).toISOString()
  if (kind === 'json') {
    push(`{\n  "step": ${rng.int(1e6)},\n  "rank": ${rng.int(64)},\n  "time": "${time()}",\n`)
    push(`  "loss": ${(rng.float() * 4).toFixed(7)},\n  "lr": ${(rng.float() / 1000).toExponential(6)},\n`)
    push(`  "rng_state": "${hex.next(32).toString('hex')}",\n  "tensors": [\n`)
    let offset = 0
    while (length < size) {
      const n = rng.range(1, 32) * 1024
      push(`    {"name": "layers.${rng.int(48)}.${rng.pick(LAYERS)}.weight", "offset": ${offset}, ` +
        `"length": ${n}, "dtype": "bf16", "crc32": "${hex.next(4).toString('hex')}"},\n`)
      offset += n
    }
    push('  ]\n}\n')
  } else if (kind === 'idx') {
    let offset = rng.int(1e9)
    let ts = BASE_MTIME * 1000 + rng.int(1e6)
    const topic = `topic-${pad(rng.int(100), 2)}`
    while (length < size) {
      offset += rng.range(1, 5000)
      ts += rng.range(0, 2000)
      push(`${topic} partition=${pad(rng.int(32), 2)} offset=${pad(offset, 15)} ts=${ts}\n`)
    }
  } else {
    while (length < size) {
      const words = Array.from({length: rng.range(2, 7)}, () => rng.pick(WORDS)).join(' ')
      push(`${time()} ${rng.pick(['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN'])} [rank ${rng.int(64)}] ` +
        `step=${rng.int(1e6)} loss=${(rng.float() * 4).toFixed(4)} tok/s=${rng.int(50000)} ${words}\n`)
    }
  }
  return Buffer.from(lines.join(''), 'latin1').subarray(0, size)
}

export const smallKindOf = (path) => (path.endsWith('.json') ? 'json' : path.endsWith('.idx') ? 'idx' : 'log')
