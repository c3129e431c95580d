// The built CLI restoring everything a filesystem holds: the summary counts hard links and FIFOs;
// as an unprivileged user (setpriv to nobody) what needs root (device nodes, trusted.* xattrs,
// the immutable flag) is skipped with one warning per kind and exit 3, while the rest (contents,
// links, holes, user.* xattrs, ACLs, the FIFO, a path past PATH_MAX) comes back the same.
import {spawnSync} from 'node:child_process'
import {chmodSync, chownSync, mkdirSync, promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {removeTree} from '../../src/restore/deeptree.js'
import {BIN, ckpt, ckptJson, runCli} from '../helpers/cli.js'
import {awkwardSpec, buildTree, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

const isRoot = process.getuid?.() === 0
const NOBODY = 65534
let work: string
let repo: string
let src: string
let id: string

beforeAll(async () => {
  work = await fsp.realpath(await tempDir('ckpt-cli-fidelity-'))
  chmodSync(work, 0o755)
  repo = path.join(work, 'repo')
  src = path.join(work, 'src')
  mkdirSync(src)
  await buildTree(src, awkwardSpec())
  await ckpt(['init', '--repo', repo])
  id = (await ckptJson<{id: string}>(['snapshot', src, '--repo', repo])).id
})

afterAll(() => {
  removeTree(work)
})

describe('restore summary', () => {
  it('counts hard links and special files, with no warnings when everything is restored', async () => {
    const target = path.join(work, 'out-root')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/: 13 files \(4 hard links\), \d+ directories, 0 symlinks, 1 FIFO(, 1 device node)?, /)
    expect(r.stderr).not.toMatch(/warning/)
    // And verify agrees: the repository is sound (an 8 KiB path is no damage) and the copy matches.
    const v = await runCli(['verify', id, '--source', target, '--repo', repo])
    expect(v.code, `${v.stdout}${v.stderr}`).toBe(0)
  })
})

describe('without the native addon', () => {
  it('restores contents, links, holes and the deep path (fsync walk at any depth); xattrs, flags and special files are one warning each, exit 3', async () => {
    const target = path.join(work, 'out-no-addon')
    const r = await runCli(['restore', id, '--target', target, '--repo', repo], {env: {CKPT_NATIVE: '0'}})
    expect(r.code, r.stderr).toBe(3)
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: ')).map((l) => l.replace(/ \([^()]*\)$/, ''))
    expect(warnings.sort()).toEqual([
      'warning: the native addon is not built: FIFOs and device nodes are not restored',
      'warning: the native addon is not built: extended attributes and ACLs are not restored',
      ...(isRoot ? ['warning: the native addon is not built: inode flags (chattr) are not restored'] : []),
    ])
    const want = await captureTree(src)
    const got = await captureTree(target)
    const diff = diffTrees(want, got, {ignoreRootMtime: true})
    // Only what the addon does differs: xattrs and ACLs, flags, the FIFO and device.
    // Node's lutimes takes seconds as a double (about microseconds at today's times), rounded
    // either way: mtimes within 1 µs.
    const closeTimes = (l: string) => {
      const m = /: mtimeNs (\d+) != (\d+)$/.exec(l)
      if (m === null) return false
      const d = BigInt(m[1]!) - BigInt(m[2]!)
      return d < 1000n && d > -1000n
    }
    expect(diff.filter((l) => !/: (xattrs|flags) |^missing "(fifo|null)"$/.test(l) && !closeTimes(l))).toEqual([])
    expect(got.get(Buffer.from('links-dir/links-b').toString('hex'))!.nlink).toBe(3)
  })
})

describe('as an unprivileged user', () => {
  it('skips what needs root with one warning per kind and exit 3, and restores the rest the same', async (ctx) => {
    if (!isRoot) ctx.skip('needs root')
    spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, repo])
    const home = path.join(work, 'home')
    // Restore builds its temp tree beside the target: the user owns the directory around it.
    const own = path.join(work, 'nobody')
    const target = path.join(own, 'out')
    for (const d of [home, own]) {
      mkdirSync(d)
      chownSync(d, NOBODY, NOBODY)
    }
    const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, BIN, 'restore', id, '--target', target, '--repo', repo], {encoding: 'utf8', env: {...process.env, HOME: home}})
    expect(r.status, r.stderr).toBe(3)
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning: '))
    expect(warnings.sort()).toEqual([
      'warning: device nodes need root to restore: not restored (null)',
      'warning: inode flags (chattr) could not be set (EPERM; immutable and append-only need root): not restored (3 entries, first append.log)',
      'warning: trusted.* extended attributes need root to restore: not restored (xattr.txt)',
    ])
    expect(r.stderr).toMatch(/1 FIFO, 1 special file skipped/)
    const want = await captureTree(src)
    const got = await captureTree(target)
    // What differs is exactly what needs root: owners, the device, trusted.*, immutable/append-only.
    const key = (rel: string) => Buffer.from(rel).toString('hex')
    want.delete(key('null'))
    const diff = diffTrees(want, got, {ignoreRootMtime: true}).filter((l) => !/: (uid|gid) /.test(l))
    expect(diff).toEqual([
      expect.stringMatching(/^"append\.log": flags 32 != undefined$/),
      expect.stringMatching(/^"immutable\.txt": flags 16 != undefined$/),
      expect.stringMatching(/^"links-dir\/locked-b": flags 16 != undefined$/),
      expect.stringMatching(/^"locked-a": flags 16 != undefined$/),
      expect.stringMatching(/^"xattr\.txt": xattrs .*trusted\.t=070007.* != (?!.*trusted)/),
    ])
    expect(got.get(key('nodump'))!.flags).toBe(0x40) // nodump is the owner's to set
  })
})
