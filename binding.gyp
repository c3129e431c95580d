# The native addon behind src/core/fsmeta.ts: nanosecond file times (utimensat), atomic exchange (renameat2) and syncfs.
# Built by the package's install script (`npm ci`) into build/Release/ckpt_fsmeta.node.
{
  "targets": [
    {
      "target_name": "ckpt_fsmeta",
      "sources": ["src/native/fsmeta.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-Wall", "-Wextra"],
      "xcode_settings": {"OTHER_CFLAGS": ["-Wall", "-Wextra"]}
    }
  ]
}
