/**
 * Soak: forecastd running for a while the way a gateway runs it, with simulated sensors, forecasts every
 * minute and a training every few minutes, and what it holds on to at the start and at the end: RSS, V8
 * heap, active handles and requests (process.getActiveResourcesInfo), open file descriptors
 * (/proc/self/fd), TensorFlow.js tensors of the main thread, the database and its WAL.
 *
 *   node --expose-gc dist/bench/soak.js --minutes 30 [--train-every 3] [--rate 20] [--sample-every 30] [--json]
 *
 * The daemon runs in this process (so that its heap, handles and tensors can be read); the broker is a
 * private Mosquitto when one is installed, else the local one or an embedded aedes. The simulated room
 * (src/demo/simulator.ts: temperature and humidity, with outages) is backfilled for two days and then
 * streams a reading every 5 s each; --rate adds that many readings/s of other sensors. Trainings come
 * from the forecast's own cron schedule (every --train-every minutes), through the daemon's pool, with
 * the default thread settings (a thread idle for 30 s exits; threads are replaced after 20 trainings).
 *
 * Faults (F15 of docs/reliability.md's catalogue; they need the private Mosquitto): --partition-every M
 * black-holes the daemon's link (the test TCP proxy) for --partition-seconds every M minutes, and
 * --restart-broker-every M restarts the broker (SIGTERM, persistence on) every M minutes. The sensors publish
 * at QoS 1 straight to the broker; at the end, lost = acknowledged − stored − rejected − broker-dropped.
 *
 * "start" is the first sample after the first training has finished (the model, the thread pool and
 * TensorFlow.js are then warm); the slopes are least-squares fits over the samples from there on.
 * With --json the last stdout line is one JSON object with the start and end figures and the slopes.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { parseConfig } from '../src/config/load.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { SensorSimulator, type SimulatedReading } from '../src/demo/simulator.js';
import { createLogger } from '../src/log.js';
import { initBackend } from '../src/model/backend.js';
import { openDatabase } from '../src/store/database.js';
import { ReadingStore } from '../src/store/readings.js';
import { testBroker, uniquePrefix } from '../test/helpers/broker.js';
import { formatTable } from '../test/helpers/load.js';
import { mosquittoAvailable, startMosquitto, watchSysCounter } from '../test/helpers/mosquitto.js';
import { startTcpProxy } from '../test/helpers/tcpProxy.js';
import { benchArgs } from './args.js';

const args = benchArgs({
  minutes: 10,
  'train-every': 3,
  rate: 20,
  'sample-every': 30,
  'partition-every': 0,
  'partition-seconds': 30,
  'restart-broker-every': 0,
});

interface Sample {
  minute: number;
  /** Whether a training thread was alive: it holds ~80 MB of RSS, so only samples without one compare. */
  trainingThread: boolean;
  rssMb: number;
  heapUsedMb: number;
  externalMb: number;
  handles: number;
  handleTypes: Record<string, number>;
  fds: number;
  tensors: number;
  tensorMb: number;
  dbMb: number;
  walMb: number;
  stored: number;
  trainings: number;
  forecasts: number;
  /** Forecasts waiting in the outbox. */
  outbox: number;
  /** Listeners on the daemon's MQTT client: a reconnect that adds one each time would show here. */
  listeners: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
const fileMb = (path: string) => {
  try {
    return mb(statSync(path).size);
  } catch {
    return 0;
  }
};

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

