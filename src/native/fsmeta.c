// File system calls that Node's fs module does not offer (part of the ckpt_native addon).
//
// Node's fs.utimes/lutimes take seconds as a double, which cannot hold today's times to the
// nanosecond (one ulp is about 2^-22 s), so restore calls utimensat(2) through this addon.
// Restore also swaps a finished tree into place with renameat2(RENAME_EXCHANGE), so the
// target path never goes missing, and flushes that tree with one syncfs(2) instead of an
// fsync per file. Neither has an fs counterpart.
//
// JS surface:
//   setTimes(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): undefined
//   exchange(a: Buffer | string, b: Buffer | string): undefined
//   syncfs(path: Buffer | string): undefined
// Times are nanoseconds since the epoch, negative before 1970. A Buffer path is taken as raw
// bytes (file names need not be UTF-8). Failures of the call throw an Error shaped like Node's
// fs errors: message "ENOENT: no such file or directory, utimensat '<path>'", code, errno
// (negative, as Node reports it), syscall, path, and for exchange dest with the message
// ending "renameat2 '<a>' -> '<b>'" as fs.renameSync's do. Names and messages come from
// libuv, which Node uses for its own fs errors, so callers see the same codes as from fs.
//
// exchange and syncfs are Linux calls. Elsewhere they throw ENOSYS without touching anything,
// which is also what an old kernel or a seccomp filter answers; the TypeScript wrapper treats
// it as "not available here" and the caller falls back.
//
// Plain C against node_api.h (N-API version 8, bigint needs 6), so the binary does not depend
// on the Node version; uv.h is used only for the two error-name functions Node exports.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // syncfs(2) in <unistd.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/syscall.h>
#endif

#include <node_api.h>
#include <uv.h>

#include "addon.h"

#define NS_PER_SEC INT64_C(1000000000)

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)  // <linux/fs.h>; glibc only declares it from 2.28
#endif

// Copies the path argument into a fresh NUL-terminated buffer (free() it). Returns NULL with
// a pending JS exception on a wrong type or an embedded NUL byte, which would otherwise make
// the kernel see a shorter, different path.
static char* get_path(napi_env env, napi_value value, size_t* len_out) {
  bool is_buffer = false;
  napi_valuetype type;
  char* path = NULL;
  size_t len = 0;

  if (napi_is_buffer(env, value, &is_buffer) != napi_ok) return NULL;
  if (is_buffer) {
    void* data;
    if (napi_get_buffer_info(env, value, &data, &len) != napi_ok) return NULL;
    path = malloc(len + 1);
    if (path == NULL) goto oom;
    memcpy(path, data, len);
  } else {
    if (napi_typeof(env, value, &type) != napi_ok) return NULL;
    if (type != napi_string) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path must be a string or a Buffer");
      return NULL;
    }
    if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
    path = malloc(len + 1);
    if (path == NULL) goto oom;
    if (napi_get_value_string_utf8(env, value, path, len + 1, &len) != napi_ok) {
      free(path);
      return NULL;
    }
  }
  path[len] = '\0';
  if (memchr(path, '\0', len) != NULL) {
    free(path);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "path must not contain null bytes");
    return NULL;
  }
  *len_out = len;
  return path;

oom:
  napi_throw_error(env, "ENOMEM", "out of memory copying the path");
  return NULL;
}

