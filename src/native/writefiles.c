// writeFiles: create and fill a batch of new small files in one job on libuv's thread pool.
//
// JS surface:
//   writeFiles(paths, parts, meta, mtimes, owners, status): Promise<undefined>
//     paths   Buffer[]            raw path bytes of each file (no NUL), which must not exist yet
//     parts   Uint8Array[][]      each file's contents, in pieces, written back to back
//     meta    Uint32Array         per file [mode, uid, gid]
//     mtimes  BigInt64Array       per file, nanoseconds since the epoch (atime and mtime)
//     owners  boolean             chown each file to its uid and gid (restore as root)
//     status  Int32Array          per file: 0 written, or errno * 8 + the failed step (STEP_*);
//                                 files after the first failure are not touched (status -1)
//   Nothing passed may be modified until it settles.
//
// Why: restore writes the small files of a batch with one open, write, fchown, fchmod, close and
// utimensat each. Done synchronously on the main thread, each is cheap when the kernel is, but
// creating an inode took 0.3-0.5 ms on this VM when its memory was cold: 1.4 s of a 3.1 s restore
// of 3,000 small files was the main thread in open(2), while the other core waited for work. Here
// those calls run beside the main thread, a batch per job, with no round trip per call.
//
// Each file: open(O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, 0600) so nothing existing is written
// through and no symlink is followed; writev until every byte is written; fchown (when owners)
// before fchmod, since chown clears setuid bits; close; then the times, last, on the path with
// AT_SYMLINK_NOFOLLOW.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>

#include "addon.h"
#include "jobs.h"

enum { STEP_OPEN = 1, STEP_WRITE = 2, STEP_CHOWN = 3, STEP_CHMOD = 4, STEP_CLOSE = 5, STEP_UTIMES = 6 };
enum { META_MODE, META_UID, META_GID, META_WORDS };
#define NS_PER_SEC INT64_C(1000000000)
#define MAX_IOV 64

typedef struct {
  char* path;         // NUL-terminated copy
  struct iovec* iov;  // into the parts' memory
  size_t iov_count;
  uint32_t mode, uid, gid;
  struct timespec times[2];
} file_spec;

typedef struct {
  async_job base;
  file_spec* files;
  size_t count;
  bool owners;
  int32_t* status;
} write_job;

static int write_all(int fd, struct iovec* iov, size_t count) {
  while (count > 0) {
    int n = count > MAX_IOV ? MAX_IOV : (int)count;
    ssize_t done = writev(fd, iov, n);
    if (done < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (done == 0) return EIO;
    // Skip what was written; a short write resumes inside a piece.
    while (count > 0 && (size_t)done >= iov->iov_len) {
      done -= (ssize_t)iov->iov_len;
      iov++;
      count--;
    }
    if (count > 0) {
      iov->iov_base = (char*)iov->iov_base + done;
      iov->iov_len -= (size_t)done;
    }
  }
  return 0;
}

// 0, or errno * 8 + the step that failed.
static int32_t write_one(const file_spec* f, bool owners) {
  int fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno * 8 + STEP_OPEN;
  int err = write_all(fd, f->iov, f->iov_count);
  int step = STEP_WRITE;
  if (!err && owners && fchown(fd, (uid_t)f->uid, (gid_t)f->gid) != 0) err = errno, step = STEP_CHOWN;
  if (!err && fchmod(fd, (mode_t)f->mode) != 0) err = errno, step = STEP_CHMOD;
  if (close(fd) != 0 && !err) err = errno, step = STEP_CLOSE;
  if (!err && utimensat(AT_FDCWD, f->path, f->times, AT_SYMLINK_NOFOLLOW) != 0) err = errno, step = STEP_UTIMES;
  return err ? err * 8 + step : 0;
}

static void write_job_free_files(write_job* job) {
  for (size_t i = 0; i < job->count; i++) {
    free(job->files[i].path);
    free(job->files[i].iov);
  }
  free(job->files);
  job->files = NULL;
}

static void write_job_run(async_job* base) {
  write_job* job = (write_job*)base;
  size_t i = 0;
  for (; i < job->count; i++) {
    job->status[i] = write_one(&job->files[i], job->owners);
    if (job->status[i] != 0) break;
  }
  for (i++; i < job->count; i++) job->status[i] = -1;
  write_job_free_files(job);  // nothing of it is needed once the files are written
}


static struct timespec to_timespec(int64_t ns) {
  int64_t sec = ns / NS_PER_SEC, nsec = ns % NS_PER_SEC;
  if (nsec < 0) nsec += NS_PER_SEC, sec -= 1;
  struct timespec t = {.tv_sec = (time_t)sec, .tv_nsec = (long)nsec};
  return t;
}

// Fills f from paths[i] and parts[i]; false with a pending exception.
static bool read_file_spec(napi_env env, napi_value path_value, napi_value parts_value, file_spec* f) {
  uint8_t* bytes;
  size_t len;
  if (!get_bytes(env, path_value, "paths[i]", &bytes, &len)) return false;
  if (memchr(bytes, '\0', len) != NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "a path must not contain null bytes");
    return false;
  }
  f->path = malloc(len + 1);
  if (!f->path) {
    napi_throw_error(env, "ENOMEM", "out of memory for a path");
    return false;
  }
  memcpy(f->path, bytes, len);
  f->path[len] = '\0';
  uint32_t count = 0;
  bool is_array = false;
  if (napi_is_array(env, parts_value, &is_array) != napi_ok) return false;
  if (!is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "parts[i] must be an array of TypedArrays");
    return false;
  }
  if (napi_get_array_length(env, parts_value, &count) != napi_ok) return false;
  f->iov = calloc(count ? count : 1, sizeof *f->iov);
  if (!f->iov) {
    napi_throw_error(env, "ENOMEM", "out of memory for a file's pieces");
    return false;
  }
  f->iov_count = count;
  for (uint32_t k = 0; k < count; k++) {
    napi_value part;
    uint8_t* data;
    size_t part_len;
    if (napi_get_element(env, parts_value, k, &part) != napi_ok || !get_bytes(env, part, "parts[i][k]", &data, &part_len)) {
      return false;
    }
    f->iov[k].iov_base = data;
    f->iov[k].iov_len = part_len;
  }
  return true;
}

