// The slow suite: a 4 GiB file through `ckpt export` and `ckpt import` with peak memory flat
// (the CLI's maximum RSS as GNU time reports it), and the bytes exact both ways.
// CKPT_SLOW_TAR_GIB sets the size (default 4) for a quicker local run.
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, ckpt} from '../helpers/cli.js'
import {fileHash, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-slow-tar-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

async function runMeasured(args: string[]): Promise<{code: number | null; maxRssMb: number; stderr: string; stdout: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'maxrss-kb=%M', process.execPath, BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, CI: '1'}})
    let stderr = ''
    let stdout = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const m = /maxrss-kb=(\d+)/.exec(stderr)
      resolve({code, stderr, stdout, maxRssMb: m ? Number(m[1]) / 1024 : Number.NaN})
    })
  })
}

/** sha256 of one member's content, read with GNU tar from the archive. */
function memberHash(archive: string, member: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = spawn('tar', ['-xOf', archive, member], {stdio: ['ignore', 'pipe', 'inherit']})
    const h = createHash('sha256')
    t.stdout.on('data', (d: Buffer) => h.update(d))
    t.on('error', reject)
    t.on('close', (code) => (code === 0 ? resolve(h.digest('hex')) : reject(new Error(`tar exited ${code}`))))
  })
}

describe('tar at scale', () => {
  it('export and import of a 4 GiB file keep peak memory flat', async () => {
    const gib = Number(process.env.CKPT_SLOW_TAR_GIB ?? 4)
    const src = path.join(work, 'src')
    await fsp.mkdir(src)
    const big = path.join(src, 'big.bin')
    const fh = await fsp.open(big, 'w')
    const piece = 64 * 1024 * 1024
    const total = gib * 1024 ** 3 + 4321
    for (let off = 0, i = 0; off < total; off += piece, i++) await fh.write(seededBytes(Math.min(piece, total - off), 9000 + i))
    await fh.close()
    const want = await fileHash(big)
    const repo = path.join(work, 'repo')
    await ckpt(['init', '--repo', repo])
    await ckpt(['snapshot', src, '--repo', repo])
    await fsp.rm(src, {recursive: true})

    const archive = path.join(work, 'big.tar')
    const exp = await runMeasured(['export', 'latest', '-o', archive, '--repo', repo])
    expect(exp.code, exp.stderr).toBe(0)
    console.log(`export of ${gib} GiB: peak RSS ${exp.maxRssMb.toFixed(0)} MB`)
    expect(exp.maxRssMb).toBeLessThan(200)
    expect(await memberHash(archive, 'big.bin')).toBe(want)

    const imp = await runMeasured(['import', archive, '--source', '/srv/big', '--repo', repo, '--json'])
    expect(imp.code, imp.stderr).toBe(0)
    console.log(`import of ${gib} GiB: peak RSS ${imp.maxRssMb.toFixed(0)} MB`)
    expect(imp.maxRssMb).toBeLessThan(200)
    // The same chunks as the snapshot's: the import stores nothing new but its root tree.
    expect(JSON.parse(imp.stdout).newBlobs).toBe(1)
  })
})