// Reads a bigint count of nanoseconds into a timespec, flooring so that tv_nsec stays in
// [0, 1e9) for times before 1970 too (-1 ns is tv_sec -1, tv_nsec 999999999).
static bool get_time(napi_env env, napi_value value, const char* name, struct timespec* out) {
  int64_t ns;
  bool lossless;
  char message[96];

  if (napi_get_value_bigint_int64(env, value, &ns, &lossless) != napi_ok) {
    snprintf(message, sizeof message, "%s must be a bigint (nanoseconds)", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  if (!lossless) {
    snprintf(message, sizeof message, "%s is out of the signed 64-bit nanosecond range", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  int64_t sec = ns / NS_PER_SEC;
  int64_t nsec = ns % NS_PER_SEC;
  if (nsec < 0) {
    nsec += NS_PER_SEC;
    sec -= 1;
  }
  out->tv_sec = (time_t)sec;
  out->tv_nsec = (long)nsec;
  if ((int64_t)out->tv_sec != sec) {  // only where time_t is 32 bits
    snprintf(message, sizeof message, "%s does not fit this platform's time_t", name);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  return true;
}

// Throws the fs-style error for `err` (a positive errno) from `syscall` on `path`, and on
// `dest` too when it is not NULL (the two-path form, as fs.renameSync reports). Paths are
// decoded as UTF-8 with invalid bytes replaced, as Node shows Buffer paths in its errors.
static void throw_errno(napi_env env, int err, const char* syscall, const char* path,
                        size_t path_len, const char* dest, size_t dest_len) {
  char name[64];
  char desc[128];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, desc, sizeof desc);

  size_t cap = strlen(name) + strlen(desc) + strlen(syscall) + path_len + dest_len + 16;
  char* message = malloc(cap);
  if (message == NULL) {
    napi_throw_error(env, name, desc);
    return;
  }
  size_t at = (size_t)snprintf(message, cap, "%s: %s, %s '", name, desc, syscall);
  memcpy(message + at, path, path_len);
  at += path_len;
  if (dest != NULL) {
    memcpy(message + at, "' -> '", 6);
    at += 6;
    memcpy(message + at, dest, dest_len);
    at += dest_len;
  }
  memcpy(message + at, "'", 2);

  napi_value code, msg, error, errno_value, syscall_value, path_value, dest_value;
  bool ok = napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) == napi_ok &&
            napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
            napi_create_error(env, code, msg, &error) == napi_ok &&
            napi_create_int32(env, -err, &errno_value) == napi_ok &&
            napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok &&
            napi_create_string_utf8(env, path, path_len, &path_value) == napi_ok &&
            napi_set_named_property(env, error, "errno", errno_value) == napi_ok &&
            napi_set_named_property(env, error, "syscall", syscall_value) == napi_ok &&
            napi_set_named_property(env, error, "path", path_value) == napi_ok &&
            (dest == NULL ||
             (napi_create_string_utf8(env, dest, dest_len, &dest_value) == napi_ok &&
              napi_set_named_property(env, error, "dest", dest_value) == napi_ok));
  free(message);
  if (ok) {
    napi_throw(env, error);
  } else {
    napi_throw_error(env, name, desc);
  }
}

static napi_value set_times(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  struct timespec times[2];  // [0] atime, [1] mtime, as utimensat wants them

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "setTimes(path, atimeNs, mtimeNs)");
    return NULL;
  }
  if (!get_time(env, argv[1], "atimeNs", &times[0])) return NULL;
  if (!get_time(env, argv[2], "mtimeNs", &times[1])) return NULL;

  size_t path_len;
  char* path = get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;

  if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0) {
    throw_errno(env, errno, "utimensat", path, path_len, NULL, 0);
  }
  free(path);
  return NULL;
}

// renameat2(2) with RENAME_EXCHANGE through syscall(2): glibc has a wrapper only from 2.28
// and musl only lately, while the system call is in every kernel since 3.15. Errno as the
// kernel sets it; ENOSYS where there is no such call.
static int rename_exchange(const char* a, const char* b) {
#if defined(__linux__) && defined(SYS_renameat2)
  return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
  (void)a;
  (void)b;
  errno = ENOSYS;
  return -1;
#endif
}

// Swaps the directory entries `a` and `b` in one step: each name then refers to what the
// other did, and no moment shows either name missing. Both must exist; they may be of
// different types (a directory and a file) and must be on the same file system (EXDEV).
static napi_value exchange(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "exchange(a, b)");
    return NULL;
  }
  size_t a_len, b_len;
  char* a = get_path(env, argv[0], &a_len);
  if (a == NULL) return NULL;
  char* b = get_path(env, argv[1], &b_len);
  if (b == NULL) {
    free(a);
    return NULL;
  }

  if (rename_exchange(a, b) != 0) {
    throw_errno(env, errno, "renameat2", a, a_len, b, b_len);
  }
  free(a);
  free(b);
  return NULL;
}

// Writes back everything dirty on the file system holding `path` (a file or a directory; a
// final symlink is followed) and waits for it. Since Linux 5.8 a writeback error on that
// file system that no earlier syncfs has reported is returned (EIO, ENOSPC), so a failed
// flush is not silent. The descriptor is only a handle on the file system: O_NONBLOCK keeps a FIFO
// from blocking the open, O_NOCTTY keeps a terminal from becoming ours.
static napi_value sync_fs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "syncfs(path)");
    return NULL;
  }
  size_t path_len;
  char* path = get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;

#ifdef __linux__
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", path, path_len, NULL, 0);
  } else {
    if (syncfs(fd) != 0) throw_errno(env, errno, "syncfs", path, path_len, NULL, 0);
    close(fd);  // read-only and nothing written through it: no error worth reporting
  }
#else
  throw_errno(env, ENOSYS, "syncfs", path, path_len, NULL, 0);
#endif
  free(path);
  return NULL;
}

/* trimMemory(): hand memory that malloc holds free (in every thread's arena) back to the system.
 * glibc keeps freed memory in per-thread arenas; after a garbage collection frees many buffers,
 * the process's resident size would otherwise stay high. Returns whether anything was released. */
static napi_value trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#if defined(__GLIBC__)
  released = malloc_trim(0);
#endif
  napi_value result;
  napi_get_boolean(env, released != 0, &result);
  return result;
}

char* ckpt_get_path(napi_env env, napi_value value, size_t* len_out) {
  return get_path(env, value, len_out);
}

void ckpt_throw_errno(napi_env env, int err, const char* syscall, const char* path, size_t path_len) {
  throw_errno(env, err, syscall, path, path_len, NULL, 0);
}

bool ckpt_register_fsmeta(napi_env env, napi_value exports) {
  return ckpt_export(env, exports, "setTimes", set_times) &&
         ckpt_export(env, exports, "exchange", exchange) &&
         ckpt_export(env, exports, "syncfs", sync_fs) &&
         ckpt_export(env, exports, "trimMemory", trim_memory);
}
