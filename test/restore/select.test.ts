// What a restore selects, over trees held in memory: the include check and the dry-run counts.
import {describe, expect, it} from 'vitest'

import {blake3} from '../../src/core/hash.js'
import {toHex} from '../../src/core/ids.js'
import {checkIncludes, planRestore, selects, splitInclude} from '../../src/restore/select.js'
import {compileExcludes} from '../../src/snapshot/exclude.js'
import type {TreeNode} from '../../src/snapshot/tree.js'

const trees = new Map<string, TreeNode[]>()
const base = {mode: 0o644, uid: 0, gid: 0, mtimeNs: 0n, ctimeNs: 0n, ino: 0n}
function dir(entries: Record<string, TreeNode['type'] | number | Buffer>): Buffer {
  const nodes: TreeNode[] = Object.entries(entries).map(([name, e]) =>
    Buffer.isBuffer(e) ? {...base, name: Buffer.from(name), type: 'dir', size: 0, subtree: e}
      : typeof e === 'number' ? {...base, name: Buffer.from(name), type: 'file', size: e}
        : {...base, name: Buffer.from(name), type: e, size: 0, target: Buffer.from('x')})
  const id = blake3(Buffer.from(JSON.stringify(Object.keys(entries)) + trees.size))
  trees.set(toHex(id), nodes)
  return id
}
const read = async (id: Buffer) => trees.get(toHex(id))!
const root = dir({a: dir({b: dir({c: 5}), f: 3}), g: 7, l: 'symlink'})
const none = compileExcludes([])

describe('checkIncludes', () => {
  it('passes paths that are there, at any depth, files or directories', async () => {
    await checkIncludes(read, root, [['a', 'b', 'c'], ['a'], ['g'], ['l']])
  })
  it('lists every path that is not, including one below a file', async () => {
    await expect(checkIncludes(read, root, [['a', 'x'], ['g', 'below'], ['a', 'b'], ['zz']])).rejects.toMatchObject({code: 'NOT_FOUND', exitCode: 4, data: {paths: ['a/x', 'g/below', 'zz']}})
  })
})

describe('planRestore', () => {
  it('counts everything, or what includes and excludes select', async () => {
    expect(await planRestore(read, root, undefined, none)).toMatchObject({files: 3, hardLinks: 0, dirs: 2, symlinks: 1, fifos: 0, devices: 0, bytes: 15})
    expect(await planRestore(read, root, [['a', 'b']], none)).toMatchObject({files: 1, hardLinks: 0, dirs: 2, symlinks: 0, fifos: 0, devices: 0, bytes: 5})
    expect(await planRestore(read, root, undefined, compileExcludes(['b', 'g']))).toMatchObject({files: 1, hardLinks: 0, dirs: 1, symlinks: 1, fifos: 0, devices: 0, bytes: 3})
  })
})

describe('selects and splitInclude', () => {
  it('an exclude wins over an include; an include narrows what is below', () => {
    expect(selects([['a', 'b']], none, 'a', 'a')).toEqual({take: true, below: [['b']]})
    expect(selects([['a', 'b'], ['a']], none, 'a', 'a')).toEqual({take: true})
    expect(selects([['a']], compileExcludes(['a']), 'a', 'a')).toEqual({take: false})
    expect(selects(undefined, none, 'q', 'q')).toEqual({take: true})
  })
  it('splitInclude', () => {
    expect(splitInclude('./db//CURRENT/')).toEqual(['db', 'CURRENT'])
    expect(() => splitInclude('../x')).toThrow(/must be a path inside/)
    expect(() => splitInclude('/')).toThrow(/must be a path inside/)
  })
})
