// Tar in and out against GNU tar, through the built CLI:
// - an awkward tree (non-UTF-8 and long names, ns mtimes, odd modes, owners, hard links, xattrs
//   with binary values, a FIFO, a device, a sparse file, empty directories) made into a tar by
//   GNU tar, imported, exported, and extracted by GNU tar again gives the tree back exactly;
// - `ckpt export ID | tar -x` gives the same tree as `ckpt restore ID`;
// - export of some paths, --zstd both ways, and a damaged chunk stopping the export (exit 12,
//   no file left behind).
import {execFileSync, spawn} from 'node:child_process'
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {BIN, ckpt, runCli} from '../helpers/cli.js'
import {buildTree, captureTree, diffTrees, tempDir} from '../helpers/tree.js'

let root: string
let repo: string

beforeAll(async () => {
  root = await tempDir('ckpt-tar-roundtrip-')
  repo = path.join(root, 'repo')
  await ckpt(['init', '--repo', repo])
})

afterAll(async () => {
  await fsp.rm(root, {recursive: true, force: true})
})

const sh = (cmd: string, args: string[], opts: {cwd?: string} = {}) => execFileSync(cmd, args, {cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe']})

/** Everything tar and restore should keep, beyond captureTree: xattrs, hard link groups, device numbers, allocated size of sparse files. */
async function fullCapture(dir: string): Promise<{tree: Map<string, unknown>; xattrs: string; links: string[][]; extra: Record<string, string>}> {
  const tree = await captureTree(dir)
  const xattrs = sh('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '.'], {cwd: dir}).toString()
  const byInode = new Map<string, string[]>()
  const extra: Record<string, string> = {}
  const walk = async (abs: Buffer, rel: string) => {
    const st = await fsp.lstat(abs, {bigint: true})
    if (st.isFile() && st.nlink > 1n) byInode.set(String(st.ino), [...(byInode.get(String(st.ino)) ?? []), rel])
    if (st.isCharacterDevice() || st.isBlockDevice()) extra[rel] = `rdev ${st.rdev}`
    if (st.isFIFO()) extra[rel] = 'fifo'
    if (st.isFile() && st.size > 1_000_000n) extra[rel] = `blocks<${st.blocks < st.size / 512n / 4n}`
    if (st.isDirectory()) {
      for (const n of await fsp.readdir(abs, {encoding: 'buffer'})) await walk(Buffer.concat([abs, Buffer.from('/'), n]), rel ? `${rel}/${n.toString('hex')}` : n.toString('hex'))
    }
  }
  await walk(Buffer.from(dir), '')
  return {tree, xattrs, links: [...byInode.values()].map((g) => g.sort()).sort(), extra}
}

async function awkwardTree(dir: string): Promise<void> {
  await fsp.mkdir(dir)
  await buildTree(dir, {
    'plain.txt': 'hello\n',
    'hex:6361669e': 'latin-1 name, not UTF-8',
    'ünïcødé': 'utf-8 name',
    'spaces and\nnewline': 'odd name',
    [`${'long-name-'.repeat(20)}end`]: 'a name past the 100 bytes of a ustar header',
    deep: {dir: {[`${'d'.repeat(60)}`]: {dir: {[`${'e'.repeat(60)}`]: {dir: {'f.txt': 'path past 155+100 bytes'}}}}}},
    empty: {dir: {}},
    'setuid-bin': {file: 'x', mode: 0o4755},
    'sticky': {dir: {}, mode: 0o1777},
    'private': {file: 'secret', mode: 0o600},
    'big.bin': {file: {random: 3 * 1024 * 1024 + 17, seed: 7}},
    'link-rel': {symlink: 'plain.txt'},
    'link-abs': {symlink: '/etc/hostname'},
    'link-dangling': {symlink: 'does/not/exist'},
    'hex:6c696e6bff': {symlink: Buffer.from('746172676574ff', 'hex')},
  })
  // ns mtimes, owners, hard links, xattrs, special files, a sparse file.
  execFileSync('touch', ['-d', '@1600000000.123456789', path.join(dir, 'plain.txt')])
  execFileSync('touch', ['-h', '-d', '@1500000000.987654321', path.join(dir, 'link-rel')])
  await fsp.chown(path.join(dir, 'private'), 1234, 5678)
  await fsp.chown(path.join(dir, 'plain.txt'), 3_000_000, 3_000_001) // past the ustar fields: pax uid/gid
  await fsp.link(path.join(dir, 'plain.txt'), path.join(dir, 'deep/hardlink-to-plain'))
  await fsp.link(path.join(dir, 'plain.txt'), path.join(dir, 'hardlink-2'))
  sh('setfattr', ['-n', 'user.text', '-v', 'value', path.join(dir, 'plain.txt')])
  sh('setfattr', ['-n', 'user.binary', '-v', '0x00ff10fe', path.join(dir, 'private')])
  sh('setfattr', ['-n', 'user.on-dir', '-v', 'd', path.join(dir, 'empty')])
  sh('mkfifo', [path.join(dir, 'fifo')])
  sh('mknod', [path.join(dir, 'null-dev'), 'c', '1', '3'])
  const sparse = await fsp.open(path.join(dir, 'sparse.img'), 'w')
  await sparse.write(Buffer.from('start'), 0, 5, 0)
  await sparse.write(Buffer.from('middle'), 0, 6, 8 * 1024 * 1024)
  await sparse.truncate(32 * 1024 * 1024)
  await sparse.close()
  sh('setfattr', ['-n', 'user.on-root', '-v', '0x00726f6f74ff', dir]) // the "./" member's
  await fsp.utimes(dir, 1_700_000_000.5, 1_700_000_000.5)
}

/** Run `ckpt ARGS | tar -x ...` into `dest`; resolves with ckpt's exit code and stderr. */
function exportInto(args: string[], dest: string, tarArgs: string[] = []): Promise<{code: number | null; stderr: string; tar: number | null}> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, CI: '1'}})
    const t = spawn('tar', ['-x', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-p', '-f', '-', '-C', dest, ...tarArgs], {stdio: ['pipe', 'ignore', 'pipe']})
    c.stdout.pipe(t.stdin)
    let stderr = ''
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    t.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    c.on('error', reject)
    t.on('error', reject)
    const ckptDone = new Promise<number | null>((r) => c.on('close', (cc) => r(cc)))
    const tarDone = new Promise<number | null>((r) => t.on('close', (tc) => r(tc)))
    void Promise.all([ckptDone, tarDone]).then(([code, tar]) => resolve({code, stderr, tar}))
  })
}

