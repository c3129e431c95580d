// The native addon (src/native/, built by `npm ci` through binding.gyp into
// build/Release/ckpt_native.node), loaded once on first use. Every caller has a fallback in
// JavaScript or WebAssembly, so a missing build (`npm ci --ignore-scripts`, no compiler) costs
// speed and nanosecond times, never correctness.
import {existsSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'

export interface NativeAddon {
  // fsmeta.c
  /** utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW); throws fs-style errors. */
  setTimes(path: Buffer | string, atimeNs: bigint, mtimeNs: bigint): void
  /** renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE); throws fs-style errors (ENOSYS off Linux). */
  exchange(a: Buffer | string, b: Buffer | string): void
  /** open(path, O_RDONLY) then syncfs(2); throws fs-style errors (ENOSYS off Linux). */
  syncfs(path: Buffer | string): void
  trimMemory(): boolean

  // content.c
  /** out[0..32) = BLAKE3-256(data). */
  blake3(data: Uint8Array, out: Uint8Array): void
  /** BLAKE3-256 of every view into out (32 bytes each), on libuv's thread pool. */
  hashMany(views: readonly Uint8Array[], out: Uint8Array): Promise<void>
  /** One step of the FastCDC scan: offset past the next cut in buf, or -1 (state carried over). */
  gearNext(buf: Uint8Array, from: number, gear: Int32Array, params: Uint32Array, state: Uint32Array): number
  /**
   * gearNext over all of buf from `from`, as one job on the thread pool; with `final` the last
   * chunk ends at the end of buf. Chunk i ends at ends[i]. Resolves to the number of chunks.
   * Nothing passed may be touched until it settles.
   */
  gearScan(buf: Uint8Array, from: number, gear: Int32Array, params: Uint32Array, state: Uint32Array, final: boolean, ends: Uint32Array): Promise<number>
  /** Which BLAKE3 compression path this CPU runs: 'avx512', 'avx2' or 'portable'. */
  readonly blake3Implementation: string

  // zstd.c (contexts kept per thread)
  /** One zstd frame of src at level (1..22) into dst: its length, or 0 when it does not fit in dst. */
  zstdCompress(src: Uint8Array, dst: Uint8Array, level: number): number
  /** zstdCompress on libuv's thread pool; neither buffer may be touched until it settles. */
  zstdCompressAsync(src: Uint8Array, dst: Uint8Array, level: number): Promise<number>
  /** The one frame src holds inflated into dst: the length written, or minus a zstd error code. */
  zstdDecompress(src: Uint8Array, dst: Uint8Array): number
  /**
   * Blob i, specs[5i..5i+5) = [stored offset, stored length, compression, raw length, dst
   * offset], inflated into dst when compressed and hashed; status[i]: 0 its BLAKE3 equals
   * ids[32i..32i+32), 1 it does not, 2 a size disagrees, 3 unknown compression, below 0 minus a
   * zstd error code. One job on the thread pool; nothing passed may be touched until it settles.
   */
  openBlobs(stored: Uint8Array, specs: Uint32Array, dst: Uint8Array, ids: Uint8Array, status: Int32Array): Promise<void>
  /** The text of a zstd error code. */
  zstdErrorName(code: number): string

  // writefiles.c
  /**
   * Create (O_EXCL, O_NOFOLLOW) and fill new files on libuv's thread pool, then fchown (when
   * owners), fchmod, close and set both times; meta[3i..3i+3) = mode, uid, gid. status[i]: 0, or
   * errno * 8 + the failed step (1 open, 2 write, 3 fchown, 4 fchmod, 5 close, 6 utimensat);
   * files after a failure are left alone (-1). Nothing passed may be touched until it settles.
   */
  writeFiles(paths: readonly Uint8Array[], parts: readonly (readonly Uint8Array[])[], meta: Uint32Array, mtimes: BigInt64Array, owners: boolean, status: Int32Array): Promise<void>

  // fsextra.c (fs-style errors; see src/core/fsextra.ts)
  /** llistxattr + lgetxattr: every attribute; one the kernel would not read has `error` (its code) instead of a value. */
  listXattrs(path: Buffer | string): {name: Buffer; value?: Buffer; error?: string}[]
  /** lsetxattr(path, name, value, 0). */
  setXattr(path: Buffer | string, name: Buffer | string, value: Buffer): void
  /** lremovexattr. */
  removeXattr(path: Buffer | string, name: Buffer | string): void
  /** SEEK_DATA/SEEK_HOLE over the open file: [offset, length] pairs of its data regions. */
  dataExtents(fd: number): Float64Array
  /** FS_IOC_GETFLAGS on path opened O_RDONLY|O_NONBLOCK|O_NOFOLLOW (+O_DIRECTORY); ENOTTY unless a file or directory. */
  getFlags(path: Buffer | string, dir: boolean): number
  getFlagsFd(fd: number): number
  /** FS_IOC_SETFLAGS, the path opened as for getFlags. */
  setFlags(path: Buffer | string, dir: boolean, flags: number): void
  /** mknodat(AT_FDCWD, path, mode, makedev(major, minor)); mode carries the type bits. */
  mknod(path: Buffer | string, mode: number, major: number, minor: number): void
}

// undefined: not tried yet; null: tried and unavailable.
let addon: NativeAddon | null | undefined

/** The addon, or null when it is not built or cannot load here. CKPT_NATIVE=0 turns it off (tests of the fallbacks). */
export function nativeAddon(): NativeAddon | null {
  if (addon !== undefined) return addon
  addon = null
  if (process.env['CKPT_NATIVE'] === '0') return addon
  try {
    const loaded = createRequire(import.meta.url)(join(packageRoot(), 'build', 'Release', 'ckpt_native.node')) as Partial<NativeAddon>
    // A binary built from older sources lacks functions: use the fallbacks until it is rebuilt.
    if (typeof loaded.openBlobs === 'function' && typeof loaded.writeFiles === 'function' && typeof loaded.listXattrs === 'function') addon = loaded as NativeAddon
  } catch {
    // Not built, or not loadable on this system: callers fall back.
  }
  return addon
}

// The directory holding package.json, walking up from this module: src/core/ when run from
// source, dist/core/ when built. build/Release/ sits beside package.json.
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) throw new Error('ckpt: no package.json above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
  return dir
}