async function main(): Promise<void> {
  const minutes = args.minutes;
  const trainEvery = args['train-every'];
  const extraRate = args.rate;
  const sampleEveryMs = args['sample-every'] * 1000;
  const say = (text: string) => (args.json ? process.stderr : process.stdout).write(`${text}\n`);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) say('(run with node --expose-gc for heap figures after a full collection)');

  const partitionEveryMs = args['partition-every'] * 60_000;
  const partitionMs = args['partition-seconds'] * 1000;
  const restartEveryMs = args['restart-broker-every'] * 60_000;
  const privateBroker = mosquittoAvailable() ? await startMosquitto() : null;
  if (!privateBroker && (partitionEveryMs > 0 || restartEveryMs > 0))
    throw new Error('--partition-every and --restart-broker-every need Mosquitto installed');
  const broker = privateBroker
    ? { kind: 'private mosquitto', url: privateBroker.url, protocolVersion: 5 as const, close: () => privateBroker.close() }
    : await testBroker();
  // The daemon reaches a private broker through the proxy (a plain pass-through until a partition).
  const proxy = privateBroker ? await startTcpProxy(privateBroker.port) : null;
  const brokerDrops = privateBroker ? await watchSysCounter(privateBroker.url) : null;
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-soak-'));
  const prefix = uniquePrefix('soak');
  const now = Date.now();

  // Two days of the simulated room, a reading a minute, straight into the database.
  const history = new SensorSimulator({ seed: 11, intervalMs: 60_000 });
  {
    const { db } = openDatabase({ path: join(stateDir, 'forecastd.db'), synchronous: 'NORMAL' });
    new ReadingStore(db).insertMany(
      history
        .readingsBetween(now - 2 * 86_400_000, now)
        .map((reading) => ({ series: `room.${reading.series}`, ts: reading.ts, value: reading.value })),
    );
    db.close();
  }

  const config = parseConfig({
    mqtt: {
      url: proxy?.url ?? broker.url,
      protocolVersion: broker.protocolVersion,
      clientId: `forecastd-${prefix}`,
      baseTopic: `forecastd-soak-${prefix}`,
    },
    ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }] },
    storage: { stateDir },
    log: { level: 'warn' },
    forecasts: [
      {
        name: 'room',
        target: 'room.temperature',
        covariates: ['room.humidity'],
        interval: '1m',
        steps: 36,
        horizon: 12,
        layers: [{ type: 'lstm', units: 24 }, { type: 'dense' }],
        training: { schedule: `*/${trainEvery} * * * *`, onStart: true, epochs: 10, historyDays: 2, seed: 3 },
      },
    ],
  });
  const daemon = await startDaemon({ config, log: createLogger(config.log.level, 2) });
  const { tf } = await initBackend(config.model.backend, { allowNative: false });

  // Live sensors: the room every 5 s, and `rate` readings/s from other devices. Every live reading is stamped at
  // or after `liveSince`; the backfill ends before it.
  const liveSince = Date.now();
  const sensor = await mqtt.connectAsync(broker.url, {
    protocolVersion: broker.protocolVersion,
    clientId: `soak-sensor-${prefix}`,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
  });
  const sent = { published: 0, acked: 0 };
  const publishCounted = (topic: string, payload: string) => {
    sent.published++;
    sensor.publish(topic, payload, { qos: 1 }, (error) => error || sent.acked++);
  };
  const live = new SensorSimulator({ seed: 11, intervalMs: 5_000 });
  let liveFrom = Date.now();
  let extraSent = 0;
  const extraStartedAt = Date.now();
  const publish = (reading: SimulatedReading) =>
    publishCounted(`${prefix}/room/${reading.series}`, JSON.stringify({ value: Math.round(reading.value * 1000) / 1000, ts: reading.ts }));
  const liveTimer = setInterval(() => {
    const until = Date.now();
    for (const reading of live.readingsBetween(liveFrom, until)) publish(reading);
    liveFrom = until;
    const due = Math.floor(((until - extraStartedAt) * extraRate) / 1000);
    // Ten devices, each with readings `10 / rate` seconds apart in step with the clock (none a duplicate).
    for (; extraSent < due; extraSent++) {
      const ts = Math.round(extraStartedAt + Math.floor(extraSent / 10) * (10_000 / extraRate));
      publishCounted(`${prefix}/device${extraSent % 10}/power`, JSON.stringify({ value: extraSent % 97, ts }));
    }
  }, 1_000);

  const startedAt = Date.now();
  const faults = { partitions: 0, brokerRestarts: 0 };
  const faultTimers: NodeJS.Timeout[] = [];
  if (proxy && partitionEveryMs > 0) {
    faultTimers.push(
      setInterval(() => {
        faults.partitions++;
        proxy.blackhole();
        setTimeout(() => proxy.heal(), partitionMs);
      }, partitionEveryMs),
    );
  }
  let restarting: Promise<void> = Promise.resolve();
  if (privateBroker && restartEveryMs > 0) {
    faultTimers.push(
      setInterval(() => {
        faults.brokerRestarts++;
        restarting = privateBroker.restart();
      }, restartEveryMs),
    );
  }
  const samples: Sample[] = [];
  const sample = (): Sample => {
    gc?.();
    const memory = process.memoryUsage();
    const resources = process.getActiveResourcesInfo();
    const handleTypes: Record<string, number> = {};
    for (const type of resources) handleTypes[type] = (handleTypes[type] ?? 0) + 1;
    const tensors = tf.memory();
    return {
      minute: Math.round(((Date.now() - startedAt) / 60_000) * 10) / 10,
      trainingThread: (daemon.pool.generationInfo?.threads ?? 0) > 0,
      rssMb: mb(memory.rss),
      heapUsedMb: mb(memory.heapUsed),
      externalMb: mb(memory.external),
      handles: resources.length,
      handleTypes,
      fds: readdirSync('/proc/self/fd').length,
      tensors: tensors.numTensors,
      tensorMb: mb(tensors.numBytes),
      dbMb: fileMb(daemon.databasePath),
      walMb: fileMb(`${daemon.databasePath}-wal`),
      stored: daemon.ingestor.counters.stored,
      trainings: daemon.trainings.counters.started,
      forecasts: daemon.forecasts.counters.issued,
      outbox: daemon.publisher.backlog().pending,
      listeners: daemon.client.eventNames().reduce((sum, name) => sum + daemon.client.listenerCount(name), 0),
    };
  };

  const faultText = [
    partitionEveryMs > 0 ? `a ${args['partition-seconds']} s partition every ${args['partition-every']} min` : '',
    restartEveryMs > 0 ? `a broker restart every ${args['restart-broker-every']} min` : '',
  ]
    .filter(Boolean)
    .join(', ');
  say(
    `soak: ${minutes} min, a training every ${trainEvery} min, forecasts every minute, ${extraRate} extra readings/s, broker ${broker.kind}${faultText ? `; ${faultText}` : ''}`,
  );
  let firstTrainedIndex = -1;
  const deadline = startedAt + minutes * 60_000;
  while (Date.now() < deadline) {
    const next = sample();
    samples.push(next);
    if (firstTrainedIndex < 0 && daemon.trainings.counters.succeeded + daemon.trainings.counters.failed > 0 && !next.trainingThread)
      firstTrainedIndex = samples.length - 1;
    say(
      `  ${next.minute.toFixed(1)} min${next.trainingThread ? ' (training thread)' : ''}: rss ${next.rssMb} MB, heap ${next.heapUsedMb} MB, handles ${next.handles}, fds ${next.fds}, tensors ${next.tensors}, outbox ${next.outbox}, listeners ${next.listeners}, trainings ${next.trainings}, forecasts ${next.forecasts}, stored ${next.stored}`,
    );
    await sleep(Math.min(sampleEveryMs, Math.max(0, deadline - Date.now())));
  }
  // A last sample at a quiet moment: a running training ends, and its thread exits once idle.
  for (let waited = 0; daemon.trainings.running.size > 0 && waited < 180_000; waited += 1000) await sleep(1000);
  for (let waited = 0; (daemon.pool.generationInfo?.threads ?? 0) > 0 && waited < (config.scheduler.idleThreadSeconds + 10) * 1000; waited += 1000)
    await sleep(1000);
  samples.push(sample());

  clearInterval(liveTimer);
  faultTimers.forEach(clearInterval);
  await restarting;
  proxy?.heal();
  // The last readings: acknowledged by the broker, then stored by the daemon (or counted rejected or dropped).
  for (let waited = 0; sent.acked < sent.published && waited < 60_000; waited += 100) await sleep(100);
  const reader = new Database(daemon.databasePath, { readonly: true });
  const countLive = reader.prepare('SELECT count(*) FROM readings WHERE ts >= ?').pluck();
  const storedLive = () => countLive.get(liveSince) as number;
  const rejected = () => Object.values(daemon.ingestor.counters.rejected).reduce((sum, count) => sum + count, 0);
  for (let waited = 0; storedLive() + rejected() < sent.acked && waited < 120_000; waited += 500) await sleep(500);
  const brokerDropped = brokerDrops ? await brokerDrops.fresh() : null;
  const stored = storedLive();
  const delivery = {
    published: sent.published,
    acked: sent.acked,
    stored,
    rejected: rejected(),
    duplicates: daemon.ingestor.counters.duplicates,
    brokerDropped,
    lost: brokerDropped === null ? null : sent.acked - stored - rejected() - brokerDropped,
  };
  const counters = {
    trainings: { ...daemon.trainings.counters },
    pool: { ...daemon.pool.counters },
    ingest: { stored: daemon.ingestor.counters.stored, duplicates: daemon.ingestor.counters.duplicates },
    forecasts: { ...daemon.forecasts.counters },
  };
  reader.close();
  await sensor.endAsync();
  await brokerDrops?.close();
  await proxy?.close();
  await daemon.stop();
  await broker.close();
  rmSync(stateDir, { recursive: true, force: true });

  // Quiet samples (no training thread alive) from the first one after the first training.
  const warm = samples.slice(Math.max(0, firstTrainedIndex)).filter((s) => !s.trainingThread);
  if (warm.length === 0) warm.push(samples.at(-1)!);
  const start = warm[0];
  const end = warm.at(-1)!;
  const hours = warm.map((s) => s.minute / 60);
  const slopes = {
    rss_mb_per_h: slope(
      hours,
      warm.map((s) => s.rssMb),
    ),
    heap_mb_per_h: slope(
      hours,
      warm.map((s) => s.heapUsedMb),
    ),
    handles_per_h: slope(
      hours,
      warm.map((s) => s.handles),
    ),
    fds_per_h: slope(
      hours,
      warm.map((s) => s.fds),
    ),
    tensors_per_h: slope(
      hours,
      warm.map((s) => s.tensors),
    ),
    wal_mb_per_h: slope(
      hours,
      warm.map((s) => s.walMb),
    ),
    outbox_per_h: slope(
      hours,
      warm.map((s) => s.outbox),
    ),
    listeners_per_h: slope(
      hours,
      warm.map((s) => s.listeners),
    ),
  };
  const row = (
    label: string,
    s: Pick<Sample, 'rssMb' | 'heapUsedMb' | 'externalMb' | 'handles' | 'fds' | 'tensors' | 'tensorMb' | 'dbMb' | 'walMb'> & {
      minute: number | string;
    },
  ) => ({
    '': label,
    minute: s.minute,
    'rss MB': s.rssMb,
    'heap MB': s.heapUsedMb,
    'external MB': s.externalMb,
    handles: s.handles,
    fds: s.fds,
    tensors: s.tensors,
    'tensor MB': s.tensorMb,
    'db MB': s.dbMb,
    'wal MB': s.walMb,
  });
  const peak = (pick: (s: Sample) => number) => Math.max(...samples.map(pick));
  const table = formatTable(`forecastd soak, ${minutes} min (start and end: samples with no training thread alive)`, [
    row('start (warm)', start),
    row('end', end),
    row('peak, any', {
      ...end,
      minute: '-',
      rssMb: peak((s) => s.rssMb),
      heapUsedMb: peak((s) => s.heapUsedMb),
      externalMb: peak((s) => s.externalMb),
      handles: peak((s) => s.handles),
      fds: peak((s) => s.fds),
      tensors: peak((s) => s.tensors),
      walMb: peak((s) => s.walMb),
    }),
  ]);
  const handleDiff = Object.fromEntries(
    [...new Set([...Object.keys(start.handleTypes), ...Object.keys(end.handleTypes)])].map((type) => [
      type,
      `${start.handleTypes[type] ?? 0} → ${end.handleTypes[type] ?? 0}`,
    ]),
  );
  const lines = [
    table,
    `slopes per hour (${warm.length} quiet samples): rss ${slopes.rss_mb_per_h.toFixed(1)} MB, heap ${slopes.heap_mb_per_h.toFixed(1)} MB, handles ${slopes.handles_per_h.toFixed(1)}, fds ${slopes.fds_per_h.toFixed(1)}, tensors ${slopes.tensors_per_h.toFixed(1)}, wal ${slopes.wal_mb_per_h.toFixed(2)} MB, outbox ${slopes.outbox_per_h.toFixed(1)}, listeners ${slopes.listeners_per_h.toFixed(1)}`,
    `faults: ${faults.partitions} partitions, ${faults.brokerRestarts} broker restarts; readings: ${JSON.stringify(delivery)}`,
    `handles by type, start → end: ${JSON.stringify(handleDiff)}`,
    `trainings: ${JSON.stringify(counters.trainings)}`,
    `pool: ${JSON.stringify(counters.pool)}`,
    `ingest: ${JSON.stringify(counters.ingest)}; forecasts: ${JSON.stringify(counters.forecasts)}`,
  ];
  say(lines.join('\n'));
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ minutes, start, end, slopes, counters, faults, delivery, samples: samples.length })}\n`);
  }
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    process.stderr.write(`soak failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
