import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Db } from '../../src/store/database.js';
import { RetentionJob, type RetentionPolicy } from '../../src/store/retention.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, T0, countOf, fill, freshStore, scratchDir, timestamps } from './fixtures.js';

const scratch = scratchDir('forecastd-retention-');
after(scratch.remove);

const policy = (fields: Partial<RetentionPolicy> = {}): RetentionPolicy => ({ defaultDays: 365, perSeries: {}, maxDatabaseMb: 0, ...fields });
/** A monotonic clock that stands still unless a test moves it. */
const still = () => 0;

describe('retention by age', () => {
  it('deletes exactly the readings older than the per-series or default period, and keeps the rest', async () => {
    const { db, readings } = freshStore(scratch.dir);
    // a: daily, days -400..0, default 365 days. Cutoff T0 - 365 d: days -400..-366 go (35 rows); day -365, exactly at the cutoff, stays.
    fill(readings, 'a', T0 - 400 * DAY_MS, DAY_MS, 401);
    // b: hourly, hours -240..0, 7 days = 168 h. Cutoff T0 - 168 h: hours -240..-169 go (72 rows), 169 stay.
    fill(readings, 'b', T0 - 240 * HOUR_MS, HOUR_MS, 241);
    // c: daily, days -400..-30 (the sensor went quiet 30 days ago), 100 days. Its reference is its newest reading + 1 h slack,
    // not now: cutoff T0 - 30 d + 1 h - 100 d = T0 - 130 d + 1 h. Days -400..-130 go (271 rows), days -129..-30 stay (100 rows).
    fill(readings, 'c', T0 - 400 * DAY_MS, DAY_MS, 371);

    const job = new RetentionJob(db, policy({ perSeries: { b: 7, c: 100 } }), { clock: () => T0, monotonic: still });
    const report = await job.run();

    assert.equal(countOf(db, 'a'), 366);
    assert.equal(timestamps(db, 'a')[0], T0 - 365 * DAY_MS);
    assert.equal(countOf(db, 'b'), 169);
    assert.equal(timestamps(db, 'b')[0], T0 - 168 * HOUR_MS);
    assert.equal(countOf(db, 'c'), 100);
    assert.equal(timestamps(db, 'c')[0], T0 - 129 * DAY_MS);
    assert.equal(timestamps(db, 'c').at(-1), T0 - 30 * DAY_MS);
    assert.equal(report.rowsDeleted, 35 + 72 + 271);
    assert.equal(report.rowsDeletedByAge, report.rowsDeleted);
    assert.equal(report.rowsDeletedForSize, 0);
    assert.deepEqual(report.heldBackSeries, ['c']);
    assert.equal(job.lastRun, report);

    // A second run finds nothing more to delete.
    assert.equal((await job.run()).rowsDeleted, 0);
    db.close();
  });

  it('does not wipe data when the clock is a year ahead of the newest reading', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 300 * DAY_MS, DAY_MS, 301);
    fill(readings, 'b', T0 - 10 * DAY_MS, HOUR_MS, 241);
    // Trusting the clock would put the cutoffs at T0 + 1 d (a) and T0 + 359 d (b): everything would go.
    const job = new RetentionJob(db, policy({ perSeries: { b: 7 } }), { clock: () => T0 + 366 * DAY_MS, monotonic: still });
    const report = await job.run();

    assert.equal(countOf(db, 'a'), 301, 'all of a is within 365 days of its newest reading');
    // b's reference is its newest reading + 1 h slack: cutoff T0 + 1 h - 168 h = T0 - 167 h. Hours -240..-168 go (73 rows), -167..0 stay.
    assert.equal(countOf(db, 'b'), 168);
    assert.equal(timestamps(db, 'b')[0], T0 - 167 * HOUR_MS);
    assert.equal(report.rowsDeleted, 73);
    assert.deepEqual(report.heldBackSeries.sort(), ['a', 'b']);
    db.close();
  });

  it('keeps counting real elapsed time when the clock jumps ahead mid-run and new readings carry the jumped time', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 300 * DAY_MS, DAY_MS, 301);
    let wall = T0;
    let mono = 0;
    const job = new RetentionJob(db, policy(), { clock: () => wall, monotonic: () => mono });
    assert.equal((await job.run()).rowsDeleted, 0);

    // 15 minutes later the clock steps a year ahead, and a plain-number payload is stamped with the jumped time.
    mono += 15 * MINUTE_MS;
    wall = T0 + 365 * DAY_MS + 15 * MINUTE_MS;
    readings.insertMany([{ series: 'a', ts: wall, value: 1 }]);
    const report = await job.run();

    assert.equal(report.trustedNow, T0 + 15 * MINUTE_MS, 'the reference advanced by the monotonic 15 minutes only');
    assert.equal(report.rowsDeleted, 0);
    assert.equal(countOf(db, 'a'), 302);

    // A clock that goes back again is followed at once: backwards only ever deletes less.
    mono += 15 * MINUTE_MS;
    wall = T0 + 20 * MINUTE_MS;
    assert.equal((await job.run()).trustedNow, T0 + 20 * MINUTE_MS);
    db.close();
  });

  it('follows a wall clock that advances with the monotonic clock, and deletes what ages out', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 2 * DAY_MS, HOUR_MS, 49); // hours -48..0
    let wall = T0;
    let mono = 0;
    const job = new RetentionJob(db, policy({ defaultDays: 1 }), { clock: () => wall, monotonic: () => mono });
    assert.equal((await job.run()).rowsDeleted, 24, 'hours -48..-25 are older than 1 day');
    // Ten hours pass on both clocks, and the sensor reports every hour.
    wall += 10 * HOUR_MS;
    mono += 10 * HOUR_MS;
    fill(readings, 'a', T0 + HOUR_MS, HOUR_MS, 10);
    const report = await job.run();
    assert.equal(report.trustedNow, wall);
    assert.equal(report.rowsDeleted, 10, 'hours -24..-15 aged out');
    assert.equal(timestamps(db, 'a')[0], T0 - 14 * HOUR_MS);
    db.close();
  });
});

