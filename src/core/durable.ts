// Durable writes to the local filesystem: an atomic file write (temp beside the target, fsync,
// rename, fsync of the directory) and a directory fsync. The local backend stores its objects
// with them, and restore makes its trees durable with them: filesystem work, not a backend's.
import {randomBytes} from 'node:crypto'
import {constants as fsc, promises as fsp} from 'node:fs'
import path from 'node:path'

import {classifyOsError} from './errors.js'
import {faultPoint} from './faultpoint.js'

export async function fsyncDir(dir: string | Buffer): Promise<void> {
  const fh = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * Write `data` to `target` atomically and durably (temp, fsync, rename, fsync dir). `tempBase` is
 * the temp file's name beside the target (the local backend's record their writer).
 */
export async function atomicWriteFile(target: string, data: Uint8Array | readonly Uint8Array[], mode = 0o444, durable = true, tempBase = `.tmp-${randomBytes(8).toString('hex')}`): Promise<void> {
  const dir = path.dirname(target)
  const temp = path.join(dir, tempBase)
  const parts = data instanceof Uint8Array ? [data] : [...data]
  const fh = await fsp.open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode)
  try {
    try {
      for (let i = 0; i < parts.length; ) {
        // writev takes at most IOV_MAX buffers; a pack may have thousands of blobs.
        const batch = parts.slice(i, i + 512)
        const expected = batch.reduce((n, b) => n + b.byteLength, 0)
        const {bytesWritten} = await fh.writev(batch)
        if (bytesWritten !== expected) await writeRest(fh, batch, bytesWritten)
        i += batch.length
      }
      if (durable) faultPoint('put.written')
      if (durable) await fh.sync()
      if (durable) faultPoint('put.synced')
    } finally {
      await fh.close()
    }
    await fsp.rename(temp, target)
    if (durable) faultPoint('put.renamed')
  } catch (err) {
    await fsp.rm(temp, {force: true})
    throw classifyOsError(err, target)
  }
  if (durable) await fsyncDir(dir)
  if (durable) faultPoint('put.dirsynced')
}

async function writeRest(fh: fsp.FileHandle, parts: readonly Uint8Array[], done: number): Promise<void> {
  // A short writev (rare: signals, some filesystems): finish piece by piece.
  let skip = done
  for (const part of parts) {
    if (skip >= part.byteLength) {
      skip -= part.byteLength
      continue
    }
    let rest = part.subarray(skip)
    skip = 0
    while (rest.byteLength > 0) {
      const {bytesWritten} = await fh.write(rest)
      rest = rest.subarray(bytesWritten)
    }
  }
}

