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

/**
 * The most connection attempts that can start within `windowMs` of a first attempt, given the schedule in
 * connection.ts: the first retry after `baseMs`, then reconnectDelayMs with its jitter at the low edge. Later
 * windows hold fewer (the waits only grow while attempts fail), so this bounds any window: a "reconnect storm"
 * is more attempts than this.
 */
export function maxAttemptsWithin(windowMs: number, baseMs: number, maxMs: number): number {
  let attempts = 1;
  let startsAt = baseMs;
  for (let retry = 1; startsAt <= windowMs && attempts < 1_000_000; retry++) {
    attempts++;
    startsAt += reconnectDelayMs(retry, baseMs, maxMs, () => 0);
  }
  return attempts;
}
