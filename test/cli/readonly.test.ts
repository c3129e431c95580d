// A repository on read-only storage (a read-only mount, chattr +i, backup media): what only
// reads works without a lock and says so once; what writes fails with exit 14 and one line.
// Needs `npm run build`.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {ckpt, runCli} from '../helpers/cli.js'
import {makeReadOnly, type ReadOnly} from '../helpers/readonly.js'
import {seededBytes, tempDir} from '../helpers/tree.js'

let root: string
let repo: string
let src: string
let ro: ReadOnly | undefined

beforeAll(async () => {
  root = await tempDir('ckpt-readonly-')
  repo = path.join(root, 'repo')
  src = path.join(root, 'src')
  await fsp.mkdir(src)
  await fsp.writeFile(path.join(src, 'a'), seededBytes(100_000, 3))
  await ckpt(['init', '-q', '--repo', repo])
  await ckpt(['snapshot', src, '-q', '--repo', repo])
  ro = makeReadOnly(repo)
})

afterAll(async () => {
  ro?.undo()
  await fsp.rm(root, {recursive: true, force: true})
})

const SKIP = 'this machine allows neither a read-only bind mount (mount -o bind,ro) nor chattr +i'
const WARNING = /^warning: could not lock repository .* \((EROFS|EPERM): read-only\); reading it without a lock$/m

describe('a read-only repository', () => {
  test.for<[string, string[]]>([
    ['verify', ['verify', '--read-data']],
    ['restore --target', ['restore', 'latest', '--target', 'OUT']],
    ['snapshots', ['snapshots']],
  ])('%s works, with at most one warning', async ([what, args], ctx) => {
    if (!ro) return ctx.skip(SKIP)
    const out = await runCli([...args.map((a) => (a === 'OUT' ? path.join(root, `out-${Math.random().toString(36).slice(2)}`) : a)), '--repo', repo])
    expect(out.code, out.stderr).toBe(0)
    const warnings = out.stderr.split('\n').filter((l) => WARNING.test(l))
    expect(warnings.length).toBe(what === 'snapshots' ? 0 : 1)
    expect(out.stderr).not.toMatch(/^ckpt:/m)
  })

  test.for<[string, string[]]>([
    ['snapshot', ['snapshot', 'SRC']],
    ['prune', ['prune', '--keep-last', '1']],
    ['forget', ['forget', 'latest']],
    ['pin', ['pin', 'latest']],
    ['restore in place (its safety snapshot writes)', ['restore', 'latest']],
  ])('%s fails with exit 14 and a one-line error', async ([, args], ctx) => {
    if (!ro) return ctx.skip(SKIP)
    const out = await runCli([...args.map((a) => (a === 'SRC' ? src : a)), '--repo', repo])
    expect(out.code, out.stderr).toBe(14)
    const errors = out.stderr.split('\n').filter((l) => l.startsWith('ckpt:'))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/^ckpt: repository .* is read-only \((EROFS|EPERM)\): ".+" must write to it/)
  })
})
