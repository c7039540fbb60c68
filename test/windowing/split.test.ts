import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitRowFor, splitWindows, subsetWindows } from '../../src/windowing/split.js';
import { cutWindows } from '../../src/windowing/windows.js';
import { assertCloseArray } from './close.js';

describe('splitRowFor', () => {
  it('puts the last round(rows * fraction) rows in validation', () => {
    assert.equal(splitRowFor(10, 0.2), 8); // 10 - 2
    assert.equal(splitRowFor(10, 0.25), 7); // 10 - round(2.5) = 10 - 3
    assert.equal(splitRowFor(10, 0), 10); // no validation
  });

  it('rejects fractions that leave no training rows or make no sense', () => {
    assert.throws(() => splitRowFor(10, 1), RangeError);
    assert.throws(() => splitRowFor(10, -0.1), RangeError);
  });
});

describe('splitWindows', () => {
  // 10 rows, 1 feature, value = row index; steps 2, horizon 2 -> origins 2..8 (7 windows).
  const rows = 10;
  const matrix = Float32Array.from({ length: rows }, (_, r) => r);
  const set = cutWindows(matrix, rows, 1, { steps: 2, horizon: 2, targetFeature: 0, relativeToLast: false });

  it('keeps training targets before the split and drops straddling windows', () => {
    // splitRow 7: train needs origin + 2 <= 7 -> origins 2..5; validation needs origin >= 7 -> 7, 8.
    // Origin 6 has targets at rows 6 and 7 (straddles) and is dropped.
    const { train, validation } = splitWindows(set, 7);
    assert.deepEqual(Array.from(train.originRows), [2, 3, 4, 5]);
    assert.deepEqual(Array.from(validation.originRows), [7, 8]);
    assert.equal(train.count, 4);
    assert.equal(validation.count, 2);
    // No training target lies in the validation period (rows >= 7): largest is 6.
    assert.equal(Math.max(...train.targets), 6);
    // Validation windows keep inputs from before the split, as at inference.
    assertCloseArray(validation.inputs, [5, 6, 6, 7]);
    assertCloseArray(validation.targets, [7, 8, 8, 9]);
    assertCloseArray(train.inputs, [0, 1, 1, 2, 2, 3, 3, 4]);
    assertCloseArray(train.targets, [2, 3, 3, 4, 4, 5, 5, 6]);
  });

  it('puts everything in train when the split is at the end', () => {
    const { train, validation } = splitWindows(set, rows);
    assert.equal(train.count, 7);
    assert.equal(validation.count, 0);
  });
});

describe('subsetWindows', () => {
  const matrix = Float32Array.from({ length: 6 }, (_, r) => r);
  const set = cutWindows(matrix, 6, 1, { steps: 2, horizon: 2, targetFeature: 0, relativeToLast: true });
  // Origins 2, 3, 4; anchors 1, 2, 3; inputs relative [-1, 0] each; targets relative [1, 2] each.

  it('takes windows [from, to) with all their arrays', () => {
    const subset = subsetWindows(set, 1, 3);
    assert.equal(subset.count, 2);
    assert.deepEqual(Array.from(subset.originRows), [3, 4]);
    assertCloseArray(subset.anchors, [2, 3]);
    assertCloseArray(subset.inputs, [-1, 0, -1, 0]);
    assertCloseArray(subset.targets, [1, 2, 1, 2]);
    assert.equal(subset.steps, 2);
    assert.equal(subset.horizon, 2);
    assert.equal(subset.features, 1);
  });

  it('copies, so writing to a subset leaves the parent alone', () => {
    const subset = subsetWindows(set, 0, 1);
    subset.targets[0] = 999;
    subset.inputs[0] = 999;
    subset.anchors[0] = 999;
    assert.equal(set.targets[0], 1);
    assert.equal(set.inputs[0], -1);
    assert.equal(set.anchors[0], 1);
  });

  it('rejects a range outside the set', () => {
    assert.throws(() => subsetWindows(set, 2, 4), RangeError);
    assert.throws(() => subsetWindows(set, 2, 1), RangeError);
  });
});
