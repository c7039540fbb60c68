/** The /readyz checks one by one: each says why it fails. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { databaseWritable, redactUrl, schedulerAlive } from '../../src/http/readiness.js';
import { openDatabase } from '../../src/store/database.js';

const scratch = mkdtempSync(join(tmpdir(), 'forecastd-readiness-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('readiness checks', () => {
  it('database: writable when the write lock can be taken; not when open read-only or closed', () => {
    const path = join(scratch, 'state.db');
    const { db } = openDatabase({ path, synchronous: 'NORMAL' });
    assert.deepEqual(databaseWritable(db), { ok: true, detail: 'writable' });
    const reader = openDatabase({ path, synchronous: 'NORMAL', readonly: true }).db;
    assert.deepEqual(databaseWritable(reader), { ok: false, detail: 'the database is open read-only' });
    reader.close();
    // Another connection holding the write lock: the probe says so instead of waiting.
    const other = openDatabase({ path, synchronous: 'NORMAL' }).db;
    other.exec('BEGIN IMMEDIATE');
    const locked = databaseWritable(db);
    assert.equal(locked.ok, false);
    assert.match(locked.detail, /cannot take the write lock: database is locked/);
    other.exec('ROLLBACK');
    other.close();
    db.close();
    assert.deepEqual(databaseWritable(db), { ok: false, detail: 'the database is closed' });
  });

  it('scheduler: alive while every forecast ticks within two intervals; names the late one', () => {
    const forecasts = parseConfig(
      {
        forecasts: [
          { name: 'a', target: 'x.a', interval: '10m' },
          { name: 'b', target: 'x.b', interval: '1h' },
        ],
      },
      'test',
      {},
    ).forecasts;
    const start = 1_000_000_000_000;
    const ticks = new Map([
      ['a', start + 50 * 60_000],
      ['b', start],
    ]);
    const at = (minutes: number) =>
      schedulerAlive({ forecasts, lastTick: (name) => ticks.get(name), startedAt: start, clock: () => start + minutes * 60_000 });
    assert.equal(at(60).ok, true);
    const late = at(75);
    assert.equal(late.ok, false);
    assert.match(late.detail, /^forecast ticks are late: a last ticked 1500 s ago \(every 600 s expected\)$/);
    assert.equal(
      schedulerAlive({ forecasts: [], lastTick: () => undefined, startedAt: start, clock: () => start }).detail,
      'no forecasts configured',
    );
  });

  it('broker: the URL in the reason carries no credentials', () => {
    assert.equal(redactUrl('mqtts://forecastd:s3cret@broker.lan:8883'), 'mqtts://broker.lan:8883');
    assert.equal(redactUrl('mqtt://127.0.0.1:1883'), 'mqtt://127.0.0.1:1883');
  });
});
