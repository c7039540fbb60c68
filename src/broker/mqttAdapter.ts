/**
 * The one place forecastd touches mqtt.js's internals (mqtt 5.16.0, pinned to that exact version in package.json;
 * test/broker/mqttAdapter.contract.test.ts checks every assumption below against the real mqtt.js and Mosquitto, so a
 * dependency bump that breaks one fails CI):
 *
 * 1. `client.handleMessage(packet, done)` is called for every inbound PUBLISH (QoS 0 and 1 on arrival, QoS 2 on
 *    PUBREL), one at a time; mqtt.js sends a QoS 1 message's PUBACK when `done()` is called without an error, and
 *    skips it (going on with the next packet) when `done(error)` is called.
 * 2. `client._sendPacket({ cmd: 'puback', messageId })` writes a PUBACK at once while connected (emitting
 *    `packetsend` synchronously).
 * 3. With `manualConnect: true` the client opens no connection until `connect()`.
 *
 * So: the client is created unconnected, its handleMessage becomes the router's (./inbound.ts) before the first
 * CONNECT, QoS 1 messages are always answered with `done(WITHHELD)`, and their PUBACKs are sent here, in arrival
 * order, when the route that took each message releases it. No other path can acknowledge a message: an
 * invariant that is also checked at run time, by watching every PUBACK that leaves (`acksBeforeCommit` must stay 0).
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import { AckSequencer, InboundRouter, type IncomingMessage, type Route, type SubscribeOutcome } from './inbound.js';

/** QoS 0 has no acknowledgement. */
const NO_ACK = () => undefined;

/** What handleMessage's callback takes for "handled; send no PUBACK now" (mqtt.js skips the PUBACK, not the next packet). */
const WITHHELD = new Error('forecastd: PUBACK withheld until the message is committed');

export interface MqttLinkOptions {
  /** Longest stretch of message handling before the event loop gets a turn (timers, keepalive, commits); default 50. */
  maxBusyMs?: number;
  /** Messages kept while no route claims them (start-up). */
  maxParked?: number;
  log: Logger;
}

export interface MqttLinkCounters {
  /** PUBACKs sent for messages that no route had released (a reading acknowledged before its commit): must stay 0. */
  acksBeforeCommit: number;
  /** PUBACKs sent after a route released the message. */
  acksSent: number;
}

/** The MQTT client with forecastd's inbound router in place. */
export interface MqttLink {
  /**
   * For publishing and for connection events. Its message handling belongs to this module: never assign
   * `handleMessage` elsewhere.
   */
  readonly client: MqttClient;
  readonly router: InboundRouter;
  readonly counters: Readonly<MqttLinkCounters>;
  /** Opens the connection (and keeps it open: mqtt.js reconnects). Routes may be added before or after. */
  connect(): MqttClient;
  /** Adds a route and subscribes its filters (now when connected, and on every connect). Returns its removal. */
  addRoute(route: Route): () => void;
  /** The route for every topic no other route claims (ingest); see InboundRouter.setFallback. */
  setFallbackRoute(route: Route): void;
  /** From now on every message is left unacknowledged, for the next start (shutdown). */
  closeIntake(): void;
}

/** mqtt.js's SUBACK codes: numbers (≥ 0x80 refused) or, for some brokers, objects. */
function subscribeOutcome(
  filters: readonly string[],
  error: Error | null,
  granted: Array<{ topic: string; qos: number }> | undefined,
  codes: Array<number | object> | undefined,
): SubscribeOutcome {
  const refused = filters.flatMap((filter, index) => {
    const code = codes?.[index];
    return typeof code === 'number' && code >= 0x80 ? [{ filter, reasonCode: code }] : [];
  });
  const refusedSet = new Set(refused.map((entry) => entry.filter));
  return {
    granted: (granted ?? []).filter((grant) => !refusedSet.has(grant.topic)).map((grant) => ({ filter: grant.topic, qos: grant.qos })),
    refused,
    error: error && refused.length === 0 ? error : null,
  };
}

