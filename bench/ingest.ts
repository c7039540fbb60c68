/**
 * Ingest throughput: how fast forecastd's real ingest path (ack after commit: readings grouped into one SQLite
 * transaction per event-loop turn, PUBACKs sent in arrival order after it commits) drains a burst of QoS 1 readings compared with a bare mqtt.js subscriber, on the same broker, in
 * the same run.
 *
 *   node dist/bench/ingest.js [--n 50000] [--publishers 4] [--window 100] [--order bare-first|forecastd-first] [--json]
 *                             [--only bare|forecastd]   (one drain only, e.g. under node --cpu-prof)
 *                             [--receive-maximum 100]   (MQTT 5 Receive Maximum for the draining clients)
 *
 * Method:
 *  1. A private Mosquitto (the limits docs/reliability.md recommends: max_queued_messages 1000000, max_queued_bytes 64M) on a free
 *     loopback port; if it cannot start, the local broker on 127.0.0.1:1883 (whose default queue limit of 1000
 *     would drop messages: the `lost` figure then shows it).
 *  2. Two persistent sessions subscribe at QoS 1 and go offline: a bare mqtt.js client, and forecastd itself
 *     (`startDaemon`, temp state dir, started once and stopped, so the broker holds its session).
 *  3. Several publishers publish N readings at QoS 1 (several in flight each); the broker queues N for each
 *     session. The publishers are done before any drain starts, so they are not the bottleneck.
 *  4. Each session reconnects in turn and drains: the rate is (N − 1) / (time from the first message to the
 *     N-th). For the bare client the N-th is the N-th distinct seq seen in 'message' (default handleMessage,
 *     acked at once); for forecastd it is the N-th row stored by the ingestor (its group commits within the same turn, so
 *     the figure is early by at most one group: under 1 % of a 50,000-message drain).
 *  5. lost = N − distinct readings (bare: seqs seen; forecastd: rows in its SQLite file). Event-loop delay
 *     (perf_hooks.monitorEventLoopDelay, 10 ms resolution) over each drain.
 *  6. cpu µs/msg: this process's user+system CPU (process.cpuUsage) over the drain, per message; broker cpu µs/msg
 *     the same for the private Mosquitto from /proc/<pid>/stat (10 ms ticks). On a shared, busy machine these are
 *     steadier than the wall-clock rates, which move with the other load (compare the rows of one run).
 *
 * With --json the last stdout line is one JSON object: bare_per_s, ingest_per_s, ratio, lost, lag_p99_ms, …
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { parseConfig } from '../src/config/load.js';
import { startDaemon, type Daemon } from '../src/daemon/daemon.js';
import { createLogger } from '../src/log.js';
import { formatTable, publishBurst, readingBurst } from '../test/helpers/load.js';
import { benchArgs } from './args.js';
import { cpuMeter, lagHistogram, withTimeout } from './measure.js';
import { startMosquitto, watchSysCounter, type PrivateMosquitto } from '../test/helpers/mosquitto.js';

const args = benchArgs(
  { n: 50_000, publishers: 4, window: 100, 'drain-timeout': 120 },
  {
    order: { type: 'string', default: 'bare-first' },
    /** Drain only one of the two (for profiling one path: node --cpu-prof dist/bench/ingest.js --only forecastd). */
    only: { type: 'string' },
    /**
     * MQTT 5 Receive Maximum for the draining clients (bare and forecastd). forecastd's config has no such option
     * yet: the bench injects it by wrapping mqtt.connect, to measure what the option would change.
     */
    'receive-maximum': { type: 'string' },
  },
);
const N = args.n;
const PUBLISHERS = args.publishers;
const WINDOW = args.window;
const DRAIN_TIMEOUT_MS = args['drain-timeout'] * 1000;
if (!(N > 1 && PUBLISHERS >= 1 && WINDOW >= 1)) throw new Error('--n > 1, --publishers >= 1, --window >= 1');

