import { SERIES_NAME } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ReadingStore } from '../store/readings.js';
import { decodePayload, REJECTION_REASONS, type DecodeLimits, type RejectionReason } from './payload.js';
import type { TopicMapper } from './topics.js';

export interface IngestCounters {
  received: number;
  stored: number;
  duplicates: number;
  rejected: Record<RejectionReason, number>;
}

/** At most one log line per reason per window, with the count of what it stood for. */
const REJECTION_LOG_WINDOW_MS = 10_000;

/**
 * Turns one MQTT message into stored readings. Synchronous: when `handle` returns, the readings are
 * committed, so the caller may acknowledge the message. A bad payload is counted and rejected (and
 * acknowledged: a poison message must not be redelivered forever); only a storage failure throws.
 */
export class Ingestor {
  readonly counters: IngestCounters = {
    received: 0,
    stored: 0,
    duplicates: 0,
    rejected: Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, 0])) as Record<RejectionReason, number>,
  };
  private readonly lastRejectionLog = new Map<RejectionReason, { at: number; suppressed: number }>();

  constructor(
    private readonly deps: { store: ReadingStore; mapper: TopicMapper; limits: DecodeLimits; clock: () => number; log: Logger },
  ) {}

  handle(topic: string, payload: Uint8Array): void {
    this.counters.received++;
    const now = this.deps.clock();
    const series = this.deps.mapper.seriesFor(topic);
    if (series === null) return this.reject('unknown_topic', topic, 'no topic rule names a valid series', now);
    const decoded = decodePayload(payload, now, this.deps.limits);
    if (!decoded.ok) return this.reject(decoded.reason, topic, decoded.detail, now);
    const readings = decoded.readings.map((reading) => ({
      series: reading.field === undefined ? series : `${series}.${reading.field}`,
      ts: reading.ts,
      value: reading.value,
    }));
    // A safe base name and a safe field can still add up to more than a series name may hold.
    if (readings.some((reading) => !SERIES_NAME.test(reading.series))) {
      return this.reject('bad_series_name', topic, 'series name plus field name is longer than 128 characters', now);
    }
    const inserted = this.deps.store.insertMany(readings);
    this.counters.stored += inserted;
    this.counters.duplicates += readings.length - inserted;
  }

  rejectedTotal(): number {
    return Object.values(this.counters.rejected).reduce((sum, count) => sum + count, 0);
  }

  private reject(reason: RejectionReason, topic: string, detail: string, now: number): void {
    this.counters.rejected[reason]++;
    const last = this.lastRejectionLog.get(reason);
    if (last && now - last.at < REJECTION_LOG_WINDOW_MS) {
      last.suppressed++;
      return;
    }
    // The topic is capped: it is attacker-controlled text. Payloads are never logged raw.
    this.deps.log.warn({ reason, topic: topic.slice(0, 200), detail, suppressedSinceLast: last?.suppressed ?? 0 }, 'reading rejected');
    this.lastRejectionLog.set(reason, { at: now, suppressed: 0 });
  }
}
