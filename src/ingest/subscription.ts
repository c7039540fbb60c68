import type { IPublishPacket, MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import type { ReadingStore } from '../store/readings.js';
import type { Ingestor } from './ingestor.js';

export interface SubscriptionOptions {
  /** Most messages one commit may cover; the group also closes at the end of each event-loop turn. */
  maxGroup?: number;
  /** Longest stretch of message handling before the event loop gets a turn (timers, keepalive, forecasts). */
  maxBusyMs?: number;
  /** Wait this long before reconnecting after a failed commit, so that the broker redelivers what was not acknowledged. */
  retryAfterFailureMs?: number;
}

export interface IngestSubscription {
  /** Commits and acknowledges what is pending (at shutdown, before the broker connection closes). */
  flush(): void;
  readonly counters: { groups: number; largestGroup: number; failedGroups: number };
}

/**
 * Tells mqtt.js "do not PUBACK this one": its QoS 1 handler skips the PUBACK when handleMessage's
 * callback gets an error, and goes on with the next packet. The PUBACK is sent after the commit.
 */
const ACK_AFTER_COMMIT = new Error('forecastd: acknowledged after the group commit');

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
  const sendAck = ackSenderOf(client);
  if (!sendAck) log.warn('this mqtt.js has no internal packet writer: committing each reading on its own (slower)');
  const counters = { groups: 0, largestGroup: 0, failedGroups: 0 };
  let pendingAcks: number[] = [];
  let pendingStored = 0;
  let pendingDuplicates = 0;
  let commitScheduled = false;
  let busySince = 0;
  let reconnectTimer: NodeJS.Timeout | null = null;
  const reconnectLater = () => {
    reconnectTimer ??= setTimeout(() => {
      reconnectTimer = null;
      client.reconnect();
    }, options.retryAfterFailureMs ?? 5_000);
  };

  const flush = () => {
    commitScheduled = false;
    if (!store.inGroup && pendingAcks.length === 0) return;
    const acks = pendingAcks;
    pendingAcks = [];
    try {
      store.commitGroup();
    } catch (error) {
      // Disk full, I/O error: nothing of this group is acknowledged; the broker keeps it and resends it after a reconnect.
      store.rollbackGroup();
      ingestor.counters.stored -= pendingStored;
      ingestor.counters.duplicates -= pendingDuplicates;
      pendingStored = pendingDuplicates = 0;
      counters.failedGroups++;
      log.error({ err: (error as Error).message, messages: acks.length }, 'could not commit readings; leaving them unacknowledged for redelivery');
      reconnectLater();
      return;
    }
    pendingStored = pendingDuplicates = 0;
    counters.groups++;
    counters.largestGroup = Math.max(counters.largestGroup, acks.length);
    for (const messageId of acks) sendAck!({ cmd: 'puback', messageId, reasonCode: 0 });
  };

  const handleOne = (packet: IPublishPacket) => {
    const storedBefore = ingestor.counters.stored;
    const duplicatesBefore = ingestor.counters.duplicates;
    ingestor.handle(packet.topic, packet.payload as Buffer);
    pendingStored += ingestor.counters.stored - storedBefore;
    pendingDuplicates += ingestor.counters.duplicates - duplicatesBefore;
  };

  client.handleMessage = (packet, done) => {
    const deferrable = sendAck !== null && packet.qos === 1 && packet.messageId !== undefined;
    if (!deferrable) {
      // QoS 0 needs no PUBACK and QoS 2 is acknowledged by mqtt.js's own PUBREC/PUBCOMP flow: commit now.
      flush();
      try {
        ingestor.handle(packet.topic, packet.payload as Buffer);
        done();
      } catch (error) {
        log.error({ err: (error as Error).message, topic: packet.topic.slice(0, 200) }, 'could not store reading; leaving it unacknowledged');
        done(error as Error);
      }
      return;
    }
    try {
      store.beginGroup();
      handleOne(packet);
    } catch (error) {
      // A storage failure inside the group: its savepoint is rolled back; this message stays unacknowledged.
      log.error({ err: (error as Error).message, topic: packet.topic.slice(0, 200) }, 'could not store reading; leaving it unacknowledged');
      // An unacknowledged message holds one of the broker's in-flight slots until the next connection.
      reconnectLater();
      done(ACK_AFTER_COMMIT);
      return;
    }
    pendingAcks.push(packet.messageId!);
    if (pendingAcks.length === 1) busySince = performance.now();
    // mqtt.js works through a whole socket read (up to megabytes) before it yields: during a backlog
    // drain that would stall timers for seconds, so hand the loop back now and then.
    if (performance.now() - busySince > maxBusyMs) {
      flush();
      setImmediate(() => done(ACK_AFTER_COMMIT));
      return;
    }
    if (pendingAcks.length >= maxGroup) flush();
    else if (!commitScheduled) {
      commitScheduled = true;
      setImmediate(flush);
    }
    done(ACK_AFTER_COMMIT);
  };

  const subscribe = () =>
    client.subscribe(filters, { qos: 1 }, (error, granted) => {
      if (error) log.error({ err: error.message, filters }, 'subscribe failed');
      else log.info({ filters: granted?.map((grant) => `${grant.topic} (qos ${grant.qos})`) }, 'subscribed');
    });
  client.on('connect', subscribe);
  // Acknowledgements for a group are meaningless on a new connection: the broker redelivers those messages.
  client.on('close', () => {
    pendingAcks = [];
  });
  if (client.connected) subscribe();
  return {
    flush,
    counters,
  };
}
