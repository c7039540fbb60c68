/**
 * `forecastd demo`: the whole pipeline on an embedded default. An in-process broker, a simulated room
 * sensor that backfills two days and then streams live readings (with a few malformed messages, as
 * real devices send), the daemon on a temporary database, and a consumer that prints every forecast
 * it receives from the broker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { parseConfig } from '../config/load.js';
import { startDaemon, type Daemon } from '../daemon/daemon.js';
import { createLogger } from '../log.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import { resampleMean } from '../windowing/index.js';
import { startEmbeddedBroker } from './embeddedBroker.js';
import { renderForecast } from './render.js';
import { malformedPayloads, SensorSimulator, type SimulatedReading } from './simulator.js';

export interface DemoOptions {
  durationSeconds?: number;
  write?: (text: string) => void;
}

const FORECAST = 'room_temperature';
const HISTORY_MS = 2 * 86_400_000;
const LIVE_READING_MS = 5_000;

const topicOf = (reading: SimulatedReading) => `sensors/room/${reading.series}`;
const payloadOf = (reading: SimulatedReading) => JSON.stringify({ value: Math.round(reading.value * 1000) / 1000, ts: reading.ts });

export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const write = options.write ?? ((text: string) => process.stdout.write(text));
  const startedAt = Date.now();
  const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(1)}s`;
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-demo-'));
  const broker = await startEmbeddedBroker();
  write(`[${elapsed()}] embedded MQTT broker on ${broker.url}, state in ${stateDir}\n`);

  const config = parseConfig({
    mqtt: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: 'forecastd-demo' },
    storage: { stateDir },
    // The dashboard on a free loopback port, so the demo shows it too.
    http: { enabled: true, port: 0 },
    log: { level: 'error' },
    forecasts: [
      {
        name: FORECAST,
        target: 'room.temperature',
        covariates: ['room.humidity'],
        interval: '5m',
        steps: 36,
        horizon: 12,
        layers: [{ type: 'lstm', units: 24 }, { type: 'dense' }],
        training: { onStart: false, epochs: 12, batchSize: 32, historyDays: 3, seed: 7 },
      },
    ],
  });
  const log = createLogger(config.log.level, 2);

  let forecastsShown = 0;
  const daemonRef: { current: Daemon | null } = { current: null };
  let trainedVersion: string | null = null;
  const consumer = mqtt.connect(broker.url, { protocolVersion: 4, clientId: 'demo-consumer' });
  consumer.on('message', (_topic, payload) => {
    const message = JSON.parse(payload.toString()) as ForecastMessage;
    forecastsShown++;
    write(`\n[${elapsed()}] forecast received from the broker (built by model ${message.model.version}):\n`);
    write(
      renderForecast(
        {
          forecast: message.forecast,
          issuedAt: message.issuedAt,
          intervalSeconds: message.intervalSeconds,
          modelVersion: message.model.version,
          backend: message.backend,
          points: message.points,
          recent: recentActuals(daemonRef.current, message),
          unit: '°C',
          model: message.model.validation ? { mae: message.model.validation.mae } : undefined,
          baseline: message.model.validation ? { name: 'repeat last value', mae: message.model.validation.persistenceMae } : undefined,
        },
        { width: Math.max(72, Math.min(120, process.stdout.columns ?? 100)) },
      ),
    );
  });
  await consumer.subscribeAsync(`${config.mqtt.baseTopic}/+/forecast`, { qos: 1 });

  const daemon = await startDaemon({
    config,
    log,
    onProgress: (progress) =>
      write(
        `[${elapsed()}] training ${progress.forecast}: epoch ${progress.epoch}/${progress.epochs}  loss ${progress.loss?.toFixed(4)}  val_loss ${progress.valLoss?.toFixed(4)}\n`,
      ),
    onTrained: (summary) => {
      trainedVersion = summary.version;
      const metrics = summary.metrics;
      write(
        `[${elapsed()}] trained ${summary.version} on ${summary.backend}: ${summary.trainWindows} windows, ${Math.round(summary.samplesPerSecond)} samples/s` +
          (metrics ? `; validation MAE ${metrics.model.mae.toFixed(3)} vs ${metrics.persistence.mae.toFixed(3)} for repeating the last value` : '') +
          '\n',
      );
    },
  });
  daemonRef.current = daemon;
  write(`[${elapsed()}] forecastd running (inference backend: ${daemon.backend})${daemon.httpUrl ? `, dashboard at ${daemon.httpUrl}` : ''}\n`);

  // The sensor: two days of history first, as a gateway flushing its buffer would send it.
  const sensor = mqtt.connect(broker.url, { protocolVersion: 4, clientId: 'demo-sensor' });
  await new Promise<void>((resolve) => sensor.once('connect', () => resolve()));
  const history = new SensorSimulator({ seed: 42, intervalMs: 60_000 });
  const now = Date.now();
  const backfill = history.readingsBetween(now - HISTORY_MS, now);
  write(`[${elapsed()}] backfilling ${backfill.length} readings (2 days of temperature and humidity)…\n`);
  const bad = malformedPayloads();
  let published = 0;
  for (const [index, reading] of backfill.entries()) {
    await sensor.publishAsync(topicOf(reading), payloadOf(reading), { qos: 1 });
    published++;
    if (index % 1000 === 500 && bad.length) {
      await sensor.publishAsync('sensors/room/temperature', bad.shift()!.payload, { qos: 1 });
      published++;
    }
  }
  const counters = daemon.ingestor.counters;
  while (counters.stored + counters.duplicates + daemon.ingestor.rejectedTotal() < published) await new Promise((resolve) => setTimeout(resolve, 50));
  write(`[${elapsed()}] stored ${counters.stored} readings, rejected ${daemon.ingestor.rejectedTotal()} malformed ones (the daemon keeps running)\n`);

  // Live readings every few seconds, on the same simulated signal.
  const live = new SensorSimulator({ seed: 42, intervalMs: LIVE_READING_MS });
  let liveFrom = Date.now();
  const liveTimer = setInterval(() => {
    const until = Date.now();
    for (const reading of live.readingsBetween(liveFrom, until)) sensor.publish(topicOf(reading), payloadOf(reading), { qos: 1 });
    if (bad.length && Math.random() < 0.05) sensor.publish('sensors/room/temperature', bad.shift()!.payload, { qos: 1 });
    liveFrom = until;
  }, LIVE_READING_MS);

  write(`[${elapsed()}] training the first model in a worker thread…\n`);
  daemon.train(FORECAST, 'demo');

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (options.durationSeconds !== undefined) setTimeout(stop, Math.max(0, options.durationSeconds * 1000 - (Date.now() - startedAt))).unref();
  });

  clearInterval(liveTimer);
  write(
    `\n[${elapsed()}] stopping: ${counters.stored} readings stored, ${daemon.ingestor.rejectedTotal()} rejected, ${forecastsShown} forecasts received, model ${trainedVersion ?? 'none'}\n`,
  );
  await sensor.endAsync();
  await consumer.endAsync();
  await daemon.stop();
  await broker.close();
  rmSync(stateDir, { recursive: true, force: true });
  if (forecastsShown === 0) throw new Error('the demo ended before any forecast was published (try a longer --duration)');
}

/** The actuals before the forecast origin, as bucket means: what the model saw. */
function recentActuals(daemon: Daemon | null, message: ForecastMessage): Array<{ ts: string; value: number }> {
  if (!daemon) return [];
  const originMs = Date.parse(message.origin);
  const intervalMs = message.intervalSeconds * 1000;
  const buckets = message.points.length * 2;
  const fromMs = originMs - buckets * intervalMs;
  const data = daemon.readings.read(message.target, fromMs, originMs);
  const means = resampleMean(data.timestampsMs, data.values, fromMs, intervalMs, buckets);
  return Array.from(means, (value, bucket) => ({ ts: new Date(fromMs + bucket * intervalMs).toISOString(), value })).filter(
    (point) => !Number.isNaN(point.value),
  );
}