describe('retention batches', () => {
  /** Records the rows each transaction changed, by wrapping db.transaction (the job must be built after this). */
  function spyOnTransactions(db: Db): number[] {
    const changesPerTransaction: number[] = [];
    const totalChanges = db.prepare('SELECT total_changes()').pluck();
    const original = db.transaction.bind(db);
    const spy = (fn: (...args: never[]) => unknown) =>
      original((...args: never[]) => {
        const before = totalChanges.get() as number;
        const result = fn(...args);
        changesPerTransaction.push((totalChanges.get() as number) - before);
        return result;
      });
    (db as unknown as { transaction: unknown }).transaction = spy;
    return changesPerTransaction;
  }

  it('never deletes more than the batch size in one transaction, and yields to the event loop between batches', async () => {
    const { db, readings } = freshStore(scratch.dir);
    // Two series of 1 000 hourly readings, hours -999..0; 20 days = 480 h: hours -999..-481 go, 519 rows each.
    fill(readings, 'a', T0 - 999 * HOUR_MS, HOUR_MS, 1000);
    fill(readings, 'b', T0 - 999 * HOUR_MS, HOUR_MS, 1000);
    const changes = spyOnTransactions(db);
    const reported: number[] = [];
    const job = new RetentionJob(db, policy({ defaultDays: 20 }), {
      batchSize: 64,
      clock: () => T0,
      monotonic: still,
      onBatch: (batch) => reported.push(batch.rows),
    });

    let turns = 0;
    let done = false;
    const spin = () => {
      if (done) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const report = await job.run();
    done = true;

    assert.equal(report.rowsDeleted, 2 * 519);
    assert.equal(countOf(db, 'a'), 481);
    assert.equal(countOf(db, 'b'), 481);
    assert.ok(changes.length >= Math.ceil(1038 / 64), `${changes.length} transactions`);
    assert.ok(Math.max(...changes) <= 64, `largest transaction deleted ${Math.max(...changes)} rows`);
    assert.equal(
      changes.reduce((sum, rows) => sum + rows, 0),
      1038,
    );
    assert.deepEqual(reported, changes);
    assert.equal(report.batches, changes.length);
    assert.equal(report.largestBatchRows, 64);
    assert.ok(report.longestBatchMs > 0 && report.longestBatchMs <= report.durationMs);
    assert.ok(turns >= report.batches - 1, `the event loop turned ${turns} times during ${report.batches} batches`);
    db.close();
  });

  it('measures the longest batch of a large delete', async (t) => {
    const { db, readings } = freshStore(scratch.dir);
    // 3 series × 100 000 minutely readings (69.4 days); a 30-day retention deletes 3 × 56 800 rows.
    for (const series of ['a', 'b', 'c']) fill(readings, series, T0 - 99_999 * MINUTE_MS, MINUTE_MS, 100_000);
    const job = new RetentionJob(db, policy({ defaultDays: 30 }), { clock: () => T0, monotonic: still });
    const report = await job.run();
    // Minutes -99 999..-43 201 are older than 30 d = 43 200 min: 56 799 per series.
    assert.equal(report.rowsDeleted, 3 * 56_799);
    assert.equal(report.largestBatchRows, 1000);
    assert.equal(report.batches, Math.ceil((3 * 56_799) / 1000));
    // Generous bound: a 1 000-row delete takes about a millisecond on a PC; this only catches a runaway batch.
    assert.ok(report.longestBatchMs < 500, `longest batch ${report.longestBatchMs} ms`);
    t.diagnostic(
      `deleted ${report.rowsDeleted} rows in ${report.batches} batches, ${report.durationMs.toFixed(0)} ms; longest batch ${report.longestBatchMs.toFixed(2)} ms`,
    );
    db.close();
  });

  it('stops at the next batch when asked, and refuses to run afterwards', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 9_999 * MINUTE_MS, MINUTE_MS, 10_000);
    const job = new RetentionJob(db, policy({ defaultDays: 1 }), { batchSize: 100, clock: () => T0, monotonic: still });
    const running = job.run();
    await job.stop();
    const report = await running;
    assert.equal(report.aborted, true);
    // A full run would delete minutes -9 999..-1 441: 8 559 rows.
    assert.ok(report.rowsDeleted < 8_559, `deleted ${report.rowsDeleted}`);
    assert.equal(countOf(db, 'a'), 10_000 - report.rowsDeleted);
    await assert.rejects(job.run(), /stopped/);
    db.close();
  });
});

