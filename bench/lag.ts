/**
 * Does training disturb the daemon? Main-thread event-loop delay and forecast publication latency while
 * forecastd ingests a steady stream of readings, first with no training, then while a training runs.
 *
 *   node dist/bench/lag.js [--rate 2000] [--seconds 30] [--interval 5] [--series 20] [--nice 19] [--json]
 *
 * Method:
 *  1. Broker: the local Mosquitto on 127.0.0.1:1883 when it answers, else an embedded aedes (as the tests do).
 *  2. forecastd runs in this process (startDaemon, temp state dir) with two forecasts on the same room
 *     temperature: `bench`, issued every --interval seconds (a small model, trained once before measuring),
 *     and `heavy`, a bigger model that is only ever trained (in phase 2) and serves nothing.
 *  3. A child process (so that its work does not land on the measured event loop) publishes --rate readings/s
 *     at QoS 1, spread over --series load series, plus one room temperature reading a second, and subscribes
 *     to the `bench` forecasts. Publication latency = arrival at that subscriber − the time the forecast was due
 *     (end of its bucket + the scheduler's settle time).
 *  4. Phase "idle": --seconds of that load with no training. Phase "training": the same with `heavy` training
 *     all along (started again if it finishes early). Each phase records perf_hooks.monitorEventLoopDelay
 *     (1 ms resolution) on the main thread, the latencies, and the forecasts missed: due times inside the phase
 *     (one interval of margin at each end) with no forecast for their bucket.
 *
 * With --json the last stdout line is one JSON object: p99_idle_ms, p99_training_ms, ratio (= p99 with training /
 * p99 idle), missed_forecasts, and the details. Target: ratio <= 2 and missed_forecasts = 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { parseConfig } from '../src/config/load.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { createLogger } from '../src/log.js';
import { FORECAST_SETTLE_MS } from '../src/scheduler/scheduler.js';
import { openDatabase } from '../src/store/database.js';
import { ReadingStore } from '../src/store/readings.js';
import { testBroker, uniquePrefix } from '../test/helpers/broker.js';
import { formatTable } from '../test/helpers/load.js';
import { benchArgs } from './args.js';

const args = benchArgs(
  { rate: 2000, seconds: 30, interval: 5, series: 20 },
  {
    /** scheduler.threadNice for the run (default: the config default, 19); 0 to see what the priority buys. */
    nice: { type: 'string' },
    // Internal: run as the load generator (the child process).
    publisher: { type: 'string' },
  },
);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const roomSignal = (ts: number) => 20 + 3 * Math.sin((2 * Math.PI * ts) / 600_000) + Math.sin((2 * Math.PI * ts) / 97_000);

interface PublisherSetup {
  url: string;
  protocolVersion: 4 | 5;
  prefix: string;
  forecastTopic: string;
  rate: number;
  series: number;
}

type FromPublisher =
  { type: 'ready' } | { type: 'forecast'; origin: number; arrivedAt: number } | { type: 'stats'; sent: number; acked: number; at: number };

// ---------------------------------------------------------------------------------------------------------
// The load generator (child process).

