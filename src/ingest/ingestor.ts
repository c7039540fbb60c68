import { createHash } from 'node:crypto';
import type { DeadLetters, Readings } from '../store/store.js';
import { clockIsPlausible, EARLIEST_PLAUSIBLE_CLOCK_MS } from '../clock.js';
import { SERIES_NAME } from '../config/schema.js';
import type { Logger } from '../log.js';
import { decodePayload, REJECTION_REASONS, type DecodeLimits, type RejectionReason } from './payload.js';
import type { TopicMapper } from './topics.js';

export interface IngestCounters {
  received: number;
  stored: number;
  duplicates: number;
  rejected: Record<RejectionReason, number>;
  /** Rejected messages written to the dead-letter table, and those that could not be. */
  deadLettered: number;
  deadLetterFailures: number;
}

/** At most one log line per reason per window, with the count of what it stood for. */
const REJECTION_LOG_WINDOW_MS = 10_000;

/**
 * Turns one MQTT message into stored readings. Synchronous: when `handle` returns, the readings are
 * committed, so the caller may acknowledge the message. A bad payload is counted and rejected (and
 * acknowledged: a poison message must not be redelivered forever), and kept as a dead letter when that is
 * enabled; only a failure to store readings throws.
 */
export class Ingestor {
  readonly counters: IngestCounters = {
    received: 0,
    stored: 0,
    duplicates: 0,
    rejected: Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, 0])) as Record<RejectionReason, number>,
    deadLettered: 0,
    deadLetterFailures: 0,
  };
  private readonly lastRejectionLog = new Map<RejectionReason, { at: number; suppressed: number }>();
  private lastDeadLetterFailureLog = { at: -Infinity, suppressed: 0 };

  constructor(
    private readonly deps: {
      store: Readings;
      mapper: TopicMapper;
      limits: DecodeLimits;
      clock: () => number;
      /**
       * Milliseconds from any origin, never stepped (default performance.now): the log rate limits measure
       * elapsed time with it, so that a wall clock stepped back an hour does not silence rejections for an hour.
       */
      elapsed?: () => number;
      log: Logger;
      /** When set, every rejected message is also written there (ingest.deadLetter.enabled). */
      deadLetters?: Pick<DeadLetters, 'record'>;
    },
  ) {}

  private elapsed(): number {
    return this.deps.elapsed ? this.deps.elapsed() : performance.now();
  }

  handle(topic: string, payload: Uint8Array): void {
    this.counters.received++;
    const now = this.deps.clock();
    const match = this.deps.mapper.match(topic);
    if (!match.ok) return this.reject(match.reason, topic, match.detail, now, payload);
    // Before NTP sets the clock (a Pi without RTC boots at 1970), a reading without a time of its own would be stored
    // at 1970, and no timestamp can be judged too old or ahead: reject everything (counted, and kept as a dead letter
    // when enabled) until the clock is set, rather than store readings at a wrong time.
    if (!clockIsPlausible(now)) {
      const reads = Number.isFinite(now) && Math.abs(now) <= 8.64e15 ? new Date(now).toISOString() : String(now);
      return this.reject(
        'clock_unsynced',
        topic,
        `the system clock reads ${reads}, before ${new Date(EARLIEST_PLAUSIBLE_CLOCK_MS).toISOString()}: not set yet (NTP?)`,
        now,
        payload,
      );
    }
    const decoded = decodePayload(payload, now, this.deps.limits, match.payload);
    if (!decoded.ok) return this.reject(decoded.reason, topic, decoded.detail, now, payload);
    const { series } = match;
    const readings = decoded.readings.map((reading) => ({
      series: reading.field === undefined ? series : `${series}.${reading.field}`,
      ts: reading.ts,
      value: reading.value,
    }));
    // A safe base name and a safe field can still add up to more than a series name may hold.
    if (readings.some((reading) => !SERIES_NAME.test(reading.series))) {
      return this.reject('bad_series_name', topic, 'series name plus field name is longer than 128 characters', now, payload);
    }
    const inserted = this.deps.store.insertMany(readings);
    this.counters.stored += inserted;
    this.counters.duplicates += readings.length - inserted;
  }

  rejectedTotal(): number {
    return Object.values(this.counters.rejected).reduce((sum, count) => sum + count, 0);
  }

  private reject(reason: RejectionReason, topic: string, detail: string, now: number, payload: Uint8Array): void {
    this.counters.rejected[reason]++;
    this.deadLetter(reason, topic, now, payload);
    const at = this.elapsed();
    const last = this.lastRejectionLog.get(reason);
    if (last && at - last.at < REJECTION_LOG_WINDOW_MS) {
      last.suppressed++;
      return;
    }
    // The topic is capped: it is attacker-controlled text. Payloads are never logged raw: their size and hash
    // identify them (and find them in dead_letters, when it is enabled).
    const payloadSha256 = createHash('sha256').update(payload).digest('hex');
    this.deps.log.warn(
      { reason, topic: topic.slice(0, 200), detail, payloadBytes: payload.byteLength, payloadSha256, suppressedSinceLast: last?.suppressed ?? 0 },
      'reading rejected',
    );
    this.lastRejectionLog.set(reason, { at, suppressed: 0 });
  }

  /**
   * A dead letter is a diagnostic copy: when it cannot be written (disk full, database closed) the message is still
   * rejected and acknowledged. Holding back the acknowledgement would have the broker redeliver a poison message,
   * which can never be stored, for as long as the disk stays full.
   */
  private deadLetter(reason: RejectionReason, topic: string, now: number, payload: Uint8Array): void {
    if (!this.deps.deadLetters) return;
    try {
      this.deps.deadLetters.record({ receivedAt: now, topic, reason, payload });
      this.counters.deadLettered++;
    } catch (error) {
      this.counters.deadLetterFailures++;
      const at = this.elapsed();
      const last = this.lastDeadLetterFailureLog;
      if (at - last.at < REJECTION_LOG_WINDOW_MS) {
        last.suppressed++;
        return;
      }
      this.deps.log.warn(
        { err: (error as Error).message, suppressedSinceLast: last.suppressed },
        'could not write a dead letter; the message is rejected all the same',
      );
      this.lastDeadLetterFailureLog = { at, suppressed: 0 };
    }
  }
}
