# The native addon ckpt_native (src/native/): BLAKE3 and the FastCDC scan (content.c, blake3.c),
# (loops aligned to 32 bytes: the gear loop ran at half speed when it straddled a fetch block),
# zstd with contexts kept per thread, inflating into the caller's buffers (zstd.c), nanosecond
# file times, atomic exchange, syncfs and malloc_trim (fsmeta.c), and restore's small files
# written in batches on the thread pool (writefiles.c), xattrs, sparse files' data extents,
# inode flags and mknod (fsextra.c).
# zstd itself (libzstd, compression and decompression only) is compiled from the sources the
# zstd-napi package ships (pinned in package-lock.json): see docs/DESIGN.md, "zstd".
# Built by the package's install script (`npm ci`) into build/Release/ckpt_native.node.
{
  "variables": {
    "zstd_lib": "<!(node -p \"const p = require('path'); p.relative(process.cwd(), p.join(p.dirname(require.resolve('zstd-napi/package.json')), 'deps', 'zstd', 'lib'))\")"
  },
  "targets": [
    {
      "target_name": "ckpt_native",
      "dependencies": ["libzstd"],
      "sources": ["src/native/addon.c", "src/native/jobs.c", "src/native/fsmeta.c", "src/native/content.c", "src/native/blake3.c", "src/native/zstd.c", "src/native/writefiles.c", "src/native/fsextra.c"],
      "include_dirs": ["<(zstd_lib)"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-O3", "-falign-loops=32", "-Wall", "-Wextra"],
      "xcode_settings": {"OTHER_CFLAGS": ["-std=gnu11", "-O3", "-falign-loops=32", "-Wall", "-Wextra"]}
    },
    {
      "target_name": "libzstd",
      "type": "static_library",
      "sources": [
        "<(zstd_lib)/common/debug.c",
        "<(zstd_lib)/common/entropy_common.c",
        "<(zstd_lib)/common/error_private.c",
        "<(zstd_lib)/common/fse_decompress.c",
        "<(zstd_lib)/common/xxhash.c",
        "<(zstd_lib)/common/zstd_common.c",
        "<(zstd_lib)/compress/fse_compress.c",
        "<(zstd_lib)/compress/hist.c",
        "<(zstd_lib)/compress/huf_compress.c",
        "<(zstd_lib)/compress/zstd_compress.c",
        "<(zstd_lib)/compress/zstd_compress_literals.c",
        "<(zstd_lib)/compress/zstd_compress_sequences.c",
        "<(zstd_lib)/compress/zstd_compress_superblock.c",
        "<(zstd_lib)/compress/zstd_double_fast.c",
        "<(zstd_lib)/compress/zstd_fast.c",
        "<(zstd_lib)/compress/zstd_lazy.c",
        "<(zstd_lib)/compress/zstd_ldm.c",
        "<(zstd_lib)/compress/zstd_opt.c",
        "<(zstd_lib)/compress/zstd_preSplit.c",
        "<(zstd_lib)/decompress/huf_decompress.c",
        "<(zstd_lib)/decompress/zstd_ddict.c",
        "<(zstd_lib)/decompress/zstd_decompress.c",
        "<(zstd_lib)/decompress/zstd_decompress_block.c"
      ],
      "conditions": [
        ["target_arch=='x64' and OS!='win'", {"sources": ["<(zstd_lib)/decompress/huf_decompress_amd64.S"]}]
      ],
      "defines": ["XXH_NAMESPACE=ZSTD_", "ZSTD_NO_TRACE", "ZSTDLIB_VISIBLE=", "ZSTDERRORLIB_VISIBLE="],
      "cflags_c": ["-O3", "-fvisibility=hidden"],
      "xcode_settings": {"OTHER_CFLAGS": ["-O3", "-fvisibility=hidden"]}
    }
  ]
}
