/**
 * Ingest fault injection against a private Mosquitto (reliability.md §6: F1, F2a, F2d, and invariant I3).
 *
 * Every test starts its own broker from a generated config (`max_queued_messages 0`, `max_queued_bytes 64M`,
 * `persistence true`, `sys_interval 1`) on a free loopback port, and signals only the PIDs it started.
 *
 * How each reported figure is obtained:
 *   published   publishes attempted by the test's publisher
 *   acked       PUBACKs (success) the publisher received — the harness's "published" of reliability.md §6.1
 *   stored      distinct readings in the daemon's SQLite file, counted read-only after the daemon stopped
 *   dup rows    rows minus distinct (series, ts): 0 by construction of the primary key, checked anyway
 *   absorbed    redeliveries the daemon received and ignored (ingestor counter; in-process daemon only)
 *   rejected    malformed payloads acked by the broker (known by construction); for the in-process daemon
 *               also the ingestor's per-reason counters, which must agree
 *   dropped     `$SYS/broker/publish/messages/dropped`, followed across broker restarts (and the broker's
 *               "being dropped" log lines as a cross-check)
 *   lost        acked − stored − rejected − dropped: must be 0 (I1/I3)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { waitFor } from '../helpers/broker.js';
import { spawnDaemon, writeYaml, type DaemonProcess, type LogLine } from '../helpers/daemonProcess.js';
import { formatTable, publishBurst, readingBurst, readingPayload, type BurstMessage } from '../helpers/load.js';
import { MOSQUITTO_BIN, mosquittoAvailable, startMosquitto, watchSysCounter, type PrivateMosquitto, type SysCounter } from '../helpers/mosquitto.js';
import { seededRandom } from '../../src/model/random.js';

const N = Number(process.env.FORECASTD_FAULT_N ?? 20_000);
const SEED = Number(process.env.FORECASTD_FAULT_SEED ?? Date.now() % 1_000_000);
const WINDOW = 64;

const seeded = seededRandom;
const random = seeded(SEED);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const rand = () => Math.random().toString(16).slice(2, 10);
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Readings are a day old and 1 s apart: well inside maxAgeDays and never in the future. */
const baseTs = () => Date.now() - 86_400_000 - N * 1000;

interface StoredSummary {
  rows: number;
  distinct: number;
  bySeries: Map<string, Set<number>>;
}

/** Opens the daemon's database read-only (the daemon has stopped) and collects seq per series. */
function readStored(databasePath: string, base: number): StoredSummary {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
    const distinct = db.prepare('SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM readings)').pluck().get() as number;
    const bySeries = new Map<string, Set<number>>();
    const all = db.prepare('SELECT s.name AS name, r.ts AS ts, r.v AS v FROM readings r JOIN series s ON s.id = r.series_id').all() as Array<{ name: string; ts: number; v: number }>;
    for (const { name, ts, v } of all) {
      const seq = (ts - base) / 1000;
      assert.equal(v, seq, `${name}: the value stored at ts ${ts} is the seq it was published with`);
      let set = bySeries.get(name);
      if (!set) bySeries.set(name, (set = new Set()));
      set.add(seq);
    }
    return { rows, distinct, bySeries };
  } finally {
    db.close();
  }
}

/** A live row counter on the running daemon's WAL database (read-only, separate connection). */
function rowCounter(databasePath: string): { count(): number; close(): void } {
  let db: Database.Database | null = null;
  let statement: Database.Statement | null = null;
  return {
    count() {
      try {
        if (!db) {
          db = new Database(databasePath, { readonly: true, fileMustExist: true });
          statement = db.prepare('SELECT count(*) FROM readings').pluck();
        }
        return statement!.get() as number;
      } catch {
        return 0; // not created yet, or the schema is not migrated yet
      }
    },
    close() {
      db?.close();
      db = null;
    },
  };
}

function daemonConfig(url: string, clientId: string, stateDir: string, topics: Array<{ filter: string; pattern: string }>) {
  // mqtt: protocolVersion 5, clean false and the session expiry are left at their defaults on purpose.
  return {
    mqtt: { url, clientId, baseTopic: `forecastd-${clientId}` },
    ingest: { topics: topics.map((rule) => ({ ...rule, series: '{device}.{metric}' })) },
    storage: { stateDir },
    // No forecasts: the model runtime is only loaded; the cheapest one keeps starts short.
    model: { backend: 'cpu' },
    log: { level: 'info' },
  };
}

