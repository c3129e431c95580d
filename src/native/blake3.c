// BLAKE3-256, written for ckpt from the specification.
//
// Why native: blake3-wasm copies every input into wasm memory and runs one compression at a time
// (about 750 MB/s per core here). A chunk of ours is 128 KiB on average, that is 128 BLAKE3
// chunks, so eight of them can be compressed side by side in the eight 32-bit lanes of AVX2
// registers ("hash many"); the parent nodes above them are compressed eight at a time too.
//
// Tree shape (specification section 2.1): the input is cut into 1 KiB chunks; a node's left
// subtree holds the largest power-of-two number of chunks that leaves at least one byte to the
// right. The incremental hasher keeps a stack of complete-subtree chaining values and merges
// lazily, so the final chunk is still open when finalize() puts the ROOT flag on the last node.
// Whole subtrees of 8 to 64 chunks, aligned to their size, are hashed in one go when more input
// follows them; that never changes the tree, only how fast its nodes are computed.

#include "blake3.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B3_X86 1
#include <immintrin.h>
#endif

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8 };

static const uint32_t IV[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                               0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

// Message word order of each of the seven rounds: round r applies the specification's
// permutation r times to 0..15.
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t load32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void store32(uint8_t* p, uint32_t w) {
  p[0] = (uint8_t)w;
  p[1] = (uint8_t)(w >> 8);
  p[2] = (uint8_t)(w >> 16);
  p[3] = (uint8_t)(w >> 24);
}

static inline uint32_t rotr32(uint32_t w, unsigned c) { return (w >> c) | (w << (32 - c)); }

// ---- portable compression ----

#define G(a, b, c, d, x, y)          \
  s[a] = s[a] + s[b] + (x);          \
  s[d] = rotr32(s[d] ^ s[a], 16);    \
  s[c] = s[c] + s[d];                \
  s[b] = rotr32(s[b] ^ s[c], 12);    \
  s[a] = s[a] + s[b] + (y);          \
  s[d] = rotr32(s[d] ^ s[a], 8);     \
  s[c] = s[c] + s[d];                \
  s[b] = rotr32(s[b] ^ s[c], 7)

// The 16-word state after the seven rounds.
static void compress_words(uint32_t s[16], const uint32_t cv[8], const uint32_t m[16],
                           uint32_t block_len, uint64_t counter, uint32_t flags) {
  memcpy(s, cv, 8 * sizeof(uint32_t));
  s[8] = IV[0];
  s[9] = IV[1];
  s[10] = IV[2];
  s[11] = IV[3];
  s[12] = (uint32_t)counter;
  s[13] = (uint32_t)(counter >> 32);
  s[14] = block_len;
  s[15] = flags;
#pragma GCC unroll 7
  for (int r = 0; r < 7; r++) {
    const uint8_t* o = SCHEDULE[r];
    G(0, 4, 8, 12, m[o[0]], m[o[1]]);
    G(1, 5, 9, 13, m[o[2]], m[o[3]]);
    G(2, 6, 10, 14, m[o[4]], m[o[5]]);
    G(3, 7, 11, 15, m[o[6]], m[o[7]]);
    G(0, 5, 10, 15, m[o[8]], m[o[9]]);
    G(1, 6, 11, 12, m[o[10]], m[o[11]]);
    G(2, 7, 8, 13, m[o[12]], m[o[13]]);
    G(3, 4, 9, 14, m[o[14]], m[o[15]]);
  }
}

static void compress_block(uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN], uint32_t block_len,
                           uint64_t counter, uint32_t flags) {
  uint32_t m[16], s[16];
  for (int i = 0; i < 16; i++) m[i] = load32(block + 4 * i);
  compress_words(s, cv, m, block_len, counter, flags);
  for (int i = 0; i < 8; i++) cv[i] = s[i] ^ s[i + 8];
}

