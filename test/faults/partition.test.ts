/**
 * F3: network partitions between forecastd and its broker (docs/reliability.md, "Readings", F3).
 *
 * The daemon (a child process, keepalive 5 s, reconnect backoff from 1 s up to 8 s) reaches a private Mosquitto
 * through the harness TCP proxy; a sensor publishes a steady QoS 1 stream straight to the broker, so the broker
 * queues for the daemon's persistent session while the daemon is cut off. Each scenario has its own series, and
 * one daemon lives through all of them: it must never exit.
 *
 *   F3a drop       the proxy destroys both sockets (a link that dies with a reset)
 *   F3a refuse     the proxy drops the connection and refuses new ones for a while (the broker "is down")
 *   F3b black hole the proxy keeps the sockets open and forwards nothing for 2× keepalive: only keepalive notices
 *   F3b SIGSTOP    the broker process is stopped for 2× keepalive (kill -STOP / -CONT, its PID only)
 *
 * Figures: time-to-detect = the daemon's "broker connection lost" log line − the fault's start (both wall clock on
 * this machine); time-to-recover = heal → "connected to broker", and heal → the backlog stored (as many rows as
 * readings acked by the heal); reconnect attempts = connections the proxy accepted during the fault. Invariants: I1 every acked reading stored, I2 no
 * duplicate rows, I3 acked = stored + broker-dropped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { maxAttemptsWithin } from '../../src/broker/backoff.js';
import { waitFor } from '../helpers/broker.js';
import { spawnDaemon, writeYaml, type DaemonProcess, type LogLine } from '../helpers/daemonProcess.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { MOSQUITTO_BIN, mosquittoAvailable, startMosquitto, watchSysCounter, type PrivateMosquitto, type SysCounter } from '../helpers/mosquitto.js';
import {
  ingestDaemonConfig,
  integrityCheck,
  isConnected,
  isConnectionLost,
  pacedStream,
  readingsBaseTs,
  readStored,
  rowCounter,
  subscribedTo,
} from '../helpers/storedReadings.js';
import { copyTrainedState } from '../helpers/realisticState.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcpProxy.js';

const KEEPALIVE_S = 5;
const RECONNECT_S = 1;
const RECONNECT_MAX_S = 8;
const READINGS_PER_SECOND = 250;
/** Black hole and SIGSTOP last this long: long enough for keepalive (1.5× keepalive in mqtt.js) to notice. */
const SILENT_PARTITION_MS = 2 * KEEPALIVE_S * 1000;
const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
/** The broker "down" this long: a short outage in every run, and a minute (reconnects at the backoff cap) in the long run. */
const REFUSE_MS = [3000, ...(LONG ? [60_000] : [])];
/** How long the stream goes on after the daemon caught up, so that live ingest is seen to resume. */
const AFTER_HEAL_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const rand = () => Math.random().toString(16).slice(2, 10);
const lineTime = (line: LogLine) => Number(line.time);

/** Reconnect attempts a partition of `ms` may see under forecastd's backoff; a storm (no pause) exceeds it at once. */
const maxAttempts = (ms: number) => maxAttemptsWithin(ms, RECONNECT_S * 1000, RECONNECT_MAX_S * 1000);

interface Fault {
  /** Starts the fault; the partition lasts `durationMs` from then (0: a single event, e.g. a drop). */
  start(): void;
  heal(): void;
  durationMs: number;
  /** Upper bound on time-to-detect. */
  detectWithinMs: number;
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('F3 partitions between forecastd and its broker', { skip, timeout: LONG ? 480_000 : 240_000 }, () => {
  let mosquitto: PrivateMosquitto;
  let proxy: TcpProxy;
  let dropped: SysCounter;
  let daemon: DaemonProcess;
  let sensor: MqttClient;
  let stateDir: string;
  let databasePath: string;
  let prefix: string;
  const base = readingsBaseTs(100_000);

  before(
    async () => {
      mosquitto = await startMosquitto();
      dropped = await watchSysCounter(mosquitto.url);
      proxy = await startTcpProxy(mosquitto.port);
      stateDir = mkdtempSync(join(tmpdir(), 'forecastd-fault-f3-'));
      await copyTrainedState(stateDir);
      databasePath = join(stateDir, 'forecastd.db');
      prefix = `f3-${rand()}`;
      const configPath = join(stateDir, 'forecastd.yaml');
      writeYaml(
        configPath,
        ingestDaemonConfig(proxy.url, `forecastd-${prefix}`, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }], {
          mqtt: { keepaliveSeconds: KEEPALIVE_S, reconnectSeconds: RECONNECT_S, reconnectMaxSeconds: RECONNECT_MAX_S },
        }),
      );
      daemon = spawnDaemon(configPath);
      await daemon.waitForLog(subscribedTo([`${prefix}/+/+`]), 20_000, 'its subscription');
      sensor = await mqtt.connectAsync(mosquitto.url, {
        protocolVersion: 5,
        clientId: `sensor-${prefix}`,
        reconnectPeriod: 200,
        connectTimeout: 5000,
      });
      sensor.on('error', () => undefined);
    },
    { timeout: 60_000 },
  );

