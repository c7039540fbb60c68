/**
 * Ingest fault injection against a private Mosquitto (docs/reliability.md, "Readings": F1, F2a, F2b, F2d, and invariant I3).
 *
 * Every test starts its own broker from a generated config (`max_queued_messages 1000000`, `max_queued_bytes 64M`,
 * `persistence true`, `sys_interval 1`) on a free loopback port, and signals only the PIDs it started.
 * FORECASTD_FAULTS_LONG=1 (npm run test:faults) makes F1 kill 20 times during a 100,000-reading burst.
 *
 * How each reported figure is obtained:
 *   published   publishes attempted by the test's publisher
 *   acked       PUBACKs (success) the publisher received — the harness's "published" of docs/reliability.md, "The three invariants"
 *   stored      distinct readings in the daemon's SQLite file, counted read-only after the daemon stopped
 *   duplicates  rows minus distinct (series, ts): 0 by construction of the primary key, checked anyway; for the
 *               in-process daemon also the redeliveries it absorbed (ingestor counter)
 *   rejected    malformed payloads acked by the broker (known by construction); for the in-process daemon
 *               also the ingestor's per-reason counters, which must agree
 *   dropped     `$SYS/broker/publish/messages/dropped`, followed across broker restarts (and the broker's
 *               "being dropped" log lines as a cross-check)
 *   lost        acked − stored − rejected − dropped: 0 wherever forecastd's promise covers it (I1/I3)
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { seededRandom } from '../../src/model/random.js';
import { publishUntilStored, waitFor } from '../helpers/broker.js';
import { writeYaml } from '../helpers/daemonProcess.js';
import { FaultScope } from '../helpers/faultScope.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { formatTable, publishBurst, readingBurst, readingPayload, type BurstMessage } from '../helpers/load.js';
import { MOSQUITTO_BIN, mosquittoAvailable, type MosquittoOptions } from '../helpers/mosquitto.js';
import { ingestDaemonConfig, integrityCheck, isConnected, readingsBaseTs, readStored, rowCounter, subscribedTo } from '../helpers/storedReadings.js';
import { copyTrainedState } from '../helpers/realisticState.js';
import { startSubscribedDaemon } from '../daemon/support.js';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
const N = Number(process.env.FORECASTD_FAULT_N ?? (LONG ? 100_000 : 20_000));
/** kill -9 during one F1 burst. */
const KILLS = Number(process.env.FORECASTD_FAULT_KILLS ?? (LONG ? 20 : 3));
const MAX_RESTART_DELAY_MS = 2000;
const SEED = Number(process.env.FORECASTD_FAULT_SEED ?? Date.now() % 1_000_000);
const WINDOW = 64;

const random = seededRandom(SEED);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const rand = () => Math.random().toString(16).slice(2, 10);

