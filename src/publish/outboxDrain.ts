/**
 * Sends the outbox (store/outbox.ts) to the broker and settles each row from the broker's answer.
 *
 * How it shares the work with mqtt.js 5.16 (node_modules/mqtt/build/lib/client.js, read for this):
 * - With `clean: false`, an unacknowledged QoS 1 publish stays in mqtt.js's outgoing store and keeps its
 *   callback across a lost connection (`outgoing[id]` is not volatile). On the next CONNACK, `_onConnect`
 *   replays that store one message at a time, each after the previous one's PUBACK, and only then emits
 *   `connect`. So by the time `connect` fires, every publish handed over on an earlier connection has had its
 *   callback called, unless mqtt.js lost it.
 * - Publishes made while that replay runs wait in `_storeProcessingQueue`; if the connection drops again they
 *   are failed with "Connection closed" (mqttjs/MQTT.js#2015). And everything in memory is gone on a crash.
 *
 * Hence the rules here:
 * 1. Hand rows to mqtt.js only between `connect` and `close` (never into its offline store), at most
 *    `maxInFlight` at once. Each hand-over is tagged with the connection generation it was made on.
 * 2. A row in flight when the connection drops is left to mqtt.js's replay: it is not sent again by us, so a
 *    message is never in flight twice. Its callback settles it (PUBACK) or releases it (an error such as
 *    "Connection closed": it stays pending and goes out again after the next `connect`).
 * 3. At `connect`, a row still in flight from an earlier generation was not settled by the replay, so mqtt.js
 *    lost it: it is released and sent again (counted in `lostByClient`). If its PUBACK does come later after
 *    all, that is counted in `lateAcks`, a duplicate the broker did receive.
 * 4. On start every pending row is sent, including those sent before a crash without a PUBACK recorded
 *    (`republished`): when the broker had received one and only its PUBACK was lost, this is the one duplicate
 *    QoS 1 cannot avoid. Consumers deduplicate by the forecast's `issuedAt`.
 */
