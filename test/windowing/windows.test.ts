import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cutWindows, lastWindow } from '../../src/windowing/windows.js';
import { assertCloseArray } from './close.js';

// 6 rows x 2 features; row r = [10*r (target), 100 + r (covariate)]:
//   row 0: [ 0, 100]   row 1: [10, 101]   row 2: [20, 102]
//   row 3: [30, 103]   row 4: [40, 104]   row 5: [50, 105]
function sampleMatrix(): Float32Array {
  const matrix = new Float32Array(12);
  for (let r = 0; r < 6; r++) {
    matrix[r * 2] = 10 * r;
    matrix[r * 2 + 1] = 100 + r;
  }
  return matrix;
}

const levels = { steps: 2, horizon: 2, targetFeature: 0, relativeToLast: false };

describe('cutWindows', () => {
  it('cuts every origin in [steps, rows - horizon] with inputs before and targets from the origin', () => {
    const set = cutWindows(sampleMatrix(), 6, 2, levels);
    // Origins 2, 3, 4 (6 - 2 = 4 is the last one whose targets fit).
    assert.equal(set.count, 3);
    assert.equal(set.steps, 2);
    assert.equal(set.features, 2);
    assert.equal(set.horizon, 2);
    assert.deepEqual(Array.from(set.originRows), [2, 3, 4]);
    assert.equal(set.inputs.length, 3 * 2 * 2);
    assert.equal(set.targets.length, 3 * 2);
    assertCloseArray(set.inputs, [
      0,
      100,
      10,
      101, // origin 2: rows 0, 1
      10,
      101,
      20,
      102, // origin 3: rows 1, 2
      20,
      102,
      30,
      103, // origin 4: rows 2, 3
    ]);
    assertCloseArray(set.targets, [
      20,
      30, // origin 2: target of rows 2, 3
      30,
      40, // origin 3: rows 3, 4
      40,
      50, // origin 4: rows 4, 5
    ]);
    assertCloseArray(set.anchors, [0, 0, 0]);
  });

  it('relativeToLast subtracts the last input target value from the target column and the targets', () => {
    const set = cutWindows(sampleMatrix(), 6, 2, { ...levels, relativeToLast: true });
    // Anchors: target of row origin-1 -> 10, 20, 30.
    assertCloseArray(set.anchors, [10, 20, 30]);
    // Covariate column unchanged; target column minus the anchor (last step becomes 0).
    assertCloseArray(set.inputs, [-10, 100, 0, 101, -10, 101, 0, 102, -10, 102, 0, 103]);
    // Targets minus anchor: 20-10, 30-10; 30-20, 40-20; 40-30, 50-30.
    assertCloseArray(set.targets, [10, 20, 10, 20, 10, 20]);
    // Adding anchors back gives the level targets.
    const levelsSet = cutWindows(sampleMatrix(), 6, 2, levels);
    for (let w = 0; w < set.count; w++) {
      for (let h = 0; h < 2; h++) {
        assert.equal(set.targets[w * 2 + h] + set.anchors[w], levelsSet.targets[w * 2 + h]);
      }
    }
  });

  it('skips windows with NaN anywhere in their input rows', () => {
    const matrix = sampleMatrix();
    matrix[1 * 2 + 1] = NaN; // covariate of row 1: in the inputs of origins 2 (rows 0,1) and 3 (rows 1,2)
    const set = cutWindows(matrix, 6, 2, levels);
    assert.deepEqual(Array.from(set.originRows), [4]);
    assertCloseArray(set.inputs, [20, 102, 30, 103]);
    assertCloseArray(set.targets, [40, 50]);
  });

  it('skips windows with NaN in their target values', () => {
    const matrix = sampleMatrix();
    matrix[5 * 2] = NaN; // target of row 5: a target of origin 4 only
    const set = cutWindows(matrix, 6, 2, levels);
    assert.deepEqual(Array.from(set.originRows), [2, 3]);
    assertCloseArray(set.targets, [20, 30, 30, 40]);
  });

  it('keeps windows whose only NaN is a covariate in a target row', () => {
    const matrix = sampleMatrix();
    matrix[5 * 2 + 1] = NaN; // covariate of row 5: never an input row (last input row is 3)
    assert.deepEqual(Array.from(cutWindows(matrix, 6, 2, levels).originRows), [2, 3, 4]);
  });

  it('restricts origins to [firstOrigin, lastOrigin], clamped to the valid range', () => {
    assert.deepEqual(Array.from(cutWindows(sampleMatrix(), 6, 2, { ...levels, firstOrigin: 3, lastOrigin: 3 }).originRows), [3]);
    assert.deepEqual(Array.from(cutWindows(sampleMatrix(), 6, 2, { ...levels, firstOrigin: 0, lastOrigin: 99 }).originRows), [2, 3, 4]);
  });

  it('gives an empty set when the matrix is shorter than steps + horizon', () => {
    // 3 rows: origins would be [2, 1] -> none.
    const set = cutWindows(sampleMatrix().subarray(0, 6), 3, 2, levels);
    assert.equal(set.count, 0);
    assert.equal(set.inputs.length, 0);
    assert.equal(set.targets.length, 0);
  });

  it('rejects a target feature outside the matrix', () => {
    assert.throws(() => cutWindows(sampleMatrix(), 6, 2, { ...levels, targetFeature: 2 }), RangeError);
  });
});

describe('lastWindow', () => {
  it('returns the final steps rows as one input', () => {
    const window = lastWindow(sampleMatrix(), 6, 2, 2, 0, false);
    assert.ok(window);
    assertCloseArray(window.input, [40, 104, 50, 105]); // rows 4, 5
    assert.equal(window.anchor, 0);
  });

  it('relativeToLast anchors on the last target value', () => {
    const window = lastWindow(sampleMatrix(), 6, 2, 2, 0, true);
    assert.ok(window);
    assert.equal(window.anchor, 50);
    assertCloseArray(window.input, [-10, 104, 0, 105]);
  });

  it('is null when any value in the final rows is NaN, or there are too few rows', () => {
    const matrix = sampleMatrix();
    matrix[4 * 2 + 1] = NaN;
    assert.equal(lastWindow(matrix, 6, 2, 2, 0, false), null);
    // A NaN before the final rows does not matter.
    assert.notEqual(lastWindow(matrix, 6, 2, 1, 0, false), null);
    assert.equal(lastWindow(sampleMatrix(), 6, 2, 7, 0, false), null);
  });
});
