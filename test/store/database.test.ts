import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { T0, MINUTE_MS, countOf, fill, freshStore, scratchDir } from './fixtures.js';

const scratch = scratchDir('forecastd-database-');
after(scratch.remove);

/** A closed database of 20 000 readings (the WAL checkpointed into the file by close()). */
function closedDatabase(name: string): string {
  const { db, readings, path } = freshStore(scratch.dir, name);
  fill(readings, 'a', T0, MINUTE_MS, 20_000);
  db.close();
  assert.equal(existsSync(`${path}-wal`), false);
  return path;
}

function overwrite(path: string, offset: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, offset);
  closeSync(fd);
}

function quarantinedFiles(name: string): string[] {
  return readdirSync(scratch.dir).filter((file) => file.startsWith(`${name}.corrupt-`));
}

describe('openDatabase on a corrupt file', () => {
  for (const [damage, corrupt] of [
    ['a zeroed header', (path: string) => overwrite(path, 0, Buffer.alloc(100))],
    [
      'a page of garbage in the middle',
      (path: string) => {
        const pages = statSync(path).size / 4096;
        overwrite(path, Math.floor(pages / 2) * 4096, Buffer.alloc(4096, 0xa5));
      },
    ],
  ] as const) {
    it(`quarantines a file with ${damage} and starts an empty database that takes readings`, () => {
      const name = `corrupt-${damage.replace(/\W+/g, '-')}.db`;
      const path = closedDatabase(name);
      corrupt(path);
      const before = Date.now();
      const { db, quarantined } = openDatabase({ path, synchronous: 'NORMAL' });
      try {
        assert.ok(quarantined, 'the corruption was detected');
        assert.ok(existsSync(quarantined), `${quarantined} exists`);
        assert.match(quarantined, /\.corrupt-\d+$/);
        assert.ok(Number(quarantined.split('.corrupt-')[1]) >= before);
        assert.deepEqual(quarantinedFiles(name), [quarantined.split('/').at(-1)]);
        const readings = new ReadingStore(db);
        assert.equal(readings.count(), 0);
        assert.equal(readings.insertMany([{ series: 'a', ts: T0, value: 1.5 }]), 1);
        assert.deepEqual(readings.latest('a'), { ts: T0, value: 1.5 });
      } finally {
        db.close();
      }
    });
  }

  it('opens a healthy file as it is', () => {
    const path = closedDatabase('healthy.db');
    const { db, quarantined } = openDatabase({ path, synchronous: 'NORMAL' });
    assert.equal(quarantined, null);
    assert.equal(countOf(db, 'a'), 20_000);
    assert.deepEqual(quarantinedFiles('healthy.db'), []);
    db.close();
  });
});

describe('readings table', () => {
  it('stores a reading delivered twice once, keeping the first value', () => {
    const { db, readings } = freshStore(scratch.dir);
    assert.equal(readings.insertMany([{ series: 's', ts: T0, value: 1 }]), 1);
    assert.equal(readings.insertMany([{ series: 's', ts: T0, value: 2 }]), 0);
    assert.equal(
      readings.insertMany([
        { series: 's', ts: T0, value: 1 },
        { series: 's', ts: T0 + 1, value: 3 },
      ]),
      1,
    );
    assert.equal(countOf(db, 's'), 2);
    assert.deepEqual(readings.read('s', T0, T0 + 2).values, new Float64Array([1, 3]));
    db.close();
  });

  for (const value of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, 1.0000001e15, -1.0000001e15]) {
    it(`rejects ${value}, and the whole transaction with it`, () => {
      const { db, readings } = freshStore(scratch.dir);
      assert.throws(
        () =>
          readings.insertMany([
            { series: 's', ts: T0, value: 1 },
            { series: 's', ts: T0 + 1, value },
          ]),
        (error: Error & { code?: string }) => /^SQLITE_CONSTRAINT_(CHECK|NOTNULL)$/.test(error.code ?? ''),
      );
      assert.equal(readings.count(), 0);
      db.close();
    });
  }

  it('accepts the limits of the CHECK', () => {
    const { db, readings } = freshStore(scratch.dir);
    assert.equal(
      readings.insertMany([
        { series: 's', ts: T0, value: 1e15 },
        { series: 's', ts: T0 + 1, value: -1e15 },
      ]),
      2,
    );
    db.close();
  });
});
