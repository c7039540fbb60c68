/**
 * A running forecastd for the HTTP, Home Assistant and browser tests: an embedded aedes broker (so a test can stop
 * it), the daemon in this process with HTTP on a free port, and a sensor that publishes a known daily sine.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/demo/embeddedBroker.js';
import { createLogger } from '../../src/log.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { publishBurst, type BurstMessage } from '../helpers/load.js';

export const HOUR = 3_600_000;
export const READING_EVERY_MS = 10 * 60_000;
/** Repeatable noise in [-0.5, 0.5) from the timestamp, so that no baseline forecasts the signal exactly. */
const noise = (ts: number) => {
  const x = Math.sin((ts / READING_EVERY_MS) * 12.9898) * 43758.5453;
  return x - Math.floor(x) - 0.5;
};
export const signal = (ts: number) =>
  20 + 4 * Math.sin((2 * Math.PI * ts) / (24 * HOUR)) + Math.sin((2 * Math.PI * ts) / (6 * HOUR)) + 0.6 * noise(ts);

export interface Fixture {
  broker: EmbeddedBroker;
  daemon: Daemon;
  sensor: MqttClient;
  prefix: string;
  baseTopic: string;
  stateDir: string;
  url: string;
  token: string | undefined;
  /** Publishes `days` of readings ending now; resolves when the daemon has stored them all. */
  publishHistory(days: number): Promise<number>;
  /** GET with the token (unless `auth: false`). */
  get(path: string, options?: { auth?: boolean; headers?: Record<string, string> }): Promise<Response>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  token?: string;
  homeAssistant?: boolean;
  statusIntervalSeconds?: number;
  /** Extra forecast training settings (a tiny model by default). */
  epochs?: number;
}

/**
 * The fixture's one forecast: a small LSTM on the sensor's room.temp. A config that reads the fixture's state
 * directory (the CLI tests) declares it the same way, so that the checkpoints there are this forecast's.
 */
export const fixtureForecast = (epochs: number) => ({
  name: 'room',
  target: 'room.temp',
  unit: '°C',
  interval: '10m',
  steps: 12,
  horizon: 6,
  layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
  training: { onStart: false, epochs, batchSize: 32, seed: 5, historyDays: 3 },
});

export async function startFixture(options: FixtureOptions = {}): Promise<Fixture> {
  const broker = await startEmbeddedBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-http-'));
  const prefix = uniquePrefix('http');
  const baseTopic = `forecastd-${prefix}`;
  const config = parseConfig(
    {
      mqtt: {
        url: broker.url,
        protocolVersion: broker.protocolVersion,
        clientId: `forecastd-${prefix}`,
        baseTopic,
        reconnectSeconds: 0.2,
        reconnectMaxSeconds: 0.5,
      },
      ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
      storage: { stateDir },
      http: { enabled: true, port: 0, token: options.token },
      homeAssistant: { enabled: options.homeAssistant ?? true, deviceClasses: { room: 'temperature' } },
      status: { intervalSeconds: options.statusIntervalSeconds ?? 60 },
      scheduler: { poolThreads: 1 },
      forecasts: [fixtureForecast(options.epochs ?? 15)],
    },
    'fixture',
    {},
  );
  // Whatever started is stopped again when a later step fails: a broker left open would keep the test process alive.
  let daemon: Daemon | undefined;
  let sensor: MqttClient | undefined;
  let url: string | null = null;
  try {
    daemon = await startDaemon({ config, log: createLogger('silent') });
    sensor = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: `sensor-${prefix}`, reconnectPeriod: 200 });
    const started = daemon;
    await waitFor(() => started.client.connected, 10_000, 'the daemon to connect');
    url = daemon.httpUrl;
    if (!url) throw new Error('the daemon did not start its HTTP server');
  } catch (error) {
    await sensor?.endAsync(true).catch(() => undefined);
    await daemon?.stop().catch(() => undefined);
    await broker.close().catch(() => undefined);
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }

  return startedFixture({ broker, daemon, sensor, prefix, baseTopic, stateDir, url, token: options.token });
}

function startedFixture(parts: {
  broker: EmbeddedBroker;
  daemon: Daemon;
  sensor: MqttClient;
  prefix: string;
  baseTopic: string;
  stateDir: string;
  url: string;
  token: string | undefined;
}): Fixture {
  const { broker, daemon, sensor, prefix, baseTopic, stateDir, url } = parts;
  const options = { token: parts.token };
  return {
    broker,
    daemon,
    sensor,
    prefix,
    baseTopic,
    stateDir,
    url,
    token: options.token,
    async publishHistory(days) {
      const now = Date.now();
      const first = Math.ceil((now - days * 24 * HOUR) / READING_EVERY_MS) * READING_EVERY_MS;
      const before = daemon.ingestor.counters.stored;
      const messages: BurstMessage[] = [];
      for (let ts = first, seq = 0; ts < now; ts += READING_EVERY_MS, seq++) {
        messages.push({ seq, topic: `${prefix}/room/temp`, payload: JSON.stringify({ value: signal(ts), ts }) });
      }
      await publishBurst(sensor, messages, { window: 32 });
      await waitFor(() => daemon.ingestor.counters.stored - before >= messages.length, 20_000, `${messages.length} readings to be stored`);
      return messages.length;
    },
    get(path, { auth = true, headers = {} } = {}) {
      const all: Record<string, string> = { ...headers };
      if (auth && options.token) all.authorization = `Bearer ${options.token}`;
      return fetch(`${url}${path}`, { headers: all });
    },
    async close() {
      await sensor.endAsync(true).catch(() => undefined);
      await daemon.stop();
      await broker.close().catch(() => undefined);
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Trains the fixture's forecast and waits for the forecast it issues. */
export async function trainAndForecast(fixture: Fixture, timeoutMs = 90_000): Promise<void> {
  const { daemon } = fixture;
  const issuedBefore = daemon.forecasts.counters.issued;
  const outcome = daemon.train('room', 'test');
  if (outcome !== 'started') throw new Error(`training did not start: ${outcome}`);
  await waitFor(() => daemon.forecasts.counters.issued > issuedBefore, timeoutMs, 'a forecast after training');
}