const connected = (line: LogLine) => line.msg === 'connected to broker';
const subscribedTo = (filters: string[]) => (line: LogLine) =>
  line.msg === 'subscribed' && Array.isArray(line.filters) && filters.every((filter) => (line.filters as string[]).some((granted) => granted.startsWith(`${filter} (qos 1)`)));

function report(title: string, row: Record<string, string | number>): void {
  console.log(`\n${formatTable(title, [row])}\n`);
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('ingest faults against a private Mosquitto', { skip, timeout: 150_000 }, () => {
  const brokers: PrivateMosquitto[] = [];
  const watchers: SysCounter[] = [];
  const daemons: DaemonProcess[] = [];
  const inProcess: Daemon[] = [];
  const clients: MqttClient[] = [];
  const dirs: string[] = [];

  const broker = async () => {
    const started = await startMosquitto();
    brokers.push(started);
    const dropped = await watchSysCounter(started.url);
    watchers.push(dropped);
    return { broker: started, dropped };
  };
  const tempDir = (label: string) => {
    const dir = mkdtempSync(join(tmpdir(), `forecastd-fault-${label}-`));
    dirs.push(dir);
    return dir;
  };
  const spawn = (configPath: string) => {
    const daemon = spawnDaemon(configPath);
    daemons.push(daemon);
    return daemon;
  };
  const publisher = async (url: string, clientId: string, persistent: boolean) => {
    const client = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId,
      clean: !persistent,
      // A persistent publisher keeps its in-flight publishes across a broker restart and re-sends them.
      properties: persistent ? { sessionExpiryInterval: 600 } : undefined,
      reconnectPeriod: 200,
      connectTimeout: 5000,
    });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  before(() => console.log(`ingest faults: N=${N}, seed=${SEED} (replay with FORECASTD_FAULT_SEED=${SEED})`));

  after(async () => {
    for (const daemon of daemons) if (daemon.running) daemon.kill('SIGKILL');
    await Promise.all(daemons.map((daemon) => daemon.exited));
    for (const daemon of inProcess) await daemon.stop().catch(() => undefined);
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await Promise.all(watchers.map((watcher) => watcher.close()));
    await Promise.all(brokers.map((started) => started.close()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('F1: kill -9 of the daemon mid-burst, then restart: every acked reading is stored exactly once', { timeout: 60_000 }, async () => {
    const { broker: mosquitto, dropped } = await broker();
    const stateDir = tempDir('f1');
    const configPath = join(stateDir, 'forecastd.yaml');
    const databasePath = join(stateDir, 'forecastd.db');
    const prefix = `f1-${rand()}`;
    writeYaml(configPath, daemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }]));

    let daemon = spawn(configPath);
    await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 20_000, 'its subscription');
    const first = await daemon.waitForLog(connected, 1000, 'connected to broker');
    assert.equal(first.sessionPresent, false, 'a fresh state: no session yet');

    const base = baseTs();
    const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, false);
    const killAt = Math.round(N * (0.2 + 0.5 * random()));
    const restartDelayMs = Math.round(1000 * random());
    const rows = rowCounter(databasePath);
    let ackedNow = 0;
    const burst = publishBurst(sensor, readingBurst(`${prefix}/dev/temp`, 1, N, base), { window: WINDOW, onAck: (count) => (ackedNow = count) });
    let publishing = true;
    void burst.then(() => (publishing = false));

    // Kill mid-burst (killAt of N acked by the broker) once the daemon is ingesting (rows committed).
    let storedAtKill = 0;
    await waitFor(() => (ackedNow >= killAt && (storedAtKill = rows.count()) > 0) || !publishing, 30_000, `${killAt} publishes acked before the kill`);
    const ackedAtKill = ackedNow;
    const publishingAtKill = publishing;
    // The daemon, not this reader, must be the first to open the database after the crash (and recover its WAL).
    rows.close();
    daemon.kill('SIGKILL');
    const killedAt = performance.now();
    const killed = await daemon.exited;
    assert.ok(publishingAtKill, 'the kill came while the burst was still being published');
    assert.equal(killed.signal, 'SIGKILL');

    await sleep(restartDelayMs);
    const restartedAt = performance.now();
    daemon = spawn(configPath);
    const resumed = await daemon.waitForLog(connected, 20_000, 'connected to broker after the restart');
    const reconnectMs = performance.now() - restartedAt;
    assert.equal(resumed.sessionPresent, true, 'the persistent session survived the kill (fixed clientId, clean false, session expiry)');

    const published = await burst;
    assert.equal(published.acked.size, N, `the broker acked every publish (${published.failed.size} failed)`);
    await waitFor(() => rows.count() >= published.acked.size, 30_000, 'every acked reading to be stored');
    const allStoredMs = performance.now() - killedAt;
    rows.close();
    const droppedTotal = await dropped.fresh();
    const stopped = await daemon.stop();
    assert.equal(stopped.code, 0, 'a graceful stop after the restart');

    const stored = readStored(databasePath, base);
    const seqs = stored.bySeries.get('dev.temp') ?? new Set<number>();
    const missing = [...published.acked].filter((seq) => !seqs.has(seq));
    report(`F1 kill -9 with ${ackedAtKill} of ${N} acked to the publisher (${publishingAtKill ? 'mid-burst' : 'burst already over'}) and at least ${storedAtKill} committed by the daemon; restart after ${restartDelayMs} ms`, {
      published: published.attempted,
      acked: published.acked.size,
      stored: seqs.size,
      'dup rows': stored.rows - stored.distinct,
      rejected: 0,
      dropped: dropped.updates ? droppedTotal : 'unknown',
      lost: missing.length,
      'restart→session resumed': seconds(reconnectMs),
      'kill→all stored': seconds(allStoredMs),
    });
    assert.equal(stored.rows, stored.distinct, 'no duplicate rows');
    assert.deepEqual(missing.slice(0, 10), [], `acked but not stored: ${missing.length}`);
    assert.equal(seqs.size, N, 'seq 1..N all present');
    assert.equal(Math.min(...seqs), 1);
    assert.equal(Math.max(...seqs), N);
    assert.ok(dropped.updates > 0, 'the $SYS dropped counter was read');
    assert.equal(droppedTotal, 0, 'the broker dropped nothing (max_queued_messages 0)');
    assert.deepEqual(mosquitto.droppedLogLines(), []);
  });

  it('F2a + I3: broker SIGTERM and restart mid-stream, with malformed payloads: acked = stored + rejected + dropped', { timeout: 60_000 }, async () => {
    const { broker: mosquitto, dropped } = await broker();
    const stateDir = tempDir('f2a');
    const prefix = `f2a-${rand()}`;
    // In process, so that the ingestor's exact counters (received, stored, duplicates, rejected by reason) can be read.
    const config = parseConfig(daemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/#`, pattern: `${prefix}/{device}/{metric}` }]));
    const daemon = await startDaemon({ config, log: createLogger('silent') });
    inProcess.push(daemon);
    await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect');
    await sleep(200); // the subscription (sent on connect) is in place well before this

    const MALFORMED: Array<{ payload: string | Buffer; reason: string }> = [
      { payload: 'warm', reason: 'not_a_number' },
      { payload: '{"value": 1e400}', reason: 'non_finite' },
      { payload: 'x'.repeat(5000), reason: 'too_large' },
      { payload: Buffer.from([0xff, 0xfe, 0x00]), reason: 'not_text' },
      { payload: '[1, 2]', reason: 'bad_json_shape' },
      { payload: '{"value": 1, "ts": "yesterday"}', reason: 'bad_timestamp' },
      { payload: '{"value": 1e20}', reason: 'out_of_range' },
      { payload: `{"value": 1, "ts": ${Date.now() + 86_400_000}}`, reason: 'in_future' },
    ];
    const EVERY = 400;
    const base = baseTs();
    const topic = `${prefix}/dev/temp`;
    const kindOf = new Map<number, string>();
    function* mixed(): Generator<BurstMessage> {
      for (let seq = 1; seq <= N; seq++) {
        if (seq % EVERY === 0) {
          const bad = MALFORMED[(seq / EVERY) % MALFORMED.length];
          kindOf.set(seq, bad.reason);
          yield { seq, topic, payload: bad.payload };
        } else if (seq === N - 1) {
          kindOf.set(seq, 'unknown_topic'); // matches the filter, not the pattern
          yield { seq, topic: `${topic}/extra`, payload: readingPayload(seq, base) };
        } else yield { seq, topic, payload: readingPayload(seq, base) };
      }
    }

    const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, true);
    let ackedNow = 0;
    const burst = publishBurst(sensor, mixed(), { window: WINDOW, onAck: (count) => (ackedNow = count) });
    let publishing = true;
    void burst.then(() => (publishing = false));

    const stopAt = Math.round(N * (0.2 + 0.5 * random()));
    await waitFor(() => (ackedNow >= stopAt && daemon.ingestor.counters.stored > 0) || !publishing, 30_000, `${stopAt} publishes acked before the broker restart`);
    const ackedAtStop = ackedNow;
    const storedAtStop = daemon.ingestor.counters.stored;
    const publishingAtStop = publishing;
    assert.ok(publishingAtStop, 'the broker went down while the burst was still being published');
    const stoppedAt = performance.now();
    const reconnected = new Promise<number>((resolve) => daemon.client.once('connect', () => resolve(performance.now())));
    await mosquitto.stop('TERM');
    await sleep(300);
    await mosquitto.restart();
    const upAt = performance.now();
    const reconnectedAt = await reconnected;
    await waitFor(() => daemon.ingestor.counters.stored > storedAtStop, 20_000, 'the first insert after the broker restart');
    const firstInsertMs = performance.now() - upAt;

    const published = await burst;
    assert.equal(published.acked.size, N, `the broker acked every publish eventually (${published.failed.size} failed)`);
    const validAcked = [...published.acked].filter((seq) => !kindOf.has(seq));
    const malformedAcked = [...published.acked].filter((seq) => kindOf.has(seq));
    await waitFor(
      () => daemon.readings.count() >= validAcked.length && daemon.ingestor.rejectedTotal() >= malformedAcked.length,
      30_000,
      'every acked message to be stored or rejected',
    );
    const droppedTotal = await dropped.fresh();
    await sleep(300); // late redeliveries, if any, land in the counters before they are read
    const counters = structuredClone(daemon.ingestor.counters);
    const rejectedTotal = daemon.ingestor.rejectedTotal();
    await daemon.stop();

    const stored = readStored(daemon.databasePath, base);
    const seqs = stored.bySeries.get('dev.temp') ?? new Set<number>();
    const lost = validAcked.filter((seq) => !seqs.has(seq));
    const expectedByReason: Record<string, number> = {};
    for (const seq of malformedAcked) expectedByReason[kindOf.get(seq)!] = (expectedByReason[kindOf.get(seq)!] ?? 0) + 1;
    const rejectedByReason = Object.fromEntries(Object.entries(counters.rejected).filter(([, count]) => count > 0));
    report(
      `F2a broker SIGTERM with ${ackedAtStop} of ${N} acked to the publisher (${publishingAtStop ? 'mid-stream' : 'stream already over'}) and ${storedAtStop} stored by the daemon, down ${seconds(upAt - stoppedAt)}; rejected by reason: ${JSON.stringify(rejectedByReason)}`,
      {
        published: published.attempted,
        acked: published.acked.size,
        stored: seqs.size,
        'dup rows': stored.rows - stored.distinct,
        absorbed: counters.duplicates,
        rejected: `${malformedAcked.length} (counter ${rejectedTotal})`,
        dropped: dropped.updates ? droppedTotal : 'unknown',
        lost: lost.length,
        'broker up→connect': seconds(reconnectedAt - upAt),
        'broker up→1st insert': seconds(firstInsertMs),
      },
    );
    assert.equal(stored.rows, stored.distinct, 'no duplicate rows');
    assert.deepEqual(lost.slice(0, 10), [], `acked valid readings not stored: ${lost.length}`);
    assert.equal(seqs.size, validAcked.length, 'nothing stored that was not a valid reading');
    assert.equal(counters.stored, seqs.size, "the daemon's stored counter matches the file");
    // Each delivery is stored, absorbed as a duplicate or rejected; a redelivered malformed message is rejected twice.
    assert.equal(counters.received, counters.stored + counters.duplicates + rejectedTotal);
    for (const [reason, count] of Object.entries(expectedByReason)) {
      assert.ok((counters.rejected as Record<string, number>)[reason] >= count, `rejected ${reason}: ${count} expected`);
    }
    assert.deepEqual(Object.keys(rejectedByReason).sort(), Object.keys(expectedByReason).sort(), 'no rejection for a reason that was not sent');
    assert.ok(dropped.updates > 0, 'the $SYS dropped counter was read');
    assert.equal(droppedTotal, 0, 'the broker dropped nothing');
    // I3: acked = stored + rejected + dropped + lost, with lost = 0.
    assert.equal(published.acked.size, seqs.size + malformedAcked.length + droppedTotal + lost.length);
  });

  it('F2d: a topic rule added to the config is subscribed even though the session is resumed', { timeout: 60_000 }, async () => {
    const { broker: mosquitto, dropped } = await broker();
    const stateDir = tempDir('f2d');
    const configPath = join(stateDir, 'forecastd.yaml');
    const prefix = `f2d-${rand()}`;
    const ruleA = { filter: `${prefix}/a/+/+`, pattern: `${prefix}/a/{device}/{metric}` };
    const ruleB = { filter: `${prefix}/b/+/+`, pattern: `${prefix}/b/{device}/{metric}` };
    const clientId = `forecastd-${prefix}`;
    const base = baseTs();
    const M = 200;
    const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, false);

    writeYaml(configPath, daemonConfig(mosquitto.url, clientId, stateDir, [ruleA]));
    let daemon = spawn(configPath);
    await daemon.waitForLog(subscribedTo([ruleA.filter]), 20_000, 'the subscription to rule A');
    const onA1 = await publishBurst(sensor, readingBurst(`${prefix}/a/dev/temp`, 1, M, base), { window: WINDOW });
    const rows = rowCounter(join(stateDir, 'forecastd.db'));
    await waitFor(() => rows.count() >= M, 10_000, 'the first readings on A');
    rows.close();
    const stopped = await daemon.stop();
    assert.equal(stopped.code, 0);

    // While the daemon is down: A is queued in its session; B has no subscription yet, so nothing is queued for it.
    const onA2 = await publishBurst(sensor, readingBurst(`${prefix}/a/dev/temp`, M + 1, 2 * M, base), { window: WINDOW });
    writeYaml(configPath, daemonConfig(mosquitto.url, clientId, stateDir, [ruleA, ruleB]));
    const restartedAt = performance.now();
    daemon = spawn(configPath);
    const resumed = await daemon.waitForLog(connected, 20_000, 'connected to broker after the restart');
    assert.equal(resumed.sessionPresent, true, 'the session was resumed (the case where mqtt.js alone would not resubscribe)');
    await daemon.waitForLog(subscribedTo([ruleA.filter, ruleB.filter]), 10_000, 'the subscription to rules A and B');
    const subscribedMs = performance.now() - restartedAt;
    const onB = await publishBurst(sensor, readingBurst(`${prefix}/b/dev/hum`, 1, M, base), { window: WINDOW });
    await waitFor(() => rows.count() >= 3 * M, 15_000, 'the readings on A (queued) and B (new rule)');
    rows.close();
    const droppedTotal = await dropped.fresh();
    assert.equal((await daemon.stop()).code, 0);

    const stored = readStored(join(stateDir, 'forecastd.db'), base);
    const onA = stored.bySeries.get('dev.temp')?.size ?? 0;
    const onBStored = stored.bySeries.get('dev.hum')?.size ?? 0;
    const acked = onA1.acked.size + onA2.acked.size + onB.acked.size;
    report('F2d new rule B after a resumed session', {
      published: onA1.attempted + onA2.attempted + onB.attempted,
      acked,
      stored: `${onA + onBStored} (A ${onA}, B ${onBStored})`,
      'dup rows': stored.rows - stored.distinct,
      rejected: 0,
      dropped: dropped.updates ? droppedTotal : 'unknown',
      lost: acked - onA - onBStored - droppedTotal,
      'restart→subscribed A+B': seconds(subscribedMs),
    });
    assert.equal(onA, 2 * M, 'rule A: live and queued-while-down readings stored');
    assert.equal(onBStored, M, 'rule B, added after the session was created: stored');
    assert.equal(stored.rows, stored.distinct);
    assert.equal(droppedTotal, 0);
  });
});
