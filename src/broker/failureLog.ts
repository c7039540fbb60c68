import type { Logger } from '../log.js';

/**
 * Error lines for a failure that repeats (a broker refusing every reconnect for days): the first one of each kind
 * at once, then at most one line per interval saying how many occurred since the previous line. The log of a
 * gateway that lost its broker for a week then holds a few hundred lines, not one per attempt, and the first line
 * still comes at once.
 */
export class RateLimitedLog {
  private readonly kinds = new Map<string, { lastLoggedAt: number; heldBack: number }>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = 60_000,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Logs at error level unless a line of this kind went out less than an interval ago; true when it logged. */
  error(kind: string, fields: Record<string, unknown>, message: string): boolean {
    const now = this.clock();
    const seen = this.kinds.get(kind);
    if (seen && now - seen.lastLoggedAt < this.intervalMs) {
      seen.heldBack++;
      return false;
    }
    // `occurrences` covers this one and those held back since the previous line, so a reader can sum them.
    this.log.error({ ...fields, kind, occurrences: (seen?.heldBack ?? 0) + 1 }, message);
    this.kinds.set(kind, { lastLoggedAt: now, heldBack: 0 });
    return true;
  }

  /** Forgets every kind (the fault is over) and returns how many occurrences were held back and never logged. */
  reset(): number {
    let heldBack = 0;
    for (const kind of this.kinds.values()) heldBack += kind.heldBack;
    this.kinds.clear();
    return heldBack;
  }
}
