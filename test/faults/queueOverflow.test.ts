/**
 * F4: forecastd offline for longer than the broker will queue for it (docs/reliability.md, F4: "Where a reading can still be lost", item 1).
 *
 * The daemon (a child process with /metrics on) stops; a sensor publishes more QoS 1 readings than the broker
 * keeps for the daemon's session; the daemon starts again. Whatever does not come back must be counted, not
 * silent: published (acked) = stored + dropped exactly, with "dropped" read from the broker's own
 * `$SYS/broker/publish/messages/dropped`, cross-checked in its log, and seen by forecastd itself (its warning
 * and its forecastd_broker_dropped_messages gauge).
 *
 *   default queue     Mosquitto's defaults, max_queued_messages 1000 and no byte limit: the excess is dropped
 *   recommended       max_queued_messages 1000000 with max_queued_bytes 64 MiB (docs/reliability.md): nothing dropped
 *   session expiry    the MQTT 5 session expires during the outage (mqtt.sessionExpiryDays can be a fraction
 *                     of a day, here 2 s): the broker discards the session and its queue; not a "drop", so
 *                     the loss is counted as acked − stored and explained by the broker's "Expiring client" line
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { BROKER_DROPPED_MESSAGE } from '../../src/broker/brokerDrops.js';
import { waitFor } from '../helpers/broker.js';
import { spawnDaemon, writeYaml, type DaemonProcess, type LogLine } from '../helpers/daemonProcess.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { publishBurst, readingBurst, type BurstResult } from '../helpers/load.js';
import {
  MOSQUITTO_BIN,
  mosquittoAvailable,
  startMosquitto,
  watchSysCounter,
  type MosquittoOptions,
  type PrivateMosquitto,
  type SysCounter,
} from '../helpers/mosquitto.js';
import { ingestDaemonConfig, isConnected, readingsBaseTs, readStored, rowCounter, subscribedTo } from '../helpers/storedReadings.js';
import { copyTrainedState } from '../helpers/realisticState.js';
import { parseExposition, sampleValue } from '../http/promText.js';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
/** Mosquitto's default max_queued_messages. */
const DEFAULT_QUEUE = 1000;
const LIVE = 200;
const OUTAGE = LONG ? 20_000 : 3000;
const AFTER = 100;
const SESSION_EXPIRY_S = 2;
const WINDOW = 64;

const rand = () => Math.random().toString(16).slice(2, 10);
const isDropWarning = (line: LogLine) => line.msg === BROKER_DROPPED_MESSAGE;
const isHttpListening = (line: LogLine) =>
  typeof line.msg === 'string' && line.msg.startsWith('dashboard and metrics at') && typeof line.url === 'string';

/** The broker's drop counter once it has stopped moving: the next $SYS update (or its absence for 2.5 s) after `settled()`. */
async function settledDrops(dropped: SysCounter, settled: () => boolean): Promise<number> {
  await waitFor(settled, 15_000, 'the $SYS drop counter to report the outage');
  return dropped.fresh(2500);
}

interface Outage {
  live: BurstResult;
  outage: BurstResult;
  after: BurstResult;
  /** $SYS dropped, read by the test once the outage publishing was over. */
  sysDropped: number;
  /** $SYS dropped at the very end: more than sysDropped would mean drops after the restart too. */
  finalDropped: number;
  sessionPresent: boolean;
  /** restart → every reading the broker still had stored. */
  recoveryMs: number;
  daemon: DaemonProcess;
  stored: Set<number>;
  duplicateRows: number;
  clientId: string;
}

