/**
 * The ingest route: the broker's messages on the reading topics, stored with acknowledgement after commit.
 *
 * Readings are grouped into one SQLite transaction per event-loop turn (at most `maxGroup` messages), and each message
 * is acknowledged (Delivery.ack, which sends the PUBACKs in arrival order, src/broker/inbound.ts) only after that
 * transaction has committed. A commit per message would cost about 60 % of the ingest rate.
 *
 * When storage fails (disk full, I/O error) the messages stay unacknowledged, so the broker keeps them; they are held
 * here, in arrival order, and retried on the same connection until a commit succeeds. No reconnect is needed (that
 * would also throw away mqtt.js's outgoing in-flight store), and no message is processed, nor a line logged, per arrival.
 */
import type { Readings } from '../store/store.js';
import type { Delivery, Route, SubscribeOutcome } from '../broker/inbound.js';
import type { Logger } from '../log.js';
import type { Ingestor } from './ingestor.js';

export interface IngestRouteOptions {
  /** Most messages one commit may cover; the group also closes at the end of each event-loop turn. */
  maxGroup?: number;
  /** After a failed commit (disk full, I/O error), retry storing the unacknowledged messages this often. */
  retryAfterFailureMs?: number;
  /** Most unacknowledged messages kept in memory for that retry; beyond it, the broker redelivers them after a reconnect. */
  maxHeld?: number;
}

/** Whether readings are being stored; for readiness and the status document. */
export interface IngestHealth {
  /** False from a failed commit until a retry commits. */
  storing: boolean;
  /** When the current failure began (epoch ms); null while storing. */
  failingSince: number | null;
  /** The last storage error (e.g. "database or disk is full"); null while storing. */
  lastError: string | null;
  /** Messages received but not stored, hence not acknowledged: the broker keeps them until they are. */
  held: number;
}

type CounterSnapshot = Omit<Ingestor['counters'], 'rejected'> & { rejected: Record<string, number> };

const snapshotOf = (counters: Ingestor['counters']): CounterSnapshot => ({ ...counters, rejected: { ...counters.rejected } });

function restoreCounters(counters: Ingestor['counters'], snapshot: CounterSnapshot): void {
  Object.assign(counters, { ...snapshot, rejected: counters.rejected });
  Object.assign(counters.rejected, snapshot.rejected);
}

/** While storage keeps failing, a reminder at most this often (one error line at the start, one line at the end). */
const FAILURE_REMINDER_MS = 60_000;

/** SUBACK reason codes (≥ 0x80; 3.1.1 knows only 0x80) a broker gives a filter it will not subscribe. */
const SUBACK_REFUSALS: Record<number, string> = {
  0x80: 'unspecified error',
  0x83: 'implementation specific error',
  0x87: 'not authorized',
  0x8f: 'topic filter invalid',
  0x97: 'quota exceeded',
  0x9e: 'shared subscriptions not supported',
};

export class IngestRoute implements Route {
  readonly name = 'ingest';
  readonly qos = 1 as const;
  /** failedGroups counts failed retries too; recoveries counts failures that ended with a successful retry. */
  readonly counters = { groups: 0, largestGroup: 0, failedGroups: 0, recoveries: 0 };
  private readonly maxGroup: number;
  private readonly retryAfterFailureMs: number;
  private readonly maxHeld: number;
  /** Messages of the open group, acknowledged once it commits. */
  private pending: Delivery[] = [];
  /** The ingest counters when the open group began: a group that does not commit must not count. */
  private groupStart: CounterSnapshot | null = null;
  private commitScheduled = false;
  private failure: { since: number; error: string; attempts: number; remindedAt: number } | null = null;
  private held: Delivery[] = [];
  /** Messages that arrived while `held` was full: only a new connection makes the broker send them again. */
  private heldOverflow = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly commitListeners: Array<(messages: number) => void> = [];

