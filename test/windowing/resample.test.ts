import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alignDown, alignUp, resampleMean } from '../../src/windowing/resample.js';
import { assertCloseArray } from './close.js';

describe('alignDown / alignUp', () => {
  it('snap to epoch multiples of the interval', () => {
    assert.equal(alignDown(1_000_123, 1000), 1_000_000);
    assert.equal(alignUp(1_000_123, 1000), 1_001_000);
  });

  it('leave a timestamp already on the grid where it is', () => {
    assert.equal(alignDown(1_001_000, 1000), 1_001_000);
    assert.equal(alignUp(1_001_000, 1000), 1_001_000);
  });

  it('round toward earlier time for timestamps before the epoch', () => {
    assert.equal(alignDown(-1, 1000), -1000);
    assert.equal(alignUp(-1, 1000), 0);
  });

  it('reject a non-positive interval', () => {
    assert.throws(() => alignDown(5, 0), RangeError);
    assert.throws(() => alignUp(5, -10), RangeError);
  });
});

describe('resampleMean', () => {
  // Grid: start 10 000 ms, 1 000 ms buckets, 4 buckets:
  //   b0 [10000, 11000)  b1 [11000, 12000)  b2 [12000, 13000)  b3 [13000, 14000)
  const timestampsMs = Float64Array.from([11_500, 10_000, 10_999, 13_999, 14_000, 9_999, 11_000, 12_500, 13_200]);
  const values = Float64Array.from([4, 1, 3, 10, 99, -50, 6, NaN, NaN]);
  // b0: readings 1 (t=10000, start inclusive) and 3 (t=10999)   -> (1+3)/2 = 2
  // b1: readings 4 (t=11500) and 6 (t=11000, boundary -> b1)     -> (4+6)/2 = 5
  // b2: only a NaN reading (t=12500), which is ignored           -> NaN
  // b3: reading 10 (t=13999) and a NaN (t=13200) that must not poison the mean;
  //     t=14000 is the exclusive end                                -> 10
  // t=9999 (before the grid) and t=14000 (after) are ignored.

  it('averages unsorted readings per bucket, NaN for empty buckets', () => {
    const means = resampleMean(timestampsMs, values, 10_000, 1000, 4);
    assert.ok(means instanceof Float64Array);
    assertCloseArray(means, [2, 5, NaN, 10]);
  });

  it('ignores readings outside a shorter grid', () => {
    // Only b0 and b1 exist now; 10 at t=13999 falls outside.
    assertCloseArray(resampleMean(timestampsMs, values, 10_000, 1000, 2), [2, 5]);
  });

  it('gives all NaN when no reading falls in the grid', () => {
    assertCloseArray(resampleMean(timestampsMs, values, 100_000, 1000, 3), [NaN, NaN, NaN]);
  });

  it('rejects timestamps and values of different lengths', () => {
    assert.throws(() => resampleMean(Float64Array.from([1, 2]), Float64Array.from([1]), 0, 1000, 1), RangeError);
  });
});
