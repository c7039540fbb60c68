/**
 * The training runner and the scheduler's cron ticks, with a stand-in pool whose trainings end when the
 * test says so: no threads, no TensorFlow.js.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import type { EpochProgress, TrainingSummary } from '../../src/model/training.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import type { PoolTask, TrainingExecutor, TrainingHandlers } from '../../src/scheduler/trainingPool.js';
import { PROGRESS_INFO_EVERY_MS, TrainingRunner } from '../../src/scheduler/trainingRunner.js';

interface PendingTraining {
  task: PoolTask;
  handlers: TrainingHandlers;
  signal?: AbortSignal;
  resolve: (summary: TrainingSummary) => void;
  reject: (error: Error) => void;
}

/** A pool whose trainings wait for the test to finish them. */
class FakePool implements TrainingExecutor {
  readonly pending: PendingTraining[] = [];
  run(task: PoolTask, handlers: TrainingHandlers, signal?: AbortSignal): Promise<TrainingSummary> {
    return new Promise((resolve, reject) => this.pending.push({ task, handlers, signal, resolve, reject }));
  }
}

const summaryOf = (task: PoolTask, epochs = 3): TrainingSummary => ({
  forecast: task.forecast.name,
  version: `${task.forecast.name}@test`,
  backend: 'wasm',
  startedAt: task.nowMs,
  durationMs: 10,
  epochsCompleted: epochs,
  trainWindows: 100,
  validationWindows: 20,
  samplesPerSecond: 1000,
  loss: [0.3, 0.2, 0.1].slice(0, epochs),
  valLoss: [],
  metrics: null,
  dataRange: { fromMs: 0, toMs: 1 },
  checkpointId: `0000000${epochs}-abcdef01`,
});

function captureLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines };
}

function runnerWith(pool: TrainingExecutor, overrides: { clock?: () => number; onTrained?: (summary: TrainingSummary) => void } = {}) {
  const config = parseConfig({ forecasts: [{ name: 'room', target: 'room.temp', training: { schedule: '* * * * * *' } }] });
  const { log, lines } = captureLog();
  const trained: TrainingSummary[] = [];
  const runner = new TrainingRunner({
    pool,
    forecasts: () => config.forecasts,
    databasePath: 'unused.db',
    checkpointRoot: 'unused',
    backend: 'wasm',
    clock: overrides.clock ?? Date.now,
    log,
    onTrained: overrides.onTrained ?? ((summary) => void trained.push(summary)),
  });
  return { runner, config, lines, trained };
}