// A parent node: the chaining values of its two children are the message block.
static void parent_cv(const uint32_t left[8], const uint32_t right[8], uint32_t out[8]) {
  uint32_t m[16], s[16];
  memcpy(m, left, 8 * sizeof(uint32_t));
  memcpy(m + 8, right, 8 * sizeof(uint32_t));
  compress_words(s, IV, m, B3_BLOCK_LEN, 0, PARENT);
  for (int i = 0; i < 8; i++) out[i] = s[i] ^ s[i + 8];
}

// ---- AVX2: eight inputs at once, input i in lane i of every register ----

#ifdef B3_X86

#define B3_TARGET "avx2"
#define B3_NAME(x) x##_avx2
#include "blake3_x86.inc"
#undef B3_TARGET
#undef B3_NAME

#define B3_TARGET "avx2,avx512f,avx512vl"
#define B3_NAME(x) x##_avx512
#define B3_ROR 1
#include "blake3_x86.inc"
#undef B3_TARGET
#undef B3_NAME
#undef B3_ROR

// 0: portable, 1: AVX2, 2: AVX2 code compiled for AVX-512VL. CKPT_SIMD=portable|avx2 caps the
// level, so tests (and anyone chasing a CPU-specific bug) can run every path on one machine.
static int simd_level(void) {
  static int cached = -1;  // benign race: every thread computes the same answer
  if (cached < 0) {
    __builtin_cpu_init();
    int level = __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512f") ? 2
                : __builtin_cpu_supports("avx2")                                       ? 1
                                                                                        : 0;
    const char* cap = getenv("CKPT_SIMD");
    if (cap && strcmp(cap, "portable") == 0) level = 0;
    if (cap && strcmp(cap, "avx2") == 0 && level > 1) level = 1;
    cached = level;
  }
  return cached;
}

// hash8 over the first `n` (1..8) of `in`; the other lanes repeat input 0 and are discarded.
static void hash_lanes(const uint8_t* const* in, size_t n, size_t blocks, uint64_t counter,
                       uint64_t counter_step, uint32_t flags, uint32_t start, uint32_t end,
                       uint32_t* out) {
  const uint8_t* lanes[8];
  uint32_t cvs[8 * 8];
  for (size_t i = 0; i < 8; i++) lanes[i] = in[i < n ? i : 0];
  if (simd_level() == 2) {
    hash8_avx512(lanes, blocks, counter, counter_step, flags, start, end, cvs);
  } else {
    hash8_avx2(lanes, blocks, counter, counter_step, flags, start, end, cvs);
  }
  memcpy(out, cvs, n * 8 * sizeof(uint32_t));
}

#else
static int simd_level(void) { return 0; }
#endif

const char* b3_implementation(void) {
  static const char* const names[] = {"portable", "avx2", "avx512"};
  return names[simd_level()];
}

// ---- chunks ----

static void chunk_init(b3_chunk* c, uint64_t counter) {
  memcpy(c->cv, IV, sizeof(IV));
  c->counter = counter;
  c->block_len = 0;
  c->blocks_done = 0;
}

static size_t chunk_len(const b3_chunk* c) { return (size_t)c->blocks_done * B3_BLOCK_LEN + c->block_len; }

static uint32_t chunk_start_flag(const b3_chunk* c) { return c->blocks_done == 0 ? CHUNK_START : 0; }

// Appends up to the end of the chunk. The last block stays buffered: only finalization knows
// whether it gets CHUNK_END (and ROOT).
static void chunk_update(b3_chunk* c, const uint8_t* in, size_t len) {
  while (len > 0) {
    if (c->block_len == B3_BLOCK_LEN) {
      compress_block(c->cv, c->block, B3_BLOCK_LEN, c->counter, chunk_start_flag(c));
      c->blocks_done++;
      c->block_len = 0;
    }
    while (c->block_len == 0 && len > B3_BLOCK_LEN) {
      compress_block(c->cv, in, B3_BLOCK_LEN, c->counter, chunk_start_flag(c));
      c->blocks_done++;
      in += B3_BLOCK_LEN;
      len -= B3_BLOCK_LEN;
    }
    size_t take = B3_BLOCK_LEN - c->block_len;
    if (take > len) take = len;
    memcpy(c->block + c->block_len, in, take);
    c->block_len = (uint8_t)(c->block_len + take);
    in += take;
    len -= take;
  }
}

