// A real full disk: a 24 MiB tmpfs this test mounts. A snapshot too big for it fails with exit 7,
// frees what it wrote at once (no temp pack keeps the disk full), and leaves the repository
// verifying clean; once there is room again the next snapshot succeeds. A restore --target onto
// a file system too small for the snapshot fails with exit 7 and leaves nothing there.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {runCli} from '../helpers/cli.js'
import {mountTmpfs, unmount, usage} from '../helpers/tmpfs.js'
import {captureTree, diffTrees, seededBytes, tempDir} from '../helpers/tree.js'

const MiB = 1024 * 1024
let root: string
const mounted: string[] = []
let refused: string | undefined

beforeAll(async () => {
  root = await tempDir('ckpt-fulldisk-')
  for (const d of ['disk', 'small']) {
    await fsp.mkdir(path.join(root, d))
    const m = mountTmpfs(path.join(root, d), d === 'disk' ? 24 * MiB : 4 * MiB)
    if (!m.ok) {
      refused = m.reason
      return
    }
    mounted.push(path.join(root, d))
  }
})
afterAll(async () => {
  for (const m of mounted) unmount(m)
  if (root) await fsp.rm(root, {recursive: true, force: true})
})

const noStack = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+/)

async function tempFiles(dir: string): Promise<string[]> {
  return (await fsp.readdir(dir, {recursive: true})).filter((p) => /(^|\/)\.tmp-|\.ckpt-restore-/.test(p))
}

describe('a full disk', () => {
  test('snapshot: exit 7, nothing left behind, the repository verifies, and the next snapshot succeeds once there is room', async (ctx) => {
    if (refused) {
      console.warn(`skipped: this test mounts a small tmpfs and ${refused}`)
      ctx.skip()
    }
    const repo = path.join(root, 'disk', 'repo')
    const src = path.join(root, 'src')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'small'), seededBytes(2 * MiB, 1))
    expect((await runCli(['init', '-q', '--repo', repo])).code).toBe(0)
    expect((await runCli(['snapshot', src, '-q', '--repo', repo])).code).toBe(0)
    const first = await captureTree(src)
    const usedBefore = usage(repo).used

    // 40 MiB of incompressible data into 24 MiB.
    await fsp.writeFile(path.join(src, 'big'), seededBytes(40 * MiB, 2))
    const full = await runCli(['snapshot', src, '-q', '--repo', repo])
    expect(full.code, full.stderr).toBe(7)
    noStack(full.stderr)
    expect(await tempFiles(repo)).toEqual([])
    // The space the failed snapshot took is free again (what it stored that nothing references may stay until prune; not a pack's worth).
    expect(usage(repo).used - usedBefore).toBeLessThan(17 * MiB)

    const v = await runCli(['verify', '--read-data', '-q', '--repo', repo])
    expect(v.code, v.stdout + v.stderr).toBe(0)
    const out = path.join(root, 'out1')
    expect((await runCli(['restore', 'latest', '--target', out, '-q', '--repo', repo])).code).toBe(0)
    expect(diffTrees(first, await captureTree(out), {ignoreRootMtime: true})).toEqual([])

    // Room again: the next snapshot works.
    await fsp.writeFile(path.join(src, 'big'), seededBytes(3 * MiB, 3))
    const next = await runCli(['snapshot', src, '-q', '--repo', repo])
    expect(next.code, next.stderr).toBe(0)
    expect(await tempFiles(repo)).toEqual([])
    expect((await runCli(['verify', '--read-data', '-q', '--repo', repo])).code).toBe(0)
  })

  test('restore --target onto a file system too small: exit 7 and nothing left there', async (ctx) => {
    if (refused) {
      console.warn(`skipped: this test mounts a small tmpfs and ${refused}`)
      ctx.skip()
    }
    const repo = path.join(root, 'repo2')
    const src = path.join(root, 'src2')
    await fsp.mkdir(src)
    await fsp.writeFile(path.join(src, 'a'), seededBytes(6 * MiB, 4))
    await fsp.writeFile(path.join(src, 'b'), 'small\n')
    expect((await runCli(['init', '-q', '--repo', repo])).code).toBe(0)
    expect((await runCli(['snapshot', src, '-q', '--repo', repo])).code).toBe(0)
    const small = path.join(root, 'small')
    const r = await runCli(['restore', 'latest', '--target', path.join(small, 'out'), '-q', '--repo', repo])
    expect(r.code, r.stderr).toBe(7)
    noStack(r.stderr)
    expect(await fsp.readdir(small)).toEqual([])
    expect(usage(small).used).toBeLessThan(MiB)
  })
})
