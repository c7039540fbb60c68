import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbeddedBroker } from '../../src/demo/embeddedBroker.js';

export interface TestBroker {
  kind: 'mosquitto' | 'aedes';
  url: string;
  protocolVersion: 4 | 5;
  close(): Promise<void>;
}

const MOSQUITTO_URL = 'mqtt://127.0.0.1:1883';

/** True when an MQTT 5 broker answers on the standard local port (the Mosquitto these machines run). */
async function mosquittoAnswers(): Promise<boolean> {
  try {
    const client = await mqtt.connectAsync(MOSQUITTO_URL, {
      protocolVersion: 5,
      connectTimeout: 2000,
      reconnectPeriod: 0,
      clientId: `probe-${randomBytes(4).toString('hex')}`,
    });
    await client.endAsync();
    return true;
  } catch {
    return false;
  }
}

/** The real Mosquitto on 127.0.0.1:1883 when it runs, else an embedded aedes broker on a free port. */
export async function testBroker(): Promise<TestBroker> {
  if (process.env.FORECASTD_TEST_BROKER !== 'aedes' && (await mosquittoAnswers())) {
    return { kind: 'mosquitto', url: MOSQUITTO_URL, protocolVersion: 5, close: () => Promise.resolve() };
  }
  const embedded = await startEmbeddedBroker();
  return { kind: 'aedes', url: embedded.url, protocolVersion: 4, close: () => embedded.close() };
}

/** A topic prefix no other test run shares, so that runs against one Mosquitto never see each other's messages. */
export const uniquePrefix = (label: string) => `${label}-${randomBytes(4).toString('hex')}`;

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Publishes the same reading every 200 ms until `stored()` holds. A daemon subscribes only after its CONNACK, so a
 * reading sent as soon as it is connected can reach the broker before the SUBSCRIBE and go nowhere; the repeats are
 * one reading, which the store keeps once.
 */
export async function publishUntilStored(
  client: MqttClient,
  topic: string,
  payload: string,
  stored: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!stored()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await client.publishAsync(topic, payload, { qos: 1 });
    await waitFor(stored, 200, what).catch(() => undefined);
  }
}