// The last compression of a node, not yet done: as a chaining value, or with ROOT as the hash.
typedef struct {
  uint32_t cv[8];
  uint32_t m[16];
  uint32_t block_len;
  uint64_t counter;
  uint32_t flags;
} node_output;

static node_output chunk_output(const b3_chunk* c) {
  node_output o;
  memcpy(o.cv, c->cv, sizeof(o.cv));
  uint8_t block[B3_BLOCK_LEN] = {0};
  memcpy(block, c->block, c->block_len);
  for (int i = 0; i < 16; i++) o.m[i] = load32(block + 4 * i);
  o.block_len = c->block_len;
  o.counter = c->counter;
  o.flags = chunk_start_flag(c) | CHUNK_END;
  return o;
}

static node_output parent_output(const uint32_t left[8], const uint32_t right[8]) {
  node_output o;
  memcpy(o.cv, IV, sizeof(o.cv));
  memcpy(o.m, left, 8 * sizeof(uint32_t));
  memcpy(o.m + 8, right, 8 * sizeof(uint32_t));
  o.block_len = B3_BLOCK_LEN;
  o.counter = 0;
  o.flags = PARENT;
  return o;
}

static void output_cv(const node_output* o, uint32_t out[8]) {
  uint32_t s[16];
  compress_words(s, o->cv, o->m, o->block_len, o->counter, o->flags);
  for (int i = 0; i < 8; i++) out[i] = s[i] ^ s[i + 8];
}

// ---- the tree ----

#ifdef B3_X86
// Chaining values of `n` (1..8) whole chunks starting at chunk index `counter`, none the last.
static void chunk_cvs(const uint8_t* in, size_t n, uint64_t counter, uint32_t* out) {
  const uint8_t* lanes[8];
  for (size_t i = 0; i < n; i++) lanes[i] = in + i * B3_CHUNK_LEN;
  hash_lanes(lanes, n, B3_CHUNK_LEN / B3_BLOCK_LEN, counter, 1, 0, CHUNK_START, CHUNK_END, out);
}

// Chaining value of `n` whole chunks (n a power of two, 8 <= n <= MAX_SUBTREE) starting at chunk
// index `counter`, a multiple of n. Never the root: more input follows.
#define MAX_SUBTREE 64
static void subtree_cv(const uint8_t* in, size_t n, uint64_t counter, uint32_t out[8]) {
  uint32_t cvs[MAX_SUBTREE * 8];
  for (size_t i = 0; i < n; i += 8) chunk_cvs(in + i * B3_CHUNK_LEN, 8, counter + i, cvs + i * 8);
  // Level by level: parent q reads cvs 2q and 2q+1 (one 64-byte block) and writes cv q. A batch
  // writes only cvs that it and earlier batches have read, never what a later batch needs.
  while (n > 1) {
    size_t parents = n / 2;
    for (size_t q = 0; q < parents; q += 8) {
      size_t k = parents - q < 8 ? parents - q : 8;
      if (k < 3) {  // one or two compressions are cheaper one at a time
        for (size_t j = q; j < q + k; j++) parent_cv(cvs + 2 * j * 8, cvs + (2 * j + 1) * 8, cvs + j * 8);
        continue;
      }
      const uint8_t* lanes[8];
      for (size_t j = 0; j < k; j++) lanes[j] = (const uint8_t*)(cvs + 2 * (q + j) * 8);
      hash_lanes(lanes, k, 1, 0, 0, PARENT, 0, 0, cvs + q * 8);
    }
    n = parents;
  }
  memcpy(out, cvs, 8 * sizeof(uint32_t));
}
#endif

