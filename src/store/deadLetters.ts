import { createHash } from 'node:crypto';
import { clockIsPlausible, EARLIEST_PLAUSIBLE_CLOCK_MS } from '../clock.js';
import type { Db } from './database.js';

/** A rejected MQTT message, as the ingestor hands it over. */
export interface DeadLetter {
  receivedAt: number;
  topic: string;
  reason: string;
  payload: Uint8Array;
}

export interface StoredDeadLetter {
  id: number;
  receivedAt: number;
  topic: string;
  reason: string;
  /** The first `maxPayloadBytes` bytes of the payload. */
  payload: Buffer;
  /** Size of the whole payload. */
  payloadBytes: number;
  /** Hex sha256 of the whole payload: tells repeats of one poison message apart from many. */
  sha256: string;
}

export interface DeadLetterOptions {
  maxPayloadBytes: number;
  keepDays: number;
  maxRows: number;
  /** Inserts between two prunes; default a tenth of maxRows, at most 1,000, so the table stays within ~10% of maxRows. */
  pruneEvery?: number;
}

/** Topics are attacker-controlled text of up to 64 KiB; this much is enough to recognise one. */
export const MAX_DEAD_LETTER_TOPIC_CHARS = 512;
const DAY_MS = 86_400_000;

/** Cuts at `max` UTF-16 units without leaving half a surrogate pair behind. */
function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  const code = text.charCodeAt(max - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}

/**
 * The dead_letters table: one owner, prepared statements. Pruning is amortised: every `pruneEvery` inserts, rows
 * beyond the newest `maxRows` (by id, a primary-key range) and rows older than `keepDays` (indexed) are deleted. So
 * a storm of poison messages costs one small insert each and an occasional range delete, and the table is bounded.
 *
 * `keepDays` counts from the daemon's clock: a clock that leaps forward deletes dead letters early. They are
 * diagnostics; losing some is the lesser harm than keeping them unbounded. A clock not set yet deletes none by age.
 */
export class DeadLetterStore {
  private readonly insert;
  private readonly deleteBeyondRows;
  private readonly deleteOlderThan;
  private readonly countAll;
  private readonly selectRecent;
  private readonly pruneEvery: number;
  private insertsSincePrune = 0;

  constructor(
    private readonly db: Db,
    private readonly options: DeadLetterOptions,
    nowMs: number = Date.now(),
  ) {
    this.insert = db.prepare('INSERT INTO dead_letters(received_at, topic, reason, payload, payload_bytes, sha256) VALUES (?, ?, ?, ?, ?, ?)');
    this.deleteBeyondRows = db.prepare('DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?');
    // A dead letter stamped before the clock was set (1970 on a Pi without a real-time clock) has no known age: only
    // maxRows removes it. Otherwise the first prune after NTP would take every one of them as decades old.
    this.deleteOlderThan = db.prepare(`DELETE FROM dead_letters WHERE received_at < ? AND received_at >= ${EARLIEST_PLAUSIBLE_CLOCK_MS}`);
    this.countAll = db.prepare('SELECT count(*) FROM dead_letters').pluck();
    this.selectRecent = db.prepare(
      'SELECT id, received_at AS receivedAt, topic, reason, payload, payload_bytes AS payloadBytes, sha256 FROM dead_letters ORDER BY id DESC LIMIT ?',
    );
    this.pruneEvery = options.pruneEvery ?? Math.max(1, Math.min(1000, Math.ceil(options.maxRows / 10)));
    // At start, so that a lowered maxRows or keepDays takes effect at once.
    this.prune(nowMs);
  }

  record(letter: DeadLetter): void {
    const { payload } = letter;
    const kept = Buffer.from(payload.buffer, payload.byteOffset, Math.min(payload.byteLength, this.options.maxPayloadBytes));
    const sha256 = createHash('sha256').update(payload).digest('hex');
    this.insert.run(
      Math.round(letter.receivedAt),
      capText(letter.topic, MAX_DEAD_LETTER_TOPIC_CHARS),
      letter.reason,
      kept,
      payload.byteLength,
      sha256,
    );
    if (++this.insertsSincePrune >= this.pruneEvery) this.prune(letter.receivedAt);
  }

  /** Deletes what is beyond maxRows or older than keepDays; returns how many rows went. */
  prune(nowMs: number): number {
    this.insertsSincePrune = 0;
    return this.db.transaction(
      () =>
        this.deleteBeyondRows.run(this.options.maxRows).changes +
        (clockIsPlausible(nowMs) ? this.deleteOlderThan.run(Math.round(nowMs - this.options.keepDays * DAY_MS)).changes : 0),
    )();
  }

  count(): number {
    return this.countAll.get() as number;
  }

  /** The newest dead letters first. */
  recent(limit: number): StoredDeadLetter[] {
    return this.selectRecent.all(limit) as StoredDeadLetter[];
  }
}
