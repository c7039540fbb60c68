/**
 * End to end on the real stack: readings in over MQTT, stored, trained on in a worker, forecast
 * published back over MQTT; the forecast must beat repeating the last value on a known signal.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { roomForecast } from '../daemon/support.js';
import { testBroker, uniquePrefix, waitFor, type TestBroker } from '../helpers/broker.js';

const HOUR = 3_600_000;
const READING_EVERY_MS = 5 * 60_000;
const DAYS = 3;
/** The known signal: a daily cycle around 20 with a slower 8-hour harmonic. */
/**
 * Both cycles cross zero rising when the test starts, so the forecast (made minutes later) falls where
 * the signal moves fastest. Near a crest, repeating the last value is almost exact for an hour and a
 * single forecast could not tell a good model from a poor one.
 */
const PHASE_ZERO = Date.now();
const signal = (ts: number) =>
  20 + 5 * Math.sin((2 * Math.PI * (ts - PHASE_ZERO)) / (24 * HOUR)) + 1.5 * Math.sin((2 * Math.PI * (ts - PHASE_ZERO)) / (8 * HOUR));

describe('forecastd end to end', { timeout: 240_000 }, () => {
  let broker: TestBroker;
  let daemon: Daemon;
  let sensor: MqttClient;
  let consumer: MqttClient;
  let stateDir: string;
  const prefix = uniquePrefix('e2e');
  const baseTopic = `forecastd-test-${prefix}`;
  const received: ForecastMessage[] = [];

  before(async () => {
    broker = await testBroker();
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-e2e-'));
    const config = parseConfig({
      mqtt: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `forecastd-${prefix}`, baseTopic },
      ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
      storage: { stateDir },
      forecasts: [roomForecast({ onStart: false, epochs: 25, seed: 3, historyDays: DAYS + 1 })],
    });
    daemon = await startDaemon({ config, log: createLogger('silent') });
    consumer = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `consumer-${prefix}` });
    consumer.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as ForecastMessage));
    await consumer.subscribeAsync(`${baseTopic}/room/forecast`, { qos: 1 });
    sensor = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `sensor-${prefix}` });
    await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect');
  });

  after(async () => {
    await sensor?.endAsync();
    await consumer?.endAsync();
    await daemon?.stop();
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it(`stores ${DAYS} days of timestamped readings published over MQTT`, async () => {
    const now = Date.now();
    const first = Math.ceil((now - DAYS * 24 * HOUR) / READING_EVERY_MS) * READING_EVERY_MS;
    let published = 0;
    for (let ts = first; ts < now; ts += READING_EVERY_MS) {
      await sensor.publishAsync(`${prefix}/room/temp`, JSON.stringify({ value: signal(ts), ts }), { qos: 1 });
      published++;
    }
    await waitFor(() => daemon.ingestor.counters.stored === published, 30_000, `${published} readings to be stored`);
    const stored = daemon.readings.read('room.temp', first, now);
    assert.equal(stored.values.length, published);
    assert.ok(Math.abs(stored.values[0] - signal(first)) < 1e-9, 'values are stored as published');
  });

  it('trains in a worker, publishes a forecast that beats repeating the last value', async (t) => {
    assert.equal(daemon.train('room'), 'started');
    assert.equal(daemon.train('room'), 'skipped_running', 'a second training of the same forecast never overlaps');
    await waitFor(() => received.length > 0, 180_000, 'a forecast on the broker');
    const forecast = received[0];
    assert.equal(forecast.forecast, 'room');
    assert.equal(forecast.points.length, 6);
    assert.equal(forecast.intervalSeconds, 600);
    assert.match(forecast.model.version, /^room@/);
    assert.ok(['wasm', 'cpu', 'native'].includes(forecast.backend));

    // Each point is the mean of its 10-minute bucket: the readings at ts and ts + 5 min.
    const actual = forecast.points.map((point) => {
      const ts = Date.parse(point.ts);
      return (signal(ts) + signal(ts + READING_EVERY_MS)) / 2;
    });
    const modelMae = mean(forecast.points.map((point, index) => Math.abs(point.value - actual[index])));
    const persistenceMae = mean(actual.map((value) => Math.abs(forecast.lastObserved - value)));
    t.diagnostic(`published forecast MAE ${modelMae.toFixed(3)}, repeating the last value ${persistenceMae.toFixed(3)}`);
    assert.ok(modelMae < persistenceMae, `model MAE ${modelMae.toFixed(3)} should beat persistence MAE ${persistenceMae.toFixed(3)}`);
    assert.ok(
      forecast.model.validation && forecast.model.validation.mae < forecast.model.validation.persistenceMae,
      'validation metrics say the same',
    );
  });
});

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
