// Entry point of the ckpt_native addon (built by `npm ci` through binding.gyp).
// Plain C against node_api.h (N-API version 8), so the binary does not depend on the Node version.
#include "addon.h"

bool ckpt_export(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!ckpt_register_fsmeta(env, exports) || !ckpt_register_content(env, exports) || !ckpt_register_zstd(env, exports) ||
      !ckpt_register_writefiles(env, exports) || !ckpt_register_fsextra(env, exports)) {
    return NULL;
  }
  return exports;
}
