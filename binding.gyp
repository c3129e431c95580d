# The native addon ckpt_native (src/native/): BLAKE3 and the FastCDC scan (content.c, blake3.c),
# (loops aligned to 32 bytes: the gear loop ran at half speed when it straddled a fetch block),
# nanosecond file times, atomic exchange, syncfs and malloc_trim (fsmeta.c).
# Built by the package's install script (`npm ci`) into build/Release/ckpt_native.node.
{
  "targets": [
    {
      "target_name": "ckpt_native",
      "sources": ["src/native/addon.c", "src/native/fsmeta.c", "src/native/content.c", "src/native/blake3.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-O3", "-falign-loops=32", "-Wall", "-Wextra"],
      "xcode_settings": {"OTHER_CFLAGS": ["-std=gnu11", "-O3", "-falign-loops=32", "-Wall", "-Wextra"]}
    }
  ]
}
