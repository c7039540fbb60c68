/**
 * The daemon's stop sequence, in the order that loses nothing:
 *
 * 1. stop taking messages: from now on a reading is left unacknowledged, so the broker keeps it in our
 *    persistent session and delivers it again at the next start (never unsubscribe: that would end the
 *    session's subscription, and readings published while we are down would not be kept for us);
 *    what was in flight is already committed, since a reading is acknowledged only after its commit
 *    and the handler is synchronous;
 * 2. stop the clocks (forecast ticks, cron, retention), so nothing new starts;
 * 3. abort trainings (each keeps its last epoch checkpoint) and end the training threads;
 * 4. publish `offline` to the availability topic and disconnect;
 * 5. close the database (its WAL is checkpointed and removed).
 *
 * Each step runs even when an earlier one failed: a broker that hangs must not leave the database open.
 */
import type { Logger } from '../log.js';

export interface ShutdownStep {
  name: string;
  run: () => Promise<void> | void;
  /** A step that takes longer is given up on (the next steps still run). */
  timeoutMs?: number;
}

/**
 * Runs the steps in order; resolves with the names of the steps that failed or timed out. A step without
 * its own `timeoutMs` gets `defaultTimeoutMs` (if given), so that one stuck part cannot keep the others
 * (the database above all) from closing.
 */
export async function runShutdownSteps(steps: ShutdownStep[], log: Logger, options: { defaultTimeoutMs?: number } = {}): Promise<string[]> {
  const failed: string[] = [];
  for (const step of steps) {
    const startedAt = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeoutMs = step.timeoutMs ?? options.defaultTimeoutMs;
    try {
      const timeout = timeoutMs === undefined ? null : new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const outcome = await Promise.race([Promise.resolve().then(step.run), ...(timeout ? [timeout] : [])]);
      if (outcome === 'timeout') {
        failed.push(step.name);
        log.warn({ step: step.name, timeoutMs }, 'shutdown step took too long; going on without it');
        continue;
      }
      log.debug({ step: step.name, ms: Math.round(performance.now() - startedAt) }, 'shutdown step done');
    } catch (error) {
      failed.push(step.name);
      log.error({ step: step.name, err: (error as Error).message }, 'shutdown step failed; going on');
    } finally {
      clearTimeout(timer);
    }
  }
  return failed;
}
