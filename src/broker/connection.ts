import { readFileSync } from 'node:fs';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { reconnectDelayMs } from './backoff.js';
import { createMqttLink, type MqttLink } from './mqttAdapter.js';
import { availabilityTopic } from './topics.js';
import { ExpiryAwareStore } from './outgoingStore.js';
import { RateLimitedLog } from './failureLog.js';
import { BrokerStats, classifyConnectFailure, FAILURE_HINTS } from './stats.js';

export { BrokerStats } from './stats.js';

export type MqttConfig = Config['mqtt'];

/** mqtt.js options from config: a persistent session that survives restarts, and a last will. */
export function clientOptions(mqttConfig: MqttConfig): IClientOptions {
  const options: IClientOptions = {
    protocolVersion: mqttConfig.protocolVersion,
    clientId: mqttConfig.clientId,
    clean: mqttConfig.clean,
    keepalive: mqttConfig.keepaliveSeconds,
    reconnectPeriod: mqttConfig.reconnectSeconds * 1000,
    connectTimeout: 10_000,
    // A refused CONNACK (e.g. the broker restarting its auth backend) is retried like a lost connection.
    reconnectOnConnackError: true,
    // Offline QoS 0 publishes would pile up in memory without bound.
    queueQoSZero: false,
    username: mqttConfig.username,
    password: mqttConfig.password,
    will: { topic: availabilityTopic(mqttConfig.baseTopic), payload: Buffer.from('offline'), qos: 1, retain: true },
  };
  if (mqttConfig.protocolVersion === 5) {
    // Without an explicit expiry an MQTT 5 session ends at disconnect, and with it everything queued for us.
    options.properties = { sessionExpiryInterval: Math.round(mqttConfig.sessionExpiryDays * 86_400) };
    // A publish replayed after a reconnect goes with the expiry it has left (forecasts expire at their horizon).
    options.outgoingStore = new ExpiryAwareStore();
  }
  if (mqttConfig.caFile) options.ca = readFileSync(mqttConfig.caFile);
  if (mqttConfig.certFile) options.cert = readFileSync(mqttConfig.certFile);
  if (mqttConfig.keyFile) options.key = readFileSync(mqttConfig.keyFile);
  if (mqttConfig.caFile) options.rejectUnauthorized = true;
  return options;
}

export interface ConnectOptions {
  /** Filled as the connection goes (attempts, failures by reason, refusals); /metrics reads it. */
  stats?: BrokerStats;
  /** At most one error line per failure kind per this interval during an outage (default one minute). */
  failureLogIntervalMs?: number;
  clock?: () => number;
}

/**
 * The broker link, with forecastd's inbound router in place (./mqttAdapter.ts) and not yet connected: the caller adds
 * its routes (the ingest route first) and then calls `connect()`. Once connected it keeps reconnecting: a broker that
 * is down, even at boot, never stops the daemon. Every attempt is counted, and a failed one is classified (tls, auth,
 * network, other) and logged at error level, rate-limited.
 */
