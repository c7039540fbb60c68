/**
 * A training requested over MQTT (by `forecastd train --daemon`, an automation or a person) goes
 * through the running daemon's own queue.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Daemon } from '../../src/daemon/daemon.js';
import { testBroker, uniquePrefix, waitFor, type TestBroker } from '../helpers/broker.js';
import { startSubscribedDaemon, type LogLine } from '../daemon/support.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

describe('training requests over MQTT', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let daemon: Daemon;
  let lines: LogLine[];
  let stateDir: string;
  let configFile: string;
  const prefix = uniquePrefix('trainreq');

  before(async () => {
    broker = await testBroker();
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-trainreq-'));
    const raw = {
      mqtt: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-test-${prefix}` },
      ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
      storage: { stateDir },
      homeAssistant: { enabled: false },
      forecasts: [{ name: 'room', target: 'room.temp', training: { onStart: false } }],
    };
    configFile = join(stateDir, 'forecastd.yaml');
    writeFileSync(configFile, stringify(raw));
    ({ daemon, lines } = await startSubscribedDaemon(parseConfig(raw)));
  });

  after(async () => {
    await daemon?.stop();
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('`forecastd train <forecast> --daemon` makes the running daemon start that training', async () => {
    const startedBefore = daemon.trainings.counters.started;
    // The request topics are subscribed by their own route, after ingest's: wait for that SUBACK, not for a guess.
    await waitFor(() => lines.some((line) => line.msg === 'subscribed to training requests'), 10_000, 'the training request subscription');
    // Not spawnSync: the embedded broker lives in this process and must keep answering meanwhile.
    const result = await promisify(execFile)(process.execPath, [CLI, 'train', 'room', '--config', configFile, '--daemon'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.match(result.stdout, /requested a training of room/);
    // No history yet: the training starts and then fails for lack of data, which proves it went through the queue.
    await waitFor(() => daemon.trainings.counters.started === startedBefore + 1, 10_000, 'the requested training to start');
    await waitFor(() => daemon.trainings.lastFailure.has('room'), 20_000, 'the training to finish');
    assert.match(daemon.trainings.lastFailure.get('room')!.message, /training windows|history/);
    assert.equal(daemon.ingestor.counters.received, 0, 'the request is not ingested as a reading');
  });
});
