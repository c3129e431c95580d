// The ckpt_native addon: one binary, several groups of functions, each registered by its file.
#ifndef CKPT_ADDON_H
#define CKPT_ADDON_H

#include <stdbool.h>
#include <node_api.h>

bool ckpt_export(napi_env env, napi_value exports, const char* name, napi_callback cb);

// fsmeta.c: setTimes, exchange, syncfs, trimMemory.
bool ckpt_register_fsmeta(napi_env env, napi_value exports);
// content.c: BLAKE3 (one-shot, and batches off the main thread) and the FastCDC scan.
bool ckpt_register_content(napi_env env, napi_value exports);
// zstd.c: zstd with per-thread contexts, and blobs inflated and checked in batches.
bool ckpt_register_zstd(napi_env env, napi_value exports);
// writefiles.c: a batch of new small files created, filled, owned, moded and timed on the pool.
bool ckpt_register_writefiles(napi_env env, napi_value exports);
// fsextra.c: extended attributes, data extents (SEEK_DATA/SEEK_HOLE), inode flags, mknod.
bool ckpt_register_fsextra(napi_env env, napi_value exports);

// fsmeta.c's helpers for the other fs files: a path argument (Buffer or string) copied
// NUL-terminated (free() it; NULL with a pending exception), and a Node-style fs error thrown.
char* ckpt_get_path(napi_env env, napi_value value, size_t* len_out);
void ckpt_throw_errno(napi_env env, int err, const char* syscall, const char* path, size_t path_len);

#endif
