// Shell completion scripts, written from the command table: commands, their flags (and the
// values of flags that take a fixed set), file names where a command takes a path. Generated
// when asked, so they always match this ckpt; nothing is cached or installed behind the user's back.
export type Shell = 'bash' | 'zsh' | 'fish'

export interface CompletionFlag {
  name: string
  char?: string
  /** Takes a value (completed as a file name, or from `options`). */
  value: boolean
  options?: readonly string[]
  summary: string
}

export interface CompletionCommand {
  id: string
  summary: string
  flags: readonly CompletionFlag[]
  /** The values its first argument takes, when a fixed set (else file names). */
  choices?: readonly string[]
}

/** The first sentence, on one line, without characters the shells' quoting would need escapes for. */
function short(text: string): string {
  const line = text.replace(/\s+/g, ' ').replace(/\b(e\.g|i\.e)\./g, '$1').trim()
  const first = /^(.*?[.:;])(\s|$)/.exec(line)?.[1] ?? line
  return first.replace(/[.:;]$/, '').replace(/['"`$\\[\]]/g, '').slice(0, 80)
}

function bash(commands: readonly CompletionCommand[]): string {
  const ids = commands.map((c) => c.id).join(' ')
  const cases = commands.map((c) => {
    const words = c.flags.flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])]).join(' ')
    const valued = c.flags.filter((f) => f.value && !f.options).flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])])
    const choices = c.flags.filter((f) => f.options).map((f) => `      ${[`--${f.name}`, ...(f.char ? [`-${f.char}`] : [])].join('|')}) COMPREPLY=($(compgen -W "${f.options!.join(' ')}" -- "$cur")); return ;;`)
    return [
      `    ${c.id})`,
      `      flags="${words}"`,
      `      valued=" ${valued.join(' ')} "`,
      ...(c.choices ? [`      words="${c.choices.join(' ')}"`] : []),
      ...(choices.length ? ['      case "$prev" in', ...choices.map((l) => `  ${l}`), '      esac'] : []),
      '      ;;',
    ].join('\n')
  }).join('\n')
  return `# ckpt completion for bash. Load it with: source <(ckpt completion bash)
# or install it: ckpt completion bash > /etc/bash_completion.d/ckpt
_ckpt() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local commands="${ids} help" flags="" valued=" " words=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}" in
    help) [ "$COMP_CWORD" -eq 2 ] && COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
${cases}
  esac
  if [[ "$valued" == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [ -n "$words" ]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -o bashdefault -F _ckpt ckpt
`
}

function zsh(commands: readonly CompletionCommand[]): string {
  const list = commands.map((c) => `    '${c.id}:${short(c.summary)}'`).join('\n')
  const spec = (f: CompletionFlag): string => {
    const value = f.options ? `:value:(${f.options.join(' ')})` : f.value ? ':value:_files' : ''
    const text = `[${short(f.summary)}]${value}`
    return f.char ? `'(-${f.char} --${f.name})'{-${f.char},--${f.name}}'${text}'` : `'--${f.name}${text}'`
  }
  const cases = commands.map((c) => `    ${c.id}) _arguments -s ${[...c.flags.map(spec), c.choices ? `'1:value:(${c.choices.join(' ')})'` : `'*:file:_files'`].join(' ')} ;;`).join('\n')
  return `#compdef ckpt
# ckpt completion for zsh. Load it with: source <(ckpt completion zsh)
# or install it as _ckpt in a directory of $fpath: ckpt completion zsh > ~/.zfunc/_ckpt
_ckpt() {
  local -a commands
  commands=(
${list}
    'help:Show help for a command'
  )
  if (( CURRENT == 2 )); then
    _describe command commands
    return
  fi
  local cmd=$words[2]
  shift words
  (( CURRENT-- ))
  case $cmd in
    help) _describe command commands ;;
${cases}
  esac
}
if [ "$funcstack[1]" = "_ckpt" ]; then _ckpt "$@"; else compdef _ckpt ckpt; fi
`
}

function fish(commands: readonly CompletionCommand[]): string {
  const lines = ['# ckpt completion for fish. Load it with: ckpt completion fish | source', '# or install it: ckpt completion fish > ~/.config/fish/completions/ckpt.fish', 'complete -c ckpt -f']
  const ids = commands.map((c) => c.id).join(' ')
  for (const c of commands) lines.push(`complete -c ckpt -n "not __fish_seen_subcommand_from ${ids} help" -a ${c.id} -d '${short(c.summary)}'`)
  lines.push(`complete -c ckpt -n "not __fish_seen_subcommand_from ${ids} help" -a help -d 'Show help for a command'`)
  lines.push(`complete -c ckpt -n "__fish_seen_subcommand_from help" -a "${ids}"`)
  for (const c of commands) {
    const when = `-n "__fish_seen_subcommand_from ${c.id}"`
    lines.push(c.choices ? `complete -c ckpt ${when} -x -a "${c.choices.join(' ')}"` : `complete -c ckpt ${when} -F`)
    for (const f of c.flags) {
      const value = f.options ? ` -x -a "${f.options.join(' ')}"` : f.value ? ' -r -F' : ''
      lines.push(`complete -c ckpt ${when} -l ${f.name}${f.char ? ` -s ${f.char}` : ''}${value} -d '${short(f.summary)}'`)
    }
  }
  return lines.join('\n') + '\n'
}

export function completionScript(shell: Shell, commands: readonly CompletionCommand[]): string {
  const sorted = [...commands].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  return shell === 'bash' ? bash(sorted) : shell === 'zsh' ? zsh(sorted) : fish(sorted)
}
