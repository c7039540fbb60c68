import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../src/log.js';
import { Housekeeping } from '../../src/store/housekeeping.js';
import { RetentionJob } from '../../src/store/retention.js';
import { WriteMeter } from '../../src/store/writeMeter.js';
import { DAY_MS, T0, countOf, fill, freshStore, scratchDir } from './fixtures.js';

const scratch = scratchDir('forecastd-housekeeping-');
after(scratch.remove);

function captureLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger('debug', sink), lines };
}

describe('Housekeeping', () => {
  it('runs retention at start, logs writes and retention periodically, and stops cleanly', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 399 * DAY_MS, DAY_MS, 400); // days -399..0: 34 are older than 365 days
    let bytes = 1000;
    const { log, lines } = captureLog();
    const housekeeping = new Housekeeping({
      retention: new RetentionJob(db, { defaultDays: 365, perSeries: {}, maxDatabaseMb: 0 }, { clock: () => T0, monotonic: () => 0 }),
      writeMeter: new WriteMeter({ read: () => (bytes += 500) }),
      schedule: '0 0 1 1 *',
      log,
      sampleEveryMs: 5,
      logEverySamples: 2,
    });
    housekeeping.start();
    const deadline = Date.now() + 5_000;
    while (!lines.some((line) => line.msg === 'storage writes and retention in the last hour') && Date.now() < deadline) await sleep(5);
    await housekeeping.stop();

    assert.equal(countOf(db, 'a'), 366, 'the start-up run deleted the 34 readings older than 365 days');
    const hourly = lines.find((line) => line.msg === 'storage writes and retention in the last hour');
    assert.ok(hourly, 'the periodic line was logged');
    const writes = hourly.writes as { bytesWrittenTotal: number; bytesPerHour: number };
    assert.ok(writes.bytesWrittenTotal > 1000 && writes.bytesPerHour > 0);
    assert.deepEqual((hourly.retention as { runs: number; rowsDeleted: number }).runs, 1);
    assert.deepEqual((hourly.retention as { runs: number; rowsDeleted: number }).rowsDeleted, 34);

    // After stop() nothing runs: the database can be closed.
    db.close();
    assert.equal(await housekeeping.runRetention(), null);
    const linesAtStop = lines.length;
    await sleep(30);
    assert.equal(lines.length, linesAtStop, 'no sampling or logging after stop()');
  });
});
