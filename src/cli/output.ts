// Writing large results to stdout with bounded memory: each write waits for the pipe to drain, so
// a reader slower than the repository (a pager, a network copy) holds back the reading instead of
// letting output pile up in memory. A reader that goes away (EPIPE: `ckpt cat ... | head`) ends
// the output quietly: the command stops reading and exits 0, as with a closed pipe in the shell.
import {errnoCode} from '../core/errors.js'

export class StdoutSink {
  /** True once the reader has gone away: stop producing. */
  closed = false
  private failure: Error | undefined

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    out.on('error', (err: Error) => {
      if (errnoCode(err) === 'EPIPE') this.closed = true
      else this.failure = err
    })
  }

  async write(chunk: string | Uint8Array): Promise<void> {
    if (this.failure) throw this.failure
    if (this.closed) return
    if (this.out.write(chunk)) return
    await new Promise<void>((resolve) => {
      const done = () => {
        this.out.off('drain', done)
        this.out.off('error', done)
        this.out.off('close', done)
        resolve()
      }
      this.out.on('drain', done)
      this.out.on('error', done)
      this.out.on('close', done)
    })
    if (this.failure) throw this.failure
  }

  /** One JSON document on a line of its own (NDJSON). */
  line(text: string): Promise<void> {
    return this.write(text + '\n')
  }
}
