import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fillShortGaps } from '../../src/windowing/gaps.js';
import { assertCloseArray } from './close.js';

describe('fillShortGaps', () => {
  // index:                         0    1  2    3    4  5    6    7    8  9
  const grid = Float64Array.from([NaN, 1, NaN, NaN, 4, NaN, NaN, NaN, 8, NaN]);

  it('interpolates interior gaps up to maxGapSteps and leaves longer ones', () => {
    // Gap at 2..3 (length 2) between 1 and 4: 1 + 3*1/3 = 2, 1 + 3*2/3 = 3.
    // Gap at 5..7 (length 3) exceeds 2: stays NaN. Leading index 0 and trailing index 9 stay NaN.
    assertCloseArray(fillShortGaps(grid, 2), [NaN, 1, 2, 3, 4, NaN, NaN, NaN, 8, NaN]);
  });

  it('fills a gap exactly maxGapSteps long', () => {
    // Gap at 5..7 between 4 and 8: 4 + 4*1/4 = 5, 6, 7.
    assertCloseArray(fillShortGaps(grid, 3), [NaN, 1, 2, 3, 4, 5, 6, 7, 8, NaN]);
  });

  it('fills nothing with maxGapSteps 0', () => {
    assertCloseArray(fillShortGaps(grid, 0), grid);
  });

  it('interpolates fractional values', () => {
    // Between 0 and 1 over one missing step: 0.5.
    assertCloseArray(fillShortGaps(Float64Array.from([0, NaN, 1]), 1), [0, 0.5, 1]);
  });

  it('never extrapolates leading or trailing runs, however long maxGapSteps is', () => {
    assertCloseArray(fillShortGaps(Float64Array.from([NaN, NaN, 3, NaN]), Infinity), [NaN, NaN, 3, NaN]);
  });

  it('returns a new array and leaves its input untouched', () => {
    const input = Float64Array.from([1, NaN, 3]);
    const filled = fillShortGaps(input, 1);
    assert.notEqual(filled, input);
    assert.ok(Number.isNaN(input[1]));
    assert.equal(filled[1], 2);
  });
});
