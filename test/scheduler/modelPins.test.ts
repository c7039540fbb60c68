/**
 * Model pins applied: `forecastd models --promote/--rollback/--unpin` records a pin; ForecastJobs serves the pinned
 * version, a training's promotion does not replace it, pruning keeps it, and a pin whose weights are gone is refused.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { modelsCommand } from '../../src/cli/commands/models.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { ForecastConfig } from '../../src/config/schema.js';
import { statePaths } from '../../src/daemon/paths.js';
import { createLogger } from '../../src/log.js';
import { initBackend, type BackendName, type Tf } from '../../src/model/backend.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import { trainForecastModel, type TrainingSummary } from '../../src/model/training.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { ForecastJobs } from '../../src/scheduler/forecastJobs.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { ModelPinStore } from '../../src/store/modelPins.js';
import { ModelVersionStore } from '../../src/store/modelVersions.js';
import { ReadingStore } from '../../src/store/readings.js';
import { HOUR_MS, NOW_MS, removeTempDirs, sineSeries, tempDir } from '../model/fixtures.js';

const quiet = createLogger('silent');

describe('model pins', { timeout: 300_000 }, () => {
  let tf: Tf;
  let backend: BackendName;
  let db: Db;
  let forecast: ForecastConfig;
  let configPath: string;
  let checkpointRoot: string;
  let pins: ModelPinStore;
  let versions: ModelVersionStore;
  let jobs: ForecastJobs;
  let now = NOW_MS;
  const published: ForecastMessage[] = [];
  const series = sineSeries({ points: 600, noise: 0.5, seed: 42, endMs: NOW_MS + 2 * HOUR_MS });
  let first: TrainingSummary;
  let second: TrainingSummary;

  const stores = () => forecastCheckpoints(checkpointRoot, forecast, { pinnedVersion: () => pins.get(forecast.name)?.version ?? null });
  const train = async (epochs: number) => {
    const summary = await trainForecastModel({
      tf,
      backend,
      forecast: { ...forecast, training: { ...forecast.training, epochs } },
      series: [series],
      nowMs: now,
      checkpoints: stores().latest,
      best: stores().best,
      serving: stores().serving,
      pinnedVersion: pins.get(forecast.name)?.version ?? null,
    });
    versions.record(summary);
    return summary;
  };
  /** What the daemon does at a forecast tick: reload on a pin change, then forecast. */
  const tick = async () => {
    if (jobs.pinChanged(forecast.name)) await jobs.load(forecast);
    const message = jobs.run(forecast);
    assert.ok(message, 'a forecast is issued');
    return message;
  };
  const servedVersions = async () => new Set((await stores().serving.list()).map((info) => info.meta.version));
  const models = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (text: string) => (err.push(text), true);
    try {
      const code = await modelsCommand([forecast.name, '--config', configPath, ...args], (text) => void out.push(text));
      return { code, stdout: out.join(''), stderr: err.join('') };
    } finally {
      process.stderr.write = write;
    }
  };

  before(async () => {
    ({ tf, name: backend } = await initBackend('wasm', { allowNative: false }));
    const stateDir = tempDir('forecastd-pins-');
    configPath = join(stateDir, 'forecastd.yaml');
    writeFileSync(
      configPath,
      stringify({
        storage: { stateDir },
        forecasts: [
          {
            name: 'sine',
            target: 'site.temp',
            calendar: [],
            interval: '1h',
            steps: 12,
            horizon: 6,
            layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
            // keepCheckpoints 1: only the pin protects an older serving checkpoint from pruning.
            training: {
              epochs: 20,
              batchSize: 32,
              learningRate: 0.01,
              seed: 7,
              validationSplit: 0.2,
              keepCheckpoints: 1,
              earlyStopping: { enabled: false },
            },
          },
        ],
      }),
    );
    const config = loadConfigFile(configPath);
    forecast = config.forecasts[0];
    const paths = statePaths(config);
    checkpointRoot = paths.checkpointRoot;
    db = openDatabase({ path: paths.databasePath, synchronous: 'NORMAL' }).db;
    const readings = new ReadingStore(db);
    readings.insertMany(Array.from(series.timestampsMs, (ts, i) => ({ series: 'site.temp', ts, value: series.values[i] })));
    versions = new ModelVersionStore(db);
    pins = new ModelPinStore(db);
    jobs = new ForecastJobs({
      tf,
      backend,
      checkpointRoot,
      readings,
      versions,
      pins,
      clock: () => now,
      log: quiet,
      publish: (message) => void published.push(message),
    });
  });
  after(() => {
    jobs?.dispose();
    db?.close();
    removeTempDirs();
  });

  it('a pin serves its version, and pruning keeps it while newer models are promoted', async () => {
    first = await train(4);
    assert.equal(first.decision?.promoted, true, first.decision?.reason);
    await jobs.load(forecast);
    assert.equal((await tick()).model.version, first.version);

    const pinned = await models('--promote', first.version);
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.match(pinned.stdout, /pinned .* next forecast tick/);
    assert.doesNotMatch(pinned.stderr, /does not apply pins/);

    now += HOUR_MS;
    second = await train(20);
    assert.equal(second.decision?.promoted, true, second.decision?.reason);
    assert.equal(second.decision?.pinned, first.version, 'the promotion is recorded as held by the pin');
    assert.equal(second.decision?.servingVersion, first.version);
    assert.deepEqual(await servedVersions(), new Set([first.version, second.version]), 'keepCheckpoints 1, yet the pinned checkpoint is kept');

    await jobs.load(forecast); // what the daemon does after a training
    assert.equal((await tick()).model.version, first.version, 'the training did not change the served version');
    const listed = JSON.parse((await models('--json')).stdout) as { versions: Array<{ version: string; serving: boolean; pinned: boolean }> };
    assert.deepEqual(
      listed.versions.filter((row) => row.serving).map((row) => row.version),
      [first.version],
    );
  });

  it('unpin: the newest promoted model serves again from the next tick', async () => {
    const unpinned = await models('--unpin');
    assert.equal(unpinned.code, 0, unpinned.stderr);
    assert.equal(jobs.pinChanged(forecast.name), true);
    assert.equal((await tick()).model.version, second.version);
    assert.equal(jobs.pinChanged(forecast.name), false);
  });

  it('rollback pins the previously promoted version; --promote of a version whose weights are gone exits 1', async () => {
    const rolledBack = await models('--rollback');
    assert.equal(rolledBack.code, 0, rolledBack.stderr);
    assert.equal(pins.get(forecast.name)?.version, first.version);
    assert.equal((await tick()).model.version, first.version);
    assert.ok(published.every((message) => message.model.version === first.version || message.model.version === second.version));

    assert.equal((await models('--unpin')).code, 0);
    // The weights of the first version go: one checkpoint damaged, any others removed.
    let damaged = false;
    for (const store of [stores().serving, stores().best, stores().latest]) {
      for (const info of await store.list()) {
        if (info.meta.version !== first.version) continue;
        if (!damaged) writeFileSync(join(store.dir, info.id, 'weights.bin'), Buffer.alloc(8));
        else rmSync(join(store.dir, info.id), { recursive: true });
        damaged = true;
      }
    }
    assert.ok(damaged);
    const gone = await models('--promote', first.version);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /cannot pin .*weights are gone/);
    assert.equal(pins.get(forecast.name), null, 'nothing was pinned');
  });
});

describe('CheckpointStore protect and loadVersion', () => {
  const content = (version: string) => ({
    modelTopology: { version },
    weightSpecs: [{ name: 'w', shape: [2], dtype: 'float32' }],
    weightData: new Float32Array([1, 2]).buffer,
    meta: { version },
  });
  after(removeTempDirs);

  it('never prunes a protected checkpoint, and loads a version verified', async () => {
    const root = tempDir();
    const store = new CheckpointStore(root, 'k', { keep: 1, protect: (info) => info.meta.version === 'a' });
    await store.save(content('a'), 1);
    await store.save(content('b'), 2);
    await store.save(content('c'), 3);
    assert.deepEqual(
      (await store.list()).map((info) => info.meta.version),
      ['c', 'a'],
    );
    assert.equal((await store.loadVersion('a'))?.content.meta.version, 'a');
    assert.equal(await store.loadVersion('b'), null);
    const unprotected = new CheckpointStore(root, 'k', { keep: 1 });
    await unprotected.save(content('d'), 4);
    assert.deepEqual(
      (await unprotected.list()).map((info) => info.meta.version),
      ['d'],
    );
  });
});
