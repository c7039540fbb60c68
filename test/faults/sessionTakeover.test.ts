/**
 * F2c: a second client connects with forecastd's client id (a copied config, a second instance) and takes the
 * persistent session over, with the readings queued in it (docs/reliability.md, "Where a reading can still be lost", item 5).
 *
 * forecastd cannot keep what the other client receives and acknowledges: the promise is that the fight for the
 * session stays within the reconnect backoff, that ingest resumes when the other client goes, and that the ledger
 * closes: every acknowledged reading is either stored by forecastd or was delivered to the intruder. Where the
 * broker says so (MQTT 5 DISCONNECT 0x8E "session taken over"), the takeover is also counted and logged once with
 * what to change. Mosquitto 2.0.11 does not say so: it closes the old connection without a DISCONNECT, which looks
 * like any dropped connection. The test asks the broker first, and checks the branch that applies.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { maxAttemptsWithin } from '../../src/broker/backoff.js';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { mosquittoAvailable, MOSQUITTO_BIN, startMosquitto, type PrivateMosquitto } from '../helpers/mosquitto.js';
import { ingestDaemonConfig, pacedStream, readingsBaseTs, readStored } from '../helpers/storedReadings.js';
import { copyTrainedState } from '../helpers/realisticState.js';

const RECONNECT_SECONDS = 0.5;
const RECONNECT_MAX_SECONDS = 8;
/** How often the intruder takes the session, and for how long it keeps it each time. */
const INTRUSIONS = 3;
const HOLD_MS = 700;
const GAP_MS = 1500;

