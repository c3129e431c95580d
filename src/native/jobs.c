// Helpers shared by the addon's files: reading arguments, and jobs on libuv's thread pool
// settled as promises.

#include <stdio.h>
#include <stdlib.h>

#include "jobs.h"

bool get_bytes(napi_env env, napi_value value, const char* name, uint8_t** data, size_t* len) {
  bool is_typedarray = false;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok) return false;
  if (is_typedarray) {
    napi_typedarray_type type;
    size_t length;
    void* ptr;
    if (napi_get_typedarray_info(env, value, &type, &length, &ptr, NULL, NULL) != napi_ok) return false;
    size_t element = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        element = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        element = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        element = 8;
        break;
      default:
        break;
    }
    *data = ptr;
    *len = length * element;
    return true;
  }
  char message[80];
  snprintf(message, sizeof message, "%s must be a TypedArray", name);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return false;
}

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return false;
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "too few arguments");
    return false;
  }
  return true;
}

void job_free(napi_env env, async_job* job) {
  for (size_t i = 0; i < job->ref_count; i++) {
    if (job->refs[i]) napi_delete_reference(env, job->refs[i]);
  }
  free(job->refs);
  free(job);  // the embedding struct: async_job is its first member
}

// Keeps `value` alive until the job settles. False with a pending exception.
bool job_keep(napi_env env, async_job* job, napi_value value) {
  return napi_create_reference(env, value, 1, &job->refs[job->ref_count++]) == napi_ok;
}

static void job_execute(napi_env env, void* arg) {
  (void)env;
  async_job* job = arg;
  job->run(job);
}

static void job_reject(napi_env env, async_job* job, const char* what) {
  char text[96];
  napi_value message, err;
  snprintf(text, sizeof text, "%s: %s", job->name, what);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &err);
  napi_reject_deferred(env, job->deferred, err);
}

static void job_complete(napi_env env, napi_status status, void* arg) {
  async_job* job = arg;
  if (status != napi_ok) {
    job_reject(env, job, "cancelled");
  } else if (job->failure) {
    job_reject(env, job, job->failure);
  } else {
    napi_value result;
    if (job->result) {
      result = job->result(env, job);
    } else {
      napi_get_undefined(env, &result);
    }
    napi_resolve_deferred(env, job->deferred, result);
  }
  napi_delete_async_work(env, job->work);
  job_free(env, job);
}

// A zeroed job of `size` bytes (a struct that starts with async_job) with room for `refs`
// references, or NULL with a pending error.
void* job_new(napi_env env, size_t size, size_t refs, const char* name,
              void (*run)(async_job*), napi_value (*result)(napi_env, async_job*)) {
  async_job* job = calloc(1, size);
  if (job) job->refs = calloc(refs ? refs : 1, sizeof *job->refs);
  if (!job || !job->refs) {
    free(job);
    napi_throw_error(env, "ENOMEM", "out of memory for a native job");
    return NULL;
  }
  job->name = name;
  job->run = run;
  job->result = result;
  return job;
}

// Queues the job and returns its promise; the job is owned by the queue from here (freed when
// it settles, or here if it cannot be queued). NULL with a pending exception.
napi_value job_queue(napi_env env, async_job* job) {
  napi_value promise, name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) {
    job_free(env, job);
    return NULL;
  }
  if (napi_create_string_utf8(env, job->name, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, job_execute, job_complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    // The promise is made: reject it rather than leave it pending forever.
    job_reject(env, job, "could not be queued");
    if (job->work) napi_delete_async_work(env, job->work);
    job_free(env, job);
  }
  return promise;
}