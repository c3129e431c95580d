// BLAKE3-256 (the BLAKE3 specification, 2021): our own implementation, portable C plus an AVX2
// path that compresses eight chunks (or eight parent nodes) at once, chosen at run time.
// Plain C, no allocation, safe to call from any thread.
#ifndef CKPT_BLAKE3_H
#define CKPT_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

#define B3_OUT_LEN 32
#define B3_BLOCK_LEN 64
#define B3_CHUNK_LEN 1024
// Enough for 2^54 chunks (16 EiB of input), as the specification allows.
#define B3_MAX_DEPTH 54

typedef struct {
  uint32_t cv[8];
  uint64_t counter;  // index of this chunk in the input
  uint8_t block[B3_BLOCK_LEN];
  uint8_t block_len;
  uint8_t blocks_done;
} b3_chunk;

typedef struct {
  b3_chunk chunk;
  // Chaining values of complete subtrees, largest first; after every update it holds exactly one
  // entry per set bit of chunk.counter (the number of complete chunks before the current one).
  uint32_t stack[B3_MAX_DEPTH][8];
  uint8_t stack_len;
} b3_hasher;

void b3_init(b3_hasher* h);
void b3_update(b3_hasher* h, const uint8_t* in, size_t len);
// Does not change h: more input may follow, and finalize again.
void b3_finalize(const b3_hasher* h, uint8_t out[B3_OUT_LEN]);
void b3_hash(const uint8_t* in, size_t len, uint8_t out[B3_OUT_LEN]);
// "avx2" or "portable": which compression path this CPU runs.
const char* b3_implementation(void);

#endif
