// zstd for blobs, with contexts kept per thread and the caller's buffers as input and output.
//
// JS surface:
//   zstdCompress(src, dst, level): number   one zstd frame of src (its content size declared)
//                                           into dst; 0 when it does not fit in dst, so a dst of
//                                           src.length - 1 bytes answers "does it shrink?"
//   zstdCompressAsync(src, dst, level): Promise<number>   the same on libuv's thread pool
//   zstdDecompress(src, dst): number         the one frame src holds inflated into dst: the
//                                           length written, or minus a zstd error code
//   openBlobs(stored, specs, dst, ids, status): Promise<undefined>
//                                           a batch of blobs read from a pack, each inflated if
//                                           compressed and checked against its BLAKE3 id, as one
//                                           job on the thread pool (see below)
//   zstdErrorName(code): string              the text of a zstd error code
//
// Why not a zstd package: @mongodb-js/zstd (the fallback, src/core/codec.ts) makes a new
// context and a new buffer for every blob. A level-3 context holds hundreds of KiB of tables,
// so on 128 KiB chunks that was a fixed cost per blob and a steady churn of pool-thread
// mallocs (peak RSS). Here each pool thread keeps one compression and one decompression
// context for the life of the process, and frames go straight into buffers the caller reuses.
// Inflating and hashing in the same job reads each blob while it is still in cache.

#include <stdint.h>
#include <string.h>

#include <node_api.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "addon.h"
#include "blake3.h"
#include "jobs.h"

static _Thread_local ZSTD_CCtx* thread_cctx;
static _Thread_local ZSTD_DCtx* thread_dctx;

// This thread's compression context at `level`, or NULL when out of memory.
static ZSTD_CCtx* cctx_at(int level) {
  if (!thread_cctx) thread_cctx = ZSTD_createCCtx();
  if (!thread_cctx) return NULL;
  if (ZSTD_isError(ZSTD_CCtx_setParameter(thread_cctx, ZSTD_c_compressionLevel, level))) return NULL;
  return thread_cctx;
}

static ZSTD_DCtx* dctx(void) {
  if (!thread_dctx) thread_dctx = ZSTD_createDCtx();
  return thread_dctx;
}

// The compressed length, 0 when the frame does not fit in dst, or (size_t)-1 when out of memory.
static size_t compress_into(const uint8_t* src, size_t len, uint8_t* dst, size_t cap, int level) {
  ZSTD_CCtx* cctx = cctx_at(level);
  if (!cctx) return (size_t)-1;
  size_t n = ZSTD_compress2(cctx, dst, cap, src, len);
  if (!ZSTD_isError(n)) return n;
  if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return 0;
  return (size_t)-1;
}

static bool get_level(napi_env env, napi_value value, int* level) {
  int32_t l;
  if (napi_get_value_int32(env, value, &l) != napi_ok) return false;
  if (l < 1 || l > ZSTD_maxCLevel()) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "zstd level must be 1 to 22");
    return false;
  }
  *level = l;
  return true;
}

static napi_value number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

// The arguments of zstdCompress and zstdCompressAsync: (src, dst, level).
typedef struct {
  napi_value argv[3];
  uint8_t *src, *dst;
  size_t len, cap;
  int level;
} compress_args;

static bool get_compress_args(napi_env env, napi_callback_info info, compress_args* a) {
  return get_args(env, info, 3, a->argv) && get_bytes(env, a->argv[0], "src", &a->src, &a->len) &&
         get_bytes(env, a->argv[1], "dst", &a->dst, &a->cap) && get_level(env, a->argv[2], &a->level);
}

static napi_value zstd_compress_sync(napi_env env, napi_callback_info info) {
  compress_args a;
  if (!get_compress_args(env, info, &a)) return NULL;
  size_t n = compress_into(a.src, a.len, a.dst, a.cap, a.level);
  if (n == (size_t)-1) {
    napi_throw_error(env, "ENOMEM", "zstd: out of memory");
    return NULL;
  }
  return number(env, (double)n);
}

typedef struct {
  async_job base;
  const uint8_t* src;
  size_t len;
  uint8_t* dst;
  size_t cap;
  int level;
  size_t written;
} compress_job;

