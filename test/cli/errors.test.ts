// The CLI's habits and errors as a user meets them: help in the ways other tools taught, usage
// errors whole on one line, an unknown command and a repository path that is a file with their
// documented exit codes (and JSON under --json), plurals that agree with their counts.
import {promises as fsp} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {helpArgv, unknownCommand} from '../../src/cli/run.js'
import {count, usageMessage} from '../../src/cli/format.js'
import {ckpt, runCli} from '../helpers/cli.js'
import {makeReadOnly} from '../helpers/readonly.js'
import {buildTree, tempDir, type TreeSpec} from '../helpers/tree.js'

let work: string
beforeAll(async () => {
  work = await tempDir('ckpt-errors-')
})
afterAll(async () => {
  await fsp.rm(work, {recursive: true, force: true})
})


/** A repository `repo-NAME` holding one snapshot of `src-NAME` (built from `spec`), both under work. */
async function snapshotted(name: string, spec: TreeSpec): Promise<string> {
  const repo = path.join(work, `repo-${name}`)
  await ckpt(['init', '--repo', repo])
  const src = path.join(work, `src-${name}`)
  await fsp.mkdir(src)
  await buildTree(src, spec)
  await ckpt(['snapshot', src, '--repo', repo])
  return repo
}

describe('help', () => {
  it.each([['help'], ['-h'], ['--help']])('ckpt %s lists the commands and exits 0', async (flag) => {
    const r = await ckpt([flag])
    expect(r.stdout).toMatch(/COMMANDS/)
    expect(r.stdout).toMatch(/snapshot\s+Checkpoint a directory/)
    expect(r.stderr).toBe('')
  })

  it.each([['help', 'snapshot'], ['snapshot', '-h'], ['restore', '-h'], ['help', 'restore']])('ckpt %s %s shows the command\'s help', async (a, b) => {
    const r = await ckpt([a, b])
    const name = a === 'help' ? b : a
    expect(r.stdout).toMatch(new RegExp(`USAGE\\n\\s+\\$ ckpt ${name}`))
    expect(r.stdout).toMatch(/EXAMPLES/)
  })

  it('ckpt help of an unknown command is an unknown command', async () => {
    const r = await runCli(['help', 'bogus'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('ckpt: unknown command "bogus" (see ckpt --help for the commands)\n')
  })
})

describe('usage errors', () => {
  it('a bad flag value is shown whole, on one line, exit 2', async () => {
    const r = await runCli(['prune', '--keep-last', 'x'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('ckpt: Parsing --keep-last: Expected an integer but received: x (see ckpt prune --help)\n')
    expect(r.stdout).toBe('')
  })

  it('a missing argument names it', async () => {
    const r = await runCli(['restore'])
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n')).toHaveLength(2)
    expect(r.stderr).toMatch(/^ckpt: Missing 1 required arg: snapshot Snapshot id, unique prefix, or "latest"\..* \(see ckpt restore --help\)\n$/)
  })

  it('under --json the same message is in the error document', async () => {
    const r = await runCli(['restore', 'latest', '--source', 'a', '--source', 'b', '--json'])
    expect(r.code).toBe(2)
    const doc = JSON.parse(r.stdout) as {error: {code: string; message: string; exitCode: number}}
    expect(doc).toEqual({error: {code: 'USAGE', exitCode: 2, data: {}, message: 'Flag --source can only be specified once (see ckpt restore --help)'}})
  })

  it('an unknown command: one line, exit 2; JSON under --json', async () => {
    const r = await runCli(['bogus'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('ckpt: unknown command "bogus" (see ckpt --help for the commands)\n')
    const j = await runCli(['bogus', '--json'])
    expect(j.code).toBe(2)
    expect(JSON.parse(j.stdout)).toEqual({error: {code: 'USAGE', message: 'unknown command "bogus" (see ckpt --help for the commands)', exitCode: 2, data: {command: 'bogus'}}})
    expect(j.stderr).toBe('')
    const flagOnly = await runCli(['--json'])
    expect(flagOnly.code).toBe(2)
    expect(JSON.parse(flagOnly.stdout).error.code).toBe('USAGE')
  })
})

describe('a repository path that is a file', () => {
  it.each([['snapshots'], ['verify'], ['prune'], ['restore']])('%s: one line, exit 10, nothing created', async (command) => {
    const file = path.join(work, `repo-file-${command}`)
    await fsp.writeFile(file, 'not a repository')
    const args = command === 'prune' ? [command, '--keep-last', '1'] : command === 'restore' ? [command, 'latest'] : [command]
    const r = await runCli([...args, '--repo', file])
    expect(r.code).toBe(10)
    expect(r.stderr).toBe(`ckpt: no ckpt repository at ${file}: it is a file, or lies under one, not a directory\n`)
    const under = await runCli([...args, '--repo', path.join(file, 'sub'), '--json'])
    expect(under.code).toBe(10)
    expect(JSON.parse(under.stdout).error).toMatchObject({code: 'NO_REPOSITORY', exitCode: 10})
    expect(await fsp.readFile(file, 'utf8')).toBe('not a repository')
  })

  it('init: exit 2 (asked to create a repository where it cannot be), in one line', async () => {
    const file = path.join(work, 'init-file')
    await fsp.writeFile(file, 'x')
    for (const root of [file, path.join(file, 'sub')]) {
      const r = await runCli(['init', '--repo', root])
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`ckpt: cannot create a repository at ${root}: it is a file, or lies under one, not a directory\n`)
    }
    expect(await fsp.readFile(file, 'utf8')).toBe('x')
  })

  it('init: a directory holding anything but a lone empty lost+found (a fresh ext4 backup disk) is refused, exit 2', async () => {
    const disk = path.join(work, 'fresh-disk')
    await fsp.mkdir(path.join(disk, 'lost+found'), {recursive: true})
    await ckpt(['init', '--repo', disk])
    expect((await fsp.readdir(disk)).sort()).toEqual(['config', 'data', 'index', 'locks', 'lost+found', 'pins', 'snapshots'])
    const used = path.join(work, 'used-disk')
    await fsp.mkdir(path.join(used, 'lost+found'), {recursive: true})
    await fsp.writeFile(path.join(used, 'lost+found', '#12'), 'recovered')
    const r = await runCli(['init', '--repo', used])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`ckpt: cannot create a repository at ${used}: the directory is not empty\n`)
  })

  it('init and restore --target where the kernel refuses the directory (/proc): one line, exit 2 and 5, no hang', async () => {
    const init = await runCli(['init', '--repo', '/proc/ckpt-no-such/repo'])
    expect(init.code).toBe(2)
    expect(init.stderr).toMatch(/^ckpt: cannot create a repository at \/proc\/ckpt-no-such\/repo: ENOENT .*\n$/)
    const repo = await snapshotted('proc-target', {})
    const r = await runCli(['restore', 'latest', '--target', '/proc/ckpt-no-such/out', '--repo', repo])
    expect(r.code).toBe(5)
    expect(r.stderr).toMatch(/^ckpt: cannot make \/proc\/ckpt-no-such to restore into: ENOENT .*\n$/)
  })

  it('restore --target in a directory that cannot be written (read-only, or immutable): one line naming it, exit 5, nothing left', async (ctx) => {
    const repo = await snapshotted('ro-target', {a: 'a', d: {dir: {b: 'b'}}})
    const ro = path.join(work, 'ro-parent')
    await fsp.mkdir(path.join(ro, 'empty'), {recursive: true})
    for (const how of ['ro-bind-mount', 'chattr +i'] as const) {
      const made = makeReadOnly(ro, how)
      if (!made) return ctx.skip('cannot make a read-only directory here (a read-only bind mount or chattr +i: needs root)')
      try {
        for (const [target, args] of [[path.join(ro, 'new'), []], [path.join(ro, 'empty'), ['--overwrite']]] as const) {
          const r = await runCli(['restore', 'latest', '--target', target, '--repo', repo, ...args])
          const why = made.how === 'chattr +i' ? 'EPERM: operation not permitted' : 'EROFS: read-only file system'
          expect([r.code, r.stderr]).toEqual([5, `ckpt: cannot restore to ${target}: cannot write in ${ro} (${why}), where the new tree is built before it is moved into place\n`])
        }
        expect(await fsp.readdir(ro)).toEqual(['empty'])
      } finally {
        made.undo()
      }
    }
  })

  it('restore --target inside the repository (or the repository itself) is exit 2, and nothing is written there', async () => {
    const repo = await snapshotted('inside-target', {a: 'a'})
    const before = (await fsp.readdir(repo, {recursive: true})).sort()
    for (const target of [path.join(repo, 'data', 'x'), repo, path.join(repo, 'new', 'deeper')]) {
      const r = await runCli(['restore', 'latest', '--target', target, '--repo', repo])
      expect([r.code, r.stderr]).toEqual([2, `ckpt: cannot restore to ${target}: it is inside the repository ${repo}; restore somewhere else\n`])
    }
    expect((await fsp.readdir(repo, {recursive: true})).sort()).toEqual(before)
    expect((await runCli(['verify', '--repo', repo])).code).toBe(0)
  })

  it('restore --target a symbolic link to a directory restores into that directory and leaves the link; a dangling one is exit 5', async () => {
    const repo = await snapshotted('link-target', {a: 'a', d: {dir: {b: 'b'}}})
    const real = path.join(work, 'link-target-real')
    await fsp.mkdir(real)
    const link = path.join(work, 'link-target')
    await fsp.symlink('link-target-real', link)
    const r = await runCli(['restore', 'latest', '--target', link, '--repo', repo, '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toMatchObject({destination: real, files: 2})
    expect(await fsp.readlink(link)).toBe('link-target-real')
    expect((await fsp.readdir(real)).sort()).toEqual(['a', 'd'])
    // Not empty now: refused as the directory itself would be, then replaced with --overwrite.
    expect((await runCli(['restore', 'latest', '--target', link, '--repo', repo])).code).toBe(5)
    await fsp.writeFile(path.join(real, 'a'), 'changed')
    await ckpt(['restore', 'latest', '--target', link, '--repo', repo, '--overwrite'])
    expect(await fsp.readFile(path.join(link, 'a'), 'utf8')).toBe('a')
    expect(await fsp.readlink(link)).toBe('link-target-real')
    const dangling = path.join(work, 'link-target-dangling')
    await fsp.symlink('nowhere', dangling)
    const d = await runCli(['restore', 'latest', '--target', dangling, '--repo', repo])
    expect([d.code, d.stderr]).toEqual([5, `ckpt: ${dangling} is a symbolic link that leads to no directory\n`])
  })

  it('snapshot of a directory whose path is not UTF-8 (reached through a link): exit 5 saying so, no snapshot recorded under another path', async () => {
    const repo = path.join(work, 'repo-latin1-source')
    await ckpt(['init', '--repo', repo])
    const latin1 = Buffer.concat([Buffer.from(`${work}/caf`), Buffer.from([0xe9])])
    await fsp.mkdir(latin1)
    await fsp.writeFile(Buffer.concat([latin1, Buffer.from('/f')]), 'x')
    const link = path.join(work, 'link-to-latin1')
    await fsp.symlink(latin1, link)
    const r = await runCli(['snapshot', link, '--repo', repo])
    expect([r.code, r.stderr]).toEqual([5, `ckpt: ${link}: its path ${work}/caf\\351 is not valid UTF-8, which ckpt cannot record as a source directory (rename it, or a directory above it)\n`])
    expect(JSON.parse((await ckpt(['snapshots', '--repo', repo, '--json'])).stdout)).toEqual([])
  })

  it('snapshot with the default .ckpt being a file does not try to create it', async () => {
    const cwd = path.join(work, 'cwd-file')
    await fsp.mkdir(cwd)
    await buildTree(cwd, {'.ckpt': 'a file', src: {dir: {a: 'x'}}})
    const r = await runCli(['snapshot', 'src'], {cwd})
    expect(r.code).toBe(10)
    expect(r.stderr).toMatch(/^ckpt: no ckpt repository at .*\.ckpt: it is a file/)
  })
})

describe('plurals', () => {
  it('one file, one directory, one symlink', async () => {
    const src = path.join(work, 'one')
    await fsp.mkdir(src)
    await buildTree(src, {d: {dir: {f: 'x'}}, l: {symlink: 'd/f'}})
    const repo = path.join(work, 'repo-one')
    await ckpt(['init', '--repo', repo])
    const s = await ckpt(['snapshot', src, '--repo', repo])
    expect(s.stderr).toMatch(/: 1 file, 1 B,/)
    const r = await ckpt(['restore', 'latest', '--repo', repo, '--target', path.join(work, 'one-out')])
    expect(r.stderr).toMatch(/: 1 file, 1 directory, 1 symlink, 1 B\n/)
  })
})

describe('pure helpers', () => {
  it('usageMessage keeps every line of oclif\'s message', () => {
    expect(usageMessage('Parsing --keep-last \n\tExpected an integer but received: x\nSee more help with --help')).toBe('Parsing --keep-last: Expected an integer but received: x')
    expect(usageMessage('The following errors occurred:\n  --a cannot also be provided when using --b\n  Missing required flag c\nSee more help with --help'))
      .toBe('The following errors occurred: --a cannot also be provided when using --b; Missing required flag c')
    expect(usageMessage('Flag --x expects a value')).toBe('Flag --x expects a value')
  })

  it('helpArgv and unknownCommand', () => {
    expect(helpArgv(['help'])).toEqual(['--help'])
    expect(helpArgv(['help', 'snapshot'])).toEqual(['snapshot', '--help'])
    expect(helpArgv(['snapshot', 'help'])).toEqual(['snapshot', 'help'])
    expect(unknownCommand(new Error('command bogus not found'))).toBe('bogus')
    expect(unknownCommand(new Error('Command bogus not found.'))).toBe('bogus')
    expect(unknownCommand(new Error('something else'))).toBeUndefined()
  })

  it('count', () => {
    expect(count(1, 'file')).toBe('1 file')
    expect(count(0, 'file')).toBe('0 files')
    expect(count(2, 'directory', 'directories')).toBe('2 directories')
  })
})
