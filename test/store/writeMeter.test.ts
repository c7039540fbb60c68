import assert from 'node:assert/strict';
import { closeSync, fsyncSync, openSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { WriteMeter, readProcessWriteBytes } from '../../src/store/writeMeter.js';
import { scratchDir } from './fixtures.js';

const scratch = scratchDir('forecastd-writemeter-');
after(scratch.remove);

const MINUTE_MS = 60_000;
const TMPFS_MAGIC = 0x01021994;

describe('readProcessWriteBytes', () => {
  it('reads write_bytes from an io file', () => {
    const path = join(scratch.dir, 'io');
    writeFileSync(path, 'rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 123456\ncancelled_write_bytes: 0\n');
    assert.equal(readProcessWriteBytes(path), 123456);
  });

  it('gives null when the file is missing or has no write_bytes line', () => {
    assert.equal(readProcessWriteBytes(join(scratch.dir, 'missing')), null);
    const path = join(scratch.dir, 'io-without');
    writeFileSync(path, 'rchar: 10\ncancelled_write_bytes: 7\n');
    assert.equal(readProcessWriteBytes(path), null);
  });
});

describe('WriteMeter', () => {
  it('reports the total and the rate over the last hour, on the monotonic clock', () => {
    let bytes = 0;
    let now = 0;
    const meter = new WriteMeter({ read: () => bytes, now: () => now });
    assert.equal(meter.metrics(), null);
    assert.deepEqual(meter.sample(), { bytesWrittenTotal: 0, bytesPerHour: 0 });
    now = 30 * MINUTE_MS;
    bytes = 1000;
    // 1 000 bytes in half an hour: 2 000 per hour.
    assert.deepEqual(meter.sample(), { bytesWrittenTotal: 1000, bytesPerHour: 2000 });
    now = 60 * MINUTE_MS;
    bytes = 2000;
    assert.deepEqual(meter.sample(), { bytesWrittenTotal: 2000, bytesPerHour: 2000 });
    now = 90 * MINUTE_MS;
    bytes = 5000;
    // The window is the last hour: from the sample at 30 min (1 000) to 90 min (5 000).
    assert.deepEqual(meter.sample(), { bytesWrittenTotal: 5000, bytesPerHour: 4000 });
    now = 150 * MINUTE_MS;
    // Nothing written for an hour: the rate drops to 0 once the window has moved past the last write.
    assert.deepEqual(meter.sample(), { bytesWrittenTotal: 5000, bytesPerHour: 0 });
  });

  it('reports null where the counter cannot be read', () => {
    const meter = new WriteMeter({ read: () => null });
    assert.equal(meter.sample(), null);
    assert.equal(meter.metrics(), null);
  });

  it('counts a file written with fsync by this process', (t) => {
    if (readProcessWriteBytes() === null) return t.skip('/proc/self/io is not readable here');
    if (statfsSync(scratch.dir).type === TMPFS_MAGIC) return t.skip('the scratch directory is on tmpfs, which does no block I/O');
    const meter = new WriteMeter();
    const before = meter.sample()!;
    const fd = openSync(join(scratch.dir, 'payload.bin'), 'w');
    writeSync(fd, Buffer.alloc(1 << 20, 0x5a));
    fsyncSync(fd);
    closeSync(fd);
    const afterWrite = meter.sample()!;
    assert.ok(
      afterWrite.bytesWrittenTotal - before.bytesWrittenTotal >= 1 << 20,
      `${afterWrite.bytesWrittenTotal - before.bytesWrittenTotal} bytes counted`,
    );
    assert.ok(afterWrite.bytesPerHour > 0);
  });
});
