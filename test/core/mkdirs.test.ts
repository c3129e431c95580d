// makeDirs: mkdir -p that ends. Node's own recursive mkdir retries forever when a directory cannot
// be made under an existing parent with ENOENT (/proc): these would hang with it.
import {existsSync, promises as fsp, writeFileSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {makeDirs, makeDirsSync} from '../../src/core/mkdirs.js'
import {tempDir} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-mkdirs-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})

describe.each([['makeDirs', (d: string) => makeDirs(d)], ['makeDirsSync', async (d: string) => makeDirsSync(d)]] as const)('%s', (_name, make) => {
  it('makes every missing level, and is content with a directory that exists', async () => {
    const dir = path.join(work, _name, 'a', 'b', 'c')
    await make(dir)
    expect((await fsp.stat(dir)).isDirectory()).toBe(true)
    await make(dir)
    await make(path.join(work, _name))
  })

  it('under a file: ENOTDIR, and nothing made', async () => {
    const file = path.join(work, `${_name}-file`)
    writeFileSync(file, 'x')
    await expect(make(path.join(file, 'sub', 'deeper'))).rejects.toMatchObject({code: 'ENOTDIR'})
    expect(existsSync(path.join(file, 'sub'))).toBe(false)
  })

  it('where the kernel refuses the first missing level (/proc): that error, at once', async () => {
    await expect(make('/proc/ckpt-no-such/x/y')).rejects.toMatchObject({code: 'ENOENT'})
  })
})
