// `ckpt completion bash|zsh|fish`: the bash script completes in a real bash; the others are
// checked by their shells when installed, and by what they must name otherwise.
import {spawnSync} from 'node:child_process'

import {describe, expect, it} from 'vitest'

import {completionScript} from '../../src/cli/completion.js'
import {BIN, ckpt, runCli} from '../helpers/cli.js'

function complete(words: string[]): string[] {
  const script = `source <("${process.execPath}" "${BIN}" completion bash)
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; COMPREPLY=(); _ckpt; printf '%s\\n' "\${COMPREPLY[@]}"`
  const r = spawnSync('bash', ['-c', script], {encoding: 'utf8', cwd: '/'})
  expect(r.stderr).toBe('')
  return r.stdout.split('\n').filter(Boolean)
}

describe('bash', () => {
  it('completes commands, flags, fixed values and help topics', () => {
    expect(complete(['ckpt', 'sna'])).toEqual(['snapshot', 'snapshots'])
    expect(complete(['ckpt', ''])).toContain('completion')
    expect(complete(['ckpt', ''])).toContain('help')
    expect(complete(['ckpt', 'snapshot', '--exclude-'])).toEqual(['--exclude-file', '--exclude-if-present', '--exclude-caches', '--exclude-nodump'])
    expect(complete(['ckpt', 'restore', '--dr'])).toEqual(['--dry-run'])
    expect(complete(['ckpt', 'completion', ''])).toEqual(['bash', 'zsh', 'fish'])
    expect(complete(['ckpt', 'help', 'res'])).toEqual(['restore'])
    // A flag's value and an argument: file names.
    expect(complete(['ckpt', 'snapshot', '--exclude-file', 'et'])).toEqual(['etc'])
    expect(complete(['ckpt', 'snapshot', 'et'])).toEqual(['etc'])
  })
})

describe('zsh and fish', () => {
  it.each([['zsh'], ['fish']])('%s: names every command and flag, and parses where the shell is installed', async (shell) => {
    const r = await ckpt(['completion', shell])
    for (const word of ['snapshot', 'restore', 'completion', 'exclude-caches', 'one-file-system', 'dry-run']) expect(r.stdout).toContain(word)
    const installed = spawnSync(shell, ['-c', 'true']).status === 0
    if (installed) {
      const check = spawnSync(shell, shell === 'zsh' ? ['-n', '-c', r.stdout] : ['--no-execute', '-c', r.stdout], {encoding: 'utf8'})
      expect(check.status, check.stderr).toBe(0)
    }
  })

  it('descriptions carry no quote that would end the shell string', () => {
    const script = completionScript('zsh', [{id: 'x', summary: "it's [odd]: \"quoted\" `cmd` $HOME. More.", flags: [{name: 'f', value: true, summary: "don't: e.g. this"}]}])
    expect(script).toContain("'x:its odd'")
    expect(script).toContain("'--f[dont]:value:_files'")
    const fish = completionScript('fish', [{id: 'x', summary: 'a', flags: [{name: 'f', value: true, summary: "don't, e.g. this one. Then"}]}])
    expect(fish).toContain("-l f -r -F -d 'dont, e.g this one'")
  })
})

describe('errors', () => {
  it('an unknown shell is a usage error', async () => {
    const r = await runCli(['completion', 'tcsh'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('ckpt: Expected tcsh to be one of: bash, zsh, fish (see ckpt completion --help)\n')
  })
})
