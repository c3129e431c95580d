import * as Args from '@oclif/core/args'

import {CkptCommand} from '../cli/base.js'
import type {CompletionCommand, Shell} from '../cli/completion.js'

export default class Completion extends CkptCommand {

  static override summary = 'Print a shell completion script (bash, zsh or fish).'
  static override description = `Completes commands, their flags, the values of flags with a fixed set, and file names. The script is written from this ckpt's commands: load it again after an upgrade.

bash: source <(ckpt completion bash) in ~/.bashrc, or save it as /etc/bash_completion.d/ckpt.
zsh: source <(ckpt completion zsh) in ~/.zshrc (after compinit), or save it as _ckpt in a directory of $fpath.
fish: ckpt completion fish > ~/.config/fish/completions/ckpt.fish`
  static override examples = [
    'source <(<%= config.bin %> completion bash)',
    '<%= config.bin %> completion fish > ~/.config/fish/completions/ckpt.fish',
  ]

  static override args = {
    shell: Args.string({description: 'bash, zsh or fish.', required: true, options: ['bash', 'zsh', 'fish']}),
  }

  async run(): Promise<{shell: string; script: string}> {
    const {args} = await this.parse(Completion)
    const commands: CompletionCommand[] = this.config.commands.filter((c) => !c.hidden).map((c) => ({
      id: c.id,
      summary: c.summary ?? c.description ?? '',
      choices: Object.values(c.args)[0]?.options,
      flags: Object.entries(c.flags).filter(([, f]) => !f.hidden).map(([name, f]) => ({
        name,
        char: f.char,
        value: f.type === 'option',
        options: f.type === 'option' ? f.options : undefined,
        summary: f.summary ?? f.description ?? '',
      })),
    }))
    // Loaded when the command runs, so that every other command starts without it.
    const {completionScript} = await import('../cli/completion.js')
    const script = completionScript(args.shell as Shell, commands)
    if (!this.jsonEnabled()) process.stdout.write(script)
    return {shell: args.shell, script}
  }
}
