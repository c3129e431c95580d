// A real writer process (statewriter.py) changing a directory in every way programs do and
// logging the digest of every state the directory had, and the same digest of a restored tree,
// so a test can ask: is this snapshot a state the directory really had?
import {type ChildProcess, spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {existsSync, promises as fsp} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'statewriter.py')
/** The distribution's interpreter: a version manager's shim can take seconds to start under load. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export interface StateWriter {
  proc: ChildProcess
  /** Stop it (SIGTERM) and return every state it logged. */
  stop(): Promise<Set<string>>
}

/** Start the writer on `dir` and wait until its first state is on disk. */
export async function startStateWriter(dir: string, log: string, opts: {seed: number; burst?: number; idleMs?: number; mmap?: boolean}): Promise<StateWriter> {
  const args = [SCRIPT, dir, log, '--seed', String(opts.seed), '--burst', String(opts.burst ?? 20), '--idle-ms', String(opts.idleMs ?? 100), ...(opts.mmap === false ? ['--no-mmap'] : [])]
  const proc = spawn(PYTHON, args,
    {stdio: ['ignore', 'pipe', 'inherit']})
  await new Promise<void>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('ready\n')) resolve()
    })
    proc.on('exit', (code) => reject(new Error(`state writer exited ${code} before it was ready`)))
  })
  return {
    proc,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.on('exit', r))
        proc.kill('SIGCONT')
        proc.kill('SIGTERM')
        await exited
      }
      return new Set((await fsp.readFile(log, 'utf8')).split('\n').filter(Boolean))
    },
  }
}

/** The digest statewriter.py logs, of the regular files under `root` (directories only hold them). */
export async function stateDigest(root: string): Promise<string> {
  const files: [Buffer, Buffer][] = []
  const walk = async (abs: string, rel: string) => {
    for (const e of await fsp.readdir(abs, {withFileTypes: true})) {
      const childRel = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) await walk(path.join(abs, e.name), childRel)
      else if (e.isFile()) files.push([Buffer.from(childRel), await fsp.readFile(path.join(abs, e.name))])
    }
  }
  await walk(root, '')
  files.sort((a, b) => Buffer.compare(a[0], b[0]))
  const h = createHash('sha256')
  for (const [name, data] of files) h.update(Buffer.concat([name, Buffer.from(`\0${data.length}\0`), data]))
  return h.digest('hex')
}
