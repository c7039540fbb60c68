/**
 * Stopping the daemon while a training runs (F12, in process): the training is aborted at a batch end,
 * the checkpoint of its last completed epoch stays current and loads, and the stop is quick.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { initBackend } from '../../src/model/backend.js';
import { Forecaster } from '../../src/model/forecaster.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import { shapeKeyFor, type EpochProgress } from '../../src/model/training.js';
import { testBroker, uniquePrefix, waitFor, type TestBroker } from '../helpers/broker.js';
import { NO_MESSAGE_FIGURES, recordFault, secondsText } from '../helpers/faultReport.js';
import { capturedLogger, roomForecast, writeHistory } from './support.js';

const EPOCHS = 300;

describe('stopping during a training', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let stateDir: string;
  let config: Config;
  const prefix = uniquePrefix('shutdown');

  before(async () => {
    broker = await testBroker();
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-shutdown-'));
    writeHistory(stateDir, 'room.temp', 3);
    config = parseConfig({
      mqtt: {
        url: broker.url,
        protocolVersion: broker.protocolVersion,
        clientId: `forecastd-${prefix}`,
        clean: true,
        baseTopic: `forecastd-test-${prefix}`,
      },
      ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }] },
      storage: { stateDir },
      lifecycle: { shutdownTimeoutSeconds: 10 },
      // No model yet: the daemon starts training at once.
      forecasts: [roomForecast({ onStart: true, epochs: EPOCHS, seed: 5, historyDays: 4 })],
    });
  });

  after(async () => {
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  let lastEpochSeen = 0;
  let checkpointEpoch = 0;
  /** Figures of the stop, for the fault table row written once the resume is known. */
  let stopFigures: { stopMs: number; walLeft: boolean } | null = null;

  it('aborts the training at stop; the last epoch checkpoint is current and loads', async () => {
    const { log, lines } = capturedLogger();
    const progress: EpochProgress[] = [];
    const daemon: Daemon = await startDaemon({ config, log, onProgress: (epoch) => void progress.push(epoch) });
    let stopMs = 0;
    try {
      await waitFor(() => progress.length >= 2, 90_000, 'two epochs');
      const startedAt = performance.now();
      await daemon.stop();
      stopMs = performance.now() - startedAt;
    } finally {
      await daemon.stop();
    }
    lastEpochSeen = progress.at(-1)!.epoch;
    assert.ok(lastEpochSeen < EPOCHS, 'the training was still running');
    assert.equal(daemon.trainings.counters.aborted, 1);
    assert.equal(daemon.pool.counters.terminatedAfterGrace, 0, 'it stopped at a batch end, not by terminating its thread');
    assert.ok(stopMs < config.lifecycle.shutdownTimeoutSeconds * 1000, `stopped in ${Math.round(stopMs)} ms`);
    assert.ok(lines.some((line) => line.msg === 'training aborted; its last epoch checkpoint is kept'));
    const walLeft = existsSync(join(stateDir, 'forecastd.db-wal'));
    assert.ok(!walLeft, 'the database was closed (its WAL checkpointed and removed)');
    stopFigures = { stopMs, walLeft };

    const forecast = config.forecasts[0];
    // The run's own epoch checkpoints (not the serving model: an aborted run is not promoted).
    const store = forecastCheckpoints(join(stateDir, 'checkpoints'), forecast).latest;
    const latest = await store.loadLatest();
    assert.ok(latest, 'a checkpoint exists');
    checkpointEpoch = latest.info.epoch;
    // The epoch message follows the checkpoint save, so the stop may come between the two.
    assert.ok(
      checkpointEpoch === lastEpochSeen || checkpointEpoch === lastEpochSeen + 1,
      `checkpoint epoch ${checkpointEpoch}, last epoch reported ${lastEpochSeen}`,
    );
    const { tf } = await initBackend('auto', { allowNative: false });
    const { forecaster, rejected } = await Forecaster.load(tf, store, shapeKeyFor(forecast));
    assert.deepEqual(rejected, []);
    assert.ok(forecaster, 'the checkpoint loads as a model');
    assert.equal(forecaster.meta.epoch, checkpointEpoch);
    forecaster.dispose();
  });

  it('the next training resumes from that checkpoint', async () => {
    const progress: EpochProgress[] = [];
    const startedAt = performance.now();
    const daemon = await startDaemon({ config, log: capturedLogger().log, onProgress: (epoch) => void progress.push(epoch) });
    try {
      if (!daemon.trainings.running.has('room')) daemon.train('room', 'test');
      await waitFor(() => progress.length >= 1, 60_000, 'an epoch of the next training');
      const resumedMs = performance.now() - startedAt;
      assert.equal(progress[0].epoch, checkpointEpoch + 1, 'continues after the checkpointed epoch instead of starting over');
      assert.ok(stopFigures, 'the stop test ran first');
      recordFault({
        fault: 'F12 stop during training',
        mechanism: `daemon stop (the SIGTERM path) mid-training, epoch ${lastEpochSeen} of ${EPOCHS} reported; restart`,
        ...NO_MESSAGE_FIGURES,
        // Completed epochs whose weights did not survive the stop.
        lost: Math.max(0, lastEpochSeen - checkpointEpoch),
        recovery: secondsText(resumedMs),
        note:
          `stop took ${secondsText(stopFigures.stopMs)} (budget ${config.lifecycle.shutdownTimeoutSeconds} s), training aborted at a batch end, thread not terminated; ` +
          `-wal left: ${stopFigures.walLeft ? 'yes' : 'no'}; checkpoint of epoch ${checkpointEpoch} current and loads; lost = completed epochs not checkpointed; ` +
          `recovery = restart to the first epoch of the resumed run (epoch ${progress[0].epoch})`,
      });
    } finally {
      await daemon.stop();
    }
  });
});
