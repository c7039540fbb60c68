/**
 * F10 load ladder: forecastd ingesting a steady stream at rising rates, each for a while, and what every rate costs.
 *
 *   node dist/bench/load.js [--rates 10,100,1000,5000,10000] [--seconds 20] [--series 100] [--json]
 *
 * Method:
 *  1. Broker: a private Mosquitto with the queue limits docs/reliability.md recommends, and its
 *     `$SYS/broker/publish/messages/dropped`; without Mosquitto, the local broker or an embedded aedes (drops unknown).
 *  2. forecastd runs in this process (startDaemon, temp state dir, ingest only, synchronous NORMAL), so that its
 *     ingest counter, event loop and CPU time can be read. A child process (its work off the measured thread)
 *     publishes QoS 1 readings at each rate in turn, round-robin over --series series, for --seconds each.
 *  3. Both sides sample every 5 ms: the child how many it has sent, this process how many forecastd has committed.
 *     One publisher connection keeps the order, so the k-th reading sent is the k-th committed: its latency
 *     (publish → row committed and acknowledged) is the time the stored count reached k minus the time the sent
 *     count did, read off the two curves for 2,000 values of k per rate.
 *  4. After each rate the bench waits for the backlog to drain (up to 60 s) before the next; a rate that does not
 *     drain ends the ladder.
 *
 * Figures per rate: offered (the child's achieved rate, the baseline of the run), stored/s and its ratio to offered,
 * latency p50/p99/max, backlog at the end of the rate and the time to drain it, broker drops, lost (sent − stored −
 * dropped), CPU % of forecastd's process and of the broker, event-loop delay p99/max, WAL size, and bytes written
 * per 1,000 readings (/proc/self/io). "Sustained" is the highest rate with stored ≥ 99 % of offered, latency p99
 * under 1 s, and nothing dropped or lost.
 *
 * With --json the last stdout line is one JSON object with the rows and the sustained rate.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { parseConfig } from '../src/config/load.js';
import { startDaemon } from '../src/daemon/daemon.js';
import { createLogger } from '../src/log.js';
import { readProcessWriteBytes } from '../src/store/writeMeter.js';
import { testBroker, uniquePrefix } from '../test/helpers/broker.js';
import { formatTable, percentile } from '../test/helpers/load.js';
import { mosquittoAvailable, startMosquitto, watchSysCounter, type SysCounter } from '../test/helpers/mosquitto.js';
import { benchArgs } from './args.js';
import { lagHistogram, processCpuUs, withTimeout } from './measure.js';

const args = benchArgs(
  { seconds: 20, series: 100 },
  {
    rates: { type: 'string', default: '10,100,1000,5000,10000' },
    // Internal: run as the publisher (the child process).
    publisher: { type: 'string' },
  },
);

const SAMPLE_MS = 5;
const DRAIN_LIMIT_MS = 60_000;
const LATENCY_POINTS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const say = (text: string) => (args.json ? process.stderr : process.stdout).write(`${text}\n`);

/** [wall-clock ms, count]: a count that only grows, sampled over time. */
type Curve = Array<[number, number]>;

/** When `curve` reached `count`, interpolated between the samples around it; NaN if it never did. */
function timeToReach(curve: Curve, count: number): number {
  const high = curve.findIndex(([, reached]) => reached >= count);
  if (high < 0) return NaN;
  if (high === 0) return curve[0][0];
  const [t0, c0] = curve[high - 1];
  const [t1, c1] = curve[high];
  return t0 + ((count - c0) / (c1 - c0)) * (t1 - t0);
}

// ---------------------------------------------------------------------------------------------------------
// The publisher (child process).

interface PublisherSetup {
  url: string;
  protocolVersion: 4 | 5;
  prefix: string;
  series: number;
}

type ToPublisher = { type: 'phase'; rate: number; seconds: number } | { type: 'stop' };
type FromPublisher = { type: 'ready' } | { type: 'phase-done'; sent: Curve; acked: number };

async function runPublisher(setup: PublisherSetup): Promise<void> {
  const client = await mqtt.connectAsync(setup.url, { protocolVersion: setup.protocolVersion, clientId: `bench-load-${setup.prefix}`, clean: true });
  // Every reading has its own (series, ts): a day back, 1 ms apart within a series, over the whole run.
  const baseTs = Date.now() - 86_400_000;
  let total = 0;
  const publishOne = (onAck: () => void) => {
    const series = total % setup.series;
    const ts = baseTs + Math.floor(total / setup.series);
    total++;
    client.publish(
      `${setup.prefix}/load${series}/value`,
      `{"value": ${series + (total % 100) / 100}, "ts": ${ts}}`,
      { qos: 1 },
      (error) => error || onAck(),
    );
  };
  process.on('message', (message: ToPublisher) => {
    if (message.type === 'stop') {
      void client.endAsync().then(() => process.exit(0));
      return;
    }
    const { rate, seconds } = message;
    let sent = 0;
    let acked = 0;
    const curve: Curve = [];
    const startedAt = Date.now();
    const timer = setInterval(() => {
      const now = Date.now();
      const due = Math.min(rate * seconds, Math.floor(((now - startedAt) * rate) / 1000));
      for (; sent < due; sent++) publishOne(() => acked++);
      curve.push([now, sent]);
      if (sent >= rate * seconds) {
        clearInterval(timer);
        // The broker's PUBACKs for the last readings, so that `acked` covers the phase.
        const waitAcks = setInterval(() => {
          if (acked < sent && Date.now() - now < 10_000) return;
          clearInterval(waitAcks);
          process.send!({ type: 'phase-done', sent: curve, acked } satisfies FromPublisher);
        }, 10);
      }
    }, SAMPLE_MS);
  });
  process.send!({ type: 'ready' } satisfies FromPublisher);
}

