/**
 * What forecastd 0.1.0 wrote still loads (issue 13): a checkpoint and a training record, written by that version's own
 * code (fixtures/v0.1.0: one tiny forecast trained with it), are read through the versioned contracts in
 * src/contracts and upgraded explicitly. A record that does not validate, or comes from an unknown version, is refused
 * with a message that names the field.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CHECKPOINT_META_VERSION, parseCheckpointMeta } from '../../src/contracts/checkpointMeta.js';
import { ContractError } from '../../src/contracts/contract.js';
import { parseTrainingRecord, TRAINING_RECORD_VERSION, trainingRecordOf } from '../../src/contracts/trainingRecord.js';
import { parseConfig } from '../../src/config/load.js';
import type { ForecastConfig } from '../../src/config/schema.js';
import { initBackend, type Tf } from '../../src/model/backend.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { Forecaster } from '../../src/model/forecaster.js';
import { shapeKeyFor } from '../../src/model/training.js';
import { openDatabase } from '../../src/store/database.js';
import { ModelVersionStore } from '../../src/store/modelVersions.js';

/** The fixtures stay in the source tree (dist/test/contracts → test/contracts/fixtures). */
const FIXTURES = fileURLToPath(new URL('../../../test/contracts/fixtures/v0.1.0/', import.meta.url));
const legacyRecord = () => JSON.parse(readFileSync(join(FIXTURES, 'training-record.json'), 'utf8')) as Record<string, unknown>;

