// The native addon and its fallbacks (blake3-wasm on worker threads, the JavaScript FastCDC scan)
// must make the same repository: the same chunk cuts and ids, so either can read, dedupe against
// and restore what the other wrote. CKPT_NATIVE=0 turns the addon off for one process.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-native-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

const FALLBACK = {CKPT_NATIVE: '0'}

describe('native addon and fallbacks', () => {
  it('cut and name chunks identically: each dedupes fully against the other and restores it', async () => {
    const src = path.join(work, 'src')
    await fsp.mkdir(src)
    await buildTree(src, {
      'shard.bin': {file: {random: 5 * 1024 * 1024 + 3, seed: 1}},
      'mid.bin': {file: {random: 700_000, seed: 2}},
      'sst': {dir: Object.fromEntries(Array.from({length: 20}, (_, i) => [`f${i}.txt`, `line ${i}\n`.repeat(200 * (i + 1))]))},
      'empty': '',
    })
    const repo = path.join(work, 'repo')
    await ckpt(['init', '-r', repo])
    type Summary = {id: string; newBytes: number; bytes: number}
    const first = await ckptJson<Summary>(['snapshot', src, '-r', repo], {env: FALLBACK})
    expect(first.newBytes).toBeGreaterThan(5 * 1024 * 1024)

    // New mtimes make every file be read again; with the same cuts and ids nothing new is stored
    // but the trees (which carry the mtimes).
    const later = new Date(Date.now() + 60_000)
    for (const name of ['shard.bin', 'mid.bin', 'empty', ...Array.from({length: 20}, (_, i) => `sst/f${i}.txt`)]) {
      await fsp.utimes(path.join(src, name), later, later)
    }
    const second = await ckptJson<Summary>(['snapshot', src, '-r', repo])
    expect(second.bytes).toBe(first.bytes)
    expect(second.newBytes).toBeLessThan(16 * 1024)

    // And back the other way, on a copy written natively first.
    const repo2 = path.join(work, 'repo2')
    await ckpt(['init', '-r', repo2])
    await ckptJson<Summary>(['snapshot', src, '-r', repo2])
    const earlier = new Date(Date.now() - 3_600_000)
    for (const name of ['shard.bin', 'mid.bin']) await fsp.utimes(path.join(src, name), earlier, earlier)
    const back = await ckptJson<Summary>(['snapshot', src, '-r', repo2], {env: FALLBACK})
    expect(back.newBytes).toBeLessThan(16 * 1024)

    // Each reads the other's data, re-hashing every blob.
    await ckpt(['verify', '--read-data', '-r', repo])
    await ckpt(['verify', '--read-data', '-r', repo2], {env: FALLBACK})
    const out = path.join(work, 'out')
    await ckpt(['restore', first.id, '--target', out, '-r', repo])
    const out2 = path.join(work, 'out2')
    await ckpt(['restore', 'latest', '--target', out2, '-r', repo2], {env: FALLBACK})
    const want = await captureTree(src)
    // Times aside: the first snapshot had the files' first mtimes, and without the addon times
    // are set through fs.lutimes (about a microsecond of precision).
    type Tree = Awaited<ReturnType<typeof captureTree>>
    const noTimes = (t: Tree) => new Map([...t].map(([k, v]) => [k, {...v, mtimeNs: 0n}]))
    expect(diffTrees(noTimes(want), noTimes(await captureTree(out)), {ignoreRootMtime: true})).toEqual([])
    expect(diffTrees(noTimes(want), noTimes(await captureTree(out2)), {ignoreRootMtime: true})).toEqual([])
  })
})
