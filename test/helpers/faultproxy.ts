// A fault-injecting HTTP proxy in front of an S3 endpoint: what an object store and the network
// between do to a client, injected on a seeded share of the requests. The S3 backend's retries
// live below the Backend interface (in its HTTP calls), so that is where faults must happen.
//   throttle: 503 SlowDown, as S3 answers a client over its request rate
//   error:    500 InternalError
//   drop:     the connection closed before any answer
//   dropBody: the answer's headers and half its body, then the connection closed
//   slow:     the answer delayed by slowMs (past the client's timeout: it gives up and retries)
import http from 'node:http'

export type Fault = 'throttle' | 'error' | 'drop' | 'dropBody' | 'slow'

export interface FaultPlan {
  /** Share of requests that get a fault (1: every request). */
  rate: number
  faults: readonly Fault[]
  seed?: number
  slowMs?: number
}

export interface FaultProxy {
  endpoint: string
  /** Faults injected so far, by kind; requests forwarded untouched. */
  injected: Record<Fault, number>
  forwarded: number
  setPlan(plan: FaultPlan): void
  close(): Promise<void>
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const xml = (code: string, message: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`

export async function startFaultProxy(target: string, initial: FaultPlan): Promise<FaultProxy> {
  const upstream = new URL(target)
  const agent = new http.Agent({keepAlive: true, maxSockets: 64})
  let plan = initial
  let random = mulberry32(plan.seed ?? 1)
  const injected: Record<Fault, number> = {throttle: 0, error: 0, drop: 0, dropBody: 0, slow: 0}
  const proxy: FaultProxy = {endpoint: '', injected, forwarded: 0, setPlan: (p) => {
    plan = p
    random = mulberry32(p.seed ?? 1)
  }, close: async () => undefined}

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, fault?: Fault) => {
    // Headers go through as they are: the client signed the Host it sent (this proxy's), and the server checks that one.
    const out = http.request({host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent}, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      if (fault !== 'dropBody') {
        up.pipe(res)
        return
      }
      const length = Number(up.headers['content-length'] ?? 0)
      let sent = 0
      up.on('data', (chunk: Buffer) => {
        const room = Math.max(0, Math.floor(length / 2) - sent)
        if (room > 0) res.write(chunk.subarray(0, room))
        sent += Math.min(room, chunk.length)
        if (sent >= Math.floor(length / 2)) {
          up.destroy()
          res.socket?.destroy()
        }
      })
      up.on('end', () => res.socket?.destroy())
    })
    out.on('error', () => res.socket?.destroy())
    req.pipe(out)
  }

  const server = http.createServer((req, res) => {
    const fault = random() < plan.rate ? plan.faults[Math.floor(random() * plan.faults.length)] : undefined
    if (!fault) {
      proxy.forwarded++
      forward(req, res)
      return
    }
    injected[fault]++
    switch (fault) {
      case 'throttle':
      case 'error': {
        req.resume()
        req.on('end', () => {
          const body = fault === 'throttle' ? xml('SlowDown', 'Please reduce your request rate.') : xml('InternalError', 'We encountered an internal error. Please try again.')
          res.writeHead(fault === 'throttle' ? 503 : 500, {'content-type': 'application/xml', 'content-length': Buffer.byteLength(body)})
          res.end(body)
        })
        return
      }
      case 'drop':
        req.socket.destroy()
        return
      case 'slow':
        setTimeout(() => forward(req, res), plan.slowMs ?? 500)
        return
      case 'dropBody':
        forward(req, res, 'dropBody')
        return
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.endpoint = `http://127.0.0.1:${(server.address() as {port: number}).port}`
  proxy.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    agent.destroy()
  }
  return proxy
}
