// Progress on long work: a spinner with figures on a terminal (stderr), nothing otherwise, so
// cron mail and CI logs stay clean. ora is loaded only when there is a terminal to draw on.
export interface Progress {
  update(text: string): void
  stop(): void
}

const NONE: Progress = {update: () => undefined, stop: () => undefined}

export async function startProgress(enabled: boolean, text: string): Promise<Progress> {
  if (!enabled || !process.stderr.isTTY || process.env.CI) return NONE
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