describe('retention size cap', () => {
  const STEP = MINUTE_MS;
  const ROWS = 40_000;
  const FIRST = T0 - (ROWS - 1) * STEP;
  /**
   * Three series of 40 000 minutely readings, staggered so that the series created first holds the newest
   * readings: a ends at T0, b 20 000 minutes earlier, c 40 000 minutes earlier. The cap is 60 % of the data, so
   * about 48 000 readings go: c's oldest 20 000 alone, then c and b side by side (about 14 000 each), all older
   * than a's oldest reading. Deleting by series id, or a whole series at a time, would take a's newest readings first.
   */
  const LAYOUT = [
    { series: 'a', last: T0 },
    { series: 'b', last: T0 - 20_000 * STEP },
    { series: 'c', last: T0 - 40_000 * STEP },
  ];

  function capped(sliceMs?: number) {
    const { db, readings } = freshStore(scratch.dir);
    for (const { series, last } of LAYOUT) fill(readings, series, last - (ROWS - 1) * STEP, STEP, ROWS);
    const before = new RetentionJob(db, policy()).liveBytes();
    const capMb = (before * 0.6) / 1_000_000;
    const job = new RetentionJob(db, policy({ maxDatabaseMb: capMb }), { clock: () => T0, monotonic: still, sizeCapSliceMs: sliceMs });
    return { db, job, before, capBytes: capMb * 1_000_000 };
  }

  /**
   * Checks that each series lost only a prefix (its oldest readings) and returns how far apart, in ms, the newest
   * deleted reading and the oldest kept reading of all series are: ≤ 0 means strictly oldest first.
   */
  function oldestFirstError(db: Db): number {
    let newestDeleted = -Infinity;
    let oldestKept = Infinity;
    for (const { series, last } of LAYOUT) {
      const kept = timestamps(db, series);
      const first = last - (ROWS - 1) * STEP;
      if (kept.length > 0) {
        assert.equal(kept.at(-1), last, `${series} kept its newest reading`);
        assert.equal(kept.length, (last - kept[0]) / STEP + 1, `${series} kept a contiguous run of its newest readings`);
        oldestKept = Math.min(oldestKept, kept[0]);
      }
      const deleted = ROWS - kept.length;
      if (deleted > 0) newestDeleted = Math.max(newestDeleted, first + (deleted - 1) * STEP);
    }
    assert.ok(Number.isFinite(newestDeleted) && Number.isFinite(oldestKept), 'some readings were deleted and some kept');
    return newestDeleted - oldestKept;
  }

  it('deletes the oldest readings of all series until the data is under the cap', async () => {
    const { db, job, before, capBytes } = capped(1);
    const report = await job.run();
    const after = job.liveBytes();

    assert.ok(after <= capBytes, `${after} bytes > cap ${capBytes}`);
    assert.ok(after >= capBytes * 0.9, `deleted far more than needed: ${after} bytes left under a cap of ${capBytes}`);
    assert.equal(report.underSizeCap, true);
    assert.equal(report.databaseBytesBefore, before);
    assert.equal(report.databaseBytesAfter, after);
    assert.equal(report.rowsDeletedByAge, 0);
    assert.ok(report.rowsDeletedForSize > 40_000 && report.rowsDeletedForSize < 50_000, `${report.rowsDeletedForSize} rows deleted`);
    // Past c's first 20 000, b and c lose readings minute for minute.
    assert.ok(Math.abs(ROWS - countOf(db, 'b') - (ROWS - countOf(db, 'c') - 20_000)) <= 1);
    assert.ok(report.largestBatchRows <= 1000);
    assert.equal(countOf(db, 'a'), ROWS, 'the newest series was not touched');
    // With a 1 ms slice, oldest first is exact: nothing deleted is newer than anything kept.
    assert.ok(oldestFirstError(db) <= 0);
    db.close();
  });

  it('is oldest first to within the slice with the default 1 h slice', async () => {
    const { db, job, capBytes } = capped();
    await job.run();
    assert.ok(job.liveBytes() <= capBytes);
    assert.equal(countOf(db, 'a'), ROWS);
    assert.ok(oldestFirstError(db) < HOUR_MS);
    db.close();
  });

  it('ends, with every reading gone, when the cap is below the size of an empty database', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', FIRST, STEP, 5_000);
    const job = new RetentionJob(db, policy({ maxDatabaseMb: 0.001 }), { clock: () => T0, monotonic: still });
    const report = await job.run();
    assert.equal(countOf(db, 'a'), 0);
    assert.equal(report.rowsDeletedForSize, 5_000);
    assert.equal(report.underSizeCap, false);
    db.close();
  });

  it('does nothing for size when no cap is set', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', FIRST, STEP, 5_000);
    const report = await new RetentionJob(db, policy(), { clock: () => T0, monotonic: still }).run();
    assert.equal(report.rowsDeleted, 0);
    assert.equal(countOf(db, 'a'), 5_000);
    db.close();
  });
});