const waitUntil = async (condition: () => boolean, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('TrainingRunner', () => {
  it('skips and counts a request for a forecast whose training still runs', async () => {
    const pool = new FakePool();
    const { runner, trained } = runnerWith(pool);
    assert.equal(runner.request('room', 'schedule'), 'started');
    assert.equal(runner.request('room', 'schedule'), 'skipped_running');
    assert.equal(runner.request('room', 'manual'), 'skipped_running');
    assert.equal(pool.pending.length, 1, 'one training reached the pool');
    assert.deepEqual([runner.counters.started, runner.counters.skippedOverlap], [1, 2]);
    pool.pending[0].resolve(summaryOf(pool.pending[0].task));
    await runner.idle('room');
    assert.equal(trained.length, 1);
    assert.equal(runner.request('room', 'schedule'), 'started', 'free again once it ended');
    assert.equal(runner.request('elsewhere', 'manual'), 'unknown_forecast');
  });

  it('a cron tick that fires during the previous training is skipped and counted, not queued', async () => {
    const pool = new FakePool();
    const { runner, config } = runnerWith(pool);
    const { log } = captureLog();
    // Every second; no forecast ticks matter here (the interval is the default 15 minutes).
    const scheduler = new Scheduler({ clock: Date.now, log, train: (name, reason) => runner.request(name, reason), issue: () => undefined });
    scheduler.start(config.forecasts);
    try {
      await waitUntil(() => scheduler.counters.trainingTicks >= 3, 6_000, 'three cron ticks');
      assert.equal(pool.pending.length, 1, 'only the first tick reached the pool');
      assert.equal(runner.counters.started, 1);
      assert.equal(runner.counters.skippedOverlap, scheduler.counters.trainingTicks - 1);
      pool.pending[0].resolve(summaryOf(pool.pending[0].task));
      const ticks = scheduler.counters.trainingTicks;
      await waitUntil(() => scheduler.counters.trainingTicks > ticks && pool.pending.length === 2, 3_000, 'the next tick to start a training');
      assert.equal(runner.counters.started, 2);
    } finally {
      await scheduler.stop();
      for (const training of pool.pending) training.resolve(summaryOf(training.task));
      await runner.idle();
    }
  });

  it('records a failed training (out of memory), keeps no running state, and retries on the next request', async () => {
    const pool = new FakePool();
    const { runner, trained, lines } = runnerWith(pool);
    runner.request('room', 'schedule');
    const oom = Object.assign(new Error('Worker terminated due to reaching memory limit: JS heap out of memory'), {
      code: 'ERR_WORKER_OUT_OF_MEMORY',
    });
    pool.pending[0].reject(oom);
    await runner.idle();
    assert.equal(runner.running.size, 0);
    assert.equal(runner.lastFailure.get('room')?.kind, 'out_of_memory');
    assert.deepEqual([runner.counters.failed, runner.counters.outOfMemory, trained.length], [1, 1, 0]);
    assert.ok(lines.some((line) => line.level === 50 && /out of memory/.test(String(line.msg))));
    assert.equal(runner.request('room', 'schedule'), 'started');
    pool.pending[1].resolve(summaryOf(pool.pending[1].task));
    await runner.idle();
    assert.equal(runner.lastFailure.has('room'), false, 'a success clears the failure');
  });

  it('stop() aborts running trainings; an aborted training is not a new model version', async () => {
    const pool = new FakePool();
    const { runner, trained } = runnerWith(pool);
    runner.request('room', 'schedule');
    const training = pool.pending[0];
    // The pool resolves an aborted training with what it completed (the worker stopped at a batch end).
    training.signal!.addEventListener('abort', () => training.resolve(summaryOf(training.task, 2)));
    const done = runner.running.get('room')!.done;
    await runner.stop();
    assert.deepEqual(await done, { status: 'aborted', epochsCompleted: 2, checkpointId: '00000002-abcdef01' });
    assert.equal(trained.length, 0);
    assert.equal(runner.counters.aborted, 1);
    assert.equal(runner.request('room', 'schedule'), 'skipped_running', 'a stopped runner starts nothing');
  });

  it('logs epochs at info only now and then (first, last, and every PROGRESS_INFO_EVERY_MS), at debug otherwise', async () => {
    const pool = new FakePool();
    let now = 0;
    const { runner, lines } = runnerWith(pool, { clock: () => now });
    const seen: EpochProgress[] = [];
    runner.request('room', 'manual');
    const training = pool.pending[0];
    const epochs = 20;
    for (let epoch = 1; epoch <= epochs; epoch++) {
      now += 5_000;
      const progress = { forecast: 'room', epoch, epochs, loss: 1 / epoch, valLoss: null, elapsedMs: now, etaMs: (epochs - epoch) * 5_000 };
      seen.push(progress);
      training.handlers.onEpoch?.(progress);
    }
    training.resolve(summaryOf(training.task));
    await runner.idle();
    const info = lines.filter((line) => line.msg === 'training progress').map((line) => line.epoch);
    const debug = lines.filter((line) => line.msg === 'epoch done').map((line) => line.epoch);
    const everyEpochs = PROGRESS_INFO_EVERY_MS / 5_000;
    assert.deepEqual(info, [1, 1 + everyEpochs, 1 + 2 * everyEpochs, 1 + 3 * everyEpochs, 20]);
    assert.equal(info.length + debug.length, epochs);
    assert.equal(runner.running.size, 0);
    assert.equal(seen.length, epochs);
  });
});
