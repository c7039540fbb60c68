/**
 * Fault injection for the test suite, the way databases do it (TiKV's and FoundationDB's failpoints): a named point in
 * the code that a test can slow down from outside, even in a daemon started as a child process.
 *
 *   FORECASTD_FAILPOINTS="model.load.delayMs=3000"
 *
 * Unset (always, outside tests) every point is a no-op. Only delays exist: enough to widen the start-up windows that
 * a real gateway opens with large models or a slow SD card, so that a test can show nothing is lost in them.
 */
export const FAILPOINTS_ENV = 'FORECASTD_FAILPOINTS';

export type FailpointName = 'model.load.delayMs';

function parse(text: string | undefined): Map<string, number> {
  const points = new Map<string, number>();
  for (const entry of (text ?? '').split(',')) {
    const [name, value] = entry.split('=').map((part) => part.trim());
    const number = Number(value);
    if (name && Number.isFinite(number) && number >= 0) points.set(name, number);
  }
  return points;
}

/** Waits as long as the failpoint says (not at all when it is unset). */
export async function failpointDelay(name: FailpointName, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const ms = parse(env[FAILPOINTS_ENV]).get(name);
  if (ms) await new Promise((resolve) => setTimeout(resolve, ms));
}
