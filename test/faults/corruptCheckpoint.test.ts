/**
 * F7 corrupt or partial checkpoint at the daemon level (docs/reliability.md, "Model checkpoints"; the loader's unit tests, with
 * a kill at each step of the save protocol, are in test/model/checkpoint.test.ts and test/model/forecaster.test.ts).
 *
 * Once, in before(): an in-process daemon on a private Mosquitto trains a tiny model on a signal persistence cannot
 * follow (a one-hour sine on a ten-minute grid), so the model is promoted and serves; its serving checkpoint is then
 * saved a second time, so the serving store holds two verified checkpoints, CURRENT naming the newer. That state
 * directory is the template.
 *
 * Each case copies the template, damages the serving store with the daemon stopped, starts a daemon on it and
 * issues forecasts: they must keep coming, from the previous checkpoint (level 1), from the newest checkpoint that
 * verifies when CURRENT is bad (level 1), or, with every checkpoint damaged, from the best baseline of the recorded
 * evaluation (level 2, degraded). Every rejected checkpoint is counted (`forecastd_checkpoints_rejected_total`).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { startDaemon } from '../../src/daemon/daemon.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { capturedLogger } from '../daemon/support.js';
import { uniquePrefix } from '../helpers/broker.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { MOSQUITTO_BIN, mosquittoAvailable, startMosquitto, type PrivateMosquitto } from '../helpers/mosquitto.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const FORECASTS_PER_CASE = 3;

/** Period one hour, sampled every 5 minutes: on a 10-minute grid, persistence is badly wrong three steps ahead. */
const fastSine = (ts: number) => 20 + 5 * Math.sin((2 * Math.PI * ts) / HOUR_MS);

