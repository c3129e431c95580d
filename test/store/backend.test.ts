// The backend suite against every backend: local, S3 on a real Swift s3api server (started once
// for this file), and S3 through a proxy that throttles, fails, drops and stalls requests.
import {randomBytes} from 'node:crypto'
import {promises as fsp} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, test} from 'vitest'

import {LockedError, StorageError} from '../../src/core/errors.js'
import {LocalBackend} from '../../src/store/local.js'
import {RepositoryLock} from '../../src/store/lock.js'
import {openS3Backend, type S3Backend, type S3Tuning, DEFAULT_TUNING} from '../../src/store/s3.js'
import {type FaultProxy, startFaultProxy} from '../helpers/faultproxy.js'
import {type Swift, startSwift, swiftMissing} from '../helpers/swift.js'
import {tempDir} from '../helpers/tree.js'
import {backendSuite} from './backend.suite.js'

backendSuite('local directory', async () => {
  const root = await tempDir('ckpt-backend-')
  const backend = new LocalBackend(path.join(root, 'repo'))
  return {
    backend,
    leaveTemporary: async (kind, name) => {
      const w = await backend.create(kind, name)
      await w.write(Buffer.from('half a pack'), 0)
      // Never committed nor aborted: the temp file stays, as after a kill.
    },
    cleanup: () => fsp.rm(root, {recursive: true, force: true}),
  }
})

const skip = swiftMissing()
if (skip) console.warn(skip)

/** Small parts and pages, so a few MiB exercise multipart and a few objects pagination; a short timeout for stalls. */
const TUNING: S3Tuning = {...DEFAULT_TUNING, multipartAbove: 6 * 1024 * 1024, partSize: 5 * 1024 * 1024, pageSize: 7, listLagMs: 200, timeoutMs: 2000, attempts: 12, baseDelayMs: 20, maxDelayMs: 400}

let swift: Swift | undefined
let proxy: FaultProxy | undefined
let dir: string
const bucket = `ckpt-${randomBytes(4).toString('hex')}`

beforeAll(async () => {
  if (skip) return
  dir = await tempDir('ckpt-swift-')
  swift = await startSwift(dir)
  // Credentials come from the SDK's own provider chain (the environment, here), as for a user.
  Object.assign(process.env, swift.env)
  proxy = await startFaultProxy(swift.endpoint, {rate: 0.25, faults: ['throttle', 'error', 'drop', 'dropBody', 'throttle', 'error', 'drop', 'dropBody', 'slow'], seed: 42, slowMs: 2500})
}, 180_000)
afterAll(async () => {
  await proxy?.close()
  await swift?.stop()
  if (dir) await fsp.rm(dir, {recursive: true, force: true})
})

async function s3Harness(endpoint: () => string, tuning = TUNING) {
  const env = {...swift!.env, AWS_ENDPOINT_URL: endpoint()}
  const backend = await openS3Backend(bucket, `t/${randomBytes(6).toString('hex')}`, tuning, env)
  return {
    backend,
    leaveTemporary: async (kind: 'data', name: string) => {
      // Straight to the server (not through the fault proxy): this is the dead writer, not the code under test.
      const sdk = await import('@aws-sdk/client-s3')
      const client = new sdk.S3Client({endpoint: swift!.endpoint, forcePathStyle: true, region: 'us-east-1'})
      const Key = `${backend.prefix}/${kind}/${name.slice(0, 2)}/${name}`
      const {UploadId} = await client.send(new sdk.CreateMultipartUploadCommand({Bucket: bucket, Key}))
      await client.send(new sdk.UploadPartCommand({Bucket: bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1), ContentLength: 1024}))
      client.destroy()
    },
    cleanup: async () => {
      backend.client.destroy()
    },
  }
}

describe.skipIf(Boolean(skip))('S3', () => {
  backendSuite('S3 (Swift s3api on loopback)', () => s3Harness(() => swift!.endpoint))
  backendSuite('S3 through faults (503 SlowDown, 500, dropped connections and bodies, stalls)', () => s3Harness(() => proxy!.endpoint))

  test('the fault proxy did inject every kind of fault, and the suite above passed through them', () => {
    for (const [kind, n] of Object.entries(proxy!.injected)) expect(n, kind).toBeGreaterThan(0)
  })

  test('when retries run out: StorageError (exit 17) saying how often it tried and what the store answered', async () => {
    const failing = await startFaultProxy(swift!.endpoint, {rate: 1, faults: ['throttle']})
    try {
      const {backend} = await s3Harness(() => failing.endpoint, {...TUNING, attempts: 3})
      const err = await backend.put('index', 'ab'.repeat(32), Buffer.from('x')).then(() => undefined, (e: unknown) => e)
      expect(err).toBeInstanceOf(StorageError)
      expect((err as StorageError).exitCode).toBe(17)
      expect((err as Error).message).toMatch(/failed 3 times.*503.*SlowDown/)
      expect(failing.injected.throttle).toBe(3)
    } finally {
      await failing.close()
    }
  })

  test('locks on S3: an exclusive lock keeps a second one out; released, it can be taken', async () => {
    const {backend} = await s3Harness(() => swift!.endpoint)
    await backend.initLayout()
    const first = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'})
    const err = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune'}).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(LockedError)
    const shared = await RepositoryLock.acquire(backend, {exclusive: false, command: 'snapshot'}).then(() => undefined, (e: unknown) => e)
    expect(shared).toBeInstanceOf(LockedError)
    await first.release()
    const second = await RepositoryLock.acquire(backend, {exclusive: true, command: 'prune', retryMs: 5000})
    await second.release()
    expect((backend as S3Backend).retries).toBe(0)
  })
})
