// The pure parts of snapshot's selection flags: pattern files, markers, --files-from paths and
// the selection they compile to, and the literal patterns that record left-out directories.
import {describe, expect, it} from 'vitest'

import {CACHEDIR_TAG, compileExcludes, compileSelection, literalPattern, parseFilesFrom, parseMarker, parsePatternFile} from '../../src/snapshot/exclude.js'

describe('literalPattern', () => {
  it.each([['cache'], ['a/b'], ['we*ird?/[x]'], ['a[/b'], ['x\\x01y']])('matches %s and nothing else', (rel) => {
    const m = compileExcludes([literalPattern(rel)])
    expect(m(rel, rel.split('/').pop()!)).toBe(true)
    expect(m(`${rel}x`, `${rel.split('/').pop()!}x`)).toBe(false)
    expect(m(`other/${rel}`, rel.split('/').pop()!)).toBe(false)
  })
  it('a name with glob characters is not a glob', () => {
    const m = compileExcludes([literalPattern('a*')])
    expect(m('a*', 'a*')).toBe(true)
    expect(m('ab', 'ab')).toBe(false)
  })
})

describe('parsePatternFile', () => {
  it('one pattern a line; comments, blank lines and surrounding spaces dropped', () => {
    expect(parsePatternFile('# caches\n*.tmp\n\n  cache/**  \r\n#x\nlog')).toEqual(['*.tmp', 'cache/**', 'log'])
  })
})

describe('parseMarker', () => {
  it('NAME and NAME:HEADER', () => {
    expect(parseMarker('.nobackup')).toEqual({name: '.nobackup'})
    expect(parseMarker('TAG:Sig: x')).toEqual({name: 'TAG', header: Buffer.from('Sig: x')})
    expect(CACHEDIR_TAG.header!.toString()).toBe('Signature: 8a477f597d28d172789f06886806bc55')
  })
  it.each([[''], ['a/b'], [':x'], ['..']])('refuses %j', (spec) => {
    expect(() => parseMarker(spec)).toThrow(/give a file name/)
  })
})

describe('--files-from', () => {
  it('relative lines as they are, absolute ones inside the source, comments and blank lines skipped', () => {
    expect(parseFilesFrom('db/CURRENT\n# note\n\n/src/state/wal\n with space \r\n', '/src/state')).toEqual(['db/CURRENT', 'wal', ' with space '])
    expect(parseFilesFrom('/src/state\n', '/src/state')).toEqual(['.'])
    expect(() => parseFilesFrom('/src/other/x\n', '/src/state')).toThrow(/not inside the source/)
    expect(() => parseFilesFrom('/src/stateful\n', '/src/state')).toThrow(/not inside the source/)
  })
  it('selects the listed paths, what is below them, and the directories leading to them', () => {
    const s = compileSelection(['db/CURRENT', './wal/', 'a/b/c'])
    expect(['db', 'db/CURRENT', 'db/OTHER', 'wal', 'wal/000001.log', 'a', 'a/b', 'a/b/c', 'a/b/c/d', 'a/x', 'top'].map((p) => [p, s(p)])).toEqual([
      ['db', 'ancestor'], ['db/CURRENT', 'all'], ['db/OTHER', 'none'], ['wal', 'all'], ['wal/000001.log', 'all'],
      ['a', 'ancestor'], ['a/b', 'ancestor'], ['a/b/c', 'all'], ['a/b/c/d', 'all'], ['a/x', 'none'], ['top', 'none'],
    ])
    expect(compileSelection(['.'])('anything')).toBe('all')
    expect(() => compileSelection(['a/../../etc'])).toThrow(/outside the source/)
  })
})
