// Hostile and damaged tar archives given to `ckpt import`: each is refused (BadArchiveError,
// exit code 16) with nothing committed, or neutralised (stored, and restored only inside the
// target). Every case checks that nothing appeared outside the repository and that the
// repository verifies afterwards. Archives are built byte by byte (test/helpers/tarbuild.ts) so
// each carries exactly the fault it names; a few run through the built CLI for the exit code,
// the one-line message and stdin.
import {createReadStream, promises as fsp} from 'node:fs'
import path from 'node:path'
import {gzipSync} from 'node:zlib'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BadArchiveError} from '../../src/core/errors.js'
import {initLocalRepository, openLocalRepository} from '../../src/repo/open.js'
import {restoreSnapshot} from '../../src/restore/restorer.js'
import {loadCatalog} from '../../src/snapshot/catalog.js'
import {importTar} from '../../src/snapshot/importer.js'
import {decodeTree} from '../../src/snapshot/tree.js'
import {verifyRepository} from '../../src/verify/verify.js'
import {runCli} from '../helpers/cli.js'
import {type RawEntry, tarHeader, tarOf} from '../helpers/tarbuild.js'
import {tempDir} from '../helpers/tree.js'

let root: string
let repoDir: string
/** Where an escape would land: the directory around the repository. */
let outside: string

beforeAll(async () => {
  root = await tempDir('ckpt-hostile-tar-')
  repoDir = path.join(root, 'repo')
  outside = path.join(root, 'outside')
  await fsp.mkdir(outside)
  await initLocalRepository(repoDir, {now: Date.now()})
})

afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

/** Every path under root except the repository and the archives, as a sorted list. */
async function around(): Promise<string[]> {
  const out: string[] = []
  const walk = async (dir: string, rel: string) => {
    for (const e of await fsp.readdir(dir, {withFileTypes: true})) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (r === 'repo' || r.endsWith('.tar')) continue
      out.push(r)
      if (e.isDirectory()) await walk(path.join(dir, e.name), r)
    }
  }
  await walk(root, '')
  return out.sort()
}

let n = 0
async function importBytes(bytes: Buffer): Promise<{error?: unknown; id?: string}> {
  const file = path.join(root, `in-${n++}.tar`)
  await fsp.writeFile(file, bytes)
  const repo = await openLocalRepository(repoDir)
  try {
    const r = await importTar(repo, {input: createReadStream(file), source: '/imported', program: 'test'})
    return {id: r.id}
  } catch (error) {
    return {error}
  } finally {
    await fsp.rm(file)
  }
}

async function snapshotCount(): Promise<number> {
  return (await (await openLocalRepository(repoDir)).listSnapshotNames()).length
}

async function expectVerifies(): Promise<void> {
  const report = await verifyRepository((await openLocalRepository(repoDir)).backend)
  expect(report.ok).toBe(true)
}

/** Refused: a BadArchiveError (exit code 16) whose message matches, no snapshot, nothing outside, the repository verifies. */
async function refused(bytes: Buffer, message: RegExp): Promise<void> {
  const before = await around()
  const snaps = await snapshotCount()
  const {error, id} = await importBytes(bytes)
  expect(id, 'the import should have been refused').toBeUndefined()
  expect(error).toBeInstanceOf(BadArchiveError)
  expect((error as BadArchiveError).exitCode).toBe(16)
  expect((error as Error).message).toMatch(message)
  expect((error as Error).message).not.toContain('\n')
  expect(await snapshotCount()).toBe(snaps)
  expect(await around()).toEqual(before)
  await expectVerifies()
}

/** Neutralised: stored; restored into a fresh target, nothing lands outside it; returns the target. */
async function neutralised(bytes: Buffer): Promise<string> {
  const before = await around()
  const {error, id} = await importBytes(bytes)
  expect(error).toBeUndefined()
  await expectVerifies()
  const repo = await openLocalRepository(repoDir)
  const {snapshots} = await loadCatalog(repo)
  const snap = snapshots.find((s) => s.id === id)!
  const target = path.join(root, `target-${n}`)
  await restoreSnapshot(repo, snap, {target})
  expect((await around()).filter((p) => p !== path.basename(target) && !p.startsWith(`${path.basename(target)}/`))).toEqual(before)
  return target
}