import type { Outbox } from '../store/store.js';
import type { IClientPublishOptions, MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import type { NewOutboxMessage, OutboxRow } from '../store/outbox.js';

export interface OutboxCounters {
  /** Rows added. */
  enqueued: number;
  /** Rows the broker acknowledged (QoS 1) or that were written to the socket (QoS 0). */
  published: number;
  /** Rows the broker refused with a PUBACK reason code >= 0x80; never retried. */
  refused: number;
  /** Hand-overs of a row that had been handed over before (after a restart, or lost by mqtt.js): possible duplicates. */
  republished: number;
  /** Rows past their expiry before they could be sent: not sent. */
  expired: number;
  /** Rows given up because more than maxPending waited. */
  dropped: number;
  /** Rows still in flight at a `connect` from an earlier connection: mqtt.js's replay lost them; sent again. */
  lostByClient: number;
  /** PUBACKs for a hand-over already given up and sent again: duplicates the broker certainly received. */
  lateAcks: number;
}

export interface OutboxDrainOptions {
  client: MqttClient;
  store: Outbox;
  qos: 0 | 1;
  /** Publishes awaiting their PUBACK at once. */
  maxInFlight: number;
  /** Settled rows are deleted after this long. */
  keepSettledMs: number;
  clock?: () => number;
  log: Logger;
}

interface Handover {
  /** Connection generation the row was handed to mqtt.js on. */
  generation: number;
  /** Tells this hand-over's callback from an earlier one's for the same row. */
  attempt: number;
  topic: string;
}

/** PUBACK reason codes from 0x80 are failures (MQTT 5 §3.4.2.1); mqtt.js reports them as an error with `code`. */
const refusalCode = (error: Error): number | null => {
  const code = (error as Error & { code?: unknown }).code;
  return typeof code === 'number' && code >= 0x80 ? code : null;
};

const PRUNE_EVERY_MS = 10 * 60_000;
const OVERFLOW_LOG_EVERY_MS = 60_000;
/** Topics whose refusal was logged; forgotten when this many, so that it stays bounded. */
const REFUSED_TOPICS_REMEMBERED = 1000;

export class OutboxDrain {
  readonly counters: OutboxCounters = { enqueued: 0, published: 0, refused: 0, republished: 0, expired: 0, dropped: 0, lostByClient: 0, lateAcks: 0 };
  private readonly inFlight = new Map<number, Handover>();
  private readonly clock: () => number;
  private generation = 0;
  private attempts = 0;
  /** Between `connect` (mqtt.js's replay is over) and `close`. */
  private ready = false;
  private stopped = true;
  /** Highest id handed over on this connection: the next pending rows are read after it. */
  private cursor = 0;
  private pumping = false;
  private pumpAgain = false;
  private kickScheduled = false;
  private lastPruneAt = -Infinity;
  private lastOverflowLogAt = -Infinity;
  private droppedSinceLog = 0;
  private readonly refusedTopicsLogged = new Set<string>();

  constructor(private readonly options: OutboxDrainOptions) {
    this.clock = options.clock ?? Date.now;
  }

  /** Rows waiting (including those in flight). */
  get pending(): number {
    return this.options.store.pending;
  }

  /** Rows handed to mqtt.js whose PUBACK has not come yet. */
  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The ids in flight now (a copy). */
  inFlightIds(): number[] {
    return [...this.inFlight.keys()];
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.options.client.on('connect', this.onConnect);
    this.options.client.on('close', this.onClose);
    this.prune();
    // Built after the client connected (a test, a CLI tool): that connection's replay is over.
    if (this.options.client.connected) this.onConnect();
  }

  /** Stops sending; callbacks that come later are ignored (the database may be closed by then). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.ready = false;
    this.options.client.removeListener('connect', this.onConnect);
    this.options.client.removeListener('close', this.onClose);
  }

  /** Adds a message and sends it as soon as the connection allows. Safe inside a database transaction. */
  enqueue(message: NewOutboxMessage): number {
    const { id, dropped } = this.options.store.enqueue(message, new Set(this.inFlight.keys()));
    this.counters.enqueued++;
    if (dropped.length > 0) this.overflowed(dropped.length);
    this.kick();
    return id;
  }

  private overflowed(count: number): void {
    this.counters.dropped += count;
    this.droppedSinceLog += count;
    const now = this.clock();
    if (now - this.lastOverflowLogAt < OVERFLOW_LOG_EVERY_MS) return;
    this.lastOverflowLogAt = now;
    this.options.log.warn(
      { dropped: this.droppedSinceLog, droppedTotal: this.counters.dropped, pending: this.pending },
      'forecast outbox full (publish.outbox.maxPending): the oldest superseded forecasts were given up; is the broker reachable?',
    );
    this.droppedSinceLog = 0;
  }

  /** A pump on the next turn of the event loop: enqueues made together go out together, after their transaction. */
  private kick(): void {
    if (this.kickScheduled || this.stopped) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      this.pump();
    });
  }

  private readonly onConnect = (): void => {
    this.generation++;
    let lost = 0;
    for (const [id, handover] of this.inFlight) {
      if (handover.generation < this.generation) {
        this.inFlight.delete(id);
        lost++;
      }
    }
    if (lost > 0) {
      this.counters.lostByClient += lost;
      this.options.log.warn(
        { lost, pending: this.pending },
        'forecasts handed to the MQTT client before the reconnect were not replayed by it; sending them again',
      );
    }
    this.ready = true;
    this.cursor = 0;
    this.pump();
  };

  private readonly onClose = (): void => {
    if (this.ready && this.inFlight.size > 0) {
      this.options.log.debug(
        { inFlight: this.inFlight.size, pending: this.pending },
        'connection lost with forecasts in flight; the MQTT client replays them on reconnect',
      );
    }
    this.ready = false;
  };

  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.fill();
      } while (this.pumpAgain);
    } catch (error) {
      // A database error (disk full, I/O): the rows stay pending and the next connect or enqueue tries again.
      this.options.log.error({ err: (error as Error).message }, 'forecast outbox could not be read; forecasts wait');
    } finally {
      this.pumping = false;
    }
  }

  private fill(): void {
    if (this.stopped || !this.ready) return;
    this.prune();
    while (this.ready && this.inFlight.size < this.options.maxInFlight) {
      const rows = this.options.store.pendingAfter(this.cursor, this.options.maxInFlight - this.inFlight.size);
      if (rows.length === 0) return;
      for (const row of rows) {
        this.cursor = row.id;
        if (!this.inFlight.has(row.id)) this.send(row);
        if (!this.ready) return;
      }
    }
  }

  private send(row: OutboxRow): void {
    const { store, client, qos } = this.options;
    const now = this.clock();
    if (row.expiresAt !== null && row.expiresAt <= now) {
      // Every point of the forecast is in the past: it can no longer be acted on, and on a retained topic it
      // would stand as "the forecast" for new subscribers. It stays in issued_forecasts for accuracy scoring.
      if (store.markExpired(row.id)) this.counters.expired++;
      return;
    }
    if (row.attempts > 0) this.counters.republished++;
    // Sent late, after a newer message on the same topic reached the broker: delivered to live subscribers,
    // but not retained, so that the broker keeps the newer one for new subscribers.
    const retain = row.retain && !store.newerPublished(row.topic, row.id);
    const options: IClientPublishOptions = { qos, retain };
    if (row.expiresAt !== null && client.options.protocolVersion === 5) {
      // MQTT 5: a broker holding it for an offline subscriber (or as the retained message) drops it at expiry.
      options.properties = { messageExpiryInterval: Math.max(1, Math.ceil((row.expiresAt - now) / 1000)) };
    }
    store.recordAttempt(row.id);
    const attempt = ++this.attempts;
    this.inFlight.set(row.id, { generation: this.generation, attempt, topic: row.topic });
    client.publish(row.topic, row.payload, options, (error) => this.settle(row.id, attempt, error ?? null));
  }

  private settle(id: number, attempt: number, error: Error | null): void {
    if (this.stopped) return;
    const handover = this.inFlight.get(id);
    const current = handover?.attempt === attempt;
    if (current) this.inFlight.delete(id);
    try {
      if (!error) {
        if (this.options.store.markPublished(id)) this.counters.published++;
        if (!current) this.counters.lateAcks++;
      } else {
        const code = refusalCode(error);
        if (code !== null) {
          if (this.options.store.markRefused(id, code)) {
            this.counters.refused++;
            this.logRefusal(handover?.topic ?? '', code, error.message);
          }
        } else if (current) {
          this.options.log.debug(
            { id, err: error.message },
            'forecast publish not confirmed; it stays in the outbox and goes out after the next connect',
          );
        }
      }
    } catch (failure) {
      // The broker has it (or refused it) but the database would not record that: it is sent again later.
      this.options.log.error({ id, err: (failure as Error).message }, 'forecast outbox could not record a PUBACK');
    }
    if (current) this.pump();
  }

  private logRefusal(topic: string, reasonCode: number, reason: string): void {
    if (this.refusedTopicsLogged.has(topic)) return;
    if (this.refusedTopicsLogged.size >= REFUSED_TOPICS_REMEMBERED) this.refusedTopicsLogged.clear();
    this.refusedTopicsLogged.add(topic);
    this.options.log.error(
      { topic, reasonCode, reason },
      'the broker refused a forecast (it is not retried); if this is an ACL, grant forecastd write access to this topic (e.g. `topic write <baseTopic>/#`)',
    );
  }

  private prune(): void {
    const now = this.clock();
    if (now - this.lastPruneAt < PRUNE_EVERY_MS) return;
    this.lastPruneAt = now;
    const pruned = this.options.store.prune(now - this.options.keepSettledMs);
    if (pruned > 0) this.options.log.debug({ pruned }, 'settled forecasts pruned from the outbox');
  }
}
