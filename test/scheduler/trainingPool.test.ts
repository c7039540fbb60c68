/**
 * The training pool on real worker threads, with a worker module that fails on purpose
 * (fixtures/faultyWorker.ts): whatever one training does to its thread, the pool and this process go on.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { EpochProgress } from '../../src/model/training.js';
import { failureKind, TrainingPool, type PoolTask } from '../../src/scheduler/trainingPool.js';
import { FAULTS, FAULTY_WORKER } from './fixtures/faultyWorker.js';

const forecastNamed = (name: string) => parseConfig({ forecasts: [{ name, target: 'room.temp' }] }).forecasts[0];

const taskFor = (name: string): PoolTask => ({
  forecast: forecastNamed(name),
  databasePath: '/nonexistent/forecastd.db',
  checkpointRoot: '/nonexistent/checkpoints',
  backend: 'wasm',
  nowMs: Date.now(),
});

const pools: TrainingPool[] = [];
function poolWith(options: Partial<ConstructorParameters<typeof TrainingPool>[0]> = {}): TrainingPool {
  const pool = new TrainingPool({ threads: 1, workerHeapMb: 32, nativeAllowed: false, workerModule: FAULTY_WORKER, ...options });
  pools.push(pool);
  return pool;
}

after(async () => {
  await Promise.all(pools.map((pool) => pool.close()));
});

describe('TrainingPool', { timeout: 60_000 }, () => {
  it('a training that throws fails its own task; the next one runs', async () => {
    const pool = poolWith();
    await assert.rejects(pool.run(taskFor(FAULTS.throws)), /the training blew up/);
    const summary = await pool.run(taskFor(FAULTS.quick));
    assert.equal(summary.forecast, FAULTS.quick);
    assert.deepEqual([pool.counters.failed, pool.counters.succeeded], [1, 1]);
  });

  it('a training that exceeds the thread heap limit fails with ERR_WORKER_OUT_OF_MEMORY; the thread is replaced', async () => {
    const pool = poolWith({ workerHeapMb: 16 });
    const error = await pool.run(taskFor(FAULTS.outOfMemory)).then(
      () => assert.fail('an out-of-memory training must not succeed'),
      (reason: NodeJS.ErrnoException) => reason,
    );
    assert.equal(error.code, 'ERR_WORKER_OUT_OF_MEMORY');
    assert.equal(failureKind(error), 'out_of_memory');
    assert.equal(pool.counters.outOfMemory, 1);
    const next = await pool.run(taskFor(FAULTS.quick));
    assert.equal(next.forecast, FAULTS.quick);
  });

  it('a training that calls process.exit ends only its thread', async () => {
    const pool = poolWith();
    const error = await pool.run(taskFor(FAULTS.exits)).then(
      () => assert.fail('must not succeed'),
      (reason: Error) => reason,
    );
    assert.match(error.message, /worker exited with code: 3/);
    assert.equal(failureKind(error), 'worker_exited');
    assert.equal((await pool.run(taskFor(FAULTS.quick))).forecast, FAULTS.quick);
    assert.equal(pool.counters.workerExited, 1);
  });

  it('an error a thread raises outside any task is counted, not thrown at the process', async () => {
    const pool = poolWith();
    await pool.run(taskFor(FAULTS.throwsLater));
    const deadline = Date.now() + 5_000;
    while (pool.counters.workerErrors === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pool.counters.workerErrors, 1);
    assert.equal((await pool.run(taskFor(FAULTS.quick))).forecast, FAULTS.quick);
  });

  it('replaces its threads after recycleAfter trainings, and retires them as soon as they are idle', async () => {
    const pool = poolWith({ recycleAfter: 2 });
    const versions: string[] = [];
    for (let run = 0; run < 5; run++) versions.push((await pool.run(taskFor(FAULTS.quick))).version);
    const threads = versions.map((version) => version.split('@thread')[1]);
    assert.equal(threads[0], threads[1], 'two trainings on the first thread');
    assert.equal(threads[2], threads[3], 'two on the second');
    assert.equal(new Set(threads).size, 3, `threads used: ${threads.join(', ')}`);
    // The fifth training made nothing due yet; the second generation was retired when it went idle.
    const deadline = Date.now() + 5_000;
    while (pool.counters.generationsRetired < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pool.counters.generationsRetired, 2);
    assert.deepEqual(pool.generationInfo && { started: pool.generationInfo.started, inflight: pool.generationInfo.inflight }, {
      started: 1,
      inflight: 0,
    });
  });

  it('keeps trainings in order while a generation is being replaced', async () => {
    const pool = poolWith({ recycleAfter: 1, threads: 2 });
    const results = await Promise.all([1, 2, 3, 4].map(() => pool.run(taskFor(FAULTS.quick))));
    assert.equal(new Set(results.map((summary) => summary.version)).size, 4, 'each training on a fresh thread');
  });

  it('an abort stops a training at its next epoch end (cooperative), and its progress arrives on the way', async () => {
    const pool = poolWith();
    const abort = new AbortController();
    const epochs: EpochProgress[] = [];
    const running = pool.run(
      taskFor(FAULTS.slow),
      {
        onEpoch: (progress) => {
          epochs.push(progress);
          if (progress.epoch === 3) abort.abort();
        },
      },
      abort.signal,
    );
    const summary = await running;
    assert.ok(summary.epochsCompleted >= 3 && summary.epochsCompleted < 10, `stopped after ${summary.epochsCompleted} epochs`);
    assert.equal(pool.counters.aborted, 1);
    assert.equal(pool.counters.terminatedAfterGrace, 0);
  });

  it('a training that ignores the abort has its thread terminated after the grace period', async () => {
    const pool = poolWith({ abortGraceMs: 200 });
    const abort = new AbortController();
    const running = pool.run(taskFor(FAULTS.hangs), {}, abort.signal);
    setTimeout(() => abort.abort(), 100);
    const startedAt = Date.now();
    const error = await running.then(
      () => assert.fail('must not succeed'),
      (reason: Error) => reason,
    );
    assert.equal(failureKind(error), 'aborted');
    assert.ok(Date.now() - startedAt < 5_000);
    assert.equal(pool.counters.terminatedAfterGrace, 1);
    assert.equal((await pool.run(taskFor(FAULTS.quick))).forecast, FAULTS.quick);
  });

  it('offers the native backend only to a single-thread pool, and stops once a thread reports another backend', async () => {
    assert.equal(new TrainingPool({ threads: 2, workerHeapMb: 64, nativeAllowed: true }).nativeAllowed, false);
    const pool = poolWith({ nativeAllowed: true });
    assert.equal(pool.nativeAllowed, true);
    await pool.run(taskFor(FAULTS.quick));
    assert.equal(pool.lastBackend, 'wasm');
    assert.equal(pool.nativeAllowed, false, 'the addon did not load: no pinned thread');
  });

  it('rejects trainings after close()', async () => {
    const pool = poolWith();
    await pool.close();
    await assert.rejects(pool.run(taskFor(FAULTS.quick)), /closed/);
  });
});
