import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import type { ReadingStore } from '../store/readings.js';
import type { Ingestor } from './ingestor.js';

export interface SubscriptionOptions {
  /** Most messages one commit may cover; the group also closes at the end of each event-loop turn. */
  maxGroup?: number;
  /** Longest stretch of message handling before the event loop gets a turn (timers, keepalive, forecasts). */
  maxBusyMs?: number;
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

export interface IngestSubscription {
  /** Commits and acknowledges what is pending (at shutdown, before the broker connection closes). */
  flush(): void;
  health(): IngestHealth;
  /** failedGroups counts failed retries too; recoveries counts failures that ended with a successful retry. */
  readonly counters: { groups: number; largestGroup: number; failedGroups: number; recoveries: number };
}

type CounterSnapshot = Omit<Ingestor['counters'], 'rejected'> & { rejected: Record<string, number> };

const snapshotOf = (counters: Ingestor['counters']): CounterSnapshot => ({ ...counters, rejected: { ...counters.rejected } });

function restoreCounters(counters: Ingestor['counters'], snapshot: CounterSnapshot): void {
  Object.assign(counters, { ...snapshot, rejected: counters.rejected });
  Object.assign(counters.rejected, snapshot.rejected);
}

/** While storage keeps failing, a reminder at most this often (one error line at the start, one line at the end). */
const FAILURE_REMINDER_MS = 60_000;

/**
 * Tells mqtt.js "do not PUBACK this one": its QoS 1 handler skips the PUBACK when handleMessage's
 * callback gets an error, and goes on with the next packet. The PUBACK is sent after the commit.
 */
const ACK_AFTER_COMMIT = new Error('forecastd: acknowledged after the group commit');

/** SUBACK codes ≥ 0x80 (3.1.1 knows only 0x80) a broker gives a filter it will not subscribe. */
const SUBACK_REFUSALS: Record<number, string> = {
  0x80: 'unspecified error',
  0x83: 'implementation specific error',
  0x87: 'not authorized',
  0x8f: 'topic filter invalid',
  0x97: 'quota exceeded',
  0x9e: 'shared subscriptions not supported',
};

/** The filters whose SUBACK code says refused; the codes come in the order of the filters (one SUBSCRIBE). */
function refusedFilters(filters: string[], codes: Array<number | object> | undefined): Array<{ filter: string; reasonCode: number }> {
  if (!codes) return [];
  return filters.flatMap((filter, index) => {
    const code = codes[index];
    return typeof code === 'number' && code >= 0x80 ? [{ filter, reasonCode: code }] : [];
  });
}

type AckSender = (packet: { cmd: 'puback'; messageId: number; reasonCode: number }) => void;

/**
 * mqtt.js hands inbound packets over one at a time and sends each PUBACK as soon as handleMessage's
 * callback runs, so acknowledging after a commit would mean one commit per message (about 60 % of the
 * ingest cost). Instead, readings are grouped into one transaction per event-loop turn, and their
 * PUBACKs go out, in arrival order as MQTT requires, only after that transaction has committed.
 * This needs mqtt.js's internal packet writer; when a future mqtt.js lacks it, ingest falls back to a
 * commit per message, which is slower but equally safe.
 */
function ackSenderOf(client: MqttClient): AckSender | null {
  const sendPacket = (client as unknown as { _sendPacket?: (packet: object) => void })._sendPacket;
  return typeof sendPacket === 'function' ? (packet) => sendPacket.call(client, packet) : null;
}

/**
 * Wires an Ingestor to a client: acknowledgement only after commit, and subscriptions renewed on every
 * connect (a resumed session would otherwise never learn a topic filter added to the config).
 */
export function subscribeIngest(
  client: MqttClient,
  ingestor: Ingestor,
  store: ReadingStore,
  filters: string[],
  log: Logger,
  options: SubscriptionOptions = {},
): IngestSubscription {
  const maxGroup = options.maxGroup ?? 500;
  const maxBusyMs = options.maxBusyMs ?? 20;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  const maxHeld = options.maxHeld ?? 10_000;
  const sendAck = ackSenderOf(client);
  if (!sendAck) log.warn('this mqtt.js has no internal packet writer: committing each reading on its own (slower)');
  const counters = { groups: 0, largestGroup: 0, failedGroups: 0, recoveries: 0 };
  /** Messages of the open group, acknowledged once it commits. */
  let pending: IPublishPacket[] = [];
  /** The ingest counters when the open group began: a group that does not commit must not count. */
  let groupStart: CounterSnapshot | null = null;
  let commitScheduled = false;
  let busySince = 0;

  // Storage failure (disk full, I/O error). The messages stay unacknowledged, so the broker keeps them; they are held
  // here, in arrival order, and retried on this connection until a commit succeeds. No reconnect is needed (that would
  // also throw away mqtt.js's outgoing in-flight store), and no message is processed, nor any line logged, per arrival.
  let failure: { since: number; error: string; attempts: number; remindedAt: number } | null = null;
  let held: IPublishPacket[] = [];
  /** Messages that arrived while `held` was full: only a new connection makes the broker send them again. */
  let heldOverflow = false;
  let retryTimer: NodeJS.Timeout | null = null;

  const acknowledge = (packets: IPublishPacket[]) => {
    for (const packet of packets) sendAck!({ cmd: 'puback', messageId: packet.messageId!, reasonCode: 0 });
  };

  const storeOne = (packet: IPublishPacket) => {
    ingestor.handle(packet.topic, packet.payload as Buffer);
    // After SQLITE_FULL or an I/O error SQLite may roll the whole transaction back, even when the failing statement's
    // error was caught (a dead letter that could not be written): the group's earlier rows are gone, so it must fail.
    if (!store.inGroup) throw new Error('SQLite rolled the open transaction back (disk full or I/O error)');
  };

  const startGroup = () => {
    if (!store.inGroup) groupStart = snapshotOf(ingestor.counters);
    store.beginGroup();
  };

  /** Rolls the open group back and un-counts it. */
  const abandonGroup = () => {
    try {
      store.rollbackGroup();
    } catch (error) {
      log.error({ err: (error as Error).message }, 'could not roll back the failed group');
    }
    if (groupStart) restoreCounters(ingestor.counters, groupStart);
    groupStart = null;
  };

  const hold = (packet: IPublishPacket) => {
    if (held.length < maxHeld) held.push(packet);
    else heldOverflow = true;
  };

  const scheduleRetry = () => {
    if (retryTimer) return;
    retryTimer = setTimeout(retryHeld, retryAfterFailureMs);
    // Never the reason the process stays up (a stopped daemon with a full disk must still exit).
    retryTimer.unref();
  };

  const noteFailure = (error: unknown) => {
    counters.failedGroups++;
    const message = (error as Error).message;
    const now = Date.now();
    if (!failure) {
      failure = { since: now, error: message, attempts: 1, remindedAt: now };
      log.error(
        { err: message, code: (error as { code?: unknown }).code, held: held.length, retryEveryMs: retryAfterFailureMs },
        'cannot store readings (is the disk full?): ingest paused; the messages stay unacknowledged at the broker and are stored when a retry succeeds. Free space where storage.stateDir lives',
      );
    } else {
      failure.attempts++;
      failure.error = message;
      const facts = { err: message, failingForSeconds: Math.round((now - failure.since) / 1000), attempts: failure.attempts, held: held.length };
      if (now - failure.remindedAt >= FAILURE_REMINDER_MS) {
        failure.remindedAt = now;
        log.warn(facts, 'still cannot store readings');
      } else log.debug(facts, 'retry failed: still cannot store readings');
    }
    scheduleRetry();
  };

  /** The open group could not be stored: nothing of it is acknowledged, and all of it is retried later. */
  const failGroup = (error: unknown, current?: IPublishPacket) => {
    abandonGroup();
    const unstored = current ? [...pending, current] : pending;
    pending = [];
    for (const packet of unstored) hold(packet);
    noteFailure(error);
  };

  const retryHeld = () => {
    retryTimer = null;
    // A client that was ended (the daemon stopped) never gets those messages back: stop trying.
    if (!failure || client.disconnected) return;
    // Nothing to try with (the connection closed and took them back to the broker): wait for the next message.
    if (held.length === 0 || !client.connected) return scheduleRetry();
    const batch = held;
    try {
      startGroup();
      for (const packet of batch) storeOne(packet);
      store.commitGroup();
    } catch (error) {
      abandonGroup();
      noteFailure(error);
      return;
    }
    groupStart = null;
    held = [];
    counters.groups++;
    acknowledge(batch);
    recovered(batch.length);
  };

  const recovered = (messages: number) => {
    if (!failure) return;
    counters.recoveries++;
    log.info({ pausedSeconds: Math.round((Date.now() - failure.since) / 1000), attempts: failure.attempts, messages }, 'storing readings again');
    failure = null;
    if (heldOverflow) {
      // Messages that arrived beyond maxHeld hold the broker's in-flight slots, unacknowledged, until a new connection.
      heldOverflow = false;
      log.warn({ maxHeld }, 'reconnecting so that the broker resends the messages that did not fit in memory while storage failed');
      client.reconnect();
    }
  };

  const flush = () => {
    commitScheduled = false;
    if (!store.inGroup && pending.length === 0) return;
    try {
      // Only a transaction SQLite rolled back on its own can vanish between the last message and this commit.
      if (!store.inGroup) throw new Error('SQLite rolled the open transaction back (disk full or I/O error)');
      store.commitGroup();
    } catch (error) {
      // Disk full, I/O error: nothing of this group is acknowledged; the broker keeps it, and it is retried.
      failGroup(error);
      return;
    }
    groupStart = null;
    const acks = pending;
    pending = [];
    counters.groups++;
    counters.largestGroup = Math.max(counters.largestGroup, acks.length);
    acknowledge(acks);
  };

  client.handleMessage = (packet, done) => {
    const deferrable = sendAck !== null && packet.qos === 1 && packet.messageId !== undefined;
    if (!deferrable) {
      // QoS 0 needs no PUBACK and QoS 2 is acknowledged by mqtt.js's own PUBREC/PUBCOMP flow: commit now.
      flush();
      try {
        ingestor.handle(packet.topic, packet.payload as Buffer);
      } catch (error) {
        // Nothing to hold: QoS 0 is not redelivered, and the broker resends QoS 2 on the next connection. Logged once per
        // failure, not per message.
        noteFailure(error);
        done(error as Error);
        return;
      }
      if (held.length === 0) recovered(1);
      done();
      return;
    }
    if (failure) {
      // Storage is failing: keep the message for the next retry instead of failing on it again.
      hold(packet);
      done(ACK_AFTER_COMMIT);
      return;
    }
    try {
      startGroup();
      storeOne(packet);
    } catch (error) {
      // A storage failure inside the group: the whole group is rolled back and retried, this message included.
      failGroup(error, packet);
      done(ACK_AFTER_COMMIT);
      return;
    }
    pending.push(packet);
    if (pending.length === 1) busySince = performance.now();
    // mqtt.js works through a whole socket read (up to megabytes) before it yields: during a backlog
    // drain that would stall timers for seconds, so hand the loop back now and then.
    if (performance.now() - busySince > maxBusyMs) {
      flush();
      setImmediate(() => done(ACK_AFTER_COMMIT));
      return;
    }
    if (pending.length >= maxGroup) flush();
    else if (!commitScheduled) {
      commitScheduled = true;
      setImmediate(flush);
    }
    done(ACK_AFTER_COMMIT);
  };

  const subscribe = () =>
    client.subscribe(filters, { qos: 1 }, (error, granted, suback) => {
      const refused = refusedFilters(filters, suback?.granted);
      // A refused filter is simply not subscribed: without this line its readings would never arrive, and nothing would say why.
      for (const { filter, reasonCode } of refused) {
        log.error({ filter, reasonCode, reason: SUBACK_REFUSALS[reasonCode] ?? 'refused' }, 'the broker refused this topic filter (check its ACL); readings on it are not received');
      }
      if (error && refused.length === 0) log.error({ err: error.message, filters }, 'subscribe failed');
      else if (!error) log.info({ filters: granted?.map((grant) => `${grant.topic} (qos ${grant.qos})`) }, 'subscribed');
      else if (refused.length < filters.length) log.info({ filters: filters.filter((filter) => !refused.some((entry) => entry.filter === filter)) }, 'subscribed');
    });
  client.on('connect', subscribe);
  // Acknowledgements are meaningless on a new connection: the broker redelivers those messages (held ones included).
  client.on('close', () => {
    pending = [];
    held = [];
    heldOverflow = false;
  });
  if (client.connected) subscribe();
  return {
    flush,
    health: () => ({
      storing: failure === null,
      failingSince: failure?.since ?? null,
      lastError: failure?.error ?? null,
      held: held.length,
    }),
    counters,
  };
}
