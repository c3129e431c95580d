import {describe, expect, test} from 'vitest'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {compareNames, dataLength, decodeTree, displayName, encodeTree, TREE_VERSION, type TreeNode, unsafeNameReason} from '../../src/snapshot/tree.js'
import {seededBytes} from '../helpers/tree.js'
import {thrownBy} from '../helpers/hostile.js'

const id = (s: string) => blake3(Buffer.from(s))
const hex = (s: string) => id(s).toString('hex')

function file(name: string | Buffer, chunks: string[] = ['c1'], extra: Partial<TreeNode> = {}): TreeNode {
  return {
    name: Buffer.isBuffer(name) ? name : Buffer.from(name), type: 'file', mode: 0o644, uid: 1000, gid: 1000,
    mtimeNs: 1_700_000_000_123_456_789n, ctimeNs: 1_700_000_001_000_000_001n, ino: 123_456_789_012n, size: 4096 * chunks.length,
    chunks: chunks.map(id), ...extra,
  }
}
function dir(name: string | Buffer, subtree = 'sub'): TreeNode {
  return {name: Buffer.isBuffer(name) ? name : Buffer.from(name), type: 'dir', mode: 0o2755, uid: 0, gid: 0, mtimeNs: -5n, ctimeNs: 0n, ino: 2n, size: 0, subtree: id(subtree)}
}
function symlink(name: string | Buffer, target: string | Buffer): TreeNode {
  return {name: Buffer.isBuffer(name) ? name : Buffer.from(name), type: 'symlink', mode: 0o777, uid: 1, gid: 2, mtimeNs: 1n, ctimeNs: 2n, ino: 3n, size: 0, target: Buffer.isBuffer(target) ? target : Buffer.from(target)}
}

/** A valid JSON node for building hostile trees by hand. */
function rawFile(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {name, type: 'file', mode: 420, uid: 0, gid: 0, mtimeNs: '1', ctimeNs: '1', ino: '1', size: 0, chunks: [], ...extra}
}
function doc(nodes: unknown[], version: unknown = 2): Buffer {
  return Buffer.from(JSON.stringify({version, nodes}))
}

function refused(bytes: Buffer, message: string | RegExp): void {
  const caught = thrownBy(() => decodeTree(bytes, 't1'), IntegrityError)
  expect(caught.data).toEqual({tree: 't1'})
  if (typeof message === 'string') expect(caught.message).toBe(`tree t1: ${message}`)
  else expect(caught.message).toMatch(message)
}

const mixed: TreeNode[] = [
  file('b.txt', ['c1', 'c2', 'c3']),
  dir('a-dir'),
  symlink('link', '../some/where'),
  file('empty', []),
  file(Buffer.from([0x66, 0xff, 0xfe, 0x80]), ['x']), // not UTF-8
  symlink(Buffer.from('bin-target'), Buffer.from([0x2e, 0x2e, 0x2f, 0xc3, 0x28])), // invalid UTF-8 target
  file('ünïcödé 名前 🎉'),
  file('with space\tand\nnewline'),
]