/** Whether the broker sends DISCONNECT 0x8E to the client whose session a second connection takes over. */
async function brokerReportsTakeover(url: string, clientId: string): Promise<boolean> {
  const options = { protocolVersion: 5 as const, clientId, clean: false, properties: { sessionExpiryInterval: 10 }, reconnectPeriod: 0 };
  const first = await mqtt.connectAsync(url, options);
  const closed = new Promise<boolean>((resolve) => {
    first.once('disconnect', (packet) => resolve(packet.reasonCode === 0x8e));
    first.once('close', () => resolve(false));
  });
  const second = await mqtt.connectAsync(url, { ...options, clean: true });
  const reported = await closed;
  await Promise.all([first.endAsync(true), second.endAsync(true)]);
  return reported;
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('F2c session takeover', { skip, timeout: 120_000 }, () => {
  let mosquitto: PrivateMosquitto | undefined;
  let daemon: Daemon | undefined;
  const clients: MqttClient[] = [];
  const dirs: string[] = [];

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await mosquitto?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('another client with the same client id: detected, counted, logged once, bounded reconnects; every acked reading stored or taken by the intruder', async () => {
    mosquitto = await startMosquitto();
    const reportsTakeover = await brokerReportsTakeover(mosquitto.url, uniquePrefix('probe'));
    const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-f2c-'));
    await copyTrainedState(stateDir);
    dirs.push(stateDir);
    const prefix = uniquePrefix('f2c');
    const clientId = `forecastd-${prefix}`;
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const text of chunk.toString().split('\n')) if (text.trim()) lines.push(JSON.parse(text) as Record<string, unknown>);
        done();
      },
    });
    const config = parseConfig(
      ingestDaemonConfig(mosquitto.url, clientId, stateDir, [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }], {
        mqtt: { reconnectSeconds: RECONNECT_SECONDS, reconnectMaxSeconds: RECONNECT_MAX_SECONDS },
      }),
    );
    daemon = await startDaemon({ config, log: createLogger('info', sink) });
    const stats = daemon.brokerStats;
    await waitFor(() => lines.some((line) => line.msg === 'subscribed'), 10_000, 'the daemon to subscribe');

    const sensor = await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: `sensor-${prefix}`, clean: true });
    clients.push(sensor);
    const base = readingsBaseTs(100_000);
    const stream = pacedStream(sensor, `${prefix}/dev/temp`, base, 200);

    // The intruder: same client id, resumes the session (clean false), so the broker hands it the session's
    // subscriptions and queue. mqtt.js acknowledges what it receives, as any client would.
    const taken = new Set<number>();
    const fightStartedAt = Date.now();
    const attemptsBefore = stats.attempts;
    for (let intrusion = 0; intrusion < INTRUSIONS; intrusion++) {
      await waitFor(() => daemon!.client.connected, 20_000, `the daemon back on the session before intrusion ${intrusion + 1}`);
      await new Promise((resolve) => setTimeout(resolve, GAP_MS));
      const intruder = mqtt.connect(mosquitto.url, {
        protocolVersion: 5,
        clientId,
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
        reconnectPeriod: 0,
      });
      clients.push(intruder);
      // Listening before the CONNACK: the broker sends the queued readings right behind it.
      intruder.on('message', (_topic, payload) => taken.add(Math.round((JSON.parse(payload.toString()) as { value: number }).value)));
      await new Promise((resolve, reject) => {
        intruder.once('connect', resolve);
        intruder.once('error', reject);
      });
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
      // Leave without ending the session, as a second instance that crashes would.
      intruder.end(true);
    }
    const fightMs = Date.now() - fightStartedAt;
    const attemptsDuringFight = stats.attempts - attemptsBefore;

    // The intruder is gone for good: the daemon takes the session back and stores again.
    await waitFor(() => daemon!.client.connected, 30_000, 'the daemon to take its session back');
    const reconnectedAt = Date.now();
    const published = await stream.stop();
    // By seq, not by count: a reading can be both taken and stored (the intruder got it after forecastd committed it
    // but before its PUBACK reached the broker), and a count would let the wait end while others are still coming.
    const databasePath = join(stateDir, 'forecastd.db');
    const unaccounted = () => {
      const stored = readStored(databasePath, base).bySeries.get('dev.temp') ?? new Set<number>();
      return [...published.acked].filter((seq) => !stored.has(seq) && !taken.has(seq)).length;
    };
    await waitFor(() => unaccounted() === 0, 30_000, 'every acked reading to be stored or accounted as taken');
    const recoveryMs = Date.now() - reconnectedAt;
    await daemon.stop();
    daemon = undefined;

    const stored = readStored(databasePath, base).bySeries.get('dev.temp') ?? new Set<number>();
    const missing = [...published.acked].filter((seq) => !stored.has(seq) && !taken.has(seq));
    const both = [...taken].filter((seq) => stored.has(seq)).length;
    const takeoverLines = lines.filter((line) => line.msg === 'another client took over our MQTT session (same client id)');
    const bound = maxAttemptsWithin(fightMs + 1000, RECONNECT_SECONDS * 1000, RECONNECT_MAX_SECONDS * 1000);
    const takenOnly = [...taken].filter((seq) => !stored.has(seq)).length;

    recordFault({
      fault: 'F2c session takeover',
      mechanism: `a second client with forecastd's client id (clean false) takes the session ${INTRUSIONS}× for ${HOLD_MS} ms, ${GAP_MS} ms apart, while a sensor publishes 200/s`,
      published: published.attempted,
      acked: published.acked.size,
      stored: stored.size,
      duplicates: both,
      rejected: 0,
      brokerDropped: 0,
      lost: missing.length,
      recovery: `intruder gone→all accounted ${secondsText(recoveryMs)}`,
      note: `outside forecastd's promise: ${takenOnly} readings were delivered to and acked by the intruder (counted here as taken, not lost; ${both} of them also stored by forecastd before its PUBACK was lost); ${
        reportsTakeover
          ? `detected: ${stats.sessionTakeovers} takeovers counted (DISCONNECT 0x8E), ${takeoverLines.length} error line`
          : `not detectable on this broker: it closes the old connection without DISCONNECT 0x8E (${stats.connectionsLost} connections lost counted instead)`
      }; ${attemptsDuringFight} reconnect attempts in ${secondsText(fightMs)} (backoff bound ${bound})`,
    });

    if (reportsTakeover) {
      assert.ok(stats.sessionTakeovers >= 1, 'the takeover is counted');
      assert.equal(takeoverLines.length, 1, 'logged once (rate-limited), not once per takeover');
      assert.match(String(takeoverLines[0].hint), /clientId/, 'the log line says what to change');
    } else {
      assert.equal(stats.sessionTakeovers, 0, 'no takeover claimed without the broker saying so');
      assert.ok(stats.connectionsLost >= INTRUSIONS, 'each takeover counted as a lost connection');
    }
    assert.ok(attemptsDuringFight <= bound, `no reconnect storm: ${attemptsDuringFight} attempts, backoff allows ${bound}`);
    assert.deepEqual(missing.slice(0, 10), [], `acked but neither stored nor taken by the intruder: ${missing.length}`);
    assert.ok(published.acked.size > 0 && stored.size > 0);
  });
});