  constructor(
    private readonly deps: {
      ingestor: Ingestor;
      store: Readings;
      filters: readonly string[];
      /** A new connection, so that the broker resends what did not fit in memory while storage failed. */
      requestRedelivery: () => void;
      log: Logger;
    },
    options: IngestRouteOptions = {},
  ) {
    this.maxGroup = options.maxGroup ?? 500;
    this.retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
    this.maxHeld = options.maxHeld ?? 10_000;
  }

  get filters(): readonly string[] {
    return this.deps.filters;
  }

  health(): IngestHealth {
    return {
      storing: this.failure === null,
      failingSince: this.failure?.since ?? null,
      lastError: this.failure?.error ?? null,
      held: this.held.length,
    };
  }

  receive(delivery: Delivery): void {
    if (this.failure) {
      // Storage is failing: keep the message for the next retry instead of failing on it again.
      this.hold(delivery);
      return;
    }
    try {
      this.startGroup();
      this.storeOne(delivery);
    } catch (error) {
      // A storage failure inside the group: the whole group is rolled back and retried, this message included.
      this.failGroup(error, delivery);
      return;
    }
    this.pending.push(delivery);
    if (this.pending.length >= this.maxGroup) this.flush();
    else if (!this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Commits and acknowledges what is pending (each turn, and at shutdown before the connection closes). */
  flush(): void {
    this.commitScheduled = false;
    const { store } = this.deps;
    if (!store.inGroup && this.pending.length === 0) return;
    try {
      // Only a transaction SQLite rolled back on its own can vanish between the last message and this commit.
      if (!store.inGroup) throw new Error('SQLite rolled the open transaction back (disk full or I/O error)');
      store.commitGroup();
    } catch (error) {
      // Disk full, I/O error: nothing of this group is acknowledged; the broker keeps it, and it is retried.
      this.failGroup(error);
      return;
    }
    this.groupStart = null;
    const committed = this.pending;
    this.pending = [];
    this.counters.groups++;
    this.counters.largestGroup = Math.max(this.counters.largestGroup, committed.length);
    for (const delivery of committed) delivery.ack();
    for (const listener of this.commitListeners) listener(committed.length);
  }

  /** Calls `listener` after each commit with the number of messages it covered (benchmarks and tests watch ingest with it). */
  onCommit(listener: (messages: number) => void): void {
    this.commitListeners.push(listener);
  }

  /** Stops the retries (shutdown): what is held stays unacknowledged at the broker for the next start. */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  subscribed(outcome: SubscribeOutcome): void {
    const { log } = this.deps;
    // A refused filter is simply not subscribed: without this line its readings would never arrive, and nothing would say why.
    for (const { filter, reasonCode } of outcome.refused) {
      log.error(
        { filter, reasonCode, reason: SUBACK_REFUSALS[reasonCode] ?? 'refused' },
        'the broker refused this topic filter (check its ACL); readings on it are not received',
      );
    }
    if (outcome.error) log.error({ err: outcome.error.message, filters: this.filters }, 'subscribe failed');
    else if (outcome.granted.length > 0) log.info({ filters: outcome.granted.map((grant) => `${grant.filter} (qos ${grant.qos})`) }, 'subscribed');
  }

  /** Acknowledgements are meaningless on a new connection: the broker redelivers those messages (held ones included). */
  connectionClosed(): void {
    this.pending = [];
    this.held = [];
    this.heldOverflow = false;
  }

  private storeOne(delivery: Delivery): void {
    this.deps.ingestor.handle(delivery.topic, delivery.payload);
    // After SQLITE_FULL or an I/O error SQLite may roll the whole transaction back, even when the failing statement's
    // error was caught (a dead letter that could not be written): the group's earlier rows are gone, so it must fail.
    if (!this.deps.store.inGroup) throw new Error('SQLite rolled the open transaction back (disk full or I/O error)');
  }

  private startGroup(): void {
    if (!this.deps.store.inGroup) this.groupStart = snapshotOf(this.deps.ingestor.counters);
    this.deps.store.beginGroup();
  }

  /** Rolls the open group back and un-counts it. */
  private abandonGroup(): void {
    try {
      this.deps.store.rollbackGroup();
    } catch (error) {
      this.deps.log.error({ err: (error as Error).message }, 'could not roll back the failed group');
    }
    if (this.groupStart) restoreCounters(this.deps.ingestor.counters, this.groupStart);
    this.groupStart = null;
  }

  private hold(delivery: Delivery): void {
    if (this.held.length < this.maxHeld) this.held.push(delivery);
    else {
      // Left unacknowledged: it holds one of the broker's in-flight slots until the reconnect after the recovery.
      this.heldOverflow = true;
      delivery.withhold();
    }
  }

  /** The open group could not be stored: nothing of it is acknowledged, and all of it is retried later. */
  private failGroup(error: unknown, current?: Delivery): void {
    this.abandonGroup();
    const unstored = current ? [...this.pending, current] : this.pending;
    this.pending = [];
    for (const delivery of unstored) this.hold(delivery);
    this.noteFailure(error);
  }

  private noteFailure(error: unknown): void {
    this.counters.failedGroups++;
    const message = (error as Error).message;
    const now = Date.now();
    const { log } = this.deps;
    if (!this.failure) {
      this.failure = { since: now, error: message, attempts: 1, remindedAt: now };
      log.error(
        { err: message, code: (error as { code?: unknown }).code, held: this.held.length, retryEveryMs: this.retryAfterFailureMs },
        'cannot store readings (is the disk full?): ingest paused; the messages stay unacknowledged at the broker and are stored when a retry succeeds. Free space where storage.stateDir lives',
      );
    } else {
      this.failure.attempts++;
      this.failure.error = message;
      const facts = {
        err: message,
        failingForSeconds: Math.round((now - this.failure.since) / 1000),
        attempts: this.failure.attempts,
        held: this.held.length,
      };
      if (now - this.failure.remindedAt >= FAILURE_REMINDER_MS) {
        this.failure.remindedAt = now;
        log.warn(facts, 'still cannot store readings');
      } else log.debug(facts, 'retry failed: still cannot store readings');
    }
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopped) return;
    this.retryTimer = setTimeout(() => this.retryHeld(), this.retryAfterFailureMs);
    // Never the reason the process stays up (a stopped daemon with a full disk must still exit).
    this.retryTimer.unref();
  }

  private retryHeld(): void {
    this.retryTimer = null;
    if (!this.failure || this.stopped) return;
    // Nothing to try with (the connection closed and took them back to the broker): wait for the next message.
    if (this.held.length === 0) {
      this.scheduleRetry();
      return;
    }
    const batch = this.held;
    try {
      this.startGroup();
      for (const delivery of batch) this.storeOne(delivery);
      this.deps.store.commitGroup();
    } catch (error) {
      this.abandonGroup();
      this.noteFailure(error);
      return;
    }
    this.groupStart = null;
    this.held = [];
    this.counters.groups++;
    for (const delivery of batch) delivery.ack();
    for (const listener of this.commitListeners) listener(batch.length);
    this.recovered(batch.length);
  }

  private recovered(messages: number): void {
    if (!this.failure) return;
    this.counters.recoveries++;
    this.deps.log.info(
      { pausedSeconds: Math.round((Date.now() - this.failure.since) / 1000), attempts: this.failure.attempts, messages },
      'storing readings again',
    );
    this.failure = null;
    if (this.heldOverflow) {
      // Messages that arrived beyond maxHeld hold the broker's in-flight slots, unacknowledged, until a new connection.
      this.heldOverflow = false;
      this.deps.log.warn(
        { maxHeld: this.maxHeld },
        'reconnecting so that the broker resends the messages that did not fit in memory while storage failed',
      );
      this.deps.requestRedelivery();
    }
  }
}
