/**
 * `forecastd train <forecast> --config <file>`: one training now, through the runner and the thread pool,
 * on the configured database, with a Keras-style progress bar and a summary.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DAEMON_MAIN, writeYaml } from '../helpers/daemonProcess.js';
import { writeHistory } from '../daemon/support.js';

describe('forecastd train', { timeout: 120_000 }, () => {
  let stateDir: string;
  let configPath: string;

  before(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-train-'));
    writeHistory(stateDir, 'room.temp', 2);
    configPath = join(stateDir, 'forecastd.yaml');
    writeYaml(configPath, {
      storage: { stateDir },
      forecasts: [
        {
          name: 'room',
          target: 'room.temp',
          interval: '10m',
          steps: 24,
          horizon: 6,
          layers: [{ type: 'lstm', units: 8 }, { type: 'dense' }],
          training: { epochs: 2, batchSize: 32, seed: 2, historyDays: 3 },
        },
      ],
    });
  });

  after(() => {
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  const forecastd = (...args: string[]) => spawnSync(process.execPath, [DAEMON_MAIN, ...args], { encoding: 'utf8', timeout: 100_000 });

  it('trains with a progress bar (--verbose 1), prints a summary and records the version', () => {
    const result = forecastd('train', 'room', '--config', configPath, '--verbose', '1');
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    assert.match(result.stdout, /^Epoch 1\/2$/m);
    assert.match(result.stdout, /\d+\/\d+ \[=+\] - [\d.]+s - loss: \d/, 'the finished bar of an epoch');
    assert.match(result.stdout, /\r\d+\/\d+ \[=*>?\.*\]/, 'the bar is redrawn in place per batch');
    assert.match(result.stdout, /^trained room@\d{8}T\d{6}Z on (wasm|cpu|native)$/m);
    assert.match(result.stdout, /^ {2}epochs {12}2$/m);
    const db = new Database(join(stateDir, 'forecastd.db'), { readonly: true });
    try {
      assert.equal(db.prepare("SELECT count(*) FROM model_versions WHERE forecast = 'room'").pluck().get(), 1);
    } finally {
      db.close();
    }
  });

  it('an unknown forecast is a usage error (exit 2) that lists the forecasts there are', () => {
    const result = forecastd('train', 'attic', '--config', configPath);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /no forecast "attic" .* \(it has: room\)/);
  });

  it('--verbose takes 0, 1 or 2', () => {
    const result = forecastd('train', 'room', '--config', configPath, '--verbose', '3');
    assert.equal(result.status, 2);
    assert.match(result.stderr, /--verbose takes 0, 1 or 2/);
  });
});
