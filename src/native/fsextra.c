// More file system calls that Node's fs module does not offer (part of the ckpt_native addon):
// extended attributes, the data regions of sparse files, inode flags and special files. The
// snapshot records all of these and restore puts them back (issue 13).
//
// JS surface (a Buffer path is raw bytes; a string is UTF-8):
//   listXattrs(path): {name: Buffer, value?: Buffer, error?: string}[]
//       every attribute of path, a final symlink not followed (llistxattr + lgetxattr). An
//       attribute removed between the list and the read is left out; one the kernel refuses to
//       read (EPERM, ENOTSUP...) comes with `error` (its libuv code) and no value.
//   setXattr(path, name: Buffer | string, value: Buffer): undefined        (lsetxattr, flags 0)
//   removeXattr(path, name: Buffer | string): undefined                    (lremovexattr)
//   dataExtents(fd): Float64Array   [offset0, length0, offset1, length1, ...]: the data regions
//       of the open file, in order, by SEEK_DATA/SEEK_HOLE from 0 until ENXIO (the end). A file
//       system without SEEK_DATA answers EINVAL: one region covering the whole file then.
//   getFlags(path, dir: boolean): number     FS_IOC_GETFLAGS; dir adds O_DIRECTORY to the open
//   getFlagsFd(fd): number
//   setFlags(path, dir: boolean, flags: number): undefined                  FS_IOC_SETFLAGS
//   mknod(path, mode: number, major: number, minor: number): undefined     mknodat(AT_FDCWD)
//       mode holds the type (S_IFIFO, S_IFCHR, S_IFBLK) and the permission bits.
// Failures throw Node-style fs errors (code, errno, syscall, path), named by libuv as Node's
// own are, so callers can tell "not supported here" (ENOTSUP, ENOTTY, EINVAL) from real errors.
//
// The flag calls open the path O_RDONLY | O_NONBLOCK | O_NOFOLLOW (nothing blocks on a FIFO, a
// symlink is never followed) and refuse with ENOTTY anything but a regular file or directory:
// an ioctl on a device's descriptor would go to its driver.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#endif

#include <node_api.h>
#include <uv.h>

#include "addon.h"

// First tries: most files have no attributes, or a few short ones. The kernel allocates (and
// zeroes) a buffer of the size asked for on every call, so asking for its limits (64 KiB) each
// time cost several microseconds per file; a list or value that does not fit (ERANGE) is asked
// for its size and read again into a buffer of that size.
#define LIST_START 1024
#define VALUE_START 4096

static void throw_fd_errno(napi_env env, int err, const char* syscall) {
  char name[64], desc[128], message[256];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, desc, sizeof desc);
  snprintf(message, sizeof message, "%s: %s, %s", name, desc, syscall);
  napi_value code, msg, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) == napi_ok &&
      napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_error(env, code, msg, &error) == napi_ok && napi_create_int32(env, -err, &errno_value) == napi_ok &&
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value) == napi_ok &&
      napi_set_named_property(env, error, "errno", errno_value) == napi_ok &&
      napi_set_named_property(env, error, "syscall", syscall_value) == napi_ok) {
    napi_throw(env, error);
  } else {
    napi_throw_error(env, name, desc);
  }
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* usage) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", usage);
    return false;
  }
  return true;
}

