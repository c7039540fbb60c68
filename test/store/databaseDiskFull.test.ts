/**
 * openDatabase on a full disk (docs/reliability.md, F5): SQLite cannot size the -shm file, so the start-up quick_check throws
 * SQLITE_IOERR_SHMSIZE. That is the disk's trouble, not the file's: the database must not be quarantined as corrupt
 * (which would start forecastd on an empty history), and the error must say the disk is full.
 * Needs a tmpfs mount (root); skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DatabaseUnavailableError, openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { T0, MINUTE_MS, fill } from './fixtures.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'forecastd-db-full-'));
const mounted = process.platform === 'linux' && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]).status === 0;
after(() => {
  if (mounted && spawnSync('umount', [mountPoint]).status !== 0) spawnSync('umount', ['-l', mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

/** Takes all but `leaveBytes` of the tmpfs. */
function fillDisk(leaveBytes: number): string {
  const filler = join(mountPoint, 'filler');
  const stats = statfsSync(mountPoint);
  const result = spawnSync('fallocate', ['-l', String(stats.bavail * stats.bsize - leaveBytes), filler]);
  assert.equal(result.status, 0, `fallocate: ${result.stderr.toString()}`);
  return filler;
}

describe('openDatabase on a full disk', { skip: mounted ? false : 'cannot mount a tmpfs here (needs root)' }, () => {
  it('throws an error that names the full disk, leaves the database where it is, and opens it as it was once there is room', () => {
    const path = join(mountPoint, 'forecastd.db');
    const { db } = openDatabase({ path, synchronous: 'NORMAL' });
    fill(new ReadingStore(db), 'room.temp', T0, MINUTE_MS, 1_000);
    db.close();

    const filler = fillDisk(4096);
    const logged: Array<Record<string, unknown>> = [];
    const log = { error: (fields: Record<string, unknown>, msg: string) => logged.push({ ...fields, msg }) } as never;
    assert.throws(
      () => openDatabase({ path, synchronous: 'NORMAL', log }),
      (error: unknown) => {
        assert.ok(error instanceof DatabaseUnavailableError, `a DatabaseUnavailableError, not ${String(error)}`);
        assert.match(error.code, /^SQLITE_(IOERR|FULL)/);
        assert.match(
          error.message,
          /^cannot open the database .*forecastd\.db: .*the disk is full \(\d+ KiB free in .*\): free some space there\. The database file was left as it is/,
        );
        return true;
      },
    );
    assert.equal(logged.length, 1, 'one error line');
    assert.match(String(logged[0].msg), /the disk is full/);
    assert.deepEqual(
      readdirSync(mountPoint).filter((name) => name.includes('.corrupt-')),
      [],
      'nothing quarantined',
    );

    rmSync(filler);
    const reopened = openDatabase({ path, synchronous: 'NORMAL' });
    try {
      assert.equal(reopened.quarantined, null);
      assert.equal(new ReadingStore(reopened.db).count(), 1_000, 'the history is intact');
      assert.equal(reopened.db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      reopened.db.close();
    }
  });
});
