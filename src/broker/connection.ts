import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { reconnectDelayMs } from './backoff.js';

export type MqttConfig = Config['mqtt'];

export const availabilityTopic = (mqttConfig: MqttConfig) => `${mqttConfig.baseTopic}/availability`;

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
    will: { topic: availabilityTopic(mqttConfig), payload: Buffer.from('offline'), qos: 1, retain: true },
  };
  if (mqttConfig.protocolVersion === 5) {
    // Without an explicit expiry an MQTT 5 session ends at disconnect, and with it everything queued for us.
    options.properties = { sessionExpiryInterval: Math.round(mqttConfig.sessionExpiryDays * 86_400) };
  }
  if (mqttConfig.caFile) options.ca = readFileSync(mqttConfig.caFile);
  if (mqttConfig.certFile) options.cert = readFileSync(mqttConfig.certFile);
  if (mqttConfig.keyFile) options.key = readFileSync(mqttConfig.keyFile);
  if (mqttConfig.caFile) options.rejectUnauthorized = true;
  return options;
}

/** Connects (and keeps reconnecting: a broker that is down, even at boot, never stops the daemon). */
export function connectBroker(mqttConfig: MqttConfig, log: Logger): MqttClient {
  const client = mqtt.connect(mqttConfig.url, clientOptions(mqttConfig));
  let wasConnected = false;
  let failedAttempts = 0;
  client.on('connect', (connack) => {
    wasConnected = true;
    failedAttempts = 0;
    client.options.reconnectPeriod = mqttConfig.reconnectSeconds * 1000;
    log.info({ url: mqttConfig.url, sessionPresent: connack.sessionPresent }, 'connected to broker');
    client.publish(availabilityTopic(mqttConfig), 'online', { qos: 1, retain: true });
  });
  // mqtt.js reconnects at a fixed period; this stretches the wait before each next attempt.
  client.on('reconnect', () => {
    failedAttempts++;
    client.options.reconnectPeriod = reconnectDelayMs(failedAttempts, mqttConfig.reconnectSeconds * 1000, mqttConfig.reconnectMaxSeconds * 1000);
    log.debug({ url: mqttConfig.url, attempt: failedAttempts, nextDelayMs: client.options.reconnectPeriod }, 'reconnecting to broker');
  });
  client.on('offline', () => {
    if (wasConnected) log.warn({ url: mqttConfig.url }, 'broker connection lost; readings wait at the broker until we are back');
  });
  client.on('error', (error) => log.error({ url: mqttConfig.url, err: error.message }, 'broker error'));
  return client;
}

/** Publishes `offline` and disconnects cleanly (the will covers the unclean case). */
export async function disconnectBroker(client: MqttClient, mqttConfig: MqttConfig): Promise<void> {
  if (client.connected) {
    await client.publishAsync(availabilityTopic(mqttConfig), 'offline', { qos: 1, retain: true }).catch(() => undefined);
  }
  await client.endAsync(false).catch(() => client.end(true));
}
