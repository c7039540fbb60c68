/**
 * What forecastd may believe of the wall clock (docs/reliability.md, "Clock jumps (F8)").
 *
 * A Raspberry Pi has no battery-backed clock. Until NTP answers, it reads 1970, or the build date of systemd (its
 * "clock epoch", years in the past), or the time of the last shutdown (fake-hwclock). No forecastd of this release
 * ran before the date below, so a clock that reads earlier has not been set, whatever it says: readings cannot be
 * stamped with it and ages cannot be measured against it. A clock that reads later is believed; a forward leap
 * from a plausible time is the job of the guards where time matters (retention's monotonic reference).
 */

/** 2026-01-01T00:00:00Z: before this release existed. Raise it with each release year; never lower it. */
export const EARLIEST_PLAUSIBLE_CLOCK_MS = Date.UTC(2026, 0, 1);

/** Whether a wall-clock reading can be a real time (false: an unsynced clock, e.g. a Pi booted without RTC or NTP). */
export const clockIsPlausible = (nowMs: number): boolean => Number.isFinite(nowMs) && nowMs >= EARLIEST_PLAUSIBLE_CLOCK_MS;

/**
 * Whether `intervalMs` has passed since `sinceMs`, both wall-clock readings. A clock that now reads before `sinceMs`
 * stepped back: the wait is over too, or it would last as long as the step (an hour, or the years to 1970's return).
 */
export const wallIntervalPassed = (sinceMs: number, nowMs: number, intervalMs: number): boolean => nowMs < sinceMs || nowMs - sinceMs >= intervalMs;

export interface WallClockWatch {
  /** Compares the clocks now (the timer does this every `everyMs`); returns the jump seen, 0 when none. */
  check(): number;
  stop(): void;
}

/**
 * Calls `onJump` when the wall clock moves unlike the monotonic clock: NTP stepping it, an operator setting it.
 * Both advance together through event-loop stalls and suspends of the timer, so only a step of the wall clock
 * shows, as the difference of the two advances (positive: forward). Slewing (NTP's small corrections) stays far
 * below the tolerance.
 */
export function watchWallClock(
  onJump: (jumpMs: number) => void,
  options: { everyMs?: number; toleranceMs?: number; wall?: () => number; monotonic?: () => number } = {},
): WallClockWatch {
  // Read through the globals at each call, not bound once: what node-cron reads is what must be watched.
  const wall = options.wall ?? (() => Date.now());
  const monotonic = options.monotonic ?? (() => performance.now());
  const toleranceMs = options.toleranceMs ?? 2_000;
  let last = { wall: wall(), monotonic: monotonic() };
  const check = (): number => {
    const now = { wall: wall(), monotonic: monotonic() };
    const jumpMs = now.wall - last.wall - (now.monotonic - last.monotonic);
    last = now;
    if (Math.abs(jumpMs) <= toleranceMs) return 0;
    onJump(jumpMs);
    return jumpMs;
  };
  const timer = setInterval(check, options.everyMs ?? 1_000);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
