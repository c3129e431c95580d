// `ckpt snapshot DIR` without --repo or CKPT_REPO creates ./.ckpt (README's first command relies
// on it), and always says where, on stderr, even with --quiet or --json. Needs `npm run build`.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterEach, expect, test} from 'vitest'

import {ckpt} from '../helpers/cli.js'
import {tempDir} from '../helpers/tree.js'

let root: string | undefined
afterEach(async () => {
  if (root) await fsp.rm(root, {recursive: true, force: true})
  root = undefined
})

test.for(['-q', '--json'])('snapshot %s with no repository given: created at ./.ckpt, and stderr says so with the absolute path', async (flag) => {
  root = await tempDir('ckpt-implicit-')
  const cron = path.join(root, 'cron-cwd')
  const src = path.join(root, 'state')
  await fsp.mkdir(cron)
  await fsp.mkdir(src)
  await fsp.writeFile(path.join(src, 'a'), 'a')
  const created = `created repository at ${path.join(cron, '.ckpt')} (no --repo or CKPT_REPO given: the default is .ckpt in the current directory)\n`
  const first = await ckpt(['snapshot', src, flag], {cwd: cron})
  expect(first.stderr).toBe(created)
  expect((await fsp.stat(path.join(cron, '.ckpt', 'config'))).isFile()).toBe(true)
  const second = await ckpt(['snapshot', src, flag], {cwd: cron})
  expect(second.stderr).toBe('')
})
