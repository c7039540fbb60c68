/**
 * Capped exponential backoff with jitter for broker reconnects: a broker that restarts is found again
 * within seconds, one that stays down is not hammered, and a fleet of gateways does not reconnect in step.
 * Pure: the random source is a parameter.
 */
export function reconnectDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  // "Equal jitter": at least half the step, so the delay still grows, plus a random half.
  return Math.round(exponential / 2 + random() * (exponential / 2));
}