static bool get_int(napi_env env, napi_value v, const char* what, int64_t* out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    char message[96];
    snprintf(message, sizeof message, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  return true;
}

#ifdef __linux__

// A buffer that starts on the stack and moves to the heap when it must grow.
typedef struct {
  char* data;
  size_t cap;
  bool heap;
} growbuf;

static bool grow(growbuf* b, size_t want) {
  char* bigger = b->heap ? realloc(b->data, want) : malloc(want);
  if (bigger == NULL) return false;
  b->data = bigger;
  b->cap = want;
  b->heap = true;
  return true;
}

// Reads one attribute's value into b (grown as needed). Returns its length, or -1 with errno.
static ssize_t read_value(const char* path, const char* name, growbuf* b) {
  for (;;) {
    ssize_t n = lgetxattr(path, name, b->data, b->cap);
    if (n >= 0 || errno != ERANGE) return n;
    // Longer than the buffer, or grown since: ask its size.
    ssize_t need = lgetxattr(path, name, NULL, 0);
    if (need < 0) return -1;
    if (!grow(b, (size_t)need + 1)) {
      errno = ENOMEM;
      return -1;
    }
  }
}

static napi_value list_xattrs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "listXattrs(path)")) return NULL;
  size_t path_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;

  napi_value result = NULL;
  char list_start[LIST_START], value_start[VALUE_START];
  growbuf listb = {list_start, sizeof list_start, false};
  growbuf value = {value_start, sizeof value_start, false};
  ssize_t list_len;
  for (;;) {
    list_len = llistxattr(path, listb.data, listb.cap);
    if (list_len >= 0) break;
    if (errno != ERANGE) {
      ckpt_throw_errno(env, errno, "llistxattr", path, path_len);
      goto done;
    }
    ssize_t need = llistxattr(path, NULL, 0);
    if (need < 0) {
      ckpt_throw_errno(env, errno, "llistxattr", path, path_len);
      goto done;
    }
    if (!grow(&listb, (size_t)need + 1)) {
      napi_throw_error(env, "ENOMEM", "out of memory reading extended attributes");
      goto done;
    }
  }
  const char* list = listb.data;

  if (napi_create_array(env, &result) != napi_ok) goto fail;
  uint32_t count = 0;
  for (ssize_t at = 0; at < list_len;) {
    const char* name = list + at;
    size_t name_len = strnlen(name, (size_t)(list_len - at));
    at += (ssize_t)name_len + 1;
    if (name_len == 0) continue;
    ssize_t n = read_value(path, name, &value);
    // Removed since the list was read: as if read a moment later.
    if (n < 0 && errno == ENODATA) continue;
    if (n < 0 && errno == ENOMEM) {
      napi_throw_error(env, "ENOMEM", "out of memory reading extended attributes");
      goto fail;
    }
    napi_value entry, name_value, value_value;
    if (napi_create_object(env, &entry) != napi_ok) goto fail;
    if (napi_create_buffer_copy(env, name_len, name, NULL, &name_value) != napi_ok ||
        napi_set_named_property(env, entry, "name", name_value) != napi_ok)
      goto fail;
    if (n >= 0) {
      if (napi_create_buffer_copy(env, (size_t)n, value.data, NULL, &value_value) != napi_ok ||
          napi_set_named_property(env, entry, "value", value_value) != napi_ok)
        goto fail;
    } else {
      char code[64];
      uv_err_name_r(-errno, code, sizeof code);
      napi_value code_value;
      if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value) != napi_ok ||
          napi_set_named_property(env, entry, "error", code_value) != napi_ok)
        goto fail;
    }
    if (napi_set_element(env, result, count++, entry) != napi_ok) goto fail;
  }
  goto done;
fail:
  result = NULL;
done:
  if (listb.heap) free(listb.data);
  if (value.heap) free(value.data);
  free(path);
  return result;
}

// name: a Buffer (raw bytes) or string; copied NUL-terminated like a path.
static napi_value set_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "setXattr(path, name, value)")) return NULL;
  bool is_buffer = false;
  void* data = NULL;
  size_t data_len = 0;
  if (napi_is_buffer(env, argv[2], &is_buffer) != napi_ok) return NULL;
  if (!is_buffer) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "value must be a Buffer");
    return NULL;
  }
  if (napi_get_buffer_info(env, argv[2], &data, &data_len) != napi_ok) return NULL;
  size_t path_len, name_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;
  char* name = ckpt_get_path(env, argv[1], &name_len);
  if (name != NULL) {
    if (lsetxattr(path, name, data, data_len, 0) != 0) ckpt_throw_errno(env, errno, "lsetxattr", path, path_len);
    free(name);
  }
  free(path);
  return NULL;
}

static napi_value remove_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "removeXattr(path, name)")) return NULL;
  size_t path_len, name_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;
  char* name = ckpt_get_path(env, argv[1], &name_len);
  if (name != NULL) {
    if (lremovexattr(path, name) != 0) ckpt_throw_errno(env, errno, "lremovexattr", path, path_len);
    free(name);
  }
  free(path);
  return NULL;
}

static napi_value data_extents(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "dataExtents(fd)")) return NULL;
  int64_t fd;
  if (!get_int(env, argv[0], "fd", &fd)) return NULL;

  size_t cap = 16, len = 0;
  double* pairs = malloc(cap * sizeof *pairs);
  if (pairs == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory listing data extents");
    return NULL;
  }
  off_t at = 0;
  for (;;) {
    off_t data = lseek((int)fd, at, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data at or after `at`: the rest is a hole, or the end
      if (errno == EINVAL && at == 0) {
        // No SEEK_DATA here: the whole file is data.
        struct stat st;
        if (fstat((int)fd, &st) != 0) goto fail;
        if (st.st_size > 0) {
          pairs[0] = 0;
          pairs[1] = (double)st.st_size;
          len = 2;
        }
        break;
      }
      goto fail;
    }
    off_t hole = lseek((int)fd, data, SEEK_HOLE);
    if (hole < 0) {
      if (errno == ENXIO) break;  // truncated between the two calls
      goto fail;
    }
    if (hole > data) {
      if (len + 2 > cap) {
        double* bigger = realloc(pairs, cap * 2 * sizeof *pairs);
        if (bigger == NULL) {
          free(pairs);
          napi_throw_error(env, "ENOMEM", "out of memory listing data extents");
          return NULL;
        }
        pairs = bigger;
        cap *= 2;
      }
      pairs[len++] = (double)data;
      pairs[len++] = (double)(hole - data);
    }
    at = hole;
  }
  napi_value buffer, result;
  void* out;
  if (napi_create_arraybuffer(env, len * sizeof *pairs, &out, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, len, buffer, 0, &result) != napi_ok) {
    free(pairs);
    return NULL;
  }
  if (len > 0) memcpy(out, pairs, len * sizeof *pairs);
  free(pairs);
  return result;
