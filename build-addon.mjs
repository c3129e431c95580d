#!/usr/bin/env node
// The package's install script: builds the native addon (src/native/, binding.gyp) with node-gyp
// into build/Release/ckpt_native.node. The addon is an accelerator, not a requirement: every
// caller has a JavaScript or WebAssembly fallback (src/core/native.ts). So a machine that cannot
// build it (no make, g++ or python3; zstd-napi, whose zstd sources it compiles, not installed)
// still installs ckpt: this says so in one line, keeps node-gyp's output in
// build/addon-build.log, and exits 0. `.ci/run` checks that the addon was built.
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.dirname(fileURLToPath(import.meta.url))
const args = ['rebuild', '--jobs=max']
// Node's own headers when this Node ships them (Debian's nodejs, the official tarballs): nothing
// to download, so an offline install builds too.
const prefix = path.resolve(process.execPath, '../..')
if (!process.env.npm_config_nodedir && existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`)

function failure() {
  try {
    // binding.gyp resolves it the same way, from this directory (hoisted or not).
    createRequire(path.join(root, 'package.json')).resolve('zstd-napi/package.json')
  } catch {
    // npm drops it, an optional dependency, when its own build fails (no make, most often).
    return 'zstd-napi, whose zstd sources it compiles, did not install: its own build needs make, g++ and python3 too'
  }
  // npm puts its own node-gyp on the PATH of install scripts.
  const r = spawnSync('node-gyp', args, {cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20})
  if (r.status === 0) return undefined
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`
  try {
    mkdirSync(path.join(root, 'build'), {recursive: true})
    writeFileSync(path.join(root, 'build', 'addon-build.log'), output)
  } catch {
    // The log is a courtesy; the warning below says what failed.
  }
  if (r.error) return `node-gyp: ${r.error.message}`
  // node-gyp's first error line names the cause ("not found: make", "Could not find any Python").
  const line = /^gyp ERR! stack Error: (.+)$/m.exec(output) ?? /^gyp ERR! (?:find Python )?(.+)$/m.exec(output)
  return `${line ? line[1].trim() : `node-gyp exited with ${r.status ?? r.signal}`}; see build/addon-build.log`
}

const reason = failure()
if (reason !== undefined) {
  process.stderr.write(`ckpt: the native addon could not be built (${reason}): ckpt works, with its slower JavaScript/WebAssembly fallbacks; install make, g++ and python3, then install again for full speed\n`)
}
