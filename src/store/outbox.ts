import type { Db } from './database.js';

/**
 * The forecast outbox (docs/reliability.md, "Forecasts: the outbox"): every message forecastd means to publish is a row here first, in
 * the same SQLite database as everything else, and stays `pending` until the broker confirmed it (PUBACK) or it
 * was settled another way. mqtt.js keeps its own outgoing store in memory only; this table is what survives a
 * restart. The drain (publish/outboxDrain.ts) owns the sending; this class owns the SQL.
 *
 * States, and why a row leaves `pending`:
 *   published  the broker acknowledged it (QoS 1), or it was written to the socket (QoS 0)
 *   refused    the broker answered with a PUBACK reason code >= 0x80 (e.g. 135, not authorised): never retried
 *   expired    its expiry passed before it could be sent (a forecast whose horizon is over)
 *   dropped    more than `maxPending` rows waited: the least useful were given up (see `enqueue`)
 */
export type OutboxState = 'pending' | 'published' | 'refused' | 'expired' | 'dropped';

export interface NewOutboxMessage {
  topic: string;
  payload: string;
  retain: boolean;
  /** Unix ms after which the message is worthless (not sent any more, and its MQTT 5 expiry); null: never. */
  expiresAt?: number | null;
}

export interface OutboxRow {
  id: number;
  topic: string;
  payload: string;
  retain: boolean;
  createdAt: number;
  expiresAt: number | null;
  /** Times it was handed to the MQTT client so far (a row sent again after a restart has attempts > 0). */
  attempts: number;
}

export interface EnqueueResult {
  id: number;
  /** Rows given up to stay within `maxPending` (oldest superseded first). */
  dropped: number[];
}

type RawRow = { id: number; topic: string; payload: string; retain: number; created_at: number; expires_at: number | null; attempts: number };

const toRow = (raw: RawRow): OutboxRow => ({
  id: raw.id,
  topic: raw.topic,
  payload: raw.payload,
  retain: raw.retain === 1,
  createdAt: raw.created_at,
  expiresAt: raw.expires_at,
  attempts: raw.attempts,
});

export class OutboxStore {
  private readonly insert;
  private readonly selectPending;
  private readonly countPending;
  private readonly attempt;
  private readonly settle;
  private readonly publishPending;
  private readonly publishSettled;
  private readonly selectNewerPublished;
  private readonly selectSuperseded;
  private readonly selectOldest;
  private readonly deleteSettled;
  private readonly countByState;
  private pendingRows: number;

  constructor(
    db: Db,
    private readonly options: { maxPending: number; clock?: () => number },
  ) {
    this.insert = db.prepare('INSERT INTO outbox(topic, payload, retain, created_at, expires_at) VALUES (?, ?, ?, ?, ?)');
    this.selectPending = db.prepare(
      `SELECT id, topic, payload, retain, created_at, expires_at, attempts FROM outbox
       WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?`,
    );
    this.countPending = db.prepare(`SELECT count(*) FROM outbox WHERE state = 'pending'`).pluck();
    this.attempt = db.prepare('UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?');
    // Only a pending row is settled: a PUBACK that comes late for a row given up meanwhile changes nothing.
    this.settle = db.prepare(`UPDATE outbox SET state = ?, settled_at = ?, reason_code = ? WHERE id = ? AND state = 'pending'`);
    this.publishPending = db.prepare(`UPDATE outbox SET state = 'published', published_at = ?, settled_at = ? WHERE id = ? AND state = 'pending'`);
    // The broker has it, whatever was decided meanwhile (dropped by the cap while its PUBACK was on the way).
    this.publishSettled = db.prepare(`UPDATE outbox SET state = 'published', published_at = ?, settled_at = ? WHERE id = ? AND state <> 'published'`);
    this.selectNewerPublished = db.prepare(`SELECT 1 FROM outbox WHERE topic = ? AND id > ? AND state = 'published' LIMIT 1`).pluck();
    // A pending row is superseded when a newer row on its topic is pending or published: on a retained topic the
    // newer one replaces it anyway, so dropping it costs only the history a live subscriber would have seen.
    this.selectSuperseded = db
      .prepare(
        `SELECT o.id FROM outbox o WHERE o.state = 'pending'
         AND EXISTS (SELECT 1 FROM outbox n WHERE n.topic = o.topic AND n.id > o.id AND n.state IN ('pending', 'published'))
       ORDER BY o.id LIMIT ?`,
      )
      .pluck();
    this.selectOldest = db.prepare(`SELECT id FROM outbox WHERE state = 'pending' ORDER BY id LIMIT ?`).pluck();
    this.deleteSettled = db.prepare(`DELETE FROM outbox WHERE state <> 'pending' AND settled_at < ?`);
    this.countByState = db.prepare('SELECT state, count(*) AS count FROM outbox GROUP BY state');
    // Only this store writes the table, so the count is kept here instead of counted on every enqueue.
    this.pendingRows = this.countPending.get() as number;
  }