fail:
  free(pairs);
  throw_fd_errno(env, errno, "lseek");
  return NULL;
}

// Opens path for an inode-flag ioctl, or returns -1 with errno (ENOTTY for a type that has none).
static int open_for_flags(const char* path, bool dir) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
  if (fd < 0) return -1;
  struct stat st;
  // fstat failing leaves st unset: its errno is the answer; anything but a file or directory is ENOTTY.
  int err = fstat(fd, &st) != 0 ? errno : S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ? 0 : ENOTTY;
  if (err != 0) {
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// The `dir` argument of getFlags and setFlags; false with a pending TypeError when not a boolean.
static bool get_dir_flag(napi_env env, napi_value value, bool* dir) {
  if (napi_get_value_bool(env, value, dir) == napi_ok) return true;
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dir must be a boolean");
  return false;
}

static napi_value get_flags(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "getFlags(path, dir)")) return NULL;
  bool dir = false;
  if (!get_dir_flag(env, argv[1], &dir)) return NULL;
  size_t path_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;
  napi_value result = NULL;
  int fd = open_for_flags(path, dir);
  if (fd < 0) {
    ckpt_throw_errno(env, errno, "open", path, path_len);
  } else {
    int flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) ckpt_throw_errno(env, errno, "ioctl", path, path_len);
    else napi_create_uint32(env, (uint32_t)flags, &result);
    close(fd);
  }
  free(path);
  return result;
}

static napi_value get_flags_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "getFlagsFd(fd)")) return NULL;
  int64_t fd;
  if (!get_int(env, argv[0], "fd", &fd)) return NULL;
  int flags = 0;
  if (ioctl((int)fd, FS_IOC_GETFLAGS, &flags) != 0) {
    throw_fd_errno(env, errno, "ioctl");
    return NULL;
  }
  napi_value result;
  napi_create_uint32(env, (uint32_t)flags, &result);
  return result;
}

static napi_value set_flags(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "setFlags(path, dir, flags)")) return NULL;
  bool dir = false;
  if (!get_dir_flag(env, argv[1], &dir)) return NULL;
  int64_t flags64;
  if (!get_int(env, argv[2], "flags", &flags64)) return NULL;
  size_t path_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;
  int fd = open_for_flags(path, dir);
  if (fd < 0) {
    ckpt_throw_errno(env, errno, "open", path, path_len);
  } else {
    int flags = (int)(uint32_t)flags64;
    if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) ckpt_throw_errno(env, errno, "ioctl", path, path_len);
    close(fd);
  }
  free(path);
  return NULL;
}

static napi_value make_node(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv, "mknod(path, mode, major, minor)")) return NULL;
  int64_t mode, major_, minor_;
  if (!get_int(env, argv[1], "mode", &mode) || !get_int(env, argv[2], "major", &major_) || !get_int(env, argv[3], "minor", &minor_)) return NULL;
  size_t path_len;
  char* path = ckpt_get_path(env, argv[0], &path_len);
  if (path == NULL) return NULL;
  if (mknodat(AT_FDCWD, path, (mode_t)mode, makedev((unsigned)major_, (unsigned)minor_)) != 0) {
    ckpt_throw_errno(env, errno, "mknod", path, path_len);
  }
  free(path);
  return NULL;
}

#else  // not Linux: every call answers ENOSYS, which the wrappers take as "not available here"

static napi_value unsupported(napi_env env, napi_callback_info info) {
  (void)info;
  throw_fd_errno(env, ENOSYS, "fsextra");
  return NULL;
}
#define list_xattrs unsupported
#define set_xattr unsupported
#define remove_xattr unsupported
#define data_extents unsupported
#define get_flags unsupported
#define get_flags_fd unsupported
#define set_flags unsupported
#define make_node unsupported
#endif

bool ckpt_register_fsextra(napi_env env, napi_value exports) {
  return ckpt_export(env, exports, "listXattrs", list_xattrs) && ckpt_export(env, exports, "setXattr", set_xattr) &&
         ckpt_export(env, exports, "removeXattr", remove_xattr) && ckpt_export(env, exports, "dataExtents", data_extents) &&
         ckpt_export(env, exports, "getFlags", get_flags) && ckpt_export(env, exports, "getFlagsFd", get_flags_fd) &&
         ckpt_export(env, exports, "setFlags", set_flags) && ckpt_export(env, exports, "mknod", make_node);
}
