/**
 * Start-up that survives what a gateway meets at boot: a broker that is not up yet, a model that cannot be
 * read, a corrupt database. In each case the daemon starts and ingests.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/demo/embeddedBroker.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { capturedLogger, freePort } from './support.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'forecastd-startup-'));
  dirs.push(dir);
  return dir;
};
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function configFor(url: string, stateDir: string, prefix: string) {
  return parseConfig({
    mqtt: { url, protocolVersion: 4, clientId: `forecastd-${prefix}`, reconnectSeconds: 0.2, reconnectMaxSeconds: 0.5, clean: true },
    ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }] },
    storage: { stateDir },
    forecasts: [{ name: 'room', target: 'room.temp', training: { onStart: false } }],
  });
}

async function publishAndExpectStored(url: string, prefix: string, daemon: Awaited<ReturnType<typeof startDaemon>>, count: number) {
  const sensor = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `sensor-${prefix}` });
  try {
    const before = daemon.ingestor.counters.stored;
    const now = Date.now();
    for (let index = 0; index < count; index++)
      await sensor.publishAsync(`${prefix}/room/temp`, JSON.stringify({ value: 20 + index, ts: now - index * 1000 }), { qos: 1 });
    await waitFor(() => daemon.ingestor.counters.stored === before + count, 10_000, `${count} readings stored`);
  } finally {
    await sensor.endAsync();
  }
}

describe('start-up', { timeout: 60_000 }, () => {
  it('starts while the broker is not up yet, and ingests once it is', async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    const prefix = uniquePrefix('nobroker');
    const { log, lines } = capturedLogger();
    const startedAt = performance.now();
    const daemon = await startDaemon({ config: configFor(url, tempDir(), prefix), log });
    let broker: EmbeddedBroker | null = null;
    try {
      assert.ok(performance.now() - startedAt < 10_000, 'start-up does not wait for the broker');
      assert.equal(daemon.client.connected, false);
      assert.ok(lines.some((line) => line.msg === 'forecastd started'));
      broker = await startEmbeddedBroker(port);
      await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect once the broker is up');
      await waitFor(() => lines.some((line) => line.msg === 'subscribed'), 5_000, 'the subscription');
      await publishAndExpectStored(url, prefix, daemon, 3);
    } finally {
      await daemon.stop();
      await broker?.close();
    }
  });

  it('starts with a damaged or unreadable model and serves nothing for that forecast until it is trained', async () => {
    const broker = await startEmbeddedBroker();
    try {
      for (const damage of ['garbage checkpoint', 'checkpoints is a file'] as const) {
        const stateDir = tempDir();
        if (damage === 'garbage checkpoint') {
          // What a cut-off copy or a bad card leaves: a CURRENT naming a checkpoint whose files do not verify.
          const store = join(stateDir, 'checkpoints', 'whatever');
          mkdirSync(join(store, '00000003-0123abcd'), { recursive: true });
          writeFileSync(join(store, '00000003-0123abcd', 'manifest.json'), '{"schemaVersion":1,');
          writeFileSync(join(store, 'CURRENT'), '00000003-0123abcd\n');
        } else {
          writeFileSync(join(stateDir, 'checkpoints'), 'not a directory');
        }
        const prefix = uniquePrefix('badmodel');
        const { log, lines } = capturedLogger();
        const daemon = await startDaemon({ config: configFor(broker.url, stateDir, prefix), log });
        try {
          assert.equal(daemon.forecasts.hasModel('room'), false, damage);
          assert.equal(daemon.issue('room'), null, 'no forecast without a model');
          await waitFor(() => daemon.client.connected && lines.some((line) => line.msg === 'subscribed'), 10_000, 'the subscription');
          await publishAndExpectStored(broker.url, prefix, daemon, 2);
          if (damage === 'checkpoints is a file')
            assert.ok(lines.some((line) => line.msg === 'model could not be loaded; this forecast waits for its next training'));
        } finally {
          await daemon.stop();
        }
      }
    } finally {
      await broker.close();
    }
  });

  it('quarantines a corrupt database, says so, and starts on a fresh one', async () => {
    const broker = await startEmbeddedBroker();
    const stateDir = tempDir();
    writeFileSync(join(stateDir, 'forecastd.db'), Buffer.alloc(8192, 0x5a));
    const prefix = uniquePrefix('corruptdb');
    const { log, lines } = capturedLogger();
    const daemon = await startDaemon({ config: configFor(broker.url, stateDir, prefix), log });
    try {
      assert.ok(
        readdirSync(stateDir).some((name) => /^forecastd\.db\.corrupt-\d+$/.test(name)),
        `quarantined file in ${readdirSync(stateDir).join(', ')}`,
      );
      assert.ok(
        lines.some((line) => line.level === 50 && /quarantin/.test(String(line.msg))),
        'an error line says so',
      );
      await waitFor(() => daemon.client.connected && lines.some((line) => line.msg === 'subscribed'), 10_000, 'the subscription');
      await publishAndExpectStored(broker.url, prefix, daemon, 2);
    } finally {
      await daemon.stop();
      await broker.close();
    }
  });
});