const file = (name: string | Buffer, data = 'x', extra: Partial<RawEntry> = {}): RawEntry => ({name, data: Buffer.from(data), ...extra})

describe('ckpt import refuses a hostile or damaged tar', () => {
  it('1: a ".." component', async () => {
    await refused(tarOf([file('../escape')]), /"\.\." component/)
  })

  it('2: ".." inside a path (a/../../escape)', async () => {
    await refused(tarOf([file('a/../../escape')]), /"\.\." component/)
  })

  it('3: a hard link to a path outside (../outside/x)', async () => {
    await refused(tarOf([file('a'), {name: 'l', type: '1', linkname: '../outside/x'}]), /hard link target .*"\.\." component/)
  })

  it('4: a hard link to an absolute path the archive does not hold (/etc/passwd)', async () => {
    await refused(tarOf([file('a'), {name: 'l', type: '1', linkname: '/etc/passwd'}]), /hard link l points to "\/etc\/passwd", which is not a regular file earlier/)
  })

  it('5: a hard link to a directory', async () => {
    await refused(tarOf([{name: 'd/', type: '5'}, {name: 'l', type: '1', linkname: 'd'}]), /not a regular file earlier/)
  })

  it('6: a hard link to a member that comes later', async () => {
    await refused(tarOf([{name: 'l', type: '1', linkname: 'a'}, file('a')]), /not a regular file earlier/)
  })

  it('7: a file under a symlink of the archive (the classic escape)', async () => {
    await refused(tarOf([{name: 'link', type: '2', linkname: outside}, file('link/planted')]), /lies under link, which the archive makes a symlink/)
  })

  it('8: a file under a file', async () => {
    await refused(tarOf([file('f'), file('f/g')]), /lies under f, which the archive makes a file/)
  })

  it('9: a directory that is later a file', async () => {
    await refused(tarOf([{name: 'd/', type: '5'}, file('d/x'), file('d')]), /names d both as a directory and as a file/)
  })

  it('10: a file that is later a directory', async () => {
    await refused(tarOf([file('f'), {name: 'f/', type: '5'}]), /names f both as a file and as a directory/)
  })

  it('11: a NUL inside a (pax) name', async () => {
    await refused(tarOf([file('x', 'x', {pax: [['path', Buffer.from('a\0b')]]})]), /contains a NUL byte/)
  })

  it('12: a bad header checksum', async () => {
    await refused(tarOf([file('a', 'x', {badChecksum: true})]), /not a readable tar archive: Invalid tar header/)
  })

  it('13: a stream cut inside a member', async () => {
    const whole = tarOf([file('big', 'y'.repeat(5000))])
    await refused(whole.subarray(0, 512 + 1000), /truncated|Unexpected end/)
  })

  it('14: a stream cut between members (no end-of-archive blocks)', async () => {
    await refused(tarOf([file('a'), file('b')], {end: false}), /without its end-of-archive blocks: truncated/)
  })

  it('15: an absurd size (base-256, 2^62 bytes)', async () => {
    const field = Buffer.alloc(12)
    field[0] = 0x80
    field.writeBigUInt64BE(1n << 62n, 4)
    await refused(tarOf([{name: 'huge', sizeField: field}]), /impossible size/)
  })

  it('16: a size far beyond the stream (1 TiB declared, a few bytes given)', async () => {
    await refused(tarOf([{name: 'liar', size: 2 ** 40, data: Buffer.from('abc')}]), /truncated|Unexpected end/)
  })

  it('17: a negative size (base-256)', async () => {
    const field = Buffer.alloc(12, 0xff)
    field[11] = 0xfe // -1 in two's complement
    await refused(tarOf([{name: 'neg', sizeField: field}]), /impossible size|Invalid header/)
  })

  it('18: a huge pax header (5 MiB)', async () => {
    await refused(tarOf([file('a', 'x', {pax: [['comment', 'z'.repeat(5 * 1024 * 1024)]]})]), /Header exceeds max size/)
  })

  it('19: a pax record that lies about its length', async () => {
    const body = Buffer.from('99 path=short\n')
    const bytes = Buffer.concat([tarHeader({name: 'PaxHeader', type: 'x', data: body}), body, Buffer.alloc(512 - body.length), tarOf([file('a')])])
    await refused(bytes, /malformed pax header/)
  })

  it('20: a path nested deeper than PATH_MAX', async () => {
    await refused(tarOf([file('x', 'x', {pax: [['path', 'd/'.repeat(2100) + 'f']]})]), /longer than PATH_MAX/)
  })

  it('21: a name longer than NAME_MAX', async () => {
    await refused(tarOf([file('x', 'x', {pax: [['path', 'n'.repeat(300)]]})]), /component of 300 bytes/)
  })

  it('22: an owner id out of range (pax uid 2^32-1)', async () => {
    await refused(tarOf([file('a', 'x', {pax: [['uid', '4294967295']]})]), /owner id out of range/)
  })

  it('23: not a tar at all (random bytes)', async () => {
    await refused(Buffer.from(Array.from({length: 2048}, (_, i) => (i * 7919) % 251)), /not a readable tar archive/)
  })

  it('24: an empty input', async () => {
    await refused(Buffer.alloc(0), /the input is empty/)
  })

  it('25: a damaged gzip stream', async () => {
    const gz = gzipSync(tarOf([file('a', 'z'.repeat(10000))]))
    gz.fill(0x55, 20, 60)
    await refused(gz, /not a readable tar archive/)
  })

  it('26: a member that names the root as a file', async () => {
    await refused(tarOf([file('./')]), /names the archive's root|both as/)
  })

  it('27: an entry type ckpt does not know (old GNU sparse "S")', async () => {
    await refused(tarOf([{name: 'sparse', type: 'S', data: Buffer.from('x')}]), /entry type ckpt does not import/)
  })

  it('28: an xattr value larger than Linux holds', async () => {
    await refused(tarOf([file('a', 'x', {pax: [['SCHILY.xattr.user.big', 'v'.repeat(70_000)]]})]), /xattr value of 70000 bytes/)
  })

  it('29: a GNU sparse map that claims more data than the member stores', async () => {
    const map = Buffer.alloc(512)
    map.write('1\n0\n999999\n', 'latin1')
    await refused(tarOf([{name: 'GNUSparseFile.1/s', data: Buffer.concat([map, Buffer.from('abc')]), pax: [['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', 's'], ['GNU.sparse.realsize', '1000000']]}]), /sparse/)
  })

  it('30: a symlink with an empty target', async () => {
    await refused(tarOf([{name: 'l', type: '2', linkname: ''}]), /symlink l has a target of 0 bytes/)
  })
})

describe('ckpt import neutralises what is harmless once contained', () => {
  it('31: absolute names land under the root', async () => {
    const target = await neutralised(tarOf([file('/etc/ckpt-escape', 'abs')]))
    expect(await fsp.readFile(path.join(target, 'etc/ckpt-escape'), 'utf8')).toBe('abs')
  })

  it('32: a symlink pointing outside is stored as a link, never followed', async () => {
    const target = await neutralised(tarOf([{name: 'evil', type: '2', linkname: '../../../outside/escape'}, {name: 'abs', type: '2', linkname: path.join(outside, 'escape2')}]))
    expect(await fsp.readlink(path.join(target, 'evil'))).toBe('../../../outside/escape')
    expect(await fsp.readdir(outside)).toEqual([])
  })

  it('33: duplicate names: the last member wins', async () => {
    const target = await neutralised(tarOf([file('dup', 'first'), file('dup', 'second')]))
    expect(await fsp.readFile(path.join(target, 'dup'), 'utf8')).toBe('second')
  })

  it('34: a gzip bomb (64 MiB of zeros in 64 KiB) is streamed and deduplicated', async () => {
    const zeros = Buffer.alloc(64 * 1024 * 1024)
    const gz = gzipSync(tarOf([{name: 'zeros', data: zeros}]), {level: 9})
    expect(gz.length).toBeLessThan(256 * 1024)
    const before = await dataBytes()
    const {error, id} = await importBytes(gz)
    expect(error).toBeUndefined()
    expect(id).toBeDefined()
    // Stored once per distinct chunk: far less than what it inflates to.
    expect(await dataBytes() - before).toBeLessThan(1024 * 1024)
    await expectVerifies()
  })

  it('35: a directory listed twice keeps its children and its last metadata', async () => {
    const {id} = await importBytes(tarOf([{name: 'd/', type: '5', mode: 0o700}, file('d/a'), {name: 'd/', type: '5', mode: 0o750}]))
    const repo = await openLocalRepository(repoDir)
    await repo.loadIndex()
    const snap = (await loadCatalog(repo)).snapshots.find((s) => s.id === id)!
    const top = decodeTree(await repo.readBlob(Buffer.from(snap.manifest.tree, 'hex')), 'root')
    expect(top.map((x) => [x.name.toString(), x.mode])).toEqual([['d', 0o750]])
    const sub = decodeTree(await repo.readBlob(top[0]!.subtree!), 'd')
    expect(sub.map((x) => x.name.toString())).toEqual(['a'])
  })
})

async function dataBytes(): Promise<number> {
  let total = 0
  const walk = async (dir: string) => {
    for (const e of await fsp.readdir(dir, {withFileTypes: true})) {
      if (e.isDirectory()) await walk(path.join(dir, e.name))
      else total += (await fsp.stat(path.join(dir, e.name))).size
    }
  }
  await walk(path.join(repoDir, 'data'))
  return total
}

describe('ckpt import through the CLI', () => {
  it('refuses with exit code 16 and one line on stderr (file and stdin), JSON under --json', async () => {
    const bad = path.join(root, 'cli-bad.tar')
    await fsp.writeFile(bad, tarOf([file('../escape')]))
    const r = await runCli(['import', bad, '--source', '/imported', '--repo', repoDir])
    expect(r.code).toBe(16)
    expect(r.stderr).toMatch(/^ckpt: archive path "\.\.\/escape" has a "\.\." component[^\n]*\n$/)
    expect(r.stdout).toBe('')
    const viaStdin = await runCli(['import', '-', '--source', '/imported', '--repo', repoDir, '--json'], {input: tarOf([file('a'), file('a/b')]).toString('latin1')})
    expect(viaStdin.code).toBe(16)
    expect(JSON.parse(viaStdin.stdout).error).toMatchObject({code: 'BAD_ARCHIVE', exitCode: 16})
    const missing = await runCli(['import', path.join(root, 'nope.tar'), '--source', '/imported', '--repo', repoDir])
    expect(missing.code).toBe(5)
  })
})

describe('a killed import', () => {
  it('commits nothing: no snapshot, the repository verifies, and the next import works', async () => {
    const {spawn} = await import('node:child_process')
    const {BIN} = await import('../helpers/cli.js')
    const {seededBytes} = await import('../helpers/tree.js')
    const snaps = await snapshotCount()
    const archive = tarOf([{name: 'big.bin', data: seededBytes(8 * 1024 * 1024, 5)}, file('after')])
    const child = spawn(process.execPath, [BIN, 'import', '-', '--source', '/killed', '--repo', repoDir], {stdio: ['pipe', 'ignore', 'ignore'], env: {...process.env, CI: '1'}})
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)))
    // The event: ckpt has taken 4 MiB of the archive (a pipe holds 64 KiB), so it is mid-file,
    // storing chunks. Then it dies without a chance to clean up.
    const half = archive.subarray(0, 4 * 1024 * 1024)
    await new Promise<void>((resolve, reject) => child.stdin.write(half, (err) => (err ? reject(err) : resolve())))
    child.kill('SIGKILL')
    expect(await exited).toBe('SIGKILL')
    expect(await snapshotCount()).toBe(snaps)
    await expectVerifies()
    const {error, id} = await importBytes(archive)
    expect(error).toBeUndefined()
    expect(id).toBeDefined()
    await expectVerifies()
  })
})