  private now(): number {
    return (this.options.clock ?? Date.now)();
  }

  /** Rows waiting to be sent. */
  get pending(): number {
    return this.pendingRows;
  }

  /**
   * Adds a message. Above `maxPending` waiting rows, the oldest superseded rows go first, then the oldest of all;
   * rows in `protect` (handed to the MQTT client, PUBACK awaited) are never dropped.
   */
  enqueue(message: NewOutboxMessage, protect: ReadonlySet<number> = new Set()): EnqueueResult {
    const now = this.now();
    const id = Number(this.insert.run(message.topic, message.payload, message.retain ? 1 : 0, now, message.expiresAt ?? null).lastInsertRowid);
    this.pendingRows++;
    const dropped = this.pendingRows > this.options.maxPending ? this.shed(this.pendingRows - this.options.maxPending, protect, now) : [];
    return { id, dropped };
  }

  private shed(excess: number, protect: ReadonlySet<number>, now: number): number[] {
    const dropped: number[] = [];
    for (const select of [this.selectSuperseded, this.selectOldest]) {
      if (dropped.length >= excess) break;
      const candidates = select.all(excess + protect.size + dropped.length) as number[];
      for (const id of candidates) {
        if (dropped.length >= excess) break;
        if (protect.has(id) || dropped.includes(id)) continue;
        if (this.settle.run('dropped', now, null, id).changes === 1) {
          this.pendingRows--;
          dropped.push(id);
        }
      }
    }
    return dropped;
  }

  /** Pending rows with an id above `afterId`, oldest first. */
  pendingAfter(afterId: number, limit: number): OutboxRow[] {
    return (this.selectPending.all(afterId, limit) as RawRow[]).map(toRow);
  }

  /** Records that the row is being handed to the MQTT client now. */
  recordAttempt(id: number): void {
    this.attempt.run(this.now(), id);
  }

  /** Returns true when this changed the row (false: it was already published). */
  markPublished(id: number): boolean {
    const now = this.now();
    if (this.publishPending.run(now, now, id).changes === 1) {
      this.pendingRows--;
      return true;
    }
    return this.publishSettled.run(now, now, id).changes === 1;
  }

  markRefused(id: number, reasonCode: number): boolean {
    return this.settleAs(id, 'refused', reasonCode);
  }

  markExpired(id: number): boolean {
    return this.settleAs(id, 'expired', null);
  }

  private settleAs(id: number, state: Exclude<OutboxState, 'pending' | 'published'>, reasonCode: number | null): boolean {
    const changed = this.settle.run(state, this.now(), reasonCode, id).changes === 1;
    if (changed) this.pendingRows--;
    return changed;
  }

  /** True when a newer message on `topic` already reached the broker (so sending this one retained would replace it). */
  newerPublished(topic: string, id: number): boolean {
    return this.selectNewerPublished.get(topic, id) !== undefined;
  }

  /** Deletes settled rows older than `beforeMs`; pending rows are never pruned. Returns how many. */
  prune(beforeMs: number): number {
    return this.deleteSettled.run(Math.floor(beforeMs)).changes;
  }

  /** Rows per state (for diagnostics and tests). */
  countsByState(): Record<OutboxState, number> {
    const counts: Record<OutboxState, number> = { pending: 0, published: 0, refused: 0, expired: 0, dropped: 0 };
    for (const { state, count } of this.countByState.all() as Array<{ state: OutboxState; count: number }>) counts[state] = count;
    return counts;
  }
}