/** Creates the client unconnected, with the router as its only message handler. */
export function createMqttLink(url: string, clientOptions: IClientOptions, options: MqttLinkOptions): MqttLink {
  const client = mqtt.connect(url, { ...clientOptions, manualConnect: true });
  const counters: MqttLinkCounters = { acksBeforeCommit: 0, acksSent: 0 };
  const maxBusyMs = options.maxBusyMs ?? 50;

  // PUBACKs this module is about to write: every PUBACK seen leaving that is not one of them is an unsafe one.
  const releasing = new Set<number>();
  const sendPuback = (messageId: number) => {
    // A PUBACK given to an unconnected client would be queued and sent on the next connection, where the id may name
    // another message: the sequencer resets at close, and this guards the moment between.
    if (!client.connected) return;
    releasing.add(messageId);
    (client as unknown as { _sendPacket(packet: object): void })._sendPacket({ cmd: 'puback', messageId, reasonCode: 0 });
    releasing.delete(messageId);
  };
  client.on('packetsend', (packet) => {
    if (packet.cmd !== 'puback') return;
    if (packet.messageId !== undefined && releasing.has(packet.messageId)) {
      counters.acksSent++;
      return;
    }
    counters.acksBeforeCommit++;
    options.log.error(
      { messageId: packet.messageId, acksBeforeCommit: counters.acksBeforeCommit },
      'a PUBACK left for a message no route released: that reading may not be stored (a bug: please report it)',
    );
  });

  const sequencer = new AckSequencer(sendPuback);
  const router = new InboundRouter({ maxParked: options.maxParked, requestRedelivery: () => client.reconnect(), log: options.log });

  // mqtt.js works through a whole socket read (up to megabytes of queued readings) before it yields: during a backlog
  // drain that would stall timers, keepalive and the commits for seconds, so hand the loop back every maxBusyMs.
  // 50 ms by measurement (bench:ingest, 50,000 queued readings): 20 ms cut the drain rate by about 10 % for an
  // event-loop p99 of 54 ms; 50 ms keeps the rate of a loop that never yields, with a p99 under 100 ms.
  let stretchStartedAt: number | null = null;
  const answer = (done: (error?: Error) => void, error?: Error) => {
    const now = performance.now();
    if (stretchStartedAt === null) {
      stretchStartedAt = now;
      setImmediate(() => (stretchStartedAt = null));
    }
    if (now - stretchStartedAt > maxBusyMs) setImmediate(() => done(error));
    else done(error);
  };

  client.handleMessage = (packet: IPublishPacket, done: (error?: Error) => void) => {
    // This runs once per message at tens of thousands a second: one object per message, no spreads.
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    const redelivered = packet.dup === true;
    if (packet.qos === 1 && packet.messageId !== undefined) {
      const message: IncomingMessage = { topic, payload, qos: 1, redelivered, settle: sequencer.open(packet.messageId) };
      router.dispatch(message);
      answer(done, WITHHELD);
      return;
    }
    if (packet.qos === 2) {
      // mqtt.js sends PUBCOMP when done() comes without an error; with one, the broker sends PUBREL again on the next
      // connection. Holding `done` until the message settles holds mqtt.js's packet queue too, for a commit at most.
      router.dispatch({ topic, payload, qos: 2, redelivered, settle: (outcome) => done(outcome === 'ack' ? undefined : WITHHELD) });
      return;
    }
    router.dispatch({ topic, payload, qos: 0, redelivered, settle: NO_ACK });
    answer(done);
  };

  client.on('close', () => {
    sequencer.reset();
    router.connectionClosed();
  });

  const subscribe = (route: Route) => {
    if (route.filters.length === 0) return;
    const filters = [...route.filters];
    client.subscribe(filters, { qos: route.qos }, (error, granted, suback) => {
      const outcome = subscribeOutcome(filters, error ?? null, granted, (suback as { granted?: Array<number | object> } | undefined)?.granted);
      route.subscribed?.(outcome);
    });
  };
  // The fallback (ingest) first: its SUBACK then comes before the others', so "subscribed" means readings flow.
  client.on('connect', () => {
    for (const route of router.allRoutes().reverse()) subscribe(route);
  });

  return {
    client,
    router,
    counters,
    connect: () => client.connect(),
    addRoute(route) {
      const remove = router.add(route);
      if (client.connected) subscribe(route);
      return remove;
    },
    setFallbackRoute(route) {
      router.setFallback(route);
      if (client.connected) subscribe(route);
    },
    closeIntake: () => router.closeIntake(),
  };
}
