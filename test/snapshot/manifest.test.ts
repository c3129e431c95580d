import {describe, expect, test} from 'vitest'
import {IntegrityError} from '../../src/core/errors.js'
import {blake3} from '../../src/core/hash.js'
import {decodeManifest, encodeManifest, type Manifest, MANIFEST_VERSION, MAX_LISTED_WARNINGS, rootMetaNode, rootMetaOf} from '../../src/snapshot/manifest.js'
import {thrownBy, withJsonField} from '../helpers/hostile.js'

const hex = (s: string) => blake3(Buffer.from(s)).toString('hex')

function manifest(): Manifest {
  return {
    version: 1,
    time: '2024-05-06T07:08:09.123Z',
    startTimeNs: '1714979289123456789',
    parent: hex('parent'),
    host: 'build-01',
    source: '/var/lib/state',
    tags: ['nightly', 'ünï'],
    tree: hex('tree'),
    root: {mode: 0o755, uid: 0, gid: 0, mtimeNs: '1714979000000000001'},
    summary: {files: 3, dirs: 2, symlinks: 1, bytes: 1000, newBytes: 10, storedBytes: 5, newBlobs: 1, bytesRead: 10, filesRead: 1, durationMs: 12, warnings: 1, incomplete: 1},
    warnings: [{kind: 'unreadable', path: 'secret', message: 'EACCES'}],
    program: 'ckpt 0.1.0',
  }
}

/** Encode with one field replaced (undefined removes it), as a hostile repository might. */
function withField(path: string[], value: unknown): Buffer {
  return withJsonField(encodeManifest(manifest()), path, value)
}

function refused(bytes: Buffer, message: string): void {
  const caught = thrownBy(() => decodeManifest(bytes, 's1'), IntegrityError)
  expect(caught.message).toBe(`snapshot s1: ${message}`)
  expect(caught.data).toEqual({snapshot: 's1'})
}