// Merges completed subtrees until the stack holds one entry per set bit of `chunks`.
static void merge_stack(b3_hasher* h, uint64_t chunks) {
  size_t keep = (size_t)__builtin_popcountll(chunks);
  while (h->stack_len > keep) {
    parent_cv(h->stack[h->stack_len - 2], h->stack[h->stack_len - 1], h->stack[h->stack_len - 2]);
    h->stack_len--;
  }
}

// `counter`: index of the first chunk under `cv`, a multiple of that subtree's size.
static void push_cv(b3_hasher* h, const uint32_t cv[8], uint64_t counter) {
  merge_stack(h, counter);
  memcpy(h->stack[h->stack_len], cv, 8 * sizeof(uint32_t));
  h->stack_len++;
}

void b3_init(b3_hasher* h) {
  chunk_init(&h->chunk, 0);
  h->stack_len = 0;
}

void b3_update(b3_hasher* h, const uint8_t* in, size_t len) {
  if (chunk_len(&h->chunk) > 0) {
    size_t take = B3_CHUNK_LEN - chunk_len(&h->chunk);
    if (take > len) take = len;
    chunk_update(&h->chunk, in, take);
    in += take;
    len -= take;
    if (len > 0) {  // the chunk is full and is not the last
      node_output o = chunk_output(&h->chunk);
      uint32_t cv[8];
      output_cv(&o, cv);
      push_cv(h, cv, h->chunk.counter);
      chunk_init(&h->chunk, h->chunk.counter + 1);
    }
  }
  // Whole chunks, and aligned subtrees of them, while at least one byte follows.
  while (len > B3_CHUNK_LEN) {
    uint64_t counter = h->chunk.counter;
    size_t n = 1;
#ifdef B3_X86
    if (simd_level() > 0) {
      n = MAX_SUBTREE;
      while (n > 8 && ((counter & (n - 1)) != 0 || n * B3_CHUNK_LEN >= len)) n >>= 1;
      uint32_t cvs[8 * 8];
      if ((counter & (n - 1)) == 0 && n * B3_CHUNK_LEN < len) {
        subtree_cv(in, n, counter, cvs);
        push_cv(h, cvs, counter);
      } else {  // unaligned, or the last few chunks: CVs of up to 8 chunks, pushed one by one
        n = (len - 1) / B3_CHUNK_LEN;
        if (n > 8) n = 8;
        chunk_cvs(in, n, counter, cvs);
        for (size_t i = 0; i < n; i++) push_cv(h, cvs + i * 8, counter + i);
      }
    } else
#endif
    {
      chunk_update(&h->chunk, in, B3_CHUNK_LEN);
      node_output o = chunk_output(&h->chunk);
      uint32_t cv[8];
      output_cv(&o, cv);
      push_cv(h, cv, counter);
    }
    chunk_init(&h->chunk, counter + n);
    in += n * B3_CHUNK_LEN;
    len -= n * B3_CHUNK_LEN;
  }
  chunk_update(&h->chunk, in, len);
  merge_stack(h, h->chunk.counter);
}

void b3_finalize(const b3_hasher* h, uint8_t out[B3_OUT_LEN]) {
  // The open chunk is the rightmost leaf; fold it into every subtree on the stack, right to left.
  // Only an empty input leaves it empty, and then it is the root itself.
  node_output o = chunk_output(&h->chunk);
  for (size_t i = h->stack_len; i > 0; i--) {
    uint32_t cv[8];
    output_cv(&o, cv);
    o = parent_output(h->stack[i - 1], cv);
  }
  uint32_t s[16];
  compress_words(s, o.cv, o.m, o.block_len, o.counter, o.flags | ROOT);
  for (int i = 0; i < 8; i++) store32(out + 4 * i, s[i] ^ s[i + 8]);
}

void b3_hash(const uint8_t* in, size_t len, uint8_t out[B3_OUT_LEN]) {
  b3_hasher h;
  b3_init(&h);
  b3_update(&h, in, len);
  b3_finalize(&h, out);
}