function writeFastSineHistory(stateDir: string, days: number): number {
  const { db } = openDatabase({ path: join(stateDir, 'forecastd.db'), synchronous: 'NORMAL' });
  try {
    const step = 5 * MINUTE_MS;
    const now = Date.now();
    const rows: Array<{ series: string; ts: number; value: number }> = [];
    for (let ts = Math.ceil((now - days * 24 * HOUR_MS) / step) * step; ts <= now; ts += step)
      rows.push({ series: 'room.temp', ts, value: fastSine(ts) });
    return new ReadingStore(db).insertMany(rows);
  } finally {
    db.close();
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface ServingStore {
  dir: string;
  /** Newest first: [current, previous]. */
  ids: string[];
}

/** Rewrites one file of a checkpoint and its manifest entry, so that only the content checks can refuse it. */
function rewriteVouched(store: ServingStore, id: string, file: string, data: Buffer): void {
  writeFileSync(join(store.dir, id, file), data);
  const manifestPath = join(store.dir, id, 'manifest.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { files: Record<string, { bytes: number; sha256: string }> };
  manifest.files[file] = { bytes: data.byteLength, sha256: sha256(data) };
  writeFileSync(manifestPath, JSON.stringify(manifest));
}

interface Damage {
  name: string;
  mechanism: string;
  inflict(store: ServingStore): void;
  /** What must serve: the previous checkpoint, the newest one that verifies (CURRENT itself is bad), or a baseline. */
  expect: 'previous' | 'current' | 'baseline';
  rejections: number;
}

const [CURRENT, PREVIOUS] = [0, 1];

const DAMAGES: Damage[] = [
  {
    name: 'F7a truncated weights',
    mechanism: 'truncate -s -100 weights.bin of the current checkpoint',
    inflict: (store) => {
      const file = join(store.dir, store.ids[CURRENT], 'weights.bin');
      truncateSync(file, readFileSync(file).byteLength - 100);
    },
    expect: 'previous',
    rejections: 1,
  },
  {
    name: 'F7b flipped bytes in model.json',
    mechanism: 'eight bytes in the middle of model.json of the current checkpoint XORed with 0xff',
    inflict: (store) => {
      const file = join(store.dir, store.ids[CURRENT], 'model.json');
      const data = readFileSync(file);
      const middle = Math.floor(data.byteLength / 2);
      for (let index = middle; index < middle + 8; index++) data[index] ^= 0xff;
      writeFileSync(file, data);
    },
    expect: 'previous',
    rejections: 1,
  },
  {
    name: 'F7c deleted weights file',
    mechanism: 'weights.bin of the current checkpoint deleted',
    inflict: (store) => rmSync(join(store.dir, store.ids[CURRENT], 'weights.bin')),
    expect: 'previous',
    rejections: 1,
  },
  {
    name: 'F7d NaN weights',
    mechanism: 'a NaN written into weights.bin of the current checkpoint, manifest sha256 and size updated to match',
    inflict: (store) => {
      const data = readFileSync(join(store.dir, store.ids[CURRENT], 'weights.bin'));
      data.writeFloatLE(Number.NaN, 4 * Math.floor(data.byteLength / 8));
      rewriteVouched(store, store.ids[CURRENT], 'weights.bin', data);
    },
    expect: 'previous',
    rejections: 1,
  },
  {
    name: 'F7e CURRENT names a missing directory',
    mechanism: 'CURRENT rewritten to name a checkpoint directory that does not exist',
    inflict: (store) => writeFileSync(join(store.dir, 'CURRENT'), '00000099-deadbeef\n'),
    expect: 'current',
    rejections: 1,
  },
  {
    name: 'F7f every checkpoint damaged',
    mechanism: 'weights.bin of both serving checkpoints truncated by 100 bytes',
    inflict: (store) => {
      for (const id of store.ids) {
        const file = join(store.dir, id, 'weights.bin');
        truncateSync(file, readFileSync(file).byteLength - 100);
      }
    },
    expect: 'baseline',
    rejections: 2,
  },
];

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('F7: the daemon on a damaged checkpoint', { skip, timeout: 240_000 }, () => {
  let mosquitto: PrivateMosquitto;
  const dirs: string[] = [];
  let template: string;
  let trainedVersion: string;
  let bestBaseline: string;
  let templateIds: string[];

  const tempDir = (label: string) => {
    const dir = mkdtempSync(join(tmpdir(), `forecastd-fault-ckpt-${label}-`));
    dirs.push(dir);
    return dir;
  };
  const configFor = (stateDir: string, prefix: string): Config =>
    parseConfig({
      mqtt: { url: mosquitto.url, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-${prefix}`, reconnectSeconds: 0.2, reconnectMaxSeconds: 1 },
      ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }] },
      storage: { stateDir },
      http: { enabled: true, port: 0 },
      scheduler: { poolThreads: 1 },
      forecasts: [
        {
          name: 'room',
          target: 'room.temp',
          interval: '10m',
          steps: 12,
          horizon: 3,
          calendar: [],
          layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
          // No training at start: a case must show what the damaged store serves, not a fresh model.
          training: { onStart: false, epochs: 8, batchSize: 32, learningRate: 0.01, seed: 11, historyDays: 3, keepCheckpoints: 2 },
        },
      ],
    });
  const servingStore = (config: Config) => forecastCheckpoints(join(config.storage.stateDir, 'checkpoints'), config.forecasts[0]).serving;

  before(async () => {
    mosquitto = await startMosquitto();
    template = tempDir('template');
    writeFastSineHistory(template, 2);
    const config = configFor(template, uniquePrefix('f7-train'));
    const daemon = await startDaemon({ config, log: capturedLogger().log });
    try {
      const result = await daemon.trainings.run('room', 'test');
      assert.ok(typeof result === 'object' && result.status === 'succeeded', `the template training: ${JSON.stringify(result)}`);
      const decision = result.summary.decision;
      assert.equal(decision?.servedBy, 'model', `the model must beat persistence for this test to mean anything: ${decision?.reason}`);
      trainedVersion = result.summary.version;
      bestBaseline = decision.bestBaseline?.method ?? 'persistence';
      console.log(`F7 template: ${decision.reason}; best baseline ${bestBaseline}`);
    } finally {
      await daemon.stop();
    }
    // A second verified serving checkpoint (what the next promoted training would leave): the same model, saved again.
    const serving = servingStore(config);
    const loaded = await serving.loadLatest();
    assert.ok(loaded, 'the training wrote a serving checkpoint');
    await serving.save(loaded.content, loaded.info.epoch);
    templateIds = (await serving.list()).map((info) => info.id);
    assert.equal(templateIds.length, 2, 'two serving checkpoints');
    assert.equal(readFileSync(join(serving.dir, 'CURRENT'), 'utf8').trim(), templateIds[CURRENT]);
  });

  after(async () => {
    await mosquitto?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  for (const damage of DAMAGES) {
    it(`${damage.name}: forecasts keep coming from the ${damage.expect === 'baseline' ? 'best baseline' : `${damage.expect} checkpoint`}, the rejection is counted`, async () => {
      const stateDir = tempDir('case');
      cpSync(template, stateDir, { recursive: true });
      const config = configFor(stateDir, uniquePrefix('f7'));
      const store = { dir: servingStore(config).dir, ids: templateIds };
      damage.inflict(store);

      const { log, lines } = capturedLogger();
      const published: ForecastMessage[] = [];
      const startedAt = performance.now();
      const daemon = await startDaemon({ config, log, onForecast: (message) => void published.push(message) });
      let firstForecastMs = 0;
      let metricsText = '';
      try {
        for (let index = 0; index < FORECASTS_PER_CASE; index++) {
          assert.ok(daemon.issue('room'), `forecast ${index + 1} was issued`);
          if (index === 0) firstForecastMs = performance.now() - startedAt;
        }
        metricsText = await (await fetch(`${daemon.httpUrl}/metrics`)).text();
      } finally {
        await daemon.stop();
      }

      const rejected = lines.filter((line) => line.msg === 'checkpoint rejected');
      const loadedLine = lines.find((line) => line.msg === 'model loaded');
      const rejectedMetric = Number(/^forecastd_checkpoints_rejected_total (\S+)$/m.exec(metricsText)?.[1]);
      const servedBy = [...new Set(published.map((message) => message.servedBy))];
      const level =
        damage.expect === 'baseline' ? `level 2: ${servedBy.join(',')} (baseline)` : `level 1: checkpoint ${String(loadedLine?.checkpoint)}`;
      recordFault({
        fault: damage.name,
        mechanism: damage.mechanism,
        published: published.length,
        acked: 'n/a',
        stored: 'n/a',
        duplicates: 'n/a',
        rejected: daemon.forecasts.counters.checkpointsRejected,
        brokerDropped: 'n/a',
        lost: FORECASTS_PER_CASE - published.length,
        recovery: secondsText(firstForecastMs),
        note:
          `published = forecasts issued of ${FORECASTS_PER_CASE} ticks; rejected = checkpoints refused at load (${rejected.map((line) => String(line.reason).slice(0, 80)).join(' | ')}); ` +
          `fallback ${level}, readiness ${published[0]?.readiness}; recovery = daemon start to first forecast, model load included`,
      });

      assert.equal(published.length, FORECASTS_PER_CASE, 'no forecast tick went without a forecast');
      assert.equal(daemon.forecasts.counters.checkpointsRejected, damage.rejections, 'each damaged checkpoint counted once');
      assert.equal(rejectedMetric, damage.rejections, 'and exported in /metrics');
      assert.equal(rejected.length, damage.rejections, 'and logged');
      if (damage.expect === 'baseline') {
        assert.equal(loadedLine, undefined, 'no checkpoint loaded');
        assert.deepEqual(servedBy, [bestBaseline], 'the best baseline of the recorded evaluation serves');
        assert.ok(
          published.every((message) => message.readiness === 'degraded'),
          'flagged degraded',
        );
        assert.match(published[0].readinessReason, /could not be loaded/);
      } else {
        const expectedId = damage.expect === 'previous' ? templateIds[PREVIOUS] : templateIds[CURRENT];
        assert.equal(loadedLine?.checkpoint, expectedId, `the ${damage.expect} checkpoint serves`);
        assert.deepEqual(servedBy, ['model']);
        assert.ok(published.every((message) => message.model.version === trainedVersion && message.readiness === 'ready'));
      }
    });
  }
});