// ---------------------------------------------------------------------------------------------------------
// The bench (parent).

interface RateResult {
  rate: number;
  offeredPerS: number;
  storedPerS: number;
  latency: { p50: number; p99: number; max: number };
  backlogAtEnd: number;
  drainMs: number | null;
  brokerDropped: number | null;
  lost: number | null;
  cpuPercent: number;
  brokerCpuPercent: number | null;
  loop: { p99: number; max: number };
  walMb: number;
  writtenBytesPer1k: number | null;
}

async function main(): Promise<void> {
  const rates = String(args.rates).split(',').map(Number);
  if (rates.some((rate) => !(rate > 0))) throw new Error(`--rates takes positive numbers separated by commas, not "${args.rates}"`);
  const { seconds, series: seriesCount } = args;

  const mosquitto = mosquittoAvailable() ? await startMosquitto() : null;
  const broker = mosquitto
    ? { kind: 'private mosquitto', url: mosquitto.url, protocolVersion: 5 as const, close: () => mosquitto.close() }
    : await testBroker();
  const dropped: SysCounter | null = mosquitto ? await watchSysCounter(mosquitto.url) : null;
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-load-'));
  const prefix = uniquePrefix('load');
  const config = parseConfig({
    mqtt: {
      url: broker.url,
      protocolVersion: broker.protocolVersion,
      clientId: `forecastd-${prefix}`,
      baseTopic: `forecastd-${prefix}`,
      watchBrokerDrops: false,
    },
    ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
    storage: { stateDir },
    model: { backend: 'cpu' },
    log: { level: 'warn' },
  });
  const daemon = await startDaemon({ config, log: createLogger('warn', 2) });
  await withTimeout(
    new Promise<void>((resolve) => daemon.client.on('packetreceive', (packet) => packet.cmd === 'suback' && resolve())),
    10_000,
    'forecastd to subscribe',
  );

  const child = fork(
    fileURLToPath(import.meta.url),
    [
      '--publisher',
      JSON.stringify({ url: broker.url, protocolVersion: broker.protocolVersion, prefix, series: seriesCount } satisfies PublisherSetup),
    ],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const fromChild = (type: FromPublisher['type']) =>
    new Promise<FromPublisher>((resolve, reject) => {
      const onMessage = (message: FromPublisher) => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        resolve(message);
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`the publisher exited (${code})`)));
    });
  await fromChild('ready');
  say(`broker: ${broker.kind}; rates ${rates.join(', ')}/s for ${seconds} s each over ${seriesCount} series; forecastd ingest in this process`);

  const stored = () => daemon.ingestor.counters.stored;
  const walBytes = () => {
    try {
      return statSync(`${daemon.databasePath}-wal`).size;
    } catch {
      return 0;
    }
  };
  const results: RateResult[] = [];
  for (const rate of rates) {
    const storedBefore = stored();
    const droppedBefore = dropped ? await dropped.fresh() : null;
    const writtenBefore = readProcessWriteBytes();
    const brokerCpuBefore = processCpuUs(mosquitto?.pid);
    const cpuBefore = process.cpuUsage();
    const loop = lagHistogram(1);
    const storedCurve: Curve = [];
    const sampler = setInterval(() => storedCurve.push([Date.now(), stored() - storedBefore]), SAMPLE_MS);
    loop.start();
    const startedAt = Date.now();
    const done = fromChild('phase-done');
    child.send({ type: 'phase', rate, seconds } satisfies ToPublisher);
    const phase = (await done) as Extract<FromPublisher, { type: 'phase-done' }>;
    const sentCurve = phase.sent;
    const sent = sentCurve.at(-1)?.[1] ?? 0;
    const endedAt = sentCurve.at(-1)?.[0] ?? Date.now();
    const storedAtEnd = stored() - storedBefore;
    const phaseMs = endedAt - startedAt;
    const cpu = process.cpuUsage(cpuBefore);
    const brokerCpuAfter = processCpuUs(mosquitto?.pid);
    const loopDelay = loop.stop();
    const walMb = walBytes() / 2 ** 20;
    // The backlog drains before the next rate (and before latency can be read for the last readings).
    while (stored() - storedBefore < sent && Date.now() - endedAt < DRAIN_LIMIT_MS) await sleep(SAMPLE_MS);
    clearInterval(sampler);
    storedCurve.push([Date.now(), stored() - storedBefore]);
    const drained = stored() - storedBefore >= sent;
    const storedTotal = stored() - storedBefore;
    const droppedAfter = dropped ? await dropped.fresh() : null;
    const writtenAfter = readProcessWriteBytes();

    const latencies: number[] = [];
    const step = Math.max(1, Math.floor(sent / LATENCY_POINTS));
    for (let k = 1; k <= sent; k += step) {
      const latency = timeToReach(storedCurve, k) - timeToReach(sentCurve, k);
      if (Number.isFinite(latency)) latencies.push(latency);
    }
    const brokerDropped = droppedBefore === null || droppedAfter === null ? null : droppedAfter - droppedBefore;
    const result: RateResult = {
      rate,
      offeredPerS: (sent / phaseMs) * 1000,
      storedPerS: (storedAtEnd / phaseMs) * 1000,
      latency: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length ? Math.max(...latencies) : NaN },
      backlogAtEnd: sent - storedAtEnd,
      drainMs: drained ? (storedCurve.find(([, count]) => count >= sent)?.[0] ?? endedAt) - endedAt : null,
      brokerDropped,
      lost: brokerDropped === null ? null : sent - storedTotal - brokerDropped,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / phaseMs) * 100,
      brokerCpuPercent: brokerCpuBefore === null || brokerCpuAfter === null ? null : ((brokerCpuAfter - brokerCpuBefore) / 1000 / phaseMs) * 100,
      loop: { p99: loopDelay.p99, max: loopDelay.max },
      walMb,
      writtenBytesPer1k:
        writtenBefore === null || writtenAfter === null || storedTotal === 0 ? null : ((writtenAfter - writtenBefore) / storedTotal) * 1000,
    };
    results.push(result);
    say(
      `  ${rate}/s: offered ${Math.round(result.offeredPerS)}/s, stored ${Math.round(result.storedPerS)}/s, latency p99 ${Math.round(result.latency.p99)} ms, ` +
        `backlog ${result.backlogAtEnd}${drained ? '' : ' (not drained: the ladder ends here)'}`,
    );
    if (!drained) break;
  }

  child.send({ type: 'stop' } satisfies ToPublisher);
  await new Promise((resolve) => child.once('exit', resolve));
  await daemon.stop();
  await dropped?.close();
  await broker.close();
  rmSync(stateDir, { recursive: true, force: true });

  const sustains = (result: RateResult) =>
    result.storedPerS >= 0.99 * result.offeredPerS &&
    result.latency.p99 < 1000 &&
    result.brokerDropped !== null &&
    result.brokerDropped === 0 &&
    result.lost === 0;
  const sustained = results.filter(sustains).map((result) => result.rate);
  const round = (value: number | null, digits = 0) =>
    value === null || !Number.isFinite(value) ? 'n/a' : Math.round(value * 10 ** digits) / 10 ** digits;
  const rows = results.map((result) => ({
    'rate/s': result.rate,
    'offered/s': round(result.offeredPerS),
    'stored/s': round(result.storedPerS),
    'stored/offered': round(result.storedPerS / result.offeredPerS, 3),
    'latency p50 ms': round(result.latency.p50, 1),
    'p99 ms': round(result.latency.p99, 1),
    'max ms': round(result.latency.max, 1),
    'backlog at end': result.backlogAtEnd,
    'drain s': result.drainMs === null ? '>60' : round(result.drainMs / 1000, 2),
    'broker dropped': round(result.brokerDropped),
    lost: round(result.lost),
    'forecastd cpu %': round(result.cpuPercent),
    'broker cpu %': round(result.brokerCpuPercent),
    'loop p99 ms': round(result.loop.p99, 1),
    'loop max ms': round(result.loop.max, 1),
    'WAL MB': round(result.walMb, 1),
    'written KB/1k': round(result.writtenBytesPer1k === null ? null : result.writtenBytesPer1k / 1024, 1),
  }));
  const table = formatTable(`F10 load ladder: ${seconds} s per rate, ${seriesCount} series, QoS 1, broker ${broker.kind}`, rows);
  const summary = `sustained (stored ≥ 99 % of offered, latency p99 < 1 s, nothing dropped or lost): up to ${sustained.length ? Math.max(...sustained) : 'none'} readings/s`;
  say(table);
  say(summary);
  if (args.json) process.stdout.write(`${JSON.stringify({ rows: results, sustainedPerS: sustained.length ? Math.max(...sustained) : null })}\n`);
}

if (args.publisher) void runPublisher(JSON.parse(args.publisher) as PublisherSetup);
else
  main().catch((error: Error) => {
    process.stderr.write(`bench:load failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
