/**
 * The daemon as systemd runs it: a child process (`node dist/src/cli/main.js run --config <file>`) that
 * gets SIGHUP and SIGTERM. A reload with a broken file keeps it running, a good file is applied, and a
 * SIGTERM in the middle of an ingest burst stops it cleanly (exit 0, `offline` published, the database
 * closed) without losing a reading the broker acknowledged: after a restart, every one is stored.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbeddedBroker } from '../../src/demo/embeddedBroker.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { spawnDaemon, writeYaml, type DaemonProcess } from '../helpers/daemonProcess.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { mosquittoAvailable, startMosquitto } from '../helpers/mosquitto.js';
import { startNotifyReceiver } from './support.js';

const BURST = 8_000;
const SIGTERM_AFTER_ACKS = 2_000;

describe('the daemon process under SIGHUP and SIGTERM', { timeout: 150_000 }, () => {
  let broker: { url: string; protocolVersion: 4 | 5; close: () => Promise<void> };
  let stateDir: string;
  let configPath: string;
  let daemon: DaemonProcess;
  let sensor: MqttClient;
  const prefix = uniquePrefix('signals');
  const baseTopic = `forecastd-test-${prefix}`;
  let published = 0;
  /** systemd's end of $NOTIFY_SOCKET, when python3 and systemd-notify exist here. */
  let manager: Awaited<ReturnType<typeof startNotifyReceiver>> = null;

  const configFor = (topicPrefixes: string[], extra: Record<string, unknown> = {}) => ({
    mqtt: {
      url: broker.url,
      protocolVersion: broker.protocolVersion,
      clientId: `forecastd-${prefix}`,
      baseTopic,
      reconnectSeconds: 0.2,
      reconnectMaxSeconds: 1,
    },
    ingest: { topics: topicPrefixes.map((topicPrefix) => ({ filter: `${topicPrefix}/+/+`, pattern: `${topicPrefix}/{device}/{metric}` })) },
    storage: { stateDir },
    log: { level: 'debug' },
    lifecycle: { shutdownTimeoutSeconds: 10 },
    ...extra,
  });
  const storedCount = () => {
    const db = new Database(join(stateDir, 'forecastd.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
    } finally {
      db.close();
    }
  };
  /** Distinct timestamps: a reading is identified by (series, ts). */
  let nextTs = Math.floor(Date.now() / 1000) * 1000 - 6 * 3_600_000;
  const reading = () => JSON.stringify({ value: 20, ts: (nextTs += 1000) });

  before(async () => {
    // A private Mosquitto keeps every message queued for the stopped daemon (max_queued_messages 0);
    // the system one would drop beyond its default 1000 (docs/reliability.md, "Where a reading can still be lost", item 1).
    if (mosquittoAvailable()) {
      const mosquitto = await startMosquitto({ maxQueuedMessages: 0 });
      broker = { url: mosquitto.url, protocolVersion: 5, close: () => mosquitto.close() };
    } else {
      broker = await startEmbeddedBroker();
    }
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-signals-'));
    configPath = join(stateDir, 'forecastd.yaml');
    writeYaml(configPath, configFor([prefix]));
    manager = await startNotifyReceiver();
    // As systemd runs it: NOTIFY_SOCKET, and a 2 s watchdog (a keep-alive every second).
    daemon = spawnDaemon(configPath, manager ? { NOTIFY_SOCKET: manager.socketPath, WATCHDOG_USEC: '2000000' } : {});
    await daemon.waitForLog((line) => line.msg === 'subscribed', 30_000, 'its subscription');
    sensor = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `sensor-${prefix}` });
  });

  after(async () => {
    await sensor?.endAsync();
    if (daemon?.running) await daemon.stop();
    manager?.close();
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('SIGHUP with a broken config file keeps the running config, and says why', async () => {
    writeYaml(configPath, { ...configFor([prefix]), mqtt: { url: broker.url, prot: 5 } });
    process.kill(daemon.pid, 'SIGHUP');
    const complaint = await daemon.waitForLog(
      (line) => line.msg === 'SIGHUP: the new config is invalid; keeping the running one',
      10_000,
      'the complaint',
    );
    assert.match(String(complaint.err), /mqtt\.prot: unknown key/);
    for (let index = 0; index < 5; index++) await sensor.publishAsync(`${prefix}/room/temp`, reading(), { qos: 1 });
    published += 5;
    await waitFor(() => storedCount() === published, 10_000, 'readings stored after the failed reload');
    assert.ok(daemon.running);
  });

  it('SIGHUP with a good config file applies it (here: one more topic rule)', async () => {
    const secondPrefix = `${prefix}-more`;
    writeYaml(configPath, configFor([prefix, secondPrefix]));
    const subscriptionsBefore = daemon.lines.filter((line) => line.msg === 'subscribed').length;
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitForLog((line) => line.msg === 'config reloaded', 20_000, 'the reload');
    await waitFor(() => daemon.lines.filter((line) => line.msg === 'subscribed').length > subscriptionsBefore, 10_000, 'the new subscription');
    await sensor.publishAsync(`${secondPrefix}/hall/temp`, reading(), { qos: 1 });
    published += 1;
    await waitFor(() => storedCount() === published, 10_000, 'a reading on the new topic');
  });

  it('SIGTERM in the middle of a burst: exit 0 in time, offline published, database closed, no acknowledged reading lost', async (t) => {
    // At least one keep-alive before the stop, so that the sd_notify check below has one to see.
    if (manager) await waitFor(() => manager!.messages.some((message) => message.startsWith('WATCHDOG=1')), 5_000, 'a keep-alive');
    let acked = 0;
    let signalledAt = 0;
    for (let sent = 0; sent < BURST; sent += 200) {
      const batch = Array.from({ length: Math.min(200, BURST - sent) }, () =>
        sensor.publishAsync(`${prefix}/room/temp`, reading(), { qos: 1 }).then(() => void acked++),
      );
      await Promise.all(batch);
      if (!signalledAt && acked >= SIGTERM_AFTER_ACKS) {
        signalledAt = performance.now();
        daemon.kill('SIGTERM');
      }
    }
    published += acked;
    assert.equal(acked, BURST, 'the broker acknowledged every reading');
    const exit = await daemon.exited;
    const stopMs = performance.now() - signalledAt;
    assert.deepEqual(exit, { code: 0, signal: null }, daemon.stderr());
    assert.ok(stopMs < 10_000, `stopped ${Math.round(stopMs)} ms after SIGTERM`);
    // 'exit' can come before the last stdout chunk has been read.
    await waitFor(() => daemon.lines.some((line) => line.msg === 'forecastd stopped'), 5_000, 'the last log lines');

    // The stop sequence (the one after the signal, not the reload's) ran in order: intake first, the
    // database last. Other parts of the daemon may add steps in between.
    const shutdownFrom = daemon.lines.findIndex((line) => line.msg === 'shutting down');
    assert.ok(
      shutdownFrom >= 0,
      `no "shutting down" line; the last lines: ${daemon.lines
        .slice(-8)
        .map((line) => line.msg)
        .join(' / ')}`,
    );
    const steps = daemon.lines
      .slice(shutdownFrom)
      .filter((line) => line.msg === 'shutdown step done')
      .map((line) => String(line.step));
    const order = ['close intake', 'stop scheduler', 'abort trainings', 'close training pool', 'disconnect broker', 'close database'];
    assert.deepEqual(
      steps.filter((step) => order.includes(step)),
      order,
      `steps: ${steps.join(' → ')}`,
    );
    assert.equal(steps[0], 'close intake');
    assert.equal(steps.at(-1), 'close database');
    assert.deepEqual(daemon.lines.find((line) => line.msg === 'forecastd stopped')?.failedSteps, []);
    const wal = join(stateDir, 'forecastd.db-wal');
    const walBytesAfterStop = existsSync(wal) ? statSync(wal).size : null;
    assert.ok(!existsSync(wal) || statSync(wal).size === 0, 'the WAL was checkpointed at close');

    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `watcher-${prefix}` });
    try {
      const availability = new Promise<string>((resolve) => watcher.on('message', (_topic, payload) => resolve(payload.toString())));
      await watcher.subscribeAsync(`${baseTopic}/availability`, { qos: 1 });
      assert.equal(await availability, 'offline', 'the retained availability says offline');
    } finally {
      await watcher.endAsync();
    }

    if (manager) {
      // sd_notify, seen from systemd's side: ready, keep-alives, stopping (each followed by its barrier).
      const kinds = manager.messages.filter((message) => message !== 'BARRIER=1').map((message) => message.split('|')[0]);
      assert.equal(kinds[0], 'READY=1', kinds.join(', '));
      assert.ok(kinds.includes('WATCHDOG=1'), `keep-alives in: ${manager.messages.join(' / ')}`);
      assert.ok(
        kinds.includes('RELOADING=1') && kinds.lastIndexOf('READY=1') > kinds.indexOf('RELOADING=1'),
        'the reload is announced and ends with READY=1',
      );
      assert.equal(kinds.filter((kind) => kind === 'STOPPING=1').length, 1);
    } else {
      t.diagnostic('sd_notify not checked: needs python3 and systemd-notify');
    }

    const storedAtStop = storedCount();
    assert.ok(storedAtStop < published, 'the rest waits at the broker for the next start');
    t.diagnostic(
      `stop took ${Math.round(stopMs)} ms; ${storedAtStop} of ${published} acknowledged readings stored at stop, the rest after the restart`,
    );
    const restartedAt = performance.now();
    daemon = spawnDaemon(configPath);
    await waitFor(
      () => storedCount() === published,
      60_000,
      `all ${published} acknowledged readings stored after the restart (had ${storedAtStop} at stop)`,
    );
    const allStoredMs = performance.now() - restartedAt;
    const storedAfterRestart = storedCount();
    const again = await daemon.stop();
    assert.deepEqual(again, { code: 0, signal: null });
    recordFault({
      fault: 'F12 SIGTERM mid-ingest (process)',
      mechanism: `kill -TERM of the daemon process after ${SIGTERM_AFTER_ACKS} of a ${BURST}-reading QoS 1 burst were acked; restart`,
      published,
      acked: published,
      // Readings are keyed by (series, ts) and every ts is distinct: a row is one reading.
      stored: storedAfterRestart,
      duplicates: 0,
      rejected: 0,
      brokerDropped: 'n/a',
      lost: published - storedAfterRestart,
      recovery: secondsText(allStoredMs),
      note:
        `stop took ${secondsText(stopMs)} (exit 0, budget 10 s); -wal after stop: ${walBytesAfterStop === null ? 'none' : `${walBytesAfterStop} bytes`}; ` +
        `${storedAtStop} stored at stop, the rest kept by the broker and stored after the restart (recovery = restart to all stored); no checkpoint (no training running)`,
    });
  });
});
