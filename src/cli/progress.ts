// Progress on long work: a spinner with figures on a terminal (stderr), nothing otherwise, so
// cron mail and CI logs stay clean. ora is loaded only when there is a terminal to draw on.
export interface Progress {
  update(text: string): void
  stop(): void
}

const NONE: Progress = {update: () => undefined, stop: () => undefined}

/**
 * Whether to draw: asked for, on a terminal, not in CI, and a terminal that reports a width (on
 * one that reports 0 columns, as `script` without a size does, ora redraws in a busy loop).
 */
export function shouldDraw(enabled: boolean, stream: {isTTY?: boolean; columns?: number}, env: NodeJS.ProcessEnv): boolean {
  return enabled && stream.isTTY === true && !env['CI'] && (stream.columns ?? 0) > 0
}

export async function startProgress(enabled: boolean, text: string): Promise<Progress> {
  if (!shouldDraw(enabled, process.stderr, process.env)) return NONE
  const {default: ora} = await import('ora')
  const spinner = ora({text, stream: process.stderr, discardStdin: false}).start()
  let last = 0
  return {
    update(t: string) {
      const now = Date.now()
      if (now - last < 100) return // redraw at most ten times a second
      last = now
      spinner.text = t
    },
    stop() {
      spinner.stop()
    },
  }
}