/** The figures every F4 row reports the same way: the three bursts together against what the daemon stored. */
function outageFigures(outcome: Outage) {
  const acked = outcome.live.acked.size + outcome.outage.acked.size + outcome.after.acked.size;
  return {
    published: outcome.live.attempted + outcome.outage.attempted + outcome.after.attempted,
    acked,
    stored: outcome.stored.size,
    duplicates: outcome.duplicateRows,
    rejected: 0,
    brokerDropped: outcome.sysDropped,
    lost: acked - outcome.stored.size - outcome.sysDropped,
  };
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('F4: the daemon offline for longer than the broker queues for it', { skip, timeout: 240_000 }, () => {
  const brokers: PrivateMosquitto[] = [];
  const watchers: SysCounter[] = [];
  const daemons: DaemonProcess[] = [];
  const clients: MqttClient[] = [];
  const dirs: string[] = [];

  after(
    async () => {
      for (const daemon of daemons) if (daemon.running) daemon.kill('SIGKILL');
      await Promise.all(daemons.map((daemon) => daemon.exited));
      await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
      await Promise.all(watchers.map((watcher) => watcher.close()));
      await Promise.all(brokers.map((started) => started.close()));
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );

  /**
   * Live readings, a graceful stop, OUTAGE readings while the daemon is down, a restart, AFTER readings; returns what
   * was acked and stored. `whileDown` runs after the outage publishing, before the restart. `sessionLost`: the
   * broker is expected to keep nothing of the outage (else it keeps all it did not count as dropped).
   */
  async function outageRun(
    label: string,
    brokerOptions: MosquittoOptions,
    mqttOverrides: Record<string, unknown>,
    options: { sessionLost?: boolean; whileDown?: (broker: PrivateMosquitto) => Promise<void> } = {},
  ) {
    const broker = await startMosquitto(brokerOptions);
    brokers.push(broker);
    const dropped = await watchSysCounter(broker.url);
    watchers.push(dropped);
    const stateDir = mkdtempSync(join(tmpdir(), `forecastd-fault-f4-${label}-`));
    await copyTrainedState(stateDir);
    dirs.push(stateDir);
    const prefix = `f4${label}-${rand()}`;
    const clientId = `forecastd-${prefix}`;
    const configPath = join(stateDir, 'forecastd.yaml');
    const databasePath = join(stateDir, 'forecastd.db');
    writeYaml(
      configPath,
      ingestDaemonConfig(broker.url, clientId, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }], {
        mqtt: mqttOverrides,
        http: { enabled: true, port: 0 },
      }),
    );
    const topic = `${prefix}/dev/temp`;
    const base = readingsBaseTs(LIVE + OUTAGE + AFTER);
    const sensor = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: `sensor-${prefix}`,
      reconnectPeriod: 200,
      connectTimeout: 5000,
    });
    sensor.on('error', () => undefined);
    clients.push(sensor);
    const rows = rowCounter(databasePath, 'dev.temp');

    let daemon = spawnDaemon(configPath);
    daemons.push(daemon);
    await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 20_000, 'its subscription');
    const live = await publishBurst(sensor, readingBurst(topic, 1, LIVE, base), { window: WINDOW });
    await waitFor(() => rows.count() >= live.acked.size, 15_000, 'the live readings');
    rows.close();
    assert.equal((await daemon.stop()).code, 0, 'a graceful stop before the outage');

    const outage = await publishBurst(sensor, readingBurst(topic, LIVE + 1, LIVE + OUTAGE, base), { window: WINDOW });
    assert.equal(outage.acked.size, OUTAGE, 'the broker acked every reading published during the outage');
    await options.whileDown?.(broker);
    const sysDropped = await settledDrops(dropped, () => dropped.updates > 0);

    const restartedAt = performance.now();
    daemon = spawnDaemon(configPath);
    daemons.push(daemon);
    const resumed = await daemon.waitForLog(isConnected, 20_000, 'connected to broker after the outage');
    await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 10_000, 'its subscription after the outage');
    // The queue must drain before more readings come: with a queue limit, a full queue drops new readings for a
    // connected client too. Delivery is in order, so the count tells when what the broker kept is in.
    const kept = options.sessionLost ? 0 : OUTAGE - sysDropped;
    await waitFor(() => rows.count() >= LIVE + kept, 30_000, `the ${kept} outage readings the broker kept (acked − dropped)`);
    const afterBurst = await publishBurst(sensor, readingBurst(topic, LIVE + OUTAGE + 1, LIVE + OUTAGE + AFTER, base), { window: WINDOW });
    // In order per session: once the last reading published after the restart is stored, the broker has nothing older left for us.
    await waitFor(() => rows.latestTs() === base + (LIVE + OUTAGE + AFTER) * 1000, 30_000, 'the readings published after the restart');
    const recoveryMs = performance.now() - restartedAt;
    rows.close();
    return {
      broker,
      daemon,
      sysDropped,
      finish: async (): Promise<Outage> => {
        const finalDropped = await dropped.fresh();
        assert.equal((await daemon.stop()).code, 0, 'a graceful stop after the outage');
        const stored = readStored(databasePath, base);
        return {
          live,
          outage,
          after: afterBurst,
          sysDropped,
          finalDropped,
          sessionPresent: resumed.sessionPresent === true,
          recoveryMs,
          daemon,
          stored: stored.bySeries.get('dev.temp') ?? new Set(),
          duplicateRows: stored.rows - stored.distinct,
          clientId,
        };
      },
    };
  }

  /** forecastd's own view of the broker's counter: its /metrics gauge, once the broker has published $SYS to it. */
  async function scrapeGauge(daemon: DaemonProcess): Promise<number | undefined> {
    const listening = await daemon.waitForLog(isHttpListening, 10_000, 'its HTTP endpoint');
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const response = await fetch(`${listening.url as string}/metrics`);
      const value = sampleValue(parseExposition(await response.text()), 'forecastd_broker_dropped_messages');
      if (value !== undefined) return value;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return undefined;
  }

  it(
    `Mosquitto's default queue (max_queued_messages ${DEFAULT_QUEUE}): ${OUTAGE} readings during the outage, the excess dropped and counted: acked = stored + dropped exactly`,
    { timeout: 90_000 },
    async () => {
      const run = await outageRun('default', { maxQueuedMessages: DEFAULT_QUEUE, maxQueuedBytes: 0 }, {});
      // forecastd sees the broker's count: a warning with the figure, and the gauge.
      const warning = await run.daemon.waitForLog(
        (line) => isDropWarning(line) && line.dropped === run.sysDropped,
        15_000,
        `its warning about ${run.sysDropped} dropped messages`,
      );
      const gauge = await scrapeGauge(run.daemon);
      const outcome = await run.finish();

      const figures = outageFigures(outcome);
      const outageStored = [...outcome.outage.acked].filter((seq) => outcome.stored.has(seq)).sort((a, b) => a - b);
      const dropLines = run.broker.droppedLogLines();
      recordFault({
        fault: 'F4 offline > broker queue (default 1000)',
        mechanism: `daemon stopped; ${OUTAGE} QoS 1 readings published; Mosquitto max_queued_messages ${DEFAULT_QUEUE}, no byte limit; daemon restarted`,
        ...figures,
        recovery: `restart→queue drained ${secondsText(outcome.recoveryMs)}`,
        note: `the broker's queue limit, counted: $SYS dropped ${outcome.sysDropped} = forecastd's warning (${String(warning.dropped)}) = its gauge (${gauge}); broker log "${dropLines[0]?.replace(/^\d+: /, '') ?? 'none'}"; it kept the oldest ${outageStored.length} (seq ${outageStored[0]}–${outageStored.at(-1)}). Fix: a large max_queued_messages + max_queued_bytes (next row, docs/reliability.md)`,
      });
      assert.equal(outcome.sessionPresent, true, 'the session survived the outage (only its queue overflowed)');
      assert.ok(outcome.sysDropped > 0, 'the broker dropped part of the outage');
      assert.equal(outcome.finalDropped, outcome.sysDropped, 'no drops once the daemon was back (it drained the queue before more came)');
      assert.equal(figures.acked, outcome.stored.size + outcome.sysDropped, 'I3: acked = stored + broker-dropped, nothing unexplained');
      assert.equal(outageStored.length, OUTAGE - outcome.sysDropped, 'every outage reading is either stored or counted as dropped');
      assert.ok(outageStored.length >= DEFAULT_QUEUE, `the broker kept at least its queue limit (${outageStored.length})`);
      assert.deepEqual(
        outageStored,
        Array.from({ length: outageStored.length }, (_, index) => LIVE + 1 + index),
        'Mosquitto keeps the oldest messages and drops the newer ones',
      );
      for (const seq of [...outcome.live.acked, ...outcome.after.acked])
        assert.ok(outcome.stored.has(seq), `seq ${seq}, published while the daemon was up, is stored`);
      assert.equal(outcome.duplicateRows, 0);
      assert.ok(
        dropLines.some((line) => line.includes(outcome.clientId)),
        `the broker log names the daemon's session: ${dropLines.join(' / ')}`,
      );
      assert.equal(warning.dropped, outcome.sysDropped, "the daemon's warning carries the broker's figure");
      assert.equal(gauge, outcome.sysDropped, "forecastd_broker_dropped_messages equals the broker's $SYS value");
    },
  );

  it(
    `the recommended broker config (max_queued_messages 1000000, max_queued_bytes 64 MiB): the same outage loses nothing`,
    { timeout: 90_000 },
    async () => {
      const run = await outageRun('s16', { maxQueuedMessages: 1_000_000, maxQueuedBytes: 67_108_864 }, {});
      const gauge = await scrapeGauge(run.daemon);
      const outcome = await run.finish();
      const figures = outageFigures(outcome);
      const warnings = outcome.daemon.lines.filter(isDropWarning);
      recordFault({
        fault: 'F4 offline, recommended broker config',
        mechanism: `daemon stopped; ${OUTAGE} QoS 1 readings published; Mosquitto max_queued_messages 1000000, max_queued_bytes 64 MiB; daemon restarted`,
        ...figures,
        recovery: `restart→queue drained ${secondsText(outcome.recoveryMs)}`,
        note: `no count limit, a byte limit far above the outage (${OUTAGE} readings of ~40 bytes): everything queued and delivered; forecastd's gauge ${gauge}, ${warnings.length} drop warnings`,
      });
      assert.equal(outcome.sessionPresent, true);
      assert.equal(outcome.sysDropped, 0, 'the broker dropped nothing');
      assert.equal(figures.acked, outcome.stored.size, 'I1: every acked reading stored');
      assert.equal(outcome.duplicateRows, 0);
      assert.equal(gauge, 0, 'forecastd reads the broker counter, and it is 0');
      assert.deepEqual(warnings, [], 'no drop warning when nothing was dropped');
    },
  );

  it(
    `an MQTT 5 session expiry (${SESSION_EXPIRY_S} s) shorter than the outage: the session and its queue are gone, counted and explained`,
    { timeout: 90_000 },
    async () => {
      let clientId = '';
      const run = await outageRun(
        'expiry',
        { maxQueuedMessages: 1_000_000, maxQueuedBytes: 67_108_864 },
        { sessionExpiryDays: SESSION_EXPIRY_S / 86_400 },
        {
          sessionLost: true,
          whileDown: async (broker) => {
            // The outage outlasts the session: wait (bounded) for the broker to expire it.
            await waitFor(
              () => /Expiring client forecastd-f4expiry-\S+ due to timeout/.test(broker.log()),
              20_000,
              'the broker to expire the session',
            );
            clientId = /Expiring client (forecastd-f4expiry-\S+) due to timeout/.exec(broker.log())![1];
          },
        },
      );
      const outcome = await run.finish();
      const figures = outageFigures(outcome);
      const outageStored = [...outcome.outage.acked].filter((seq) => outcome.stored.has(seq)).length;
      recordFault({
        fault: 'F4 session expiry < outage',
        mechanism: `mqtt.sessionExpiryDays = ${SESSION_EXPIRY_S} s; daemon stopped; ${OUTAGE} readings published; the broker expires the session; daemon restarted`,
        ...figures,
        recovery: `restart→new session, live again ${secondsText(outcome.recoveryMs)}`,
        note: `outside forecastd's promise: the broker discarded the expired session with its ${OUTAGE} queued readings (log: "Expiring client ${clientId} due to timeout"; not in $SYS dropped); sessionPresent ${outcome.sessionPresent} on return. Keep sessionExpiryDays (default 7) and persistent_client_expiration above the longest outage`,
      });
      assert.equal(clientId, outcome.clientId, "the broker expired the daemon's session");
      assert.equal(outcome.sessionPresent, false, 'no session to resume');
      assert.equal(outageStored, 0, 'nothing queued in the expired session came back');
      assert.equal(figures.lost, outcome.outage.acked.size, 'the loss is exactly the outage');
      assert.equal(outcome.sysDropped, 0, 'an expiry is not counted as a drop: only the log tells it');
      for (const seq of [...outcome.live.acked, ...outcome.after.acked])
        assert.ok(outcome.stored.has(seq), `seq ${seq}, published while the daemon was up, is stored`);
      assert.equal(outcome.duplicateRows, 0);
    },
  );
});