describe('retention and the file size', () => {
  const pragma = (db: Db, name: string) => db.pragma(name, { simple: true }) as number;

  it('leaves the file size alone with auto_vacuum NONE (the default): freed pages go to the freelist for reuse', async () => {
    const { db, readings } = freshStore(scratch.dir);
    fill(readings, 'a', T0 - 99_999 * MINUTE_MS, MINUTE_MS, 100_000);
    const pagesBefore = pragma(db, 'page_count');
    const report = await new RetentionJob(db, policy({ defaultDays: 7 }), { clock: () => T0, monotonic: still }).run();
    assert.equal(pragma(db, 'auto_vacuum'), 0);
    assert.equal(report.vacuumedPages, 0);
    assert.equal(pragma(db, 'page_count'), pagesBefore);
    assert.ok(pragma(db, 'freelist_count') > 100, 'the deleted readings freed pages');
    assert.ok(report.databaseBytesAfter < report.databaseBytesBefore / 2, 'the live size counts without the free pages');

    // New readings reuse the free pages before the file grows.
    fill(readings, 'b', T0, MINUTE_MS, 20_000);
    assert.equal(pragma(db, 'page_count'), pagesBefore);
    db.close();
  });

  it('returns freed pages to the file system when the database uses auto_vacuum INCREMENTAL', async () => {
    const { db, readings } = freshStore(scratch.dir);
    db.pragma('auto_vacuum = INCREMENTAL');
    db.exec('VACUUM'); // auto_vacuum changes from NONE only through a VACUUM
    assert.equal(pragma(db, 'auto_vacuum'), 2);
    fill(readings, 'a', T0 - 99_999 * MINUTE_MS, MINUTE_MS, 100_000);
    const pagesBefore = pragma(db, 'page_count');
    const report = await new RetentionJob(db, policy({ defaultDays: 7 }), { clock: () => T0, monotonic: still, vacuumStepPages: 64 }).run();
    assert.ok(report.vacuumedPages > 100, `vacuumed ${report.vacuumedPages} pages`);
    assert.equal(pragma(db, 'freelist_count'), 0);
    // Truncating the file can drop pointer-map pages too, so the file shrinks by at least the vacuumed pages.
    assert.ok(pragma(db, 'page_count') <= pagesBefore - report.vacuumedPages);
    db.close();
  });
});