/** Unix seconds of every "Saving in-memory database" line in a Mosquitto log (its autosaves and its save at SIGTERM). */
function saveSeconds(log: string): number[] {
  return [...log.matchAll(/^(\d+): Saving in-memory database/gm)].map((match) => Number(match[1]));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface KillRecord {
  kill: number;
  killPoint: number;
  storedAtKill: number;
  ackedAtKill: number;
  publishingAtKill: boolean;
  killedAt: number;
  restartDelayMs: number;
  resumedMs: number;
  /** kill → every reading the broker had acked by the kill is stored. */
  caughtUpMs?: number;
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('ingest faults against a private Mosquitto', { skip, timeout: LONG ? 1_200_000 : 240_000 }, () => {
  const scope = new FaultScope('fault');
  const broker = (options: MosquittoOptions = {}) => scope.broker(options);
  const tempDir = (label: string) => scope.tempDir(label);
  const spawn = (configPath: string) => scope.spawn(configPath);
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
    return scope.track(client);
  };

  before(() => console.log(`ingest faults: N=${N}, kills=${KILLS}, seed=${SEED} (replay with FORECASTD_FAULT_SEED=${SEED})`));

  after(() => scope.close(), { timeout: 60_000 });

  it(
    `F1: ${KILLS} kill -9 of the daemon during one burst, each restart after 0–2 s: every acked reading is stored exactly once`,
    { timeout: LONG ? 900_000 : 120_000 },
    async () => {
      const { mosquitto, dropped } = await broker();
      const stateDir = tempDir('f1');
      await copyTrainedState(stateDir);
      const configPath = join(stateDir, 'forecastd.yaml');
      const databasePath = join(stateDir, 'forecastd.db');
      const prefix = `f1-${rand()}`;
      writeYaml(
        configPath,
        ingestDaemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }]),
      );

      let daemon = spawn(configPath);
      await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 20_000, 'its subscription');
      const first = await daemon.waitForLog(isConnected, 1000, 'connected to broker');
      assert.equal(first.sessionPresent, false, 'a fresh state: no session yet');

      const base = readingsBaseTs(N);
      const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, false);
      const rows = rowCounter(databasePath);
      let ackedNow = 0;
      const burst = publishBurst(sensor, readingBurst(`${prefix}/dev/temp`, 1, N, base), { window: WINDOW, onAck: (count) => (ackedNow = count) });
      let publishing = true;
      void burst.then(() => (publishing = false));

      // One random kill point in each of KILLS equal slices of 10–85 % of the burst stored, so the kills spread over
      // the whole ingest and each one still leaves readings to come.
      const killPoints = Array.from({ length: KILLS }, (_, slice) => Math.round(N * (0.1 + (0.75 * (slice + random())) / KILLS)));
      const kills: KillRecord[] = [];
      const noteProgress = (stored: number) => {
        const now = performance.now();
        for (const kill of kills) if (kill.caughtUpMs === undefined && stored >= kill.ackedAtKill) kill.caughtUpMs = now - kill.killedAt;
        return stored;
      };

      for (const [index, killPoint] of killPoints.entries()) {
        let storedAtKill = 0;
        await waitFor(
          () => (storedAtKill = noteProgress(rows.count())) >= killPoint,
          60_000,
          `${killPoint} readings stored before kill ${index + 1}`,
        );
        const ackedAtKill = ackedNow;
        const publishingAtKill = publishing;
        // The daemon, not this reader, must be the first to open the database after the crash (and recover its WAL).
        rows.close();
        daemon.kill('SIGKILL');
        const killedAt = performance.now();
        const killed = await daemon.exited;
        assert.equal(killed.signal, 'SIGKILL', `kill ${index + 1} ended the daemon`);

        const restartDelayMs = Math.round(MAX_RESTART_DELAY_MS * random());
        await sleep(restartDelayMs); // the fault schedule: how long the daemon stays down
        const restartedAt = performance.now();
        daemon = spawn(configPath);
        const resumed = await daemon.waitForLog(isConnected, 30_000, `connected to broker after kill ${index + 1}`);
        const resumedMs = performance.now() - restartedAt;
        assert.equal(
          resumed.sessionPresent,
          true,
          `kill ${index + 1}: the persistent session survived (fixed clientId, clean false, session expiry)`,
        );
        kills.push({ kill: index + 1, killPoint, storedAtKill, ackedAtKill, publishingAtKill, killedAt, restartDelayMs, resumedMs });
      }

      const published = await burst;
      assert.equal(published.acked.size, N, `the broker acked every publish (${published.failed.size} failed)`);
      await waitFor(() => noteProgress(rows.count()) >= published.acked.size, 60_000, 'every acked reading to be stored');
      const allStoredMs = performance.now() - kills.at(-1)!.killedAt;
      rows.close();
      const droppedTotal = await dropped.fresh();
      const stopped = await daemon.stop();
      assert.equal(stopped.code, 0, 'a graceful stop after the last restart');

      const stored = readStored(databasePath, base);
      const integrity = integrityCheck(databasePath);
      const seqs = stored.bySeries.get('dev.temp') ?? new Set<number>();
      const missing = [...published.acked].filter((seq) => !seqs.has(seq));
      console.log(
        `\n${formatTable(
          `F1 per kill (N=${N}, seed ${SEED})`,
          kills.map((kill) => ({
            kill: kill.kill,
            'stored at kill': kill.storedAtKill,
            'acked at kill': kill.ackedAtKill,
            'burst still publishing': kill.publishingAtKill ? 'yes' : 'no',
            'down for': secondsText(kill.restartDelayMs),
            'restart→session resumed': secondsText(kill.resumedMs),
            'kill→acked-at-kill stored': kill.caughtUpMs === undefined ? '—' : secondsText(kill.caughtUpMs),
          })),
        )}\n`,
      );
      const slowestResume = Math.max(...kills.map((kill) => kill.resumedMs));
      const slowestCatchUp = Math.max(...kills.map((kill) => kill.caughtUpMs ?? Infinity));
      recordFault({
        fault: `F1 kill -9 ×${KILLS} mid-ingest`,
        mechanism: `SIGKILL of the daemon at ${killPoints.join(', ')} of ${N} readings stored (one QoS 1 burst), restart after 0–2 s`,
        published: published.attempted,
        acked: published.acked.size,
        stored: seqs.size,
        duplicates: stored.rows - stored.distinct,
        rejected: 0,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: missing.length,
        recovery: `last kill→all stored ${secondsText(allStoredMs)}; restart→session resumed ≤ ${secondsText(slowestResume)}`,
        note: `ack after commit: every restart resumed the session and the broker redelivered what was unacked; slowest kill→acked-at-kill stored ${secondsText(slowestCatchUp)}; integrity_check ${integrity}`,
      });
      for (const kill of kills) assert.ok(kill.storedAtKill < N, `kill ${kill.kill} came mid-ingest (${kill.storedAtKill} of ${N} stored)`);
      assert.equal(stored.rows, stored.distinct, 'I2: no duplicate rows');
      assert.deepEqual(missing.slice(0, 10), [], `I1: acked but not stored: ${missing.length}`);
      assert.equal(seqs.size, N, 'seq 1..N all present');
      assert.equal(Math.min(...seqs), 1);
      assert.equal(Math.max(...seqs), N);
      assert.equal(integrity, 'ok', 'PRAGMA integrity_check after the kills');
      assert.ok(dropped.updates > 0, 'the $SYS dropped counter was read');
      assert.equal(droppedTotal, 0, 'the broker dropped nothing (no practical count limit, a 64 MB byte limit)');
      assert.deepEqual(mosquitto.droppedLogLines(), []);
      // I3: acked = stored + rejected + dropped, nothing left over.
      assert.equal(published.acked.size, seqs.size + 0 + droppedTotal);
    },
  );

  it(
    'F2a + I3: broker SIGTERM and restart mid-stream, with malformed payloads: acked = stored + rejected + dropped',
    { timeout: 60_000 },
    async () => {
      const { mosquitto, dropped } = await broker();
      const stateDir = tempDir('f2a');
      await copyTrainedState(stateDir);
      const prefix = `f2a-${rand()}`;
      // In process, so that the ingestor's exact counters (received, stored, duplicates, rejected by reason) can be read.
      const config = parseConfig(
        ingestDaemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/#`, pattern: `${prefix}/{device}/{metric}` }]),
      );
      const { daemon } = await startSubscribedDaemon(config);
      scope.onClose(daemon, () => daemon.stop());

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
      const base = readingsBaseTs(N);
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
      await waitFor(
        () => (ackedNow >= stopAt && daemon.ingestor.counters.stored > 0) || !publishing,
        30_000,
        `${stopAt} publishes acked before the broker restart`,
      );
      const ackedAtStop = ackedNow;
      const storedAtStop = daemon.ingestor.counters.stored;
      const publishingAtStop = publishing;
      assert.ok(publishingAtStop, 'the broker went down while the burst was still being published');
      const stoppedAt = performance.now();
      const reconnected = new Promise<number>((resolve) => daemon.client.once('connect', () => resolve(performance.now())));
      await mosquitto.stop('TERM');
      await sleep(300); // the fault schedule: how long the broker stays down
      await mosquitto.restart();
      const upAt = performance.now();
      const reconnectedAt = await withTimeout(reconnected, 30_000, 'the daemon to reconnect');
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
      recordFault({
        fault: 'F2a broker SIGTERM mid-stream',
        mechanism: `SIGTERM of Mosquitto (it saves its database) at ${ackedAtStop} of ${N} acked, ${storedAtStop} stored; down ${secondsText(upAt - stoppedAt)}; 1 in ${EVERY} payloads malformed`,
        published: published.attempted,
        acked: published.acked.size,
        stored: seqs.size,
        duplicates: `${stored.rows - stored.distinct} rows (${counters.duplicates} redeliveries absorbed)`,
        rejected: malformedAcked.length,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: lost.length,
        recovery: `broker up→connect ${secondsText(reconnectedAt - upAt)}, →1st insert ${secondsText(firstInsertMs)}`,
        note: `rejected by reason ${JSON.stringify(rejectedByReason)} (ingestor counter ${rejectedTotal}: a redelivered malformed message is rejected again); I3 acked = stored + rejected + dropped holds`,
      });
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
    },
  );

  it(
    'F2b: broker kill -9 mid-stream with autosave_interval 1: only readings the broker took after its last save can be lost; the daemon survives and resumes',
    { timeout: 60_000 },
    async () => {
      const { mosquitto, dropped } = await broker({ autosaveInterval: 1 });
      const stateDir = tempDir('f2b');
      await copyTrainedState(stateDir);
      const prefix = `f2b-${rand()}`;
      // In process: its exact stored counter at the moment of the kill bounds what the broker still held for it.
      const config = parseConfig(
        ingestDaemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }]),
      );
      const daemon = await startDaemon({ config, log: createLogger('silent') });
      scope.onClose(daemon, () => daemon.stop());
      const base = readingsBaseTs(N);
      const topic = `${prefix}/dev/temp`;
      const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, true);

      // The daemon's session and subscription must be in mosquitto.db before the kill, or the kill would lose the
      // session itself: a probe reading proves the subscription, then wait for an autosave that began after it.
      await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect');
      await publishUntilStored(
        sensor,
        `${prefix}/probe/temp`,
        readingPayload(1, base),
        () => daemon.readings.count() >= 1,
        10_000,
        'the probe reading (the subscription is in place)',
      );
      const subscribedSecond = Math.floor(Date.now() / 1000);
      await waitFor(
        () => saveSeconds(mosquitto.log()).some((second) => second > subscribedSecond),
        10_000,
        'an autosave of the broker after the subscription',
      );

      // Ack time of each publish, in ack order: the i-th seq added to the acked set was acked at ackWallTimes[i].
      const ackWallTimes: number[] = [];
      const burst = publishBurst(sensor, readingBurst(topic, 1, N, base), { window: WINDOW, onAck: () => ackWallTimes.push(Date.now()) });
      let publishing = true;
      void burst.then(() => (publishing = false));
      const killAt = Math.round(N * (0.2 + 0.5 * random()));
      await waitFor(
        () => (ackWallTimes.length >= killAt && daemon.ingestor.counters.stored > 1) || !publishing,
        30_000,
        `${killAt} publishes acked before the broker kill`,
      );
      const publishingAtKill = publishing;
      const ackedAtKill = ackWallTimes.length;
      const storedAtKill = daemon.ingestor.counters.stored - 1;
      const killWall = Date.now();
      await mosquitto.stop('KILL');
      // A save logged in the second of the kill may not have finished writing: trust only earlier ones.
      const lastSaveSecond = Math.max(...saveSeconds(mosquitto.log()).filter((second) => second < Math.floor(killWall / 1000)));
      assert.ok(publishingAtKill, 'the broker was killed while the burst was still being published');

      const reconnected = new Promise<{ at: number; sessionPresent: boolean }>((resolve) =>
        daemon.client.once('connect', (connack) => resolve({ at: performance.now(), sessionPresent: connack.sessionPresent })),
      );
      await sleep(300); // the fault schedule: how long the broker stays down
      const restartWall = Date.now();
      await mosquitto.restart();
      const upAt = performance.now();
      const resumed = await withTimeout(reconnected, 30_000, 'the daemon to reconnect after the broker kill');
      const published = await burst;
      assert.equal(published.acked.size, N, `the broker acked every publish eventually (${published.failed.size} failed)`);
      // Mosquitto delivers a session's messages in order: once a sentinel published now is stored, whatever the
      // restarted broker still had for the daemon has been delivered.
      const sentinelTs = base + (N + 1) * 1000;
      await sensor.publishAsync(topic, readingPayload(N + 1, base), { qos: 1 });
      await waitFor(() => daemon.readings.latest('dev.temp')?.ts === sentinelTs, 30_000, 'the sentinel after the burst to be stored');
      const recoveredMs = performance.now() - upAt;
      const droppedTotal = await dropped.fresh();
      const duplicatesAbsorbed = daemon.ingestor.counters.duplicates;
      await daemon.stop();

      const stored = readStored(daemon.databasePath, base);
      const seqs = stored.bySeries.get('dev.temp') ?? new Set<number>();
      seqs.delete(N + 1);
      const ackWallOf = new Map([...published.acked].map((seq, index) => [seq, ackWallTimes[index]]));
      const lost = [...published.acked].filter((seq) => !seqs.has(seq));
      // Everything the broker took before its last save was in mosquitto.db; a PUBACK comes after the broker took the message.
      const acceptedSinceSave = ackWallTimes.filter((at) => at >= lastSaveSecond * 1000 && at < restartWall).length;
      const lostBeforeSave = lost.filter((seq) => ackWallOf.get(seq)! < lastSaveSecond * 1000);
      recordFault({
        fault: 'F2b broker kill -9 mid-stream (autosave 1 s)',
        mechanism: `SIGKILL of Mosquitto (no save) at ${ackedAtKill} of ${N} acked, ${storedAtKill} stored by the daemon; last autosave ${((killWall - lastSaveSecond * 1000) / 1000).toFixed(1)} s before; down 0.3 s`,
        published: published.attempted,
        acked: published.acked.size,
        stored: seqs.size,
        duplicates: `${stored.rows - stored.distinct} rows (${duplicatesAbsorbed} redeliveries absorbed)`,
        rejected: 0,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: lost.length,
        recovery: `broker up→connect ${secondsText(resumed.at - upAt)}, →all delivered ${secondsText(recoveredMs)}`,
        note:
          lost.length === 0
            ? `nothing lost: the daemon kept up with the stream, so at the kill the broker held at most ${Math.max(0, ackedAtKill - storedAtKill)} acked readings not yet stored (${acceptedSinceSave} accepted since its last save were at risk)`
            : `the broker's loss, not forecastd's: readings Mosquitto acked after its last autosave and had not yet delivered are gone with its memory (bound: ${acceptedSinceSave} accepted since that save; all ${lost.length} lost were acked after it). Set autosave_interval to the window you accept`,
      });
      assert.ok(resumed.sessionPresent, "the daemon's session came back from the broker's last save");
      assert.ok(seqs.size > storedAtKill, 'the daemon resumed storing after the broker came back');
      assert.equal(stored.rows, stored.distinct, 'I2: no duplicate rows');
      assert.deepEqual(lostBeforeSave.slice(0, 10), [], `lost readings the broker took before its last save: ${lostBeforeSave.length}`);
      assert.ok(lost.length <= acceptedSinceSave, `lost ${lost.length} ≤ accepted since the last autosave ${acceptedSinceSave}`);
      assert.ok(lost.length <= Math.max(0, ackedAtKill - storedAtKill) + WINDOW, `lost ${lost.length} ≤ what the daemon had not stored at the kill`);
      assert.equal(droppedTotal, 0, 'the broker dropped nothing (no practical count limit, a 64 MB byte limit)');
      // I3: acked = stored + rejected + dropped + the broker's autosave window, nothing else.
      assert.equal(published.acked.size, seqs.size + droppedTotal + lost.length);
    },
  );

  it(
    'F2b offline: broker kill -9 while the daemon is down (autosave_interval 1800): what was queued since the last save is lost, the session is not',
    { timeout: 60_000 },
    async () => {
      const { mosquitto, dropped } = await broker();
      const stateDir = tempDir('f2b-offline');
      await copyTrainedState(stateDir);
      const configPath = join(stateDir, 'forecastd.yaml');
      const databasePath = join(stateDir, 'forecastd.db');
      const prefix = `f2bo-${rand()}`;
      const topic = `${prefix}/dev/temp`;
      const M = 500;
      const base = readingsBaseTs(3 * M);
      writeYaml(
        configPath,
        ingestDaemonConfig(mosquitto.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }]),
      );
      const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, true);

      let daemon = spawn(configPath);
      await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 20_000, 'its subscription');
      const live = await publishBurst(sensor, readingBurst(topic, 1, M, base), { window: WINDOW });
      const rows = rowCounter(databasePath, 'dev.temp');
      await waitFor(() => rows.count() >= M, 15_000, 'the live readings');
      rows.close();
      assert.equal((await daemon.stop()).code, 0);

      // SIGTERM makes Mosquitto save: the daemon's session (with nothing queued) is in mosquitto.db from here on.
      await mosquitto.restart();
      const savesAfterRestart = saveSeconds(mosquitto.log()).length;
      const outage = await publishBurst(sensor, readingBurst(topic, M + 1, 2 * M, base), { window: WINDOW });
      assert.equal(saveSeconds(mosquitto.log()).length, savesAfterRestart, 'no autosave since the queue filled (autosave_interval 1800)');
      await mosquitto.stop('KILL');
      await mosquitto.restart();

      const restartedAt = performance.now();
      daemon = spawn(configPath);
      const resumed = await daemon.waitForLog(isConnected, 20_000, 'connected to broker after the restarts');
      const after = await publishBurst(sensor, readingBurst(topic, 2 * M + 1, 3 * M, base), { window: WINDOW });
      await waitFor(() => rows.latestTs() === base + 3 * M * 1000, 15_000, 'the readings published after the daemon came back');
      const recoveredMs = performance.now() - restartedAt;
      rows.close();
      const droppedTotal = await dropped.fresh();
      assert.equal((await daemon.stop()).code, 0);

      const stored = readStored(databasePath, base);
      const seqs = stored.bySeries.get('dev.temp') ?? new Set<number>();
      const acked = [...live.acked, ...outage.acked, ...after.acked];
      const lost = acked.filter((seq) => !seqs.has(seq));
      const outageStored = [...outage.acked].filter((seq) => seqs.has(seq)).length;
      recordFault({
        fault: 'F2b broker kill -9, daemon offline (autosave 1800 s)',
        mechanism: `daemon stopped, broker SIGTERM (saves), ${M} readings queued for the daemon, broker SIGKILL before any autosave, restart both`,
        published: live.attempted + outage.attempted + after.attempted,
        acked: acked.length,
        stored: seqs.size,
        duplicates: stored.rows - stored.distinct,
        rejected: 0,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: lost.length,
        recovery: `restart→readings after it stored ${secondsText(recoveredMs)}`,
        note: `the broker's loss, not forecastd's: all ${outage.acked.size} readings queued since Mosquitto's last save went with its memory; the session itself came back (sessionPresent ${String(resumed.sessionPresent)}). Bound = accepted since the last save = ${outage.acked.size}: hence autosave_interval 60 in the recommended broker config`,
      });
      assert.equal(resumed.sessionPresent, true, 'the session saved at SIGTERM survived the kill');
      assert.equal(outageStored, 0, 'nothing queued after the last save came back');
      assert.equal(lost.length, outage.acked.size, 'the loss is exactly what the broker accepted since its last save');
      assert.equal(seqs.size, live.acked.size + after.acked.size, 'everything before the save and after the restart was stored');
      assert.equal(stored.rows, stored.distinct);
      assert.equal(droppedTotal, 0, 'not a queue-limit drop');
    },
  );

  it('F2d: a topic rule added to the config is subscribed even though the session is resumed', { timeout: 60_000 }, async () => {
    const { mosquitto, dropped } = await broker();
    const stateDir = tempDir('f2d');
    await copyTrainedState(stateDir);
    const configPath = join(stateDir, 'forecastd.yaml');
    const prefix = `f2d-${rand()}`;
    const ruleA = { filter: `${prefix}/a/+/+`, pattern: `${prefix}/a/{device}/{metric}` };
    const ruleB = { filter: `${prefix}/b/+/+`, pattern: `${prefix}/b/{device}/{metric}` };
    const clientId = `forecastd-${prefix}`;
    const base = readingsBaseTs(N);
    const M = 200;
    const sensor = await publisher(mosquitto.url, `sensor-${prefix}`, false);

    writeYaml(configPath, ingestDaemonConfig(mosquitto.url, clientId, stateDir, [ruleA]));
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
    writeYaml(configPath, ingestDaemonConfig(mosquitto.url, clientId, stateDir, [ruleA, ruleB]));
    const restartedAt = performance.now();
    daemon = spawn(configPath);
    const resumed = await daemon.waitForLog(isConnected, 20_000, 'connected to broker after the restart');
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
    recordFault({
      fault: 'F2d new topic rule, session resumed',
      mechanism: 'daemon restarted with rule B added to the config; the broker resumes the session made with rule A only',
      published: onA1.attempted + onA2.attempted + onB.attempted,
      acked,
      stored: onA + onBStored,
      duplicates: stored.rows - stored.distinct,
      rejected: 0,
      brokerDropped: dropped.updates ? droppedTotal : 'unknown',
      lost: acked - onA - onBStored - droppedTotal,
      recovery: `restart→subscribed A+B ${secondsText(subscribedMs)}`,
      note: `A ${onA} (live and queued while down), B ${onBStored}: subscriptions are renewed on every connect, so a resumed session learns new filters`,
    });
    assert.equal(onA, 2 * M, 'rule A: live and queued-while-down readings stored');
    assert.equal(onBStored, M, 'rule B, added after the session was created: stored');
    assert.equal(stored.rows, stored.distinct);
    assert.equal(droppedTotal, 0);
  });
});
