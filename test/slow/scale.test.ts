// The slow suite: sizes that do not belong in every CI run (`npm run test:slow`). Peak memory is
// the CLI process's maximum RSS as GNU time reports it.
import {spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, ckpt} from '../helpers/cli.js'
import {captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-slow-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

/** Run the CLI under GNU time (Debian package `time`) to learn its peak RSS in MB. */
async function runMeasured(args: string[]): Promise<{code: number | null; maxRssMb: number; stdout: string; stderr: string}> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', 'maxrss-kb=%M', process.execPath, BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, CI: '1'}})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d))
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const m = /maxrss-kb=(\d+)/.exec(stderr)
      resolve({code, stdout, stderr, maxRssMb: m ? Number(m[1]) / 1024 : Number.NaN})
    })
  })
}

async function writeSeeded(file: string, bytes: number, seed: number): Promise<void> {
  const fh = await fsp.open(file, 'w')
  const piece = 64 * 1024 * 1024
  for (let off = 0, i = 0; off < bytes; off += piece, i++) await fh.write(seededBytes(Math.min(piece, bytes - off), seed * 1000 + i))
  await fh.close()
}

async function countFiles(dir: string): Promise<number> {
  let n = 0
  for (const e of await fsp.readdir(dir, {withFileTypes: true})) n += e.isDirectory() ? await countFiles(path.join(dir, e.name)) : 1
  return n
}

describe('scale', () => {
  it('2 GiB files: round trip exact, at most ~100 objects per GiB, peak memory under 200 MB', async () => {
    const src = path.join(work, 'big')
    await fsp.mkdir(src)
    await writeSeeded(path.join(src, 'a.bin'), 2 * 1024 ** 3, 1)
    await writeSeeded(path.join(src, 'b.bin'), 2 * 1024 ** 3 + 12345, 2)
    const repo = path.join(work, 'repo-big')
    await ckpt(['init', '--repo', repo])
    const snap = await runMeasured(['snapshot', src, '--repo', repo, '--json'])
    expect(snap.code).toBe(0)
    console.log(`snapshot of 4 GiB: peak RSS ${snap.maxRssMb.toFixed(0)} MB`)
    expect(snap.maxRssMb).toBeLessThan(200)
    const objects = await countFiles(repo)
    console.log(`objects in the repository for 4 GiB: ${objects}`)
    expect(objects).toBeLessThan(4 * 110)
    const target = path.join(work, 'big-out')
    const restore = await runMeasured(['restore', 'latest', '--target', target, '--repo', repo])
    expect(restore.code).toBe(0)
    console.log(`restore of 4 GiB: peak RSS ${restore.maxRssMb.toFixed(0)} MB`)
    expect(restore.maxRssMb).toBeLessThan(200)
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
    await fsp.rm(target, {recursive: true})
    await fsp.rm(src, {recursive: true})
  })

  it('100,000 small files: round trip exact, peak memory under 200 MB', async () => {
    const src = path.join(work, 'small')
    await fsp.mkdir(src)
    for (let d = 0; d < 100; d++) {
      const dir = path.join(src, `d${d}`)
      await fsp.mkdir(dir)
      await Promise.all(Array.from({length: 1000}, (_, f) => fsp.writeFile(path.join(dir, `f${f}.json`), `{"dir": ${d}, "file": ${f}, "pad": "${'x'.repeat((d * 7 + f) % 900)}"}\n`)))
    }
    const repo = path.join(work, 'repo-small')
    await ckpt(['init', '--repo', repo])
    const snap = await runMeasured(['snapshot', src, '--repo', repo, '--json'])
    expect(snap.code).toBe(0)
    expect(JSON.parse(snap.stdout).files).toBe(100_000)
    console.log(`snapshot of 100k files: peak RSS ${snap.maxRssMb.toFixed(0)} MB`)
    expect(snap.maxRssMb).toBeLessThan(200)
    const again = await runMeasured(['snapshot', src, '--repo', repo, '--json'])
    expect(JSON.parse(again.stdout).filesRead).toBe(0)
    const target = path.join(work, 'small-out')
    const restore = await runMeasured(['restore', 'latest', '--target', target, '--repo', repo])
    expect(restore.code).toBe(0)
    console.log(`restore of 100k files: peak RSS ${restore.maxRssMb.toFixed(0)} MB`)
    expect(restore.maxRssMb).toBeLessThan(200)
    expect(diffTrees(await captureTree(src), await captureTree(target))).toEqual([])
  })
})