export function createBrokerLink(mqttConfig: MqttConfig, log: Logger, options: ConnectOptions = {}): MqttLink {
  const stats = options.stats ?? new BrokerStats();
  const clock = options.clock ?? Date.now;
  const failureLog = new RateLimitedLog(log, options.failureLogIntervalMs, clock);
  const link = createMqttLink(mqttConfig.url, clientOptions(mqttConfig), { log });
  const { client } = link;
  const attempt = new AttemptTracker(client, mqttConfig, stats, failureLog, log, clock);
  const baseMs = mqttConfig.reconnectSeconds * 1000;
  // A connection the broker closes right after accepting it (Mosquitto 2.0.11 with `max_queued_messages 0` does so
  // whenever its ACL denies one of our publishes) must not restart the backoff, or the daemon would reconnect every
  // reconnectSeconds for ever. The backoff restarts once a connection has lasted this long.
  const stableAfterMs = Math.max(1000, 2 * baseMs);
  let retries = 0; // reconnects since the last stable connection
  let connectedAt: number | null = null;
  let stableTimer: NodeJS.Timeout | undefined;
  client.on('connect', (connack) => {
    connectedAt = clock();
    attempt.succeeded();
    clearTimeout(stableTimer);
    stableTimer = setTimeout(() => {
      retries = 0;
      client.options.reconnectPeriod = baseMs;
      attempt.stable();
    }, stableAfterMs);
    stableTimer.unref();
    log.info({ url: mqttConfig.url, sessionPresent: connack.sessionPresent, retriesBefore: retries }, 'connected to broker');
    client.publish(availabilityTopic(mqttConfig.baseTopic), 'online', { qos: 1, retain: true });
  });
  // mqtt.js reconnects at a fixed period; this stretches the wait before each next attempt.
  client.on('reconnect', () => {
    attempt.started();
    retries++;
    client.options.reconnectPeriod = reconnectDelayMs(retries, baseMs, mqttConfig.reconnectMaxSeconds * 1000);
    log.debug({ url: mqttConfig.url, attempt: retries, nextDelayMs: client.options.reconnectPeriod }, 'reconnecting to broker');
  });
  client.on('error', (error) => attempt.errored(error));
  client.on('close', () => {
    clearTimeout(stableTimer);
    const lastedMs = connectedAt === null ? null : clock() - connectedAt;
    connectedAt = null;
    attempt.closed();
    if (lastedMs === null || client.disconnecting) return;
    if (lastedMs >= stableAfterMs) {
      log.warn({ url: mqttConfig.url }, 'broker connection lost; readings wait at the broker until we are back');
    } else {
      failureLog.error(
        'flapping',
        { url: mqttConfig.url, lastedMs, nextDelayMs: client.options.reconnectPeriod, hint: FLAPPING_HINT },
        'broker connection lost right after the broker accepted it; reconnecting with growing waits',
      );
    }
  });
  watchRefusals(client, stats, failureLog, mqttConfig.url);
  client.on('disconnect', (packet) => {
    const reasonCode = packet.reasonCode ?? 0;
    if (reasonCode === SESSION_TAKEN_OVER) {
      // Two processes sharing one client id take the session (and the readings queued in it) from each other: what
      // the other one receives and acknowledges never reaches this database.
      stats.sessionTakeovers++;
      failureLog.error(
        'takeover',
        { url: mqttConfig.url, clientId: mqttConfig.clientId, hint: TAKEOVER_HINT },
        'another client took over our MQTT session (same client id)',
      );
    } else {
      log.warn({ url: mqttConfig.url, reasonCode, reason: packet.properties?.reasonString }, 'the broker disconnected us');
    }
  });
  return link;
}

/** MQTT 5 DISCONNECT reason code 0x8E: a new connection with the same client id replaced this one. */
const SESSION_TAKEN_OVER = 0x8e;

const TAKEOVER_HINT =
  'two processes use one mqtt.clientId (a second forecastd, or a copied config): the readings the other one receives are acknowledged to the broker but never stored here; give each its own clientId';

const FLAPPING_HINT =
  'see the broker log: an ACL denying one of our publishes (Mosquitto 2.0.11 with max_queued_messages 0 then drops the client), or another client using the same mqtt.clientId';

/**
 * Follows one connection attempt at a time (mqtt.js emits error, then close, for a failed one) so that each
 * failure is counted once, with the first error seen as its cause.
 */
class AttemptTracker {
  private open = true;
  private cause: Error | undefined;

  constructor(
    private readonly client: MqttClient,
    private readonly mqttConfig: MqttConfig,
    private readonly stats: BrokerStats,
    private readonly failureLog: RateLimitedLog,
    private readonly log: Logger,
    private readonly clock: () => number,
  ) {
    stats.attempts++;
  }

  started(): void {
    if (this.open) this.failed();
    this.open = true;
    this.cause = undefined;
    this.stats.attempts++;
  }

