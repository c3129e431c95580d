// Helpers shared by the addon's files (jobs.c): reading arguments, and jobs on libuv's thread
// pool settled as promises.
#ifndef CKPT_JOBS_H
#define CKPT_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

// The bytes of a TypedArray argument, or false with a pending TypeError.
bool get_bytes(napi_env env, napi_value value, const char* name, uint8_t** data, size_t* len);
// The first `want` arguments, or false with a pending TypeError.
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv);

// The common part of an async job: embedded first in each job's struct. `refs` keep the JS
// arguments whose memory `run` reads or writes alive until the job settles.
typedef struct async_job {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref* refs;
  size_t ref_count;
  void (*run)(struct async_job* job);                         // off the main thread: no N-API calls
  napi_value (*result)(napi_env env, struct async_job* job);  // NULL after run: undefined
  const char* failure;                                        // set by run to reject with this message
  const char* name;
} async_job;

// A zeroed job of `size` bytes (a struct that starts with async_job) with room for `refs`
// references, or NULL with a pending error.
void* job_new(napi_env env, size_t size, size_t refs, const char* name, void (*run)(async_job*),
              napi_value (*result)(napi_env, async_job*));
// Keeps `value` alive until the job settles. False with a pending exception.
bool job_keep(napi_env env, async_job* job, napi_value value);
// Frees a job that was never queued.
void job_free(napi_env env, async_job* job);
// Queues the job and returns its promise; the job is owned by the queue from here (freed when
// it settles, or here if it cannot be queued). NULL with a pending exception.
napi_value job_queue(napi_env env, async_job* job);

#endif
