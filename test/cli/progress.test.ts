/* eslint-disable no-control-regex -- ANSI escape sequences are what these tests look for */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Progress, progressFigures, renderBar, renderLine } from '../../src/cli/progress.js';
import { formatElapsed } from '../../src/time/duration.js';

function recorder(isTTY: boolean, columns = 100) {
  const writes: string[] = [];
  return { writes, sink: { isTTY, columns, write: (text: string) => writes.push(text) } };
}

describe('progress figures', () => {
  it('derives the share done, rows/s and the time left from elapsed time', () => {
    assert.deepEqual(progressFigures({ rows: 50_000, done: 250, total: 1000 }, 2), { fraction: 0.25, rowsPerSecond: 25_000, etaSeconds: 6 });
    assert.deepEqual(progressFigures({ rows: 10 }, 0), { fraction: null, rowsPerSecond: 0, etaSeconds: null }, 'no total: no share, no ETA');
  });

  it('writes durations the way people read them', () => {
    assert.deepEqual([formatElapsed(4.4), formatElapsed(185), formatElapsed(3720), formatElapsed(Number.NaN)], ['4s', '3m05s', '1h02m', '?']);
  });
});

describe('renderBar and renderLine', () => {
  it('draws a bar with the share, rows, rate and ETA, within the terminal width', () => {
    const line = renderBar('import a.csv', { rows: 20_000, done: 50, total: 100 }, 1, 80);
    assert.match(line, /^import a\.csv \[=+> +\] {2}50% {2}20000 rows {2}20000 rows\/s {2}ETA 1s$/);
    assert.ok(line.length <= 80, `${line.length} columns`);
    const bar = /\[(.*)\]/.exec(line)![1];
    assert.equal(bar.indexOf('>') + 1, Math.round(bar.length / 2), 'the arrow sits at the share done');
    assert.match(renderBar('import', { rows: 5, done: 1, total: 1 }, 2, 80, true), /\[=+\] 100% {2}5 rows {2}3 rows\/s {2}2s$/);
    assert.ok(renderBar('import a-very-long-file-name.csv', { rows: 1, done: 1, total: 2 }, 1, 30).length <= 30);
  });

  it('writes a plain line for logs', () => {
    assert.equal(renderLine('import a.csv', { rows: 3000, done: 1, total: 4 }, 1.5), 'import a.csv: 25% 3000 rows, 2000 rows/s, ETA 5s');
    assert.equal(renderLine('import -', { rows: 3000 }, 1.5), 'import -: 3000 rows, 2000 rows/s');
  });
});

describe('Progress', () => {
  it('on a terminal redraws one line in place, throttled, and ends it when finished', () => {
    let now = 0;
    const { writes, sink } = recorder(true);
    const progress = new Progress({ label: 'import', sink, now: () => now, redrawMs: 100 });
    now = 50;
    progress.update({ rows: 1, done: 1, total: 10 });
    assert.equal(writes.length, 0, 'not before redrawMs');
    now = 150;
    progress.update({ rows: 2, done: 2, total: 10 });
    now = 200;
    progress.update({ rows: 3, done: 3, total: 10 });
    assert.equal(writes.length, 1);
    assert.match(writes[0], /^\r.* 20% .*\x1b\[K$/);
    progress.finish({ rows: 10, done: 10, total: 10 });
    assert.match(writes[1], /^\r.*100% {2}10 rows .*\n$/);
  });

  it('elsewhere writes a plain line now and then, and nothing on finish', () => {
    let now = 0;
    const { writes, sink } = recorder(false);
    const progress = new Progress({ label: 'import', sink, now: () => now, lineEveryMs: 10_000 });
    for (now = 0; now <= 25_000; now += 500) progress.update({ rows: now, done: now, total: 100_000 });
    progress.finish();
    assert.equal(writes.length, 2);
    assert.ok(writes.every((text) => !text.includes('\r') && text.endsWith('\n')));
    assert.match(writes[0], /^import: 10% 10000 rows, 1000 rows\/s, ETA 1m30s\n$/);
  });

  it('draws nothing on a terminal for a job too short to need it', () => {
    const { writes, sink } = recorder(true);
    const progress = new Progress({ label: 'import', sink, now: () => 0 });
    progress.update({ rows: 1 });
    progress.finish();
    assert.deepEqual(writes, []);
  });
});
