// A real S3 endpoint for tests: OpenStack Swift with s3api on loopback (test/helpers/swift.sh),
// started once per test file on free ports. Where the Debian packages are missing the S3 tests
// are skipped with a message saying so (.ci/run installs them).
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {createServer} from 'node:net'
import path from 'node:path'
import {promisify} from 'node:util'

import {ROOT} from './cli.js'

const run = promisify(execFile)
const SCRIPT = path.join(ROOT, 'test', 'helpers', 'swift.sh')
const PROGRAMS = ['swift-proxy-server', 'swift-object-server', 'swift-container-server', 'swift-account-server', 'memcached']

/** Why Swift cannot run here (a missing program), or undefined when it can. */
export function swiftMissing(): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':')
  const missing = PROGRAMS.filter((p) => !dirs.some((d) => existsSync(path.join(d, p))))
  return missing.length ? `S3 tests skipped: ${missing.join(', ')} not installed (apt-get install swift swift-proxy swift-object swift-container swift-account memcached)` : undefined
}

export interface Swift {
  endpoint: string
  /** The standard AWS variables that point the SDK (and the CLI) at this server. */
  env: Record<string, string>
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
  })
}

export async function startSwift(dir: string): Promise<Swift> {
  const [proxy, object, container, account, memcached] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()]
  const env = {...process.env, PROXY_PORT: String(proxy), OBJECT_PORT: String(object), CONTAINER_PORT: String(container), ACCOUNT_PORT: String(account), MEMCACHED_PORT: String(memcached)}
  const {stdout} = await run(SCRIPT, ['start', dir], {env, timeout: 120_000})
  const endpoint = stdout.trim().split('\n')[0]!
  return {
    endpoint,
    env: {AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'test:tester', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1'},
    stop: async () => {
      await run(SCRIPT, ['stop', dir])
    },
  }
}