const RECEIVE_MAXIMUM = args['receive-maximum'] === undefined ? undefined : Number(args['receive-maximum']);
if (RECEIVE_MAXIMUM !== undefined) {
  if (!(RECEIVE_MAXIMUM >= 1 && RECEIVE_MAXIMUM <= 65_535)) throw new Error('--receive-maximum takes 1..65535');
  // `import mqtt from 'mqtt'` (here and in src/broker/connection.ts) reads `connect` through a getter on mqtt/build/mqtt.js.
  const mqttModule = createRequire(import.meta.url)('mqtt/mqtt') as { connect: (url: string, options?: IClientOptions) => MqttClient };
  const connect = mqttModule.connect;
  mqttModule.connect = (url, options) => connect(url, { ...options, properties: { ...options?.properties, receiveMaximum: RECEIVE_MAXIMUM } });
}

const TARGET_RATIO = 0.6;
const TARGET_PER_S = 15_000;
const SESSION_EXPIRY_S = 3600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tag = Math.random().toString(16).slice(2, 10);
const topicFilter = `bench-${tag}/+/+`;
const topic = `bench-${tag}/dev/temp`;
const base = Date.now() - 86_400_000 - N * 1000;
/** Progress goes to stderr so that stdout stays the table (and the JSON line). */
const note = (text: string) => process.stderr.write(`[bench:ingest] ${text}\n`);

interface DrainResult {
  name: string;
  received: number;
  distinct: number;
  ms: number;
  perS: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  lost: number;
  /** CPU time of this process (user + system) per message over the drain: less sensitive to a busy machine than wall time. */
  cpuUsPerMsg: number;
  /** CPU time of the broker process per message over the drain (private broker only). */
  brokerCpuUsPerMsg: number | null;
  /** Messages per commit (forecastd only). */
  batch?: number;
}

const bareOptions = (clientId: string) => ({
  protocolVersion: 5 as const,
  clientId,
  clean: false,
  properties: { sessionExpiryInterval: SESSION_EXPIRY_S },
  reconnectPeriod: 0,
});