describe('records written by forecastd 0.1.0', () => {
  let tf: Tf;
  let forecast: ForecastConfig;
  let dir: string;
  before(async () => {
    tf = (await initBackend('cpu', { allowNative: false })).tf;
    const raw = JSON.parse(readFileSync(join(FIXTURES, 'forecast.json'), 'utf8')) as unknown;
    forecast = parseConfig({ forecasts: [raw] }, 'fixture', {}).forecasts[0];
    dir = mkdtempSync(join(tmpdir(), 'forecastd-contracts-'));
    cpSync(join(FIXTURES, 'checkpoints'), join(dir, 'checkpoints'), { recursive: true });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a 0.1.0 checkpoint loads, upgraded to the current meta version, and forecasts', async () => {
    const store = new CheckpointStore(join(dir, 'checkpoints'), `${forecast.name}#best`);
    const { forecaster, rejected } = await Forecaster.load(tf, store, shapeKeyFor(forecast));
    assert.deepEqual(rejected, []);
    assert.ok(forecaster, 'the old checkpoint serves');
    assert.equal(forecaster.meta.metaVersion, CHECKPOINT_META_VERSION);
    assert.equal(forecaster.meta.timeZone, null, "0.1.0 did not record its zone: null says 'the zone of the process that trained it'");
    assert.deepEqual(forecaster.meta.calendar, ['hourOfDay', 'dayOfWeek']);
    const now = Date.UTC(2026, 10, 28, 12);
    const timestampsMs = Float64Array.from({ length: 40 }, (_, index) => now - (40 - index) * 600_000);
    const values = timestampsMs.map((ts) => 20 + 4 * Math.sin((2 * Math.PI * ts) / 86_400_000));
    const result = forecaster.predict([{ name: 'room.temp', timestampsMs, values }], now);
    assert.ok(result, 'a forecast from the old model');
    assert.equal(result.points.length, 3);
    assert.ok(result.points.every((point) => Number.isFinite(point.value)));
    forecaster.dispose();
  });

  it('a 0.1.0 training record reads as the current version, evaluation and decision intact', () => {
    const raw = legacyRecord();
    assert.equal(raw.recordVersion, undefined, 'the fixture is a 0.1.0 record (no version field)');
    const record = parseTrainingRecord(raw, 'fixture');
    assert.equal(record.recordVersion, TRAINING_RECORD_VERSION);
    assert.equal(record.version, raw.version);
    assert.equal(record.decision?.servedBy, (raw.decision as { servedBy: string }).servedBy);
    assert.deepEqual(Object.keys(record.evaluation?.methods ?? {}).sort(), Object.keys((raw.evaluation as { methods: object }).methods).sort());
  });

  it('an older record without the later fields is upgraded with what an old training could not have had', () => {
    const raw = legacyRecord();
    for (const field of [
      'status',
      'initialEpoch',
      'learningRate',
      'bestEpoch',
      'stoppedEarly',
      'resumedFrom',
      'warmStartedFrom',
      'configHash',
      'shapeKey',
      'featureNames',
      'scaler',
      'evaluation',
      'decision',
      'servingCheckpointId',
    ]) {
      delete raw[field];
    }
    const record = parseTrainingRecord(raw, 'fixture');
    assert.equal(record.status, 'finished');
    assert.equal(record.initialEpoch, 0);
    assert.equal(record.evaluation, null);
    assert.equal(record.decision, null);
    assert.deepEqual(record.learningRate, []);
  });

  it('a tampered checkpoint meta is refused, naming the field, and the forecast falls back to nothing rather than a guess', async () => {
    const tamperedDir = mkdtempSync(join(tmpdir(), 'forecastd-tampered-'));
    try {
      cpSync(join(FIXTURES, 'checkpoints'), tamperedDir, { recursive: true });
      const storeDir = readdirSync(tamperedDir).find((name) =>
        readFileSync(
          join(
            tamperedDir,
            name,
            readdirSync(join(tamperedDir, name)).find((entry) => entry !== 'CURRENT')!,
            'manifest.json',
          ),
          'utf8',
        ).includes('"room#best"'),
      )!;
      for (const checkpoint of readdirSync(join(tamperedDir, storeDir)).filter((entry) => entry !== 'CURRENT')) {
        const path = join(tamperedDir, storeDir, checkpoint, 'manifest.json');
        const manifest = JSON.parse(readFileSync(path, 'utf8')) as { meta: { scaler: { mean: unknown } } };
        manifest.meta.scaler.mean = 'twenty';
        writeFileSync(path, JSON.stringify(manifest));
      }
      const { forecaster, rejected } = await Forecaster.load(tf, new CheckpointStore(tamperedDir, 'room#best'), shapeKeyFor(forecast));
      assert.equal(forecaster, null);
      assert.equal(rejected.length, 1);
      assert.match(rejected[0].reason, /scaler\.mean/, rejected[0].reason);
    } finally {
      rmSync(tamperedDir, { recursive: true, force: true });
    }
  });

  it('a meta or record of an unknown (newer) version is refused with the version named', () => {
    assert.throws(
      () => parseCheckpointMeta({ metaVersion: 99 }, 'x'),
      (error: ContractError) => error instanceof ContractError && /metaVersion: 99 is not a version/.test(error.message),
    );
    assert.throws(
      () => parseTrainingRecord({ ...legacyRecord(), recordVersion: 3 }, 'x'),
      (error: ContractError) => /recordVersion: 3 is not a version/.test(error.message),
    );
  });

  it('the model-version store reads a stored 0.1.0 record, and leaves out (and reports) one that does not validate', () => {
    const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
    const refusals: string[] = [];
    const versions = new ModelVersionStore(db, (error) => refusals.push(error.message));
    const raw = legacyRecord();
    const insert = db.prepare(
      `INSERT INTO model_versions(forecast, version, created_at, backend, duration_ms, samples, checkpoint, summary)
       VALUES (?, ?, ?, 'cpu', 1, 1, NULL, ?)`,
    );
    insert.run('room', raw.version, raw.startedAt, JSON.stringify(raw));
    insert.run('room', 'room@broken', (raw.startedAt as number) + 1, JSON.stringify({ ...raw, version: 'room@broken', trainWindows: 'many' }));
    const latest = versions.latest('room', 5);
    assert.deepEqual(
      latest.map((record) => record.version),
      [raw.version],
    );
    assert.equal(latest[0].recordVersion, TRAINING_RECORD_VERSION);
    assert.equal(refusals.length, 1);
    assert.match(refusals[0], /room@broken: trainWindows: /);
    versions.latest('room', 5);
    assert.equal(refusals.length, 1, 'validated once: a second read reports nothing new');
    db.close();
  });

  it('a record written now carries the current version and round-trips', () => {
    const record = trainingRecordOf(parseTrainingRecord(legacyRecord(), 'fixture'));
    assert.equal(record.recordVersion, TRAINING_RECORD_VERSION);
    assert.deepEqual(parseTrainingRecord(JSON.parse(JSON.stringify(record)), 'round trip'), record);
  });
});