describe('encodeTree / decodeTree', () => {
  test('round trip of files, directories, symlinks, non-UTF-8 names and targets, byte-exact', () => {
    const decoded = decodeTree(encodeTree(mixed), 't1')
    const sorted = [...mixed].sort((a, b) => Buffer.compare(a.name, b.name))
    expect(decoded).toEqual(sorted)
    const bin = decoded.find((n) => n.name.equals(Buffer.from([0x66, 0xff, 0xfe, 0x80])))!
    expect(bin.type).toBe('file')
    const link = decoded.find((n) => n.name.toString() === 'bin-target')!
    expect(link.target!.toString('hex')).toBe('2e2e2fc328')
    expect(decoded.map((n) => n.name.toString('hex'))).toEqual(sorted.map((n) => n.name.toString('hex')))
  })

  test('every non-UTF-8 byte value in a name round-trips', () => {
    const nodes = Array.from({length: 126}, (_, i) => file(Buffer.from([0x80 + i, 0x41, 0xff])))
    expect(decodeTree(encodeTree(nodes), 't1').map((n) => n.name.toString('hex'))).toEqual(nodes.map((n) => n.name.toString('hex')))
    const random = Array.from({length: 200}, (_, i) => {
      const name = seededBytes(1 + (i % 40), i + 1)
      for (let j = 0; j < name.length; j++) if (name[j] === 0 || name[j] === 0x2f) name[j] = 0x41
      return file(Buffer.concat([name, Buffer.from(String(i))]))
    })
    const back = decodeTree(encodeTree(random), 't1')
    expect(new Set(back.map((n) => n.name.toString('hex')))).toEqual(new Set(random.map((n) => n.name.toString('hex'))))
  })

  test('the exact encoding (format regression)', () => {
    const bytes = encodeTree([symlink(Buffer.from([0xff]), Buffer.from([0xfe])), file('f', ['c1']), dir('d')])
    expect(JSON.parse(bytes.toString())).toEqual({
      version: 2,
      nodes: [
        {name: 'd', type: 'dir', mode: 0o2755, uid: 0, gid: 0, mtimeNs: '-5', ctimeNs: '0', ino: '2', subtree: hex('sub')},
        {name: 'f', type: 'file', mode: 0o644, uid: 1000, gid: 1000, mtimeNs: '1700000000123456789', ctimeNs: '1700000001000000001', ino: '123456789012', size: 4096, chunks: [hex('c1')]},
        {nameHex: 'ff', type: 'symlink', mode: 0o777, uid: 1, gid: 2, mtimeNs: '1', ctimeNs: '2', ino: '3', targetHex: 'fe'},
      ],
    })
    expect(bytes.toString()).toBe(
      `{"version":2,"nodes":[{"name":"d","type":"dir","mode":1517,"uid":0,"gid":0,"mtimeNs":"-5","ctimeNs":"0","ino":"2","subtree":"${hex('sub')}"},` +
      `{"name":"f","type":"file","mode":420,"uid":1000,"gid":1000,"mtimeNs":"1700000000123456789","ctimeNs":"1700000001000000001","ino":"123456789012","size":4096,"chunks":["${hex('c1')}"]},` +
      '{"nameHex":"ff","type":"symlink","mode":511,"uid":1,"gid":2,"mtimeNs":"1","ctimeNs":"2","ino":"3","targetHex":"fe"}]}',
    )
    expect(TREE_VERSION).toBe(2)
  })

  test('version 2 round trip: links, holes, xattrs (binary, at the limits), flags, FIFOs and devices', () => {
    const nodes: TreeNode[] = [
      file('linked', ['c1'], {nlink: 3, dev: 2049n}),
      file('sparse', ['c1', 'c2'], {size: 10 * 2 ** 30, extents: [{offset: 0, length: 4096}, {offset: 2 ** 30, length: 4096}]}),
      file('attrs', ['c1'], {xattrs: [{name: Buffer.from('user.z'), value: Buffer.alloc(65536, 7)}, {name: Buffer.from('user.' + 'n'.repeat(250)), value: Buffer.from([0, 255, 10])}, {name: Buffer.from([0x75, 0x73, 0x65, 0x72, 0x2e, 0xff]), value: Buffer.alloc(0)}], flags: 0x10 | 0x40}),
      {...dir('fifo'), type: 'fifo', subtree: undefined},
      {...dir('tty'), type: 'chardev', subtree: undefined, rdev: {major: 4095, minor: 2 ** 20 - 1}},
      {...dir('disk'), type: 'blockdev', subtree: undefined, rdev: {major: 8, minor: 0}},
    ]
    const back = decodeTree(encodeTree(nodes), 't1')
    const byName = (n: string) => back.find((b) => b.name.toString('latin1') === n)!
    expect(byName('linked')).toMatchObject({nlink: 3, dev: 2049n})
    expect(byName('sparse').extents).toEqual([{offset: 0, length: 4096}, {offset: 2 ** 30, length: 4096}])
    expect(dataLength(byName('sparse'))).toBe(8192)
    expect(dataLength(byName('linked'))).toBe(4096)
    const attrs = byName('attrs')
    expect(attrs.flags).toBe(0x50)
    // Sorted by name bytes whatever the order given; binary names and values exact.
    expect(attrs.xattrs!.map((x) => x.name.toString('hex'))).toEqual([Buffer.from('user.' + 'n'.repeat(250)), Buffer.from('user.z'), Buffer.from([0x75, 0x73, 0x65, 0x72, 0x2e, 0xff])].map((b) => b.toString('hex')).sort())
    expect(attrs.xattrs!.find((x) => x.name.toString() === 'user.z')!.value.equals(Buffer.alloc(65536, 7))).toBe(true)
    expect(byName('fifo')).toMatchObject({type: 'fifo'})
    expect(byName('tty').rdev).toEqual({major: 4095, minor: 2 ** 20 - 1})
    expect(byName('disk')).toMatchObject({type: 'blockdev', rdev: {major: 8, minor: 0}})
    expect(back.some((n) => n.legacy)).toBe(false)
    // Nothing new is written for a plain node: version 1's fields only.
    expect(Object.keys(JSON.parse(encodeTree([file('plain')]).toString()).nodes[0])).toEqual(['name', 'type', 'mode', 'uid', 'gid', 'mtimeNs', 'ctimeNs', 'ino', 'size', 'chunks'])
  })

  test('version-1 trees still decode, their nodes marked legacy', () => {
    const v1 = encodeTree([file('f'), dir('d'), symlink('l', 't')]).toString().replace('"version":2', '"version":1')
    const back = decodeTree(Buffer.from(v1), 't1')
    expect(back.map((n) => [n.name.toString(), n.type, n.legacy])).toEqual([['d', 'dir', true], ['f', 'file', true], ['l', 'symlink', true]])
  })

  test('canonical: any input order gives the same bytes, sorted by name bytes', () => {
    const expected = encodeTree(mixed)
    let x = 12345
    for (let round = 0; round < 20; round++) {
      const shuffled = [...mixed]
      for (let i = shuffled.length - 1; i > 0; i--) {
        x = (x * 1103515245 + 12345) >>> 0
        const j = x % (i + 1)
        ;[shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
      }
      expect(encodeTree(shuffled).equals(expected)).toBe(true)
    }
    // Byte order, not locale or UTF-16 order: "Z" < "a" < "é" (0xc3) < "\uff5e" (0xef) < "🎉" (0xf0).
    const names = ['🎉', 'a', 'é', 'Z', '\uff5e'].map((n) => file(n))
    expect(decodeTree(encodeTree(names), 't1').map((n) => n.name.toString())).toEqual(['Z', 'a', 'é', '\uff5e', '🎉'])
    expect(encodeTree([]).toString()).toBe('{"version":2,"nodes":[]}')
  })

  test('compareNames is byte order', () => {
    expect(compareNames(Buffer.from('a'), Buffer.from('b'))).toBeLessThan(0)
    expect(compareNames(Buffer.from('ab'), Buffer.from('a'))).toBeGreaterThan(0)
    expect(compareNames(Buffer.from([0xff]), Buffer.from('z'))).toBeGreaterThan(0)
    expect(compareNames(Buffer.from('x'), Buffer.from('x'))).toBe(0)
  })
})

describe('decodeTree refuses hostile or damaged trees', () => {
  test.each<[string, string]>([
    ['', 'empty name'],
    ['.', 'name is "."'],
    ['..', 'name is ".."'],
    ['a/b', 'name contains "/"'],
    ['/', 'name contains "/"'],
    ['../../etc', 'name contains "/"'],
    ['a\u0000b', 'name contains NUL'],
    ['x'.repeat(4097), 'name is too long'],
  ])('unsafe name %j', (name, reason) => {
    refused(doc([rawFile(name)]), `unsafe node name ${JSON.stringify(name)}: ${reason}`)
  })

  test.each<[string, string]>([
    ['2e2e', 'name is ".."'],
    ['2e', 'name is "."'],
    ['612f62', 'name contains "/"'],
    ['6100', 'name contains NUL'],
  ])('unsafe name given as hex %s', (nameHex, reason) => {
    const node = rawFile('x', {nameHex})
    delete node.name
    refused(doc([node]), new RegExp(`^tree t1: unsafe node name .*: ${reason.replace(/[.]/g, '\\.')}$`))
  })

  test('unsafe names behind JSON escapes', () => {
    refused(Buffer.from(`{"version":1,"nodes":[${JSON.stringify(rawFile('X')).replace('"X"', '"\\u002e\\u002e"')}]}`), 'unsafe node name "..": name is ".."')
    refused(Buffer.from(`{"version":1,"nodes":[${JSON.stringify(rawFile('X')).replace('"X"', '"a\\/b"')}]}`), 'unsafe node name "a/b": name contains "/"')
  })

  test('names that are fine', () => {
    for (const name of ['...', '.a', 'a.', '..a', ' ', '-', 'x'.repeat(4096)]) {
      expect(unsafeNameReason(Buffer.from(name))).toBeUndefined()
      expect(decodeTree(doc([rawFile(name)]), 't1')[0]!.name.toString()).toBe(name)
    }
    expect(unsafeNameReason(Buffer.from([0xff, 0x80]))).toBeUndefined()
  })

  test('duplicate names are refused, also when one is given as hex', () => {
    refused(doc([rawFile('a'), rawFile('a')]), 'names out of order or repeated at "a"')
    const hexA = rawFile('x', {nameHex: '61'})
    delete hexA.name
    refused(doc([rawFile('a'), hexA]), 'names out of order or repeated at "a"')
  })

  test('out-of-order names are refused', () => {
    refused(doc([rawFile('b'), rawFile('a')]), 'names out of order or repeated at "a"')
    refused(doc([rawFile('a'), rawFile('c'), rawFile('b')]), 'names out of order or repeated at "b"')
    // UTF-16 order would put U+FF5E before U+1F389; byte order does not.
    refused(doc([rawFile('🎉'), rawFile('\uff5e')]), 'names out of order or repeated at "\uff5e"')
  })

  test.each<[string, Buffer, string]>([
    ['not JSON', Buffer.from('{"version":1,'), 'not valid JSON'],
    ['null', Buffer.from('null'), 'unknown tree version'],
    ['version 3', doc([], 3), 'unknown tree version'],
    ['version 0', doc([], 0), 'unknown tree version'],
    ['a FIFO in a version-1 tree', doc([rawFile('a', {type: 'fifo'})], 1), 'node a has unknown type'],
    ['a socket', doc([rawFile('a', {type: 'socket'})]), 'node a has unknown type'],
    ['a link count of 1', doc([rawFile('a', {nlink: 1, dev: '5'})]), 'node a has a bad link count'],
    ['a link count without device', doc([rawFile('a', {nlink: 2})]), 'node a has a bad device'],
    ['a negative device', doc([rawFile('a', {nlink: 2, dev: '-1'})]), 'node a has a bad device'],
    ['flags ckpt does not restore', doc([rawFile('a', {flags: 0x80000})]), 'node a has bad inode flags'],
    ['zero flags', doc([rawFile('a', {flags: 0})]), 'node a has bad inode flags'],
    ['a device without a number', doc([rawFile('a', {type: 'chardev'})]), 'device a has a bad device number'],
    ['a device number of three parts', doc([rawFile('a', {type: 'blockdev', rdev: [1, 2, 3]})]), 'device a has a bad device number'],
    ['a device number on a file', doc([rawFile('a', {rdev: [1, 3]})]), 'node a has a device number but is not a device'],
    ['extents on a directory', doc([rawFile('a', {type: 'dir', subtree: hex('s'), extents: [[0, 1]]})]), 'node a has a bad extent list'],
    ['an empty extent', doc([rawFile('a', {size: 10, extents: [[0, 0]]})]), 'file a has a bad extent list'],
    ['extents out of order', doc([rawFile('a', {size: 100, extents: [[50, 10], [0, 10]]})]), 'file a has extents out of order or past its size'],
    ['overlapping extents', doc([rawFile('a', {size: 100, extents: [[0, 20], [10, 10]]})]), 'file a has extents out of order or past its size'],
    ['an extent past the size', doc([rawFile('a', {size: 100, extents: [[90, 20]]})]), 'file a has extents out of order or past its size'],
    ['an empty xattr list', doc([rawFile('a', {xattrs: []})]), 'node a has a bad xattr list'],
    ['an xattr name of 256 bytes', doc([rawFile('a', {xattrs: [{name: 'u'.repeat(256), value: ''}]})]), 'node a has a bad xattr name'],
    ['an xattr value over 64 KiB', doc([rawFile('a', {xattrs: [{name: 'user.a', value: Buffer.alloc(65537).toString('base64')}]})]), 'node a has an xattr value over 65536 bytes'],
    ['an xattr value that is not base64', doc([rawFile('a', {xattrs: [{name: 'user.a', value: '%%%'}]})]), 'node a has a bad xattr value'],
    ['xattrs repeated', doc([rawFile('a', {xattrs: [{name: 'user.a', value: ''}, {name: 'user.a', value: ''}]})]), 'node a has xattrs out of order or repeated'],
    ['xattr names past what Linux lists', doc([rawFile('a', {xattrs: Array.from({length: 300}, (_, i) => ({name: `user.${String(i).padStart(3, '0')}${'x'.repeat(240)}`, value: ''}))})]), 'node a lists more xattr names than Linux holds'],
    ['version "1"', doc([], '1'), 'unknown tree version'],
    ['no nodes', Buffer.from('{"version":1}'), 'no node list'],
    ['nodes not a list', Buffer.from('{"version":1,"nodes":{}}'), 'no node list'],
    ['a node that is null', doc([null]), 'a node is not an object'],
    ['a node that is a string', doc(['a']), 'a node is not an object'],
    ['no name', doc([{...rawFile('a'), name: undefined}]), 'a node has no name'],
    ['a numeric name', doc([rawFile('a', {name: 5})]), 'a node has no name'],
    ['bad name hex', doc([{...rawFile('a', {nameHex: '6'}), name: undefined}]), 'a node has no name'],
    ['uppercase name hex', doc([{...rawFile('a', {nameHex: '6A'}), name: undefined}]), 'a node has no name'],
    ['unknown type', doc([rawFile('a', {type: 'door'})]), 'node a has unknown type'],
    ['no type', doc([rawFile('a', {type: undefined})]), 'node a has unknown type'],
    ['mode above 0o7777', doc([rawFile('a', {mode: 0o10000})]), 'node a has a bad mode'],
    ['negative mode', doc([rawFile('a', {mode: -1})]), 'node a has a bad mode'],
    ['fractional mode', doc([rawFile('a', {mode: 1.5})]), 'node a has a bad mode'],
    ['mode as a string', doc([rawFile('a', {mode: '420'})]), 'node a has a bad mode'],
    ['negative uid', doc([rawFile('a', {uid: -1})]), 'node a has a bad owner'],
    ['gid as a string', doc([rawFile('a', {gid: '0'})]), 'node a has a bad owner'],
    ['uid 2^40 (chown would make it root)', doc([rawFile('a', {uid: 2 ** 40})]), 'node a has a bad owner'],
    ['gid 2^32-1 ((gid_t)-1: "no change")', doc([rawFile('a', {gid: 2 ** 32 - 1})]), 'node a has a bad owner'],
    ['mtime as a number', doc([rawFile('a', {mtimeNs: 1})]), 'node a has bad times or inode'],
    ['ctime with a fraction', doc([rawFile('a', {ctimeNs: '1.5'})]), 'node a has bad times or inode'],
    ['ino missing', doc([rawFile('a', {ino: undefined})]), 'node a has bad times or inode'],
    ['21-digit time', doc([rawFile('a', {mtimeNs: '1'.repeat(21)})]), 'node a has bad times or inode'],
    ['negative size', doc([rawFile('a', {size: -1})]), 'file a has a bad size'],
    ['unsafe size', doc([rawFile('a', {size: 2 ** 53})]), 'file a has a bad size'],
    ['size as a string', doc([rawFile('a', {size: '0'})]), 'file a has a bad size'],
    ['no chunk list', doc([rawFile('a', {chunks: undefined})]), 'file a has a bad chunk list'],
    ['a short chunk id', doc([rawFile('a', {chunks: ['ab']})]), 'file a has a bad chunk list'],
    ['an uppercase chunk id', doc([rawFile('a', {chunks: [hex('c').toUpperCase()]})]), 'file a has a bad chunk list'],
    ['a numeric chunk id', doc([rawFile('a', {chunks: [1]})]), 'file a has a bad chunk list'],
    ['a directory without subtree', doc([rawFile('a', {type: 'dir'})]), 'directory a has a bad subtree id'],
    ['a directory with a bad subtree', doc([rawFile('a', {type: 'dir', subtree: 'zz'})]), 'directory a has a bad subtree id'],
    ['a symlink without target', doc([rawFile('a', {type: 'symlink'})]), 'symlink a has a bad target'],
    ['a symlink with an empty target', doc([rawFile('a', {type: 'symlink', target: ''})]), 'symlink a has a bad target'],
    ['a symlink with NUL in the target', doc([rawFile('a', {type: 'symlink', target: 'a\u0000b'})]), 'symlink a has a bad target'],
    ['a symlink with NUL in a hex target', doc([rawFile('a', {type: 'symlink', targetHex: '6100'})]), 'symlink a has a bad target'],
  ])('%s', (_what, bytes, message) => {
    refused(bytes, message)
  })

  test('the first bad node stops decoding, whatever follows', () => {
    refused(doc([rawFile('a'), rawFile('..'), rawFile('b')]), 'unsafe node name "..": name is ".."')
  })
})

describe('displayName', () => {
  test.each<[Buffer, string]>([
    [Buffer.from('plain.txt'), 'plain.txt'],
    [Buffer.from('ünï 名前'), 'ünï 名前'],
    [Buffer.from([0x61, 0xff, 0x62]), 'a\\xffb'],
    [Buffer.from([0xc3, 0x28]), '\\xc3('],
    [Buffer.from([0x80, 0x0a, 0x7f, 0x20]), '\\x80\\x0a\\x7f '],
  ])('%o -> %s', (name, shown) => {
    expect(displayName(name)).toBe(shown)
  })
})
