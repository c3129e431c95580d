// fsextra without the addon: every call says 'unavailable' (or undefined for extents) and
// touches nothing. The addon is looked up on first use, after this line.
import {closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect, it} from 'vitest'

import {dataExtents, makeNode, readFlags, readXattrs, writeFlags, writeXattr} from '../../src/core/fsextra.js'

process.env['CKPT_NATIVE'] = '0'

it('reports unavailable for xattrs, flags and special files, and no extents', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-fsextra-fb-'))
  try {
    const file = join(dir, 'f')
    writeFileSync(file, 'x')
    expect(readXattrs(file)).toBe('unavailable')
    expect(writeXattr(file, Buffer.from('user.a'), Buffer.from('v'))).toBe('unavailable')
    expect(readFlags(file, false)).toBe('unavailable')
    expect(writeFlags(file, false, 0x40)).toBe('unavailable')
    expect(makeNode(join(dir, 'fifo'), 'fifo', 0o600)).toBe('unavailable')
    expect(existsSync(join(dir, 'fifo'))).toBe(false)
    const fd = openSync(file, 'r')
    try {
      expect(dataExtents(fd)).toBeUndefined()
    } finally {
      closeSync(fd)
    }
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
})
