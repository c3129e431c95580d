// Two hosts at once on one S3 repository (Swift s3api on loopback): two processes with separate
// caches snapshot their own directories in a loop while a third prunes in a loop. Afterwards every snapshot kept
// restores exactly what was snapshotted, and verify --read-data finds nothing.
import {randomBytes} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ckpt, ckptJson} from '../helpers/cli.js'
import {type Swift, startSwift, swiftMissing} from '../helpers/swift.js'
import {buildTree, tempDir} from '../helpers/tree.js'

const ROUNDS = Number(process.env.CKPT_S3_ROUNDS) || 4
const skip = swiftMissing()
if (skip) console.warn(skip)

describe.skipIf(Boolean(skip))('two hosts and a pruner on one S3 repository', () => {
  let swift: Swift
  let work: string
  let env: Record<string, string>
  beforeAll(async () => {
    work = await tempDir('ckpt-s3hosts-')
    swift = await startSwift(path.join(work, 'swift'))
    env = {...swift.env, CKPT_S3_LIST_LAG_MS: '500', CKPT_CACHE_DIR: path.join(work, 'cache')}
  })
  afterAll(async () => {
    await swift?.stop()
    if (work) await fsp.rm(work, {recursive: true, force: true})
  })

  it('snapshots from two hosts while prune runs: kept snapshots restore exactly, verify is clean', async () => {
    const repo = `s3://ckpt-hosts-${randomBytes(3).toString('hex')}/shared`
    await ckpt(['init', '--repo', repo, '-q'], {env})
    const hosts = ['alpha', 'beta']
    for (const h of hosts) {
      await fsp.mkdir(path.join(work, h))
      await buildTree(path.join(work, h), {'base.bin': {file: {random: 3 * 1024 * 1024, seed: h.length}}, 'gen.txt': ''})
    }
    let writersDone = 0
    const writer = async (host: string) => {
      for (let i = 0; i < ROUNDS; i++) {
        // Each round adds new data (a fresh random file) and names itself in gen.txt and its tag.
        await fsp.writeFile(path.join(work, host, 'gen.txt'), `${host} round ${i}\n`)
        await fsp.writeFile(path.join(work, host, 'new.bin'), randomBytes(700_000))
        // Each host with its own cache, as on two machines.
        await ckpt(['snapshot', path.join(work, host), '--host', host, '--tag', `r${i}`, '--repo', repo, '--retry-lock', '5m', '-q'], {env: {...env, CKPT_CACHE_DIR: path.join(work, `cache-${host}`)}})
      }
      writersDone++
    }
    const pruner = async () => {
      let runs = 0
      while (writersDone < hosts.length || runs === 0) {
        await ckpt(['prune', '--keep-last', '2', '--repo', repo, '--retry-lock', '5m', '-q'], {env: {...env, CKPT_CACHE_DIR: path.join(work, 'cache-pruner')}})
        runs++
      }
      return runs
    }
    const [, , pruneRuns] = await Promise.all([writer('alpha'), writer('beta'), pruner()])
    expect(pruneRuns).toBeGreaterThan(0)

    const snaps = await ckptJson<{id: string; host: string; tags: string[]}[]>(['snapshots', '--repo', repo], {env})
    // The last round of each host survives every prune (keep-last 2 per host and directory).
    for (const h of hosts) expect(snaps.some((s) => s.host === h && s.tags.includes(`r${ROUNDS - 1}`))).toBe(true)
    for (const s of snaps) {
      const target = path.join(work, `restore-${s.id.slice(0, 8)}`)
      await ckpt(['restore', s.id, '--target', target, '--repo', repo, '-q'], {env})
      const round = s.tags.find((t) => /^r\d+$/.test(t))!.slice(1)
      expect(await fsp.readFile(path.join(target, 'gen.txt'), 'utf8')).toBe(`${s.host} round ${round}\n`)
      expect((await fsp.stat(path.join(target, 'base.bin'))).size).toBe(3 * 1024 * 1024)
    }
    const verified = await ckptJson<{errors: number}>(['verify', '--read-data', '--repo', repo], {env})
    expect(verified.errors).toBe(0)
  })
})
