// --exclude patterns. A pattern without "/" matches a name at any depth (like .gitignore);
// one with "/" matches the path from the snapshot root ("/" at the start is optional).
// "*" and "?" stay within one name, "**" crosses directories, [abc] / [!abc] are classes.
// An excluded directory is not entered.
import {UsageError} from '../core/errors.js'

export type ExcludeMatcher = (relPath: string, name: string) => boolean

function globToRegExp(glob: string): string {
  let re = ''
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!
    if (c === '*') {
      if (glob[i + 1] === '*') {
        i++
        if (glob[i + 1] === '/') {
          i++
          re += '(?:.*/)?'
        } else {
          re += '.*'
        }
      } else {
        re += '[^/]*'
      }
    } else if (c === '?') {
      re += '[^/]'
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2)
      if (close < 0) throw new UsageError(`--exclude ${JSON.stringify(glob)}: unclosed "["`)
      let body = glob.slice(i + 1, close)
      if (body.startsWith('!')) body = '^' + body.slice(1)
      // A class stays within one name, like "?": it never matches "/".
      re += `(?:(?!/)[${body.replace(/\\/g, '\\\\')}])`
      i = close
    } else {
      re += c.replace(/[.+^${}()|\\\]]/g, '\\$&')
    }
  }
  return re
}

export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  const byName: RegExp[] = []
  const byPath: RegExp[] = []
  for (const raw of patterns) {
    const p = raw.replace(/\/+$/, '')
    if (p === '') throw new UsageError('--exclude pattern is empty')
    if (p.includes('/')) byPath.push(new RegExp(`^${globToRegExp(p.replace(/^\/+/, ''))}$`, 's'))
    else byName.push(new RegExp(`^${globToRegExp(p)}$`, 's'))
  }
  if (byName.length === 0 && byPath.length === 0) return () => false
  return (relPath, name) => byName.some((r) => r.test(name)) || byPath.some((r) => r.test(relPath))
}
