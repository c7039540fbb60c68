import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { actualBuckets, liveAccuracy, type IssuedForecast } from '../../../src/model/evaluation/liveAccuracy.js';

const close = (actual: number | null, expected: number, tolerance = 1e-12) =>
  assert.ok(actual !== null && Math.abs(actual - expected) <= tolerance, `${actual} vs ${expected}`);

describe('liveAccuracy', () => {
  // Interval 10, actual bucket means: ts 0 → 10, 10 → 12, 20 → 14, 30 → unknown.
  const actuals = new Map([
    [0, 10],
    [10, 12],
    [20, 14],
  ]);
  const actual = (ts: number) => actuals.get(ts) ?? NaN;

  it('MAE per step and overall, leaving out points without an actual value', () => {
    const issued: IssuedForecast[] = [
      {
        issuedAtMs: 0,
        originMs: 0,
        points: [
          { ts: 0, value: 11 },
          { ts: 10, value: 15 },
        ],
      }, // errors 1, 3
      {
        issuedAtMs: 10,
        originMs: 10,
        points: [
          { ts: 10, value: 10 },
          { ts: 20, value: 14 },
        ],
      }, // errors 2, 0
      {
        issuedAtMs: 20,
        originMs: 20,
        points: [
          { ts: 20, value: 20 },
          { ts: 30, value: 1 },
        ],
      }, // error 6, no actual
    ];
    const result = liveAccuracy(issued, actual);
    assert.equal(result.steps.length, 2);
    assert.equal(result.steps[0].count, 3);
    close(result.steps[0].mae, (1 + 2 + 6) / 3);
    assert.equal(result.steps[1].count, 2);
    close(result.steps[1].mae, (3 + 0) / 2);
    assert.equal(result.overall.count, 5);
    close(result.overall.mae, 12 / 5);
    assert.deepEqual(result.steps[0].coverage, {});
  });

  it('interval coverage per level present, bounds inclusive', () => {
    const issued: IssuedForecast[] = [
      // actual 10: inside 80 [9, 11], inside 95 [8, 12]
      { issuedAtMs: 0, originMs: 0, points: [{ ts: 0, value: 10, lower: { '80': 9, '95': 8 }, upper: { '80': 11, '95': 12 } }] },
      // actual 12: outside 80 [12.5, 13], inside 95 [12, 14] (on the bound)
      { issuedAtMs: 1, originMs: 0, points: [{ ts: 10, value: 13, lower: { '80': 12.5, '95': 12 }, upper: { '80': 13, '95': 14 } }] },
      // actual 14: only the 80% level, outside
      { issuedAtMs: 2, originMs: 0, points: [{ ts: 20, value: 10, lower: { '80': 9 }, upper: { '80': 11 } }] },
      // no interval at all: counted in MAE only
      { issuedAtMs: 3, originMs: 0, points: [{ ts: 20, value: 14 }] },
    ];
    const result = liveAccuracy(issued, actual);
    assert.equal(result.steps[0].count, 4);
    close(result.steps[0].coverage['80'], 1 / 3);
    close(result.steps[0].coverage['95'], 1);
    assert.deepEqual(Object.keys(result.steps[0].coverage), ['80', '95']);
    close(result.overall.mae, (0 + 1 + 4 + 0) / 4);
  });

  it('no issued forecasts: no steps, no MAE', () => {
    const result = liveAccuracy([], actual);
    assert.deepEqual(result, { steps: [], overall: { count: 0, mae: null, coverage: {} } });
  });

  it('actualBuckets: the bucket means by bucket start, NaN elsewhere', () => {
    const lookup = actualBuckets({ timestampsMs: new Float64Array([0, 5, 12, 35]), values: new Float64Array([1, 3, 7, 9]) }, 0, 10, 3);
    assert.equal(lookup(0), 2);
    assert.equal(lookup(10), 7);
    assert.ok(Number.isNaN(lookup(20)));
    assert.ok(Number.isNaN(lookup(30)), 'outside the grid');
    assert.ok(Number.isNaN(lookup(5)), 'not a bucket start');
  });
});
