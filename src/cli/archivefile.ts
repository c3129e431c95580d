// Where a command's byte stream goes (ckpt export): stdout, or a file that appears whole or not at
// all (written beside its name, fsynced, renamed over it), optionally through zstd.
import {createWriteStream, promises as fsp} from 'node:fs'
import path from 'node:path'
import {finished} from 'node:stream/promises'
import type {Writable} from 'node:stream'

import {BadPathError, errnoCode, UsageError} from '../core/errors.js'
import {zstdCompressStream} from '../core/zstdstream.js'

export interface Output {
  /** Write here. */
  stream: Writable
  /** Everything written: flush, and for a file make it durable and give it its name. */
  commit(): Promise<void>
  /** Failed: a file is removed, never left half written. */
  abort(): Promise<void>
}

export async function openOutput(file: string | undefined, zstd: boolean): Promise<Output> {
  const compressor = zstd ? zstdCompressStream() : undefined
  if (zstd && !compressor) throw new UsageError('--zstd needs the optional zstd-napi package; or pipe the archive through zstd')
  if (file === undefined) {
    if (!compressor) return {stream: process.stdout, commit: async () => undefined, abort: async () => undefined}
    compressor.pipe(process.stdout, {end: false})
    return {
      stream: compressor,
      commit: async () => {
        compressor.end()
        await finished(compressor)
      },
      abort: async () => {
        compressor.destroy()
      },
    }
  }
  const final = path.resolve(file)
  const temp = path.join(path.dirname(final), `.${path.basename(final)}.ckpt-${process.pid}.tmp`)
  const out = createWriteStream(temp, {flags: 'wx', mode: 0o644, highWaterMark: 1024 * 1024})
  await new Promise<void>((resolve, reject) => {
    out.once('open', () => resolve())
    out.once('error', (err) => reject(new BadPathError(`cannot write ${file}: ${errnoCode(err) ?? err.message}`)))
  })
  if (compressor) compressor.pipe(out)
  const stream = compressor ?? out
  return {
    stream,
    commit: async () => {
      stream.end()
      await finished(out)
      const handle = await fsp.open(temp, 'r')
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fsp.rename(temp, final)
    },
    abort: async () => {
      stream.destroy()
      out.destroy()
      await finished(out).catch(() => undefined)
      await fsp.rm(temp, {force: true})
    },
  }
}