static void compress_job_run(async_job* base) {
  compress_job* job = (compress_job*)base;
  job->written = compress_into(job->src, job->len, job->dst, job->cap, job->level);
  if (job->written == (size_t)-1) base->failure = "out of memory";
}

static napi_value compress_job_result(napi_env env, async_job* base) {
  return number(env, (double)((compress_job*)base)->written);
}

static napi_value zstd_compress_async(napi_env env, napi_callback_info info) {
  compress_args a;
  if (!get_compress_args(env, info, &a)) return NULL;
  compress_job* job = job_new(env, sizeof *job, 2, "zstdCompressAsync", compress_job_run, compress_job_result);
  if (!job) return NULL;
  job->src = a.src;
  job->len = a.len;
  job->dst = a.dst;
  job->cap = a.cap;
  job->level = a.level;
  if (!job_keep(env, &job->base, a.argv[0]) || !job_keep(env, &job->base, a.argv[1])) {
    job_free(env, &job->base);
    return NULL;
  }
  return job_queue(env, &job->base);
}

// The length inflated into dst, or a zstd error result. src must be exactly one whole frame (a
// blob is always written as one): zstd would take an empty input, or frames after the first.
static size_t decompress_into(const uint8_t* src, size_t len, uint8_t* dst, size_t cap) {
  size_t frame = ZSTD_findFrameCompressedSize(src, len);
  if (ZSTD_isError(frame)) return frame;
  if (frame != len) return (size_t)-ZSTD_error_srcSize_wrong;
  ZSTD_DCtx* d = dctx();
  if (!d) return (size_t)-ZSTD_error_memory_allocation;
  return ZSTD_decompressDCtx(d, dst, cap, src, len);
}

static napi_value zstd_decompress_sync(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *src, *dst;
  size_t len, cap;
  if (!get_args(env, info, 2, argv) || !get_bytes(env, argv[0], "src", &src, &len) ||
      !get_bytes(env, argv[1], "dst", &dst, &cap)) {
    return NULL;
  }
  size_t n = decompress_into(src, len, dst, cap);
  return number(env, ZSTD_isError(n) ? -(double)ZSTD_getErrorCode(n) : (double)n);
}

// ---- openBlobs: inflate and check a batch of blobs on the thread pool ----
//
// openBlobs(stored, specs, dst, ids, status): Promise<undefined>
// Blob i is described by specs[5i .. 5i+5) = [stored offset, stored length, compression
// (0 none, 1 zstd), raw length, dst offset]. A blob stored as is is checked where it lies in
// `stored`; a compressed one is inflated into dst[dst offset ..) first. Its BLAKE3 must equal
// ids[32i .. 32i+32). status[i] says how it went (OPEN_* below; a negative value is minus a
// zstd error code). Every range is checked before the job is queued; nothing passed may be
// touched until it settles.

enum { SPEC_STORED_OFFSET, SPEC_STORED_LENGTH, SPEC_COMPRESSION, SPEC_RAW_LENGTH, SPEC_DST_OFFSET, SPEC_WORDS };
enum { OPEN_OK = 0, OPEN_ID_MISMATCH = 1, OPEN_SIZE_MISMATCH = 2, OPEN_UNKNOWN_COMPRESSION = 3 };

typedef struct {
  async_job base;
  const uint8_t* stored;
  const uint32_t* specs;
  uint8_t* dst;
  const uint8_t* ids;
  int32_t* status;
  size_t count;
} open_job;