static napi_value write_files(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (!get_args(env, info, 6, argv)) return NULL;
  uint32_t count = 0, parts_count = 0;
  bool owners;
  uint8_t *meta, *mtimes, *status;
  size_t meta_len, mtimes_len, status_len;
  if (napi_get_array_length(env, argv[0], &count) != napi_ok || napi_get_array_length(env, argv[1], &parts_count) != napi_ok ||
      !get_bytes(env, argv[2], "meta", &meta, &meta_len) || !get_bytes(env, argv[3], "mtimes", &mtimes, &mtimes_len) ||
      napi_get_value_bool(env, argv[4], &owners) != napi_ok || !get_bytes(env, argv[5], "status", &status, &status_len)) {
    return NULL;
  }
  if (parts_count != count || meta_len < (size_t)count * META_WORDS * 4 || mtimes_len < (size_t)count * 8 ||
      status_len < (size_t)count * 4 || ((uintptr_t)meta | (uintptr_t)status) & 3 || (uintptr_t)mtimes & 7) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "paths, parts, meta, mtimes and status must describe the same files");
    return NULL;
  }
  write_job* job = job_new(env, sizeof *job, 6, "writeFiles", write_job_run, NULL);
  if (!job) return NULL;
  job->count = count;
  job->owners = owners;
  job->status = (int32_t*)status;
  job->files = calloc(count ? count : 1, sizeof *job->files);
  bool ok = job->files != NULL;
  if (!ok) napi_throw_error(env, "ENOMEM", "out of memory for a batch of files");
  const uint32_t* m = (const uint32_t*)meta;
  const int64_t* t = (const int64_t*)mtimes;
  for (uint32_t i = 0; ok && i < count; i++) {
    napi_value path_value, parts_value;
    file_spec* f = &job->files[i];
    ok = napi_get_element(env, argv[0], i, &path_value) == napi_ok && napi_get_element(env, argv[1], i, &parts_value) == napi_ok &&
         read_file_spec(env, path_value, parts_value, f);
    f->mode = m[i * META_WORDS + META_MODE];
    f->uid = m[i * META_WORDS + META_UID];
    f->gid = m[i * META_WORDS + META_GID];
    f->times[0] = f->times[1] = to_timespec(t[i]);
  }
  for (int i = 0; ok && i < 6; i++) {
    if (i != 4) ok = job_keep(env, &job->base, argv[i]);
  }
  if (!ok) {
    if (job->files) write_job_free_files(job);
    job_free(env, &job->base);
    return NULL;
  }
  return job_queue(env, &job->base);
}

bool ckpt_register_writefiles(napi_env env, napi_value exports) {
  return ckpt_export(env, exports, "writeFiles", write_files);
}