describe('encodeManifest / decodeManifest', () => {
  test('a negative root owner is refused (restore would chown with it)', () => {
    for (const root of [{mode: 0o755, uid: -2, gid: 0, mtimeNs: '1'}, {mode: 0o755, uid: 0, gid: -1, mtimeNs: '1'}]) {
      expect(() => decodeManifest(encodeManifest({...manifest(), root}), 's1')).toThrow(/bad root metadata/)
    }
  })

  test('round trip', () => {
    const m = manifest()
    expect(decodeManifest(encodeManifest(m), 's1')).toEqual(m)
    const first = {...m, parent: null, tags: [], warnings: []}
    expect(decodeManifest(encodeManifest(first), 's1')).toEqual(first)
    expect(MANIFEST_VERSION).toBe(1)
    expect(MAX_LISTED_WARNINGS).toBe(1000)
  })

  test('fixed key order whatever the input order, so the id is stable', () => {
    const m = manifest()
    const reversed = Object.fromEntries(Object.entries(m).reverse()) as unknown as Manifest
    expect(encodeManifest(reversed).equals(encodeManifest(m))).toBe(true)
    const text = encodeManifest(m).toString()
    expect(Object.keys(JSON.parse(text) as object)).toEqual(['version', 'time', 'startTimeNs', 'parent', 'host', 'source', 'tags', 'tree', 'root', 'summary', 'warnings', 'program'])
    expect(text.endsWith('}\n')).toBe(true)
    expect(text.startsWith('{\n "version": 1,\n "time": "2024-05-06T07:08:09.123Z",\n')).toBe(true)
  })

  test('excludes: written after tags when there are any, absent otherwise; old manifests without it decode; a bad list is refused', () => {
    const m = {...manifest(), excludes: ['*.tmp', 'cache/**']}
    const text = encodeManifest(m).toString()
    expect(Object.keys(JSON.parse(text) as object).slice(6, 9)).toEqual(['tags', 'excludes', 'tree'])
    expect(decodeManifest(encodeManifest(m), 's1')).toEqual(m)
    expect(encodeManifest({...manifest(), excludes: []}).equals(encodeManifest(manifest()))).toBe(true)
    expect(decodeManifest(encodeManifest(manifest()), 's1').excludes).toBeUndefined()
    refused(withField(['excludes'], 'x'), 'bad exclude patterns')
    refused(withField(['excludes'], [1]), 'bad exclude patterns')
    refused(withField(['excludes'], ['']), 'bad exclude patterns')
  })

  test('a root owner beyond 2^32-2 is refused (chown would wrap it to root)', () => {
    for (const root of [{mode: 0o755, uid: 2 ** 40, gid: 0, mtimeNs: '1'}, {mode: 0o755, uid: 0, gid: 2 ** 32 - 1, mtimeNs: '1'}]) {
      expect(() => decodeManifest(encodeManifest({...manifest(), root}), 's1')).toThrow(/bad root metadata/)
    }
    expect(decodeManifest(encodeManifest({...manifest(), root: {mode: 0o755, uid: 2 ** 32 - 2, gid: 0, mtimeNs: '1'}}), 's1').root.uid).toBe(2 ** 32 - 2)
  })

  test('fields outside the manifest are not written', () => {
    const m = {...manifest(), extra: 'x'} as Manifest
    expect(encodeManifest(m).toString()).not.toContain('extra')
  })

  test.each<[string, Buffer, string]>([
    ['not JSON', Buffer.from('{'), 'manifest is not valid JSON'],
    ['null', Buffer.from('null'), 'manifest is not an object'],
    ['a string', Buffer.from('"x"'), 'manifest is not an object'],
    ['version 2', withField(['version'], 2), 'unknown manifest version 2'],
    ['version "1"', withField(['version'], '1'), 'unknown manifest version 1'],
    ['no version', withField(['version'], undefined), 'unknown manifest version undefined'],
    ['time not a date', withField(['time'], 'yesterday'), 'bad time'],
    ['time as a number', withField(['time'], 1714979289123), 'bad time'],
    ['no start time', withField(['startTimeNs'], undefined), 'bad start time'],
    ['negative start time', withField(['startTimeNs'], '-1'), 'bad start time'],
    ['start time as a number', withField(['startTimeNs'], 1), 'bad start time'],
    ['start time of 21 digits', withField(['startTimeNs'], '1'.repeat(21)), 'bad start time'],
    ['short parent id', withField(['parent'], 'abc'), 'bad parent id'],
    ['uppercase parent id', withField(['parent'], hex('p').toUpperCase()), 'bad parent id'],
    ['missing parent', withField(['parent'], undefined), 'bad parent id'],
    ['host as a number', withField(['host'], 1), 'bad host or source'],
    ['relative source', withField(['source'], 'var/lib'), 'bad host or source'],
    ['no source', withField(['source'], undefined), 'bad host or source'],
    ['tags not a list', withField(['tags'], 'nightly'), 'bad tags'],
    ['a numeric tag', withField(['tags'], ['a', 1]), 'bad tags'],
    ['no tree', withField(['tree'], undefined), 'bad root tree id'],
    ['bad tree id', withField(['tree'], '../../etc/passwd'), 'bad root tree id'],
    ['no root', withField(['root'], undefined), 'bad root metadata'],
    ['root mode above 0o7777', withField(['root', 'mode'], 0o10000), 'bad root metadata'],
    ['negative root mode', withField(['root', 'mode'], -1), 'bad root metadata'],
    ['root uid as a string', withField(['root', 'uid'], '0'), 'bad root metadata'],
    ['root gid fractional', withField(['root', 'gid'], 0.5), 'bad root metadata'],
    ['root mtime as a number', withField(['root', 'mtimeNs'], 5), 'bad root metadata'],
    ['root mtime not decimal', withField(['root', 'mtimeNs'], '1e9'), 'bad root metadata'],
    ['no summary', withField(['summary'], undefined), 'no summary'],
    ['summary a number', withField(['summary'], 3), 'no summary'],
    ['warnings not a list', withField(['warnings'], {}), 'bad warnings'],
    ['no warnings', withField(['warnings'], undefined), 'bad warnings'],
  ])('refuses %s', (_what, bytes, message) => {
    refused(bytes, message)
  })

  test("the root's flags and xattrs: encoded as a tree node's, only when present; an old manifest without them decodes", () => {
    const xattrs = [{name: Buffer.from('user.b'), value: Buffer.from([0, 0xff])}, {name: Buffer.from('system.posix_acl_default'), value: Buffer.from('acl')}, {name: Buffer.from([0x75, 0x2e, 0xff]), value: Buffer.alloc(0)}]
    const root = rootMetaOf({mode: 0o750, uid: 1, gid: 2, mtimeNs: 5n}, {flags: 0x40 | 0x80, xattrs})
    // Sorted by name bytes, a name that is not UTF-8 as hex, values in base64: the shapes of a tree.
    expect(root).toEqual({mode: 0o750, uid: 1, gid: 2, mtimeNs: '5', flags: 0xc0, xattrs: [
      {name: 'system.posix_acl_default', value: Buffer.from('acl').toString('base64')},
      {nameHex: '752eff', value: ''},
      {name: 'user.b', value: 'AP8='},
    ]})
    const m = {...manifest(), root}
    const decoded = decodeManifest(encodeManifest(m), 's1')
    expect(decoded).toEqual(m)
    expect(rootMetaNode(decoded.root)).toEqual({type: 'dir', mode: 0o750, uid: 1, gid: 2, mtimeNs: 5n, flags: 0xc0, xattrs: [...xattrs].sort((a, b) => Buffer.compare(a.name, b.name))})
    // None of either: nothing written, the manifest's bytes (and so its id) as before.
    expect(rootMetaOf({mode: 0o755, uid: 0, gid: 0, mtimeNs: 1714979000000000001n}, {flags: 0, xattrs: []})).toEqual(manifest().root)
    expect(Object.keys(JSON.parse(encodeManifest(manifest()).toString()).root as object)).toEqual(['mode', 'uid', 'gid', 'mtimeNs'])
    expect(rootMetaNode(decodeManifest(encodeManifest(manifest()), 's1').root)).toEqual({type: 'dir', mode: 0o755, uid: 0, gid: 0, mtimeNs: 1714979000000000001n})
  })

  const rootX = (xattrs: unknown) => withField(['root', 'xattrs'], xattrs)
  test.each<[string, Buffer, string]>([
    ['root flags ckpt does not restore (extents)', withField(['root', 'flags'], 0x80000), 'root has bad inode flags'],
    ['zero root flags', withField(['root', 'flags'], 0), 'root has bad inode flags'],
    ['root flags as a string', withField(['root', 'flags'], '64'), 'root has bad inode flags'],
    ['an empty root xattr list', rootX([]), 'root has a bad xattr list'],
    ['a root xattr list that is an object', rootX({name: 'user.a', value: ''}), 'root has a bad xattr list'],
    ['a root xattr that is null', rootX([null]), 'root has a bad xattr list'],
    ['a root xattr without a name', rootX([{value: ''}]), 'root has a bad xattr name'],
    ['a root xattr name of 256 bytes', rootX([{name: 'u'.repeat(256), value: ''}]), 'root has a bad xattr name'],
    ['a root xattr name with NUL', rootX([{nameHex: '7500', value: ''}]), 'root has a bad xattr name'],
    ['a root xattr value that is not base64', rootX([{name: 'user.a', value: '%%%'}]), 'root has a bad xattr value'],
    ['a root xattr value as a number', rootX([{name: 'user.a', value: 1}]), 'root has a bad xattr value'],
    ['a root xattr value over 64 KiB', rootX([{name: 'user.a', value: Buffer.alloc(65537).toString('base64')}]), 'root has an xattr value over 65536 bytes'],
    ['root xattrs out of order', rootX([{name: 'user.b', value: ''}, {name: 'user.a', value: ''}]), 'root has xattrs out of order or repeated'],
    ['root xattrs repeated', rootX([{name: 'user.a', value: ''}, {name: 'user.a', value: ''}]), 'root has xattrs out of order or repeated'],
    ['more root xattr names than Linux lists', rootX(Array.from({length: 300}, (_, i) => ({name: `user.${String(i).padStart(3, '0')}${'n'.repeat(240)}`, value: ''}))), 'root lists more xattr names than Linux holds'],
  ])('refuses %s', (_what, bytes, message) => {
    refused(bytes, message)
  })

  test('accepts a negative root mtime (before 1970)', () => {
    expect(decodeManifest(withField(['root', 'mtimeNs'], '-1000'), 's1').root.mtimeNs).toBe('-1000')
  })
})