static int32_t open_one(const open_job* job, const uint32_t* spec, const uint8_t* id) {
  const uint8_t* src = job->stored + spec[SPEC_STORED_OFFSET];
  size_t stored_len = spec[SPEC_STORED_LENGTH], raw_len = spec[SPEC_RAW_LENGTH];
  const uint8_t* plain;
  if (spec[SPEC_COMPRESSION] == 0) {
    if (stored_len != raw_len) return OPEN_SIZE_MISMATCH;
    plain = src;
  } else if (spec[SPEC_COMPRESSION] == 1) {
    unsigned long long declared = ZSTD_getFrameContentSize(src, stored_len);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != ZSTD_CONTENTSIZE_ERROR && declared != raw_len) {
      return OPEN_SIZE_MISMATCH;
    }
    uint8_t* out = job->dst + spec[SPEC_DST_OFFSET];
    size_t n = decompress_into(src, stored_len, out, raw_len);
    if (ZSTD_isError(n)) {
      // A frame that needs more room than the index gives it has the wrong size, not bad bytes.
      return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? OPEN_SIZE_MISMATCH : -(int32_t)ZSTD_getErrorCode(n);
    }
    if (n != raw_len) return OPEN_SIZE_MISMATCH;
    plain = out;
  } else {
    return OPEN_UNKNOWN_COMPRESSION;
  }
  uint8_t digest[B3_OUT_LEN];
  b3_hash(plain, raw_len, digest);
  return memcmp(digest, id, B3_OUT_LEN) == 0 ? OPEN_OK : OPEN_ID_MISMATCH;
}

static void open_job_run(async_job* base) {
  open_job* job = (open_job*)base;
  for (size_t i = 0; i < job->count; i++) {
    job->status[i] = open_one(job, job->specs + i * SPEC_WORDS, job->ids + i * B3_OUT_LEN);
  }
}

static napi_value open_blobs(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *stored, *specs, *dst, *ids, *status;
  size_t stored_len, specs_len, dst_len, ids_len, status_len;
  if (!get_args(env, info, 5, argv) || !get_bytes(env, argv[0], "stored", &stored, &stored_len) ||
      !get_bytes(env, argv[1], "specs", &specs, &specs_len) || !get_bytes(env, argv[2], "dst", &dst, &dst_len) ||
      !get_bytes(env, argv[3], "ids", &ids, &ids_len) || !get_bytes(env, argv[4], "status", &status, &status_len)) {
    return NULL;
  }
  size_t count = specs_len / (SPEC_WORDS * 4);
  if (specs_len % (SPEC_WORDS * 4) != 0 || ids_len < count * B3_OUT_LEN || status_len < count * 4 ||
      ((uintptr_t)specs | (uintptr_t)status) & 3) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "specs, ids or status do not hold the same number of blobs, or are misaligned");
    return NULL;
  }
  const uint32_t* s = (const uint32_t*)specs;
  for (size_t i = 0; i < count; i++, s += SPEC_WORDS) {
    uint64_t stored_end = (uint64_t)s[SPEC_STORED_OFFSET] + s[SPEC_STORED_LENGTH];
    uint64_t dst_end = (uint64_t)s[SPEC_DST_OFFSET] + s[SPEC_RAW_LENGTH];
    if (stored_end > stored_len || (s[SPEC_COMPRESSION] == 1 && dst_end > dst_len)) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a blob lies outside stored or dst");
      return NULL;
    }
  }
  open_job* job = job_new(env, sizeof *job, 5, "openBlobs", open_job_run, NULL);
  if (!job) return NULL;
  job->stored = stored;
  job->specs = (const uint32_t*)specs;
  job->dst = dst;
  job->ids = ids;
  job->status = (int32_t*)status;
  job->count = count;
  for (int i = 0; i < 5; i++) {
    if (!job_keep(env, &job->base, argv[i])) {
      job_free(env, &job->base);
      return NULL;
    }
  }
  return job_queue(env, &job->base);
}

static napi_value zstd_error_name(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t code;
  if (!get_args(env, info, 1, argv) || napi_get_value_int32(env, argv[0], &code) != napi_ok) return NULL;
  napi_create_string_utf8(env, ZSTD_getErrorString((ZSTD_ErrorCode)code), NAPI_AUTO_LENGTH, &result);
  return result;
}

bool ckpt_register_zstd(napi_env env, napi_value exports) {
  return ckpt_export(env, exports, "zstdCompress", zstd_compress_sync) &&
         ckpt_export(env, exports, "zstdCompressAsync", zstd_compress_async) &&
         ckpt_export(env, exports, "zstdDecompress", zstd_decompress_sync) &&
         ckpt_export(env, exports, "openBlobs", open_blobs) &&
         ckpt_export(env, exports, "zstdErrorName", zstd_error_name);
}
