#!/usr/bin/env node
// The second half of `npm run build`: after tsc has written the library to dist/ (benches and
// scripts import its modules from there), bundle what the CLI runs, our code and @oclif/core with
// its dependencies, into a few ESM files. Node then reads, resolves and compiles a few files at
// start-up instead of ~150: `ckpt --version` went from 57 to 51 MB of peak RSS and 0.16 to 0.12 s
// (docs/BENCHMARKS.md, start-up).
//
// Two entry points, written over the files tsc emitted for them: dist/cli/run.js (what bin/run.js
// imports) and dist/commands/index.js (the command table oclif imports: package.json, "oclif").
// They share chunks in dist/chunks/, so there is one copy of oclif's Command class. What a command
// imports lazily (`await import('../snapshot/create.js')`) becomes a chunk of its own, loaded only
// when that command runs. Packages other than @oclif/core stay in node_modules: ckpt loads them
// lazily, or through createRequire (native bindings, blake3-wasm, whose path the worker threads get).
import {readFileSync, rmSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {build} from 'esbuild'

const root = path.dirname(fileURLToPath(import.meta.url))
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))

// Bundled as well: @aws-sdk/client-s3 (into the S3 backend's own chunk, loaded only for s3://
// repositories): as ~300 files it took 0.8-1.3 s to import on a loaded machine.
const bundled = new Set(['@oclif/core', '@aws-sdk/client-s3'])
const external = [
  ...Object.keys(pkg.dependencies).filter((name) => !bundled.has(name)),
  // Optional requires in oclif for TypeScript sources (development only; never in production).
  'typescript', 'ts-node', 'tsx',
]

// Source edits to oclif made while bundling. A build where one no longer applies fails, so an
// upgrade of @oclif/core cannot drop one silently.
const patches = [
  {
    file: /[\\/]@oclif[\\/]core[\\/]lib[\\/]config[\\/]plugin\.js$/,
    from: '.sort((a, b) => a.id.localeCompare(b.id));',
    to: '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));',
    // Sorting the command list with localeCompare set up an ICU collator in every command: 2.4 MB
    // of the node binary paged in (collation data and code), ~3 ms. Command ids are lowercase
    // ASCII, which code-unit order sorts the same way.
  },
]

const patchOclif = {
  name: 'patch-oclif',
  setup(b) {
    const applied = new Set()
    for (const patch of patches) {
      b.onLoad({filter: patch.file}, (args) => {
        const text = readFileSync(args.path, 'utf8')
        if (!text.includes(patch.from)) throw new Error(`${args.path} no longer contains ${JSON.stringify(patch.from)}: review the patch in bundle.mjs`)
        applied.add(patch)
        return {contents: text.replace(patch.from, patch.to), loader: 'js'}
      })
    }
    b.onEnd((result) => {
      const missed = patches.filter((patch) => !applied.has(patch))
      if (result.errors.length === 0 && missed.length) throw new Error(`bundle.mjs: nothing bundled matched ${missed.map((patch) => patch.file).join(', ')}`)
    })
  },
}

rmSync(path.join(root, 'dist', 'chunks'), {recursive: true, force: true})
await build({
  absWorkingDir: root,
  entryPoints: {'cli/run': 'src/cli/run.ts', 'commands/index': 'src/commands/index.ts'},
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // oclif is CommonJS: its require() of Node's modules needs a require in these ES modules.
  banner: {js: "import {createRequire as __ckptCreateRequire} from 'node:module'; const require = __ckptCreateRequire(import.meta.url);"},
  // Not minified: that saved 0.1-0.2 MB and no measurable time, and renaming identifiers would
  // change error names (new.target.name).
  sourcemap: true,
  plugins: [patchOclif],
  logLevel: 'warning',
})