  succeeded(): void {
    this.open = false;
    this.stats.connects++;
  }

  /** The connection has lasted: the fault is over, so the next one is logged at once again. */
  stable(): void {
    const heldBack = this.failureLog.reset();
    if (heldBack > 0)
      this.log.info({ url: this.mqttConfig.url, failuresNotLogged: heldBack }, 'broker reachable again; failures held back from the log meanwhile');
  }

  errored(error: Error): void {
    if (this.open) {
      this.cause ??= error;
      return;
    }
    // On an established connection: the close that follows is a lost connection, logged by the offline handler.
    this.failureLog.error('connection', { url: this.mqttConfig.url, err: error.message }, 'broker connection error');
  }

  closed(): void {
    if (this.client.disconnecting) {
      // Our own shutdown: neither a failure nor a lost connection.
      this.open = false;
      return;
    }
    if (this.open) this.failed();
    else this.stats.connectionsLost++;
  }

  private failed(): void {
    this.open = false;
    const reason = classifyConnectFailure(this.cause);
    const message = this.cause?.message ?? 'connection closed before the broker answered';
    this.stats.failures[reason]++;
    this.stats.lastFailure = { reason, message, at: this.clock() };
    const fields = { url: this.mqttConfig.url, reason, err: message, code: (this.cause as { code?: unknown } | undefined)?.code };
    this.log.debug({ ...fields, attempt: this.stats.attempts }, 'broker connection attempt failed');
    this.failureLog.error(`connect:${reason}`, { ...fields, hint: FAILURE_HINTS[reason] }, `cannot connect to broker (${reason})`);
    this.cause = undefined;
  }
}

/**
 * Counts what the broker refuses on an established connection: SUBACK codes ≥ 0x80 for topic filters its ACL
 * does not allow, and (MQTT 5 only; 3.1.1 has no way to say it) PUBACK codes ≥ 0x80 for our publishes.
 * Which filter was refused is logged by the subscriber, who knows the filters.
 */
function watchRefusals(client: MqttClient, stats: BrokerStats, failureLog: RateLimitedLog, url: string): void {
  // QoS > 0 publishes waiting for their PUBACK, so that a refusal can name its topic; bounded by the in-flight window.
  const inFlightTopics = new Map<number, string>();
  client.on('packetsend', (packet) => {
    if (packet.cmd !== 'publish' || !packet.qos || packet.messageId === undefined) return;
    if (inFlightTopics.size >= MAX_TRACKED_PUBLISHES) inFlightTopics.clear();
    inFlightTopics.set(packet.messageId, packet.topic);
  });
  client.on('packetreceive', (packet) => {
    if (packet.cmd === 'suback') {
      stats.refusals.subscribe += (packet.granted as Array<number | object>).filter((code) => typeof code === 'number' && code >= 0x80).length;
    } else if (packet.cmd === 'puback' || packet.cmd === 'pubrec') {
      const topic = packet.messageId === undefined ? undefined : inFlightTopics.get(packet.messageId);
      if (packet.messageId !== undefined) inFlightTopics.delete(packet.messageId);
      const code = packet.reasonCode ?? 0;
      if (code < 0x80) return;
      stats.refusals.publish++;
      failureLog.error('publish-refused', { url, topic, reasonCode: code }, 'broker refused a publish (check its ACL for this topic)');
    }
  });
  client.on('close', () => inFlightTopics.clear());
}

const MAX_TRACKED_PUBLISHES = 10_000;

/** Publishes `offline` and disconnects cleanly (the will covers the unclean case). */
export async function disconnectBroker(client: MqttClient, mqttConfig: MqttConfig): Promise<void> {
  if (client.connected) {
    await client.publishAsync(availabilityTopic(mqttConfig.baseTopic), 'offline', { qos: 1, retain: true }).catch(() => undefined);
  }
  await client.endAsync(false).catch(() => client.end(true));
}