async function drainBare(url: string, clientId: string, brokerPid: number | undefined): Promise<DrainResult> {
  const seen = new Uint8Array(N + 1);
  let distinct = 0;
  let received = 0;
  let t0 = 0;
  const lag = lagHistogram();
  const cpu = cpuMeter(brokerPid);
  let finish!: (ms: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const client = mqtt.connect(url, bareOptions(clientId));
  client.on('message', (_topic, payload) => {
    received++;
    if (received === 1) {
      t0 = performance.now();
      lag.start();
      cpu.start();
    }
    const seq = (JSON.parse(payload.toString()) as { value: number }).value;
    if (seq >= 1 && seq <= N && !seen[seq]) {
      seen[seq] = 1;
      if (++distinct === N) finish(performance.now() - t0);
    }
  });
  let ms: number;
  try {
    ms = await withTimeout(done, DRAIN_TIMEOUT_MS, 'the bare subscriber to drain');
  } catch (error) {
    note((error as Error).message);
    ms = performance.now() - t0;
  }
  const { p50, p99, max } = lag.stop();
  const cpuUsed = cpu.stop(received);
  await client.endAsync();
  return {
    name: 'bare mqtt.js',
    received,
    distinct,
    ms,
    perS: ((distinct - 1) / ms) * 1000,
    lagP50Ms: p50,
    lagP99Ms: p99,
    lagMaxMs: max,
    lost: N - distinct,
    ...cpuUsed,
  };
}

function daemonConfig(url: string, clientId: string, stateDir: string) {
  return parseConfig({
    mqtt: { url, clientId, baseTopic: `forecastd-${clientId}` },
    ingest: { topics: [{ filter: topicFilter, pattern: `bench-${tag}/{device}/{metric}`, series: '{device}.{metric}' }] },
    storage: { stateDir },
    model: { backend: 'cpu' },
    log: { level: 'warn' },
  });
}

async function createDaemonSession(url: string, clientId: string, stateDir: string): Promise<void> {
  const daemon = await startDaemon({ config: daemonConfig(url, clientId, stateDir), log: createLogger('warn', 2) });
  const subscribed = new Promise<void>((resolve) => {
    // The broker link subscribes the ingest route on 'connect'; the SUBACK is the 'packetreceive' of cmd suback.
    daemon.client.on('packetreceive', (packet) => packet.cmd === 'suback' && resolve());
  });
  await withTimeout(subscribed, 10_000, 'forecastd to subscribe');
  await daemon.stop();
}

/**
 * Drains the daemon's session with `startDaemon`, the real path, observed from outside: the first message to arrive
 * (the client's packetreceive) starts the clock, and the ingest route's commit listener stops it at the N-th stored.
 */
async function drainDaemon(url: string, clientId: string, stateDir: string, brokerPid: number | undefined): Promise<DrainResult> {
  const lag = lagHistogram();
  const cpu = cpuMeter(brokerPid);
  let t0 = 0;
  let commits = 0;
  let finish!: (ms: number) => void;
  const done = new Promise<number>((resolve) => (finish = resolve));
  const daemon: Daemon = await startDaemon({ config: daemonConfig(url, clientId, stateDir), log: createLogger('warn', 2) });
  daemon.client.on('packetreceive', (packet) => {
    if (packet.cmd !== 'publish' || t0 !== 0) return;
    t0 = performance.now();
    lag.start();
    cpu.start();
  });
  daemon.ingest.onCommit(() => {
    commits++;
    if (daemon.ingestor.counters.stored === N) finish(performance.now() - t0);
  });
  let ms: number;
  try {
    ms = await withTimeout(done, DRAIN_TIMEOUT_MS, 'forecastd to drain');
  } catch (error) {
    note((error as Error).message);
    ms = performance.now() - t0;
  }
  const { p50, p99, max } = lag.stop();
  const counters = structuredClone(daemon.ingestor.counters);
  const cpuUsed = cpu.stop(counters.received);
  await daemon.stop();
  const db = new Database(daemon.databasePath, { readonly: true, fileMustExist: true });
  const rows = db.prepare('SELECT count(DISTINCT ts) FROM readings').pluck().get() as number;
  db.close();
  if (counters.received !== counters.stored)
    note(`forecastd received ${counters.received}, stored ${counters.stored}, duplicates ${counters.duplicates}`);
  return {
    name: 'forecastd ingest',
    received: counters.received,
    distinct: rows,
    ms,
    perS: ((counters.stored - 1) / ms) * 1000,
    lagP50Ms: p50,
    lagP99Ms: p99,
    lagMaxMs: max,
    lost: N - rows,
    ...cpuUsed,
    batch: counters.received / Math.max(1, commits),
  };
}

async function main(): Promise<void> {
  let broker: PrivateMosquitto | null = null;
  let url = 'mqtt://127.0.0.1:1883';
  try {
    broker = await startMosquitto();
    url = broker.url;
  } catch (error) {
    note(`no private Mosquitto (${(error as Error).message.split('\n')[0]}); using ${url}, whose queue limits may drop messages`);
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-bench-ingest-'));
  const bareId = `bench-bare-${tag}`;
  const daemonId = `bench-forecastd-${tag}`;
  const publishers: MqttClient[] = [];
  const dropped = await watchSysCounter(url);
  try {
    note(`broker ${url}; creating the two persistent sessions`);
    const bare = await mqtt.connectAsync(url, bareOptions(bareId));
    await bare.subscribeAsync(topicFilter, { qos: 1 });
    await bare.endAsync();
    await createDaemonSession(url, daemonId, stateDir);

    note(`publishing ${N} QoS 1 readings with ${PUBLISHERS} publishers, ${WINDOW} in flight each`);
    for (let index = 0; index < PUBLISHERS; index++) {
      publishers.push(await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `bench-pub-${tag}-${index}`, reconnectPeriod: 0 }));
    }
    const publishStart = performance.now();
    const share = Math.ceil(N / PUBLISHERS);
    const bursts = await Promise.all(
      publishers.map((client, index) =>
        publishBurst(client, readingBurst(topic, index * share + 1, Math.min(N, (index + 1) * share), base), { window: WINDOW }),
      ),
    );
    const publishMs = performance.now() - publishStart;
    const acked = bursts.reduce((sum, burst) => sum + burst.acked.size, 0);
    if (acked !== N) throw new Error(`only ${acked} of ${N} publishes were acked`);
    await Promise.all(publishers.map((client) => client.endAsync()));
    note(`published ${N} in ${(publishMs / 1000).toFixed(2)} s (${Math.round((N / publishMs) * 1000)}/s); draining (${args.order})`);
    await sleep(500);

    const results: DrainResult[] = [];
    const runBare = async () => results.push(await drainBare(url, bareId, broker?.pid));
    const runDaemon = async () => results.push(await drainDaemon(url, daemonId, stateDir, broker?.pid));
    if (args.only === 'bare') await runBare();
    else if (args.only === 'forecastd') await runDaemon();
    else if (args.order === 'forecastd-first') {
      await runDaemon();
      await runBare();
    } else {
      await runBare();
      await runDaemon();
    }
    if (args.only) {
      process.stdout.write(`${JSON.stringify(results)}\n`);
      return;
    }
    const droppedTotal = await dropped.fresh(3000);
    const bareResult = results.find((result) => result.name.startsWith('bare'))!;
    const daemonResult = results.find((result) => result.name.startsWith('forecastd'))!;
    const ratio = daemonResult.perS / bareResult.perS;

    process.stdout.write(
      `${formatTable(
        `Ingest drain of a ${N.toLocaleString('en-US')}-message QoS 1 burst queued for an offline session (${url}${broker ? ', private Mosquitto' : ''})`,
        results.map((result) => ({
          subscriber: result.name,
          received: result.received,
          distinct: result.distinct,
          'drain s': (result.ms / 1000).toFixed(2),
          'msgs/s': Math.round(result.perS),
          lost: result.lost,
          'lag p50 ms': result.lagP50Ms.toFixed(1),
          'lag p99 ms': result.lagP99Ms.toFixed(1),
          'lag max ms': result.lagMaxMs.toFixed(1),
          'cpu µs/msg': result.cpuUsPerMsg.toFixed(1),
          'broker cpu µs/msg': result.brokerCpuUsPerMsg === null ? 'n/a' : result.brokerCpuUsPerMsg.toFixed(1),
          'msgs/commit': result.batch === undefined ? (result.name.startsWith('bare') ? '-' : '1') : result.batch.toFixed(1),
        })),
      )}\n`,
    );
    const verdict = (ok: boolean) => (ok ? 'ok' : 'BELOW TARGET');
    process.stdout.write(
      `ratio forecastd/bare ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}: ${verdict(ratio >= TARGET_RATIO)}); ` +
        `forecastd ${Math.round(daemonResult.perS)}/s (target >= ${TARGET_PER_S}: ${verdict(daemonResult.perS >= TARGET_PER_S)}); ` +
        `broker dropped ${dropped.updates ? droppedTotal : 'unknown'}; publish ${Math.round((N / publishMs) * 1000)}/s\n`,
    );
    if (args.json) {
      process.stdout.write(
        `${JSON.stringify({
          n: N,
          broker: broker ? 'private' : url,
          publishers: PUBLISHERS,
          window: WINDOW,
          order: args.order,
          receive_maximum: RECEIVE_MAXIMUM ?? null,
          publish_per_s: Math.round((N / publishMs) * 1000),
          bare_per_s: Math.round(bareResult.perS),
          ingest_per_s: Math.round(daemonResult.perS),
          ratio: Number(ratio.toFixed(3)),
          lost: daemonResult.lost,
          bare_lost: bareResult.lost,
          broker_dropped: dropped.updates ? droppedTotal : null,
          lag_p50_ms: Number(daemonResult.lagP50Ms.toFixed(1)),
          lag_p99_ms: Number(daemonResult.lagP99Ms.toFixed(1)),
          lag_max_ms: Number(daemonResult.lagMaxMs.toFixed(1)),
          bare_lag_p99_ms: Number(bareResult.lagP99Ms.toFixed(1)),
          ingest_cpu_us_per_msg: Number(daemonResult.cpuUsPerMsg.toFixed(1)),
          bare_cpu_us_per_msg: Number(bareResult.cpuUsPerMsg.toFixed(1)),
          meets_targets: ratio >= TARGET_RATIO && daemonResult.perS >= TARGET_PER_S && daemonResult.lost === 0,
        })}\n`,
      );
    }
    if (daemonResult.lost !== 0) process.exitCode = 1;
  } finally {
    await Promise.all(publishers.map((client) => client.endAsync(true).catch(() => undefined)));
    await dropped.close();
    await broker?.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().then(
  // The training pool and tfjs may keep handles alive; the bench is done.
  () => process.exit(),
  (error: Error) => {
    process.stderr.write(`bench:ingest failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
