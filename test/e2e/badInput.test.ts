/**
 * Bad input over the real broker: malformed payloads between good ones are counted and rejected by
 * reason, every good reading is stored, and the daemon keeps running.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import { testBroker, uniquePrefix, waitFor, type TestBroker } from '../helpers/broker.js';
import { startSubscribedDaemon } from '../daemon/support.js';

const MALFORMED: Array<{ payload: string | Buffer; reason: string }> = [
  { payload: 'warm', reason: 'not_a_number' },
  { payload: 'NaN', reason: 'not_a_number' },
  { payload: '1e400', reason: 'non_finite' },
  { payload: '{"value": 1e400}', reason: 'non_finite' },
  { payload: 'x'.repeat(10_000), reason: 'too_large' },
  { payload: Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]), reason: 'not_text' },
  { payload: '[21.5, 22]', reason: 'bad_json_shape' },
  { payload: '{"value": "21.5"}', reason: 'not_a_number' },
  { payload: '{}', reason: 'bad_json_shape' },
  { payload: '{"value": 21.5, "ts": "yesterday"}', reason: 'bad_timestamp' },
  { payload: '{"value": 1e20}', reason: 'out_of_range' },
];

describe('bad input', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let daemon: Daemon;
  let sensor: MqttClient;
  let stateDir: string;
  const prefix = uniquePrefix('bad');

  before(async () => {
    broker = await testBroker();
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-bad-'));
    const config = parseConfig({
      mqtt: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-test-${prefix}` },
      ingest: { topics: [{ filter: `${prefix}/#`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
      storage: { stateDir },
    });
    ({ daemon } = await startSubscribedDaemon(config));
    sensor = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `sensor-${prefix}` });
  });

  after(async () => {
    await sensor?.endAsync();
    await daemon?.stop();
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('rejects and counts every malformed payload, stores every good one, and keeps running', async () => {
    const start = Date.now() - 60 * 60_000;
    const good: number[] = [];
    for (const [index, bad] of MALFORMED.entries()) {
      const ts = start + index * 60_000;
      good.push(ts);
      await sensor.publishAsync(`${prefix}/probe/value`, JSON.stringify({ value: index + 0.5, ts }), { qos: 1 });
      await sensor.publishAsync(`${prefix}/probe/value`, bad.payload, { qos: 1 });
    }
    // A topic no rule maps (one level too deep).
    await sensor.publishAsync(`${prefix}/probe/value/extra`, '1', { qos: 1 });
    const expectedTotal = MALFORMED.length * 2 + 1;
    await waitFor(() => daemon.ingestor.counters.received === expectedTotal, 20_000, `${expectedTotal} messages to be handled`);

    const stored = daemon.readings.read('probe.value', start, Date.now());
    assert.deepEqual(Array.from(stored.timestampsMs), good, 'every good reading is stored');
    assert.deepEqual(
      Array.from(stored.values),
      good.map((_, index) => index + 0.5),
    );

    const expectedByReason: Record<string, number> = { unknown_topic: 1 };
    for (const { reason } of MALFORMED) expectedByReason[reason] = (expectedByReason[reason] ?? 0) + 1;
    const nonZero = Object.fromEntries(Object.entries(daemon.ingestor.counters.rejected).filter(([, count]) => count > 0));
    assert.deepEqual(nonZero, expectedByReason);
    assert.equal(daemon.ingestor.rejectedTotal(), MALFORMED.length + 1);

    // Still running: a reading published after all that is stored too.
    const lateTs = Date.now() - 1000;
    await sensor.publishAsync(`${prefix}/probe/value`, JSON.stringify({ value: 99, ts: lateTs }), { qos: 1 });
    await waitFor(() => daemon.readings.latest('probe.value')?.ts === lateTs, 10_000, 'the late reading');
    assert.equal(daemon.client.connected, true);
  });
});