describe('tar round trips with GNU tar', () => {
  it('GNU tar -c of an awkward tree, ckpt import, ckpt export, GNU tar -x gives the tree back exactly', async () => {
    const src = path.join(root, 'awkward')
    await awkwardTree(src)
    const archive = path.join(root, 'awkward.tar')
    sh('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '--sparse', '--numeric-owner', '-cf', archive, '-C', src, '.'])
    const id = (await ckpt(['import', archive, '--source', '/srv/awkward', '--repo', repo])).stdout.trim()
    expect(id).toMatch(/^[0-9a-f]{64}$/)
    await ckpt(['verify', '--repo', repo])
    const out = path.join(root, 'out')
    await fsp.mkdir(out)
    const r = await exportInto(['export', id, '--repo', repo], out)
    expect(r.stderr).not.toMatch(/tar:/)
    expect([r.code, r.tar]).toEqual([0, 0])
    const want = await fullCapture(src)
    const got = await fullCapture(out)
    expect(diffTrees(want.tree as never, got.tree as never)).toEqual([])
    expect(got.xattrs).toBe(want.xattrs)
    const hex = (p: string) => p.split('/').map((c) => Buffer.from(c).toString('hex')).join('/')
    expect(want.links).toEqual([[hex('deep/hardlink-to-plain'), hex('hardlink-2'), hex('plain.txt')]])
    expect(got.links).toEqual(want.links)
    expect(got.extra).toEqual(want.extra)
    expect(want.extra[hex('sparse.img')]).toBe('blocks<true')
    expect(got.tree.get('')).toMatchObject({xattrs: 'user.on-root=00726f6f74ff'})
  })

  it("the root's ACLs and xattrs go through ckpt export and ckpt import", async () => {
    const src = path.join(root, 'rootmeta')
    await fsp.mkdir(src)
    await buildTree(src, {'a.txt': 'alpha', sub: {dir: {}}})
    sh('setfacl', ['-m', 'u:1234:r-x', src])
    sh('setfacl', ['-d', '-m', 'u:1234:rwx', src])
    sh('setfattr', ['-n', 'user.purpose', '-v', 'state', src])
    const id = (await ckpt(['snapshot', src, '--repo', repo])).stdout.trim()
    const archive = path.join(root, 'rootmeta.tar')
    await ckpt(['export', id, '-o', archive, '--repo', repo])
    const imported = (await ckpt(['import', archive, '--source', '/srv/rootmeta', '--repo', repo])).stdout.trim()
    const out = path.join(root, 'rootmeta-out')
    await ckpt(['restore', imported, '--target', out, '--repo', repo])
    const facl = (dir: string) => sh('getfacl', ['-p', '--omit-header', dir]).toString()
    expect(facl(out)).toBe(facl(src))
    expect(facl(out)).toMatch(/default:user:1234:rwx/)
    expect(diffTrees(await captureTree(src), await captureTree(out))).toEqual([])
  })

  it('the same archive through gzip and zstd, and from stdin, imports to the same tree', async () => {
    const archive = path.join(root, 'awkward.tar')
    const plain = JSON.parse((await ckpt(['import', archive, '--source', '/srv/c', '--repo', repo, '--json'])).stdout)
    sh('gzip', ['-k', '-f', archive])
    sh('zstd', ['-q', '-f', archive, '-o', `${archive}.zst`])
    const gz = JSON.parse((await ckpt(['import', `${archive}.gz`, '--source', '/srv/c', '--repo', repo, '--json'])).stdout)
    const zst = JSON.parse((await ckpt(['import', `${archive}.zst`, '--source', '/srv/c', '--repo', repo, '--json'])).stdout)
    expect([plain.compression, gz.compression, zst.compression]).toEqual(['none', 'gzip', 'zstd'])
    // Chained by source; the second and third store no blob at all (same chunks, same trees).
    expect(gz.parent).toBe(plain.id)
    expect(zst.parent).toBe(gz.id)
    expect([gz.newBlobs, zst.newBlobs]).toEqual([0, 0])
    const viaStdin = execFileSync(process.execPath, [BIN, 'import', '-', '--source', '/srv/c', '--repo', repo, '--json', '--tag', 'migrated', '--time', '2030-01-02T03:04:05Z'], {input: await fsp.readFile(`${archive}.zst`), env: {...process.env, CI: '1'}})
    expect(JSON.parse(viaStdin.toString())).toMatchObject({parent: zst.id, newBlobs: 0, compression: 'zstd', tags: ['migrated'], time: '2030-01-02T03:04:05.000Z', source: '/srv/c'})
  })

  it('ckpt export | tar -x gives the same tree as ckpt restore', async () => {
    const src = path.join(root, 'snapsrc')
    await fsp.mkdir(src)
    await buildTree(src, {
      'a.txt': 'alpha',
      'hex:ff01aa': 'binary name',
      sub: {dir: {'b.bin': {file: {random: 700_000, seed: 3}, mode: 0o640}, empty: {dir: {}}, 'l': {symlink: '../a.txt'}}},
      'mode-700': {dir: {'x': 'y'}, mode: 0o700},
    })
    execFileSync('touch', ['-d', '@1234567890.123456789', path.join(src, 'a.txt')])
    const id = (await ckpt(['snapshot', src, '--repo', repo])).stdout.trim()
    const restored = path.join(root, 'restored')
    await ckpt(['restore', id, '--target', restored, '--repo', repo])
    const exported = path.join(root, 'exported')
    await fsp.mkdir(exported)
    const r = await exportInto(['export', id, '--repo', repo], exported)
    expect([r.code, r.tar]).toEqual([0, 0])
    expect(diffTrees(await captureTree(restored), await captureTree(exported))).toEqual([])
    expect(diffTrees(await captureTree(src), await captureTree(exported))).toEqual([])
  })

  it('with hard links, xattrs, a FIFO, a device and a sparse file too, export | tar -x gives what restore gives', async () => {
    const snaps = JSON.parse((await ckpt(['snapshots', '--repo', repo, '--json'])).stdout) as {id: string; source: string}[]
    const id = snaps.find((s) => s.source === '/srv/awkward')!.id
    const restored = path.join(root, 'restored-awkward')
    await ckpt(['restore', id, '--target', restored, '--repo', repo])
    const exported = path.join(root, 'exported-awkward')
    await fsp.mkdir(exported)
    const r = await exportInto(['export', id, '--repo', repo], exported)
    expect([r.code, r.tar]).toEqual([0, 0])
    const a = await fullCapture(restored)
    const b = await fullCapture(exported)
    expect(diffTrees(a.tree as never, b.tree as never)).toEqual([])
    expect(b.xattrs).toBe(a.xattrs)
    expect(b.links).toEqual(a.links)
    expect(b.links.length).toBe(1)
    expect(b.extra).toEqual(a.extra)
    expect(Object.values(b.extra).sort()).toEqual(['blocks<false', 'blocks<true', 'fifo', 'rdev 259']) // big.bin, sparse.img, fifo, null-dev
  })

  it('export of some paths, latest --source (a directory that does not exist here), --zstd, and --json with -o', async () => {
    const id = (await ckpt(['snapshots', '--repo', repo, '--json'])).stdout
    const snap = (JSON.parse(id) as {id: string; source: string}[]).find((s) => s.source === '/srv/awkward')!
    const file = path.join(root, 'part.tar.zst')
    const r = JSON.parse((await ckpt(['export', 'latest', '--source', '/srv/awkward', 'deep', 'plain.txt', '--zstd', '-o', file, '--repo', repo, '--json'])).stdout)
    // A directory's files come before its subdirectories: plain.txt is the file, deep/hardlink-to-plain the link to it.
    expect(r).toMatchObject({snapshot: snap.id, output: file, files: 2, hardLinks: 1})
    const listing = sh('tar', ['--zstd', '-tf', file]).toString().trim().split('\n')
    expect(listing).toEqual(['plain.txt', 'deep/', 'deep/hardlink-to-plain', `deep/${'d'.repeat(60)}/`, `deep/${'d'.repeat(60)}/${'e'.repeat(60)}/`, `deep/${'d'.repeat(60)}/${'e'.repeat(60)}/f.txt`])
    const missing = await runCli(['export', snap.id, 'no/such/path', '-o', path.join(root, 'x.tar'), '--repo', repo])
    expect(missing.code).toBe(4)
    expect(missing.stderr).toMatch(/no\/such\/path is not in the snapshot/)
    await expect(fsp.readdir(root)).resolves.not.toContain('x.tar')
  })

  it('export of paths named as the shell passes them or as ckpt ls shows them (a newline, a byte that is not UTF-8)', async () => {
    const snaps = JSON.parse((await ckpt(['snapshots', '--repo', repo, '--json'])).stdout) as {id: string; source: string}[]
    const id = snaps.find((s) => s.source === '/srv/awkward')!.id
    const shown = (await ckpt(['ls', id, '--repo', repo])).stdout.split('\n')
    expect(shown).toEqual(expect.arrayContaining(['caf\\236', 'spaces\\ and\\nnewline']))
    for (const typed of [['spaces and\nnewline', 'caf\\236'], ['spaces\\ and\\nnewline']]) {
      const file = path.join(root, 'named.tar')
      await ckpt(['export', id, ...typed, '-o', file, '--repo', repo])
      const members = sh('tar', ['-tf', file]).toString('latin1').trim().split('\n')
      expect(members).toEqual(typed.length === 2 ? ['caf\\236', 'spaces and\\nnewline'] : ['spaces and\\nnewline'])
    }
  })

  it('a reader that goes away (export | head) ends the export quietly, not with a hang', async () => {
    const snaps = JSON.parse((await ckpt(['snapshots', '--repo', repo, '--json'])).stdout) as {id: string; source: string}[]
    const id = snaps.find((s) => s.source === '/srv/awkward')!.id
    const err = path.join(root, 'epipe.err')
    const script = `"$0" "$1" export "$2" --repo "$3" 2>"$4" | head -c 1000 >/dev/null; echo "exit=\${PIPESTATUS[0]}"; cat "$4"`
    const r = execFileSync('bash', ['-c', script, process.execPath, BIN, id, repo, err], {env: {...process.env, CI: '1'}, timeout: 30_000}).toString()
    expect(r).toBe('exit=0\n')
  })

  it('a damaged chunk stops the export with exit code 12 and leaves no file', async () => {
    const src = path.join(root, 'damage')
    await fsp.mkdir(src)
    await buildTree(src, {'f.bin': {file: {random: 300_000, seed: 11}}})
    const other = path.join(root, 'repo-damage')
    await ckpt(['init', '--repo', other])
    const id = (await ckpt(['snapshot', src, '--repo', other])).stdout.trim()
    // Flip bytes in the middle of every pack: the file's chunks no longer match their ids.
    const dataDir = path.join(other, 'data')
    for (const sub of await fsp.readdir(dataDir)) {
      for (const name of await fsp.readdir(path.join(dataDir, sub))) {
        const p = path.join(dataDir, sub, name)
        const fh = await fsp.open(p, 'r+')
        await fh.write(Buffer.alloc(64, 0x5a), 0, 64, 1000)
        await fh.close()
      }
    }
    const dest = path.join(root, 'damaged.tar')
    const r = await runCli(['export', id, '-o', dest, '--repo', other])
    expect(r.code).toBe(12)
    expect((await fsp.readdir(root)).filter((n) => n.includes('damaged.tar'))).toEqual([])
  })
})