async function runPublisher(setup: PublisherSetup): Promise<void> {
  const client = await mqtt.connectAsync(setup.url, { protocolVersion: setup.protocolVersion, clientId: `bench-load-${setup.prefix}`, clean: true });
  client.on('message', (_topic, payload) => {
    const arrivedAt = Date.now();
    const message = JSON.parse(payload.toString()) as { origin: string };
    process.send!({ type: 'forecast', origin: Date.parse(message.origin), arrivedAt } satisfies FromPublisher);
  });
  await client.subscribeAsync(setup.forecastTopic, { qos: 1 });
  let sent = 0;
  let acked = 0;
  let running = false;
  let startedAt = 0;
  // Each load series gets readings `spacingMs` apart, in step with the wall clock, so none is a duplicate.
  const spacingMs = (setup.series * 1000) / setup.rate;
  const tick = () => {
    if (!running) return;
    const now = Date.now();
    const due = Math.floor(((now - startedAt) * setup.rate) / 1000);
    for (; sent < due; sent++) {
      const series = sent % setup.series;
      const ts = Math.round(startedAt + Math.floor(sent / setup.series) * spacingMs);
      client.publish(`${setup.prefix}/load${series}/value`, JSON.stringify({ value: series + (sent % 100) / 100, ts }), { qos: 1 }, (error) => {
        if (!error) acked++;
      });
    }
  };
  let lastRoomSecond = 0;
  const room = () => {
    const second = Math.floor(Date.now() / 1000) * 1000;
    if (second === lastRoomSecond) return;
    lastRoomSecond = second;
    client.publish(`${setup.prefix}/room/temp`, JSON.stringify({ value: roomSignal(second), ts: second }), { qos: 1 });
  };
  const loadTimer = setInterval(tick, 5);
  const roomTimer = setInterval(room, 100);
  const statsTimer = setInterval(() => process.send!({ type: 'stats', sent, acked, at: Date.now() } satisfies FromPublisher), 1000);
  process.on('message', (message: { type: 'start' | 'stop' }) => {
    if (message.type === 'start') {
      running = true;
      startedAt = Date.now();
    } else {
      running = false;
      clearInterval(loadTimer);
      clearInterval(roomTimer);
      clearInterval(statsTimer);
      process.send!({ type: 'stats', sent, acked, at: Date.now() } satisfies FromPublisher);
      void client.endAsync().then(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready' } satisfies FromPublisher);
}

// ---------------------------------------------------------------------------------------------------------
// The bench (parent).

interface PhaseResult {
  phase: string;
  seconds: number;
  lag: { p50: number; p99: number; max: number };
  forecasts: { due: number; received: number; missed: number; latencyP50: number; latencyP99: number; latencyMax: number };
  readingsPerSecond: number;
  storedPerSecond: number;
  trainingShare: number;
  trainingsStarted: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main(): Promise<void> {
  const rate = args.rate;
  const seconds = args.seconds;
  const intervalSeconds = args.interval;
  const seriesCount = args.series;
  const intervalMs = intervalSeconds * 1000;
  const say = (text: string) => {
    if (!args.json) process.stdout.write(`${text}\n`);
    else process.stderr.write(`${text}\n`);
  };

  const broker = await testBroker();
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-lag-'));
  const prefix = uniquePrefix('lag');
  const baseTopic = `forecastd-bench-${prefix}`;

  // A day of room temperature, 5 s apart, written straight into the database before the daemon starts.
  const now = Date.now();
  {
    const { db } = openDatabase({ path: join(stateDir, 'forecastd.db'), synchronous: 'NORMAL' });
    const rows: Array<{ series: string; ts: number; value: number }> = [];
    for (let ts = Math.floor((now - 86_400_000) / 5000) * 5000; ts < now - 5000; ts += 5000)
      rows.push({ series: 'room.temp', ts, value: roomSignal(ts) });
    new ReadingStore(db).insertMany(rows);
    db.close();
  }

  const config = parseConfig({
    mqtt: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `forecastd-${prefix}`, clean: true, baseTopic },
    ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }] },
    storage: { stateDir },
    scheduler: { poolThreads: 1, ...(args.nice !== undefined ? { threadNice: Number(args.nice) } : {}) },
    log: { level: 'warn' },
    forecasts: [
      {
        name: 'bench',
        target: 'room.temp',
        interval: intervalSeconds,
        steps: 24,
        horizon: 6,
        layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
        training: { onStart: false, schedule: '0 0 1 1 *', epochs: 8, seed: 1, historyDays: 0.1 },
      },
      {
        name: 'heavy',
        target: 'room.temp',
        interval: 60,
        steps: 60,
        horizon: 12,
        layers: [{ type: 'lstm', units: 64 }, { type: 'dense' }],
        training: { onStart: false, schedule: '0 0 1 1 *', epochs: 1000, seed: 1, historyDays: 1 },
      },
    ],
  });
  const log = createLogger(config.log.level, 2);
  const daemon = await startDaemon({ config, log });
  say(`broker: ${broker.kind} ${broker.url}; rate ${rate}/s over ${seriesCount} series; forecast every ${intervalSeconds} s; ${seconds} s per phase`);

  say('training the `bench` forecast once (not measured)…');
  const firstTraining = Date.now();
  daemon.train('bench', 'bench');
  await daemon.trainings.idle('bench');
  const failure = daemon.trainings.lastFailure.get('bench');
  if (failure) throw new Error(`the bench forecast could not be trained: ${failure.message}`);
  say(`  done in ${((Date.now() - firstTraining) / 1000).toFixed(1)} s`);

  // Close the gap the first training left in the room temperature (the forecast's input window must have
  // no long gap); from here on the publisher sends one reading a second.
  {
    const until = Date.now();
    const rows: Array<{ series: string; ts: number; value: number }> = [];
    for (let ts = Math.floor((until - 600_000) / 1000) * 1000; ts <= until; ts += 1000) rows.push({ series: 'room.temp', ts, value: roomSignal(ts) });
    daemon.readings.insertMany(rows);
  }

  const child: ChildProcess = fork(
    fileURLToPath(import.meta.url),
    [
      '--publisher',
      JSON.stringify({
        url: broker.url,
        protocolVersion: broker.protocolVersion,
        prefix,
        forecastTopic: `${baseTopic}/bench/forecast`,
        rate,
        series: seriesCount,
      } satisfies PublisherSetup),
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const arrivals: Array<{ origin: number; arrivedAt: number }> = [];
  let stats = { sent: 0, acked: 0, at: Date.now() };
  await new Promise<void>((resolve, reject) => {
    child.on('message', (message: FromPublisher) => {
      if (message.type === 'ready') resolve();
      else if (message.type === 'forecast') arrivals.push({ origin: message.origin, arrivedAt: message.arrivedAt });
      else stats = { sent: message.sent, acked: message.acked, at: message.at };
    });
    child.once('exit', (code) => reject(new Error(`the publisher exited early (${code})`)));
  });
  child.send({ type: 'start' });
  say('load running; 5 s of warm-up…');
  await sleep(5_000);

  const measure = async (phase: string, whileRunning?: () => void): Promise<PhaseResult> => {
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    const startedAt = Date.now();
    const statsBefore = { ...stats };
    const storedBefore = daemon.ingestor.counters.stored;
    const trainingsBefore = daemon.trainings.counters.started;
    let trainingMs = 0;
    histogram.enable();
    const until = startedAt + seconds * 1000;
    let last = Date.now();
    while (Date.now() < until) {
      whileRunning?.();
      await sleep(100);
      const at = Date.now();
      if (daemon.trainings.running.size > 0) trainingMs += at - last;
      last = at;
    }
    histogram.disable();
    const endedAt = Date.now();
    const storedAfter = daemon.ingestor.counters.stored;
    const statsAfter = { ...stats };
    // Give the last forecasts of the phase time to arrive before judging them.
    await sleep(intervalMs);
    // Forecasts due (bucket end + settle time) within the phase.
    const firstDue = Math.ceil((startedAt - FORECAST_SETTLE_MS) / intervalMs) * intervalMs;
    const due: number[] = [];
    for (let origin = firstDue; origin + FORECAST_SETTLE_MS <= endedAt; origin += intervalMs) due.push(origin);
    const latencies: number[] = [];
    let missed = 0;
    for (const origin of due) {
      const arrival = arrivals.find((candidate) => candidate.origin === origin);
      if (!arrival) missed++;
      else latencies.push(arrival.arrivedAt - (origin + FORECAST_SETTLE_MS));
    }
    const ms = (ns: number) => ns / 1e6;
    const phaseSeconds = (endedAt - startedAt) / 1000;
    return {
      phase,
      seconds: phaseSeconds,
      lag: { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) },
      forecasts: {
        due: due.length,
        received: latencies.length,
        missed,
        latencyP50: percentile(latencies, 50),
        latencyP99: percentile(latencies, 99),
        latencyMax: latencies.length ? Math.max(...latencies) : NaN,
      },
      readingsPerSecond: (statsAfter.acked - statsBefore.acked) / Math.max(1e-3, (statsAfter.at - statsBefore.at) / 1000),
      storedPerSecond: (storedAfter - storedBefore) / phaseSeconds,
      trainingShare: trainingMs / (endedAt - startedAt),
      trainingsStarted: daemon.trainings.counters.started - trainingsBefore,
    };
  };

  say(`phase 1: ${seconds} s, no training…`);
  const idle = await measure('idle');
  say(`phase 2: ${seconds} s, while \`heavy\` trains…`);
  daemon.train('heavy', 'bench');
  await sleep(200);
  const training = await measure('training', () => {
    if (!daemon.trainings.running.has('heavy')) daemon.train('heavy', 'bench');
  });

  child.send({ type: 'stop' });
  await new Promise((resolve) => child.once('exit', resolve));
  await daemon.stop();
  await broker.close();
  rmSync(stateDir, { recursive: true, force: true });

  const round = (value: number, digits = 1) => (Number.isFinite(value) ? Math.round(value * 10 ** digits) / 10 ** digits : NaN);
  const rows = [idle, training].map((result) => ({
    phase: result.phase,
    'loop p50 ms': round(result.lag.p50, 2),
    'loop p99 ms': round(result.lag.p99, 2),
    'loop max ms': round(result.lag.max, 1),
    'forecast p50 ms': round(result.forecasts.latencyP50),
    'forecast p99 ms': round(result.forecasts.latencyP99),
    'forecast max ms': round(result.forecasts.latencyMax),
    due: result.forecasts.due,
    missed: result.forecasts.missed,
    'acked/s': Math.round(result.readingsPerSecond),
    'stored/s': Math.round(result.storedPerSecond),
    'training %': Math.round(result.trainingShare * 100),
  }));
  const ratio = training.lag.p99 / idle.lag.p99;
  const missedForecasts = idle.forecasts.missed + training.forecasts.missed;
  const verdict = ratio <= 2 && missedForecasts === 0 ? 'PASS' : 'FAIL';
  const table = formatTable(`event-loop delay (main thread) and forecast publication latency, ${rate} readings/s, broker ${broker.kind}`, rows);
  const summary = `p99 with training / without: ${round(ratio, 2)} (target <= 2); forecasts missed: ${missedForecasts} (target 0) → ${verdict}`;
  if (args.json) {
    process.stderr.write(`${table}\n${summary}\n`);
    process.stdout.write(
      `${JSON.stringify({
        p99_idle_ms: round(idle.lag.p99, 3),
        p99_training_ms: round(training.lag.p99, 3),
        ratio: round(ratio, 3),
        missed_forecasts: missedForecasts,
        p50_idle_ms: round(idle.lag.p50, 3),
        p50_training_ms: round(training.lag.p50, 3),
        max_idle_ms: round(idle.lag.max, 1),
        max_training_ms: round(training.lag.max, 1),
        forecast_latency_p99_idle_ms: round(idle.forecasts.latencyP99),
        forecast_latency_p99_training_ms: round(training.forecasts.latencyP99),
        forecasts_due: idle.forecasts.due + training.forecasts.due,
        readings_per_s_idle: Math.round(idle.readingsPerSecond),
        readings_per_s_training: Math.round(training.readingsPerSecond),
        stored_per_s_idle: Math.round(idle.storedPerSecond),
        stored_per_s_training: Math.round(training.storedPerSecond),
        training_share: round(training.trainingShare, 2),
        thread_nice: config.scheduler.threadNice,
        broker: broker.kind,
        rate,
        seconds,
        interval_s: intervalSeconds,
        pass: verdict === 'PASS',
      })}\n`,
    );
  } else {
    process.stdout.write(`\n${table}\n${summary}\n`);
  }
}

if (args.publisher) {
  void runPublisher(JSON.parse(args.publisher) as PublisherSetup);
} else {
  main().then(
    () => process.exit(0),
    (error: Error) => {
      process.stderr.write(`bench:lag failed: ${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
}