  after(
    async () => {
      if (daemon?.running) daemon.kill('SIGKILL');
      await daemon?.exited;
      await sensor?.endAsync(true).catch(() => undefined);
      await dropped?.close();
      await proxy?.close();
      if (mosquitto?.pid !== undefined) process.kill(mosquitto.pid, 'SIGCONT'); // in case a SIGSTOP scenario failed midway
      await mosquitto?.close();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
    { timeout: 60_000 },
  );

  /** Streams readings on its own series, injects the fault mid-stream, heals it, and checks and reports I1–I3. */
  async function partition(label: string, faultName: string, mechanism: string, fault: Fault): Promise<void> {
    const series = `${label}.temp`;
    const rows = rowCounter(databasePath, series);
    const stream = pacedStream(sensor, `${prefix}/${label}/temp`, base, READINGS_PER_SECOND);
    await waitFor(() => rows.count() > 0, 15_000, `the ${label} stream to reach the daemon`);
    const droppedBefore = dropped.total();
    const acceptedBefore = proxy.accepted;
    const linesBefore = daemon.lines.length;

    const faultWall = Date.now();
    fault.start();
    const lost = await daemon.waitForLog(
      (line) => isConnectionLost(line) && lineTime(line) >= faultWall,
      fault.detectWithinMs + 15_000,
      `the ${label} partition to be noticed`,
    );
    const detectMs = lineTime(lost) - faultWall;
    await sleep(Math.max(0, fault.durationMs - (Date.now() - faultWall))); // the fault schedule: how long the partition lasts
    const healWall = Date.now();
    const ackedAtHeal = stream.acked;
    fault.heal();
    const attempts = proxy.accepted - acceptedBefore;
    const logLinesDuring = daemon.lines.length - linesBefore;
    const back = await daemon.waitForLog(
      (line) => isConnected(line) && lineTime(line) >= healWall,
      30_000,
      `the daemon to reconnect after the ${label} partition`,
    );
    const reconnectMs = lineTime(back) - healWall;
    // The broker delivers the session's backlog in order: this many rows means the backlog of the heal is in.
    await waitFor(() => rows.count() >= ackedAtHeal, 60_000, `the ${label} backlog to be stored`);
    const caughtUpMs = Date.now() - healWall;
    await sleep(AFTER_HEAL_MS); // the stream goes on for a while with the daemon back
    const published = await stream.stop();
    await waitFor(() => rows.count() >= published.acked.size, 60_000, `every acked ${label} reading to be stored`);
    rows.close();
    const droppedDuring = (await dropped.fresh()) - droppedBefore;

    const stored = readStored(databasePath, base);
    const seqs = stored.bySeries.get(series) ?? new Set<number>();
    const missing = [...published.acked].filter((seq) => !seqs.has(seq));
    const attemptBound = maxAttempts(Math.max(fault.durationMs, healWall - faultWall));
    recordFault({
      fault: faultName,
      mechanism,
      published: published.attempted,
      acked: published.acked.size,
      stored: seqs.size,
      duplicates: stored.rows - stored.distinct,
      rejected: 0,
      brokerDropped: dropped.updates ? droppedDuring : 'unknown',
      lost: missing.length,
      recovery: `heal→connected ${secondsText(reconnectMs)}, →backlog stored ${secondsText(caughtUpMs)}`,
      note: `detected after ${secondsText(detectMs)} (keepalive ${KEEPALIVE_S} s); ${attempts} reconnect attempts in ${secondsText(healWall - faultWall)} (bound ${attemptBound}); ${logLinesDuring} log lines meanwhile; the daemon kept running; sessionPresent ${String(back.sessionPresent)} after`,
    });

    assert.ok(daemon.running, 'the daemon kept running through the partition');
    assert.ok(detectMs <= fault.detectWithinMs, `detected in ${detectMs} ms, within ${fault.detectWithinMs} ms`);
    assert.ok(attempts <= attemptBound, `no reconnect storm: ${attempts} attempts during ${healWall - faultWall} ms (bound ${attemptBound})`);
    assert.equal(back.sessionPresent, true, 'the session (and what the broker queued in it) was resumed');
    assert.equal(stored.rows, stored.distinct, 'I2: no duplicate rows');
    assert.deepEqual(missing.slice(0, 10), [], `I1: acked but not stored: ${missing.length}`);
    assert.equal(droppedDuring, 0, 'the broker dropped nothing (no practical count limit, a 64 MB byte limit)');
    assert.equal(published.acked.size, seqs.size + droppedDuring, 'I3: acked = stored + broker-dropped');
    const beyond = [...seqs].filter((seq) => !published.acked.has(seq));
    assert.deepEqual(beyond, [], 'nothing stored that the broker did not ack');
  }

  it('F3a drop: both sockets destroyed mid-stream; the daemon notices at once and reconnects', { timeout: 60_000 }, async () => {
    await partition('drop', 'F3a partition: drop', `TCP proxy destroys both sockets mid-stream (${READINGS_PER_SECOND} readings/s)`, {
      start: () => proxy.drop(),
      heal: () => undefined,
      durationMs: 0,
      detectWithinMs: 2000,
    });
  });

  for (const refuseMs of REFUSE_MS) {
    const seconds = refuseMs / 1000;
    it(
      `F3a refuse: connection dropped and new ones refused for ${seconds} s, then healed: reconnects back off, nothing lost`,
      { timeout: refuseMs + 60_000 },
      async () => {
        await partition(
          `refuse${seconds}`,
          `F3a partition: refuse ${seconds} s`,
          `TCP proxy drops the connection and closes every new one for ${seconds} s`,
          {
            start: () => proxy.refuse(),
            heal: () => proxy.heal(),
            durationMs: refuseMs,
            detectWithinMs: 2000,
          },
        );
      },
    );
  }

  it(
    `F3b black hole for ${SILENT_PARTITION_MS / 1000} s (2× keepalive): keepalive notices, the daemon reconnects after the heal`,
    { timeout: 90_000 },
    async () => {
      await partition(
        'blackhole',
        'F3b partition: black hole',
        `TCP proxy forwards nothing either way for ${SILENT_PARTITION_MS / 1000} s, sockets left open`,
        {
          start: () => proxy.blackhole(),
          heal: () => proxy.heal(),
          durationMs: SILENT_PARTITION_MS,
          // mqtt.js pings after one keepalive of silence and gives up half a keepalive later; then a ping period of slack.
          detectWithinMs: 1.5 * KEEPALIVE_S * 1000 + 2500,
        },
      );
    },
  );

  it(
    `F3b SIGSTOP of the broker for ${SILENT_PARTITION_MS / 1000} s: keepalive notices, the daemon reconnects after SIGCONT`,
    { timeout: 90_000 },
    async () => {
      const pid = mosquitto.pid;
      assert.ok(pid !== undefined, 'the broker this test started is running');
      await partition(
        'sigstop',
        'F3b partition: broker SIGSTOP',
        `kill -STOP of the broker process for ${SILENT_PARTITION_MS / 1000} s, then -CONT (sensor stalls too)`,
        {
          start: () => process.kill(pid, 'SIGSTOP'),
          heal: () => process.kill(pid, 'SIGCONT'),
          durationMs: SILENT_PARTITION_MS,
          detectWithinMs: 1.5 * KEEPALIVE_S * 1000 + 2500,
        },
      );
    },
  );

  it('the daemon ran through every partition and stops cleanly, with an intact database', { timeout: 30_000 }, async () => {
    assert.ok(daemon.running, 'still running');
    const stopped = await daemon.stop();
    assert.equal(stopped.code, 0, 'a graceful stop');
    assert.equal(integrityCheck(databasePath), 'ok');
  });
});
