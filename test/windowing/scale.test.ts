import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fitScaler, scaleMatrix, unscale, unscaleArray } from '../../src/windowing/scale.js';
import { assertClose, assertCloseArray } from './close.js';

// Row-major [5 rows, 2 features]; rows 0..2 are the training part, rows 3..4 validation.
function matrixWithValidationRows(row3: [number, number], row4: [number, number]): Float64Array {
  return Float64Array.from([1, 10, 3, NaN, 5, 30, ...row3, ...row4]);
}

describe('fitScaler', () => {
  // Feature 0 over rows 0..2: 1, 3, 5 -> mean 3; population variance (4 + 0 + 4)/3 = 8/3.
  // Feature 1 over rows 0..2: 10, NaN, 30 -> NaN ignored -> mean 20; variance (100 + 100)/2 = 100 -> std 10.
  it('uses only rows before fitRows and ignores NaN', () => {
    const stats = fitScaler(matrixWithValidationRows([100, 1000], [-7, 5]), 5, 2, 3);
    assertClose(stats.mean[0], 3);
    assertClose(stats.std[0], Math.sqrt(8 / 3));
    assertClose(stats.mean[1], 20);
    assertClose(stats.std[1], 10);
  });

  it('does not change when the validation rows change', () => {
    const a = fitScaler(matrixWithValidationRows([100, 1000], [-7, 5]), 5, 2, 3);
    const b = fitScaler(matrixWithValidationRows([-1e6, NaN], [42, 1e9]), 5, 2, 3);
    assert.deepEqual(a, b);
    // ...whereas fitting on all rows would see them (guards against fitRows being ignored).
    const all = fitScaler(matrixWithValidationRows([-1e6, NaN], [42, 1e9]), 5, 2, 5);
    assert.notEqual(all.mean[0], a.mean[0]);
  });

  it('gives a constant feature std 1 and keeps its mean, so it scales to 0', () => {
    const stats = fitScaler(Float64Array.from([2, 2, 2, 9]), 4, 1, 3);
    assert.deepEqual(stats, { mean: [2], std: [1] });
    assertCloseArray(scaleMatrix(Float64Array.from([2, 2, 2, 9]), 4, 1, stats), [0, 0, 0, 7]);
  });

  it('gives a feature with no data mean 0 and std 1', () => {
    const stats = fitScaler(Float64Array.from([NaN, NaN, 5]), 3, 1, 2);
    assert.deepEqual(stats, { mean: [0], std: [1] });
  });

  it('rejects fitRows beyond the matrix', () => {
    assert.throws(() => fitScaler(Float64Array.from([1, 2]), 2, 1, 3), RangeError);
  });
});

describe('scaleMatrix / unscale', () => {
  const matrix = matrixWithValidationRows([100, 1000], [-7, 5]);
  const stats = fitScaler(matrix, 5, 2, 3);

  it('z-scores every cell with its feature stats into a Float32Array, keeping NaN', () => {
    const scaled = scaleMatrix(matrix, 5, 2, stats);
    assert.ok(scaled instanceof Float32Array);
    const s0 = Math.sqrt(8 / 3); // 1.632993
    assertCloseArray(
      scaled,
      [
        (1 - 3) / s0,
        (10 - 20) / 10, // -1.224745, -1
        (3 - 3) / s0,
        NaN, //  0,         NaN stays NaN
        (5 - 3) / s0,
        (30 - 20) / 10, //  1.224745,  1
        (100 - 3) / s0,
        (1000 - 20) / 10, // validation rows use the training stats: 59.399, 98
        (-7 - 3) / s0,
        (5 - 20) / 10, // -6.123724, -1.5
      ],
      1e-5,
    );
  });

  it('unscale maps a scaled value of a feature back to original units', () => {
    // 1 * 10 + 20 = 30; -1.5 * 10 + 20 = 5.
    assert.equal(unscale(1, stats, 1), 30);
    assert.equal(unscale(-1.5, stats, 1), 5);
  });

  it('unscaleArray maps a scaled forecast back to original units', () => {
    const original = unscaleArray(Float32Array.from([0, -1, 98]), stats, 1);
    assert.ok(original instanceof Float64Array);
    assertCloseArray(original, [20, 10, 1000], 1e-9);
  });

  it('round-trips scaled values of the target', () => {
    const scaled = scaleMatrix(matrix, 5, 2, stats);
    // Feature 0 of rows 0..4 is at cells 0, 2, 4, 6, 8.
    const targetColumn = Float32Array.from([scaled[0], scaled[2], scaled[4], scaled[6], scaled[8]]);
    assertCloseArray(unscaleArray(targetColumn, stats, 0), [1, 3, 5, 100, -7], 1e-4);
  });

  it('rejects a feature index the stats do not have', () => {
    assert.throws(() => unscale(1, stats, 2), RangeError);
  });
});
