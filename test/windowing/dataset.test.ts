import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildFeatureMatrix, prepareTrainingData } from '../../src/windowing/dataset.js';
import { unscale } from '../../src/windowing/scale.js';
import { assertClose, assertCloseArray } from './close.js';

const MINUTE_MS = 60_000;
// Wednesday 2024-01-17 06:00 local: hour-of-day angle π/2 at row 0 (sin 1, cos 0).
const gridStartMs = new Date(2024, 0, 17, 6).getTime();

describe('buildFeatureMatrix', () => {
  const built = buildFeatureMatrix({
    gridStartMs,
    intervalMs: MINUTE_MS,
    rows: 4,
    series: [
      {
        name: 'temperature',
        // Bucket 0: 1 and 3 -> 2; bucket 1 empty (gap of 1 <= maxGapSteps: (2 + 6)/2 = 4); bucket 2: 6; bucket 3: 8.
        timestampsMs: Float64Array.from([0, 30_000, 2 * MINUTE_MS, 3 * MINUTE_MS].map((t) => gridStartMs + t)),
        values: Float64Array.from([1, 3, 6, 8]),
      },
      {
        name: 'humidity',
        // Bucket 0: 50, bucket 3: 80; buckets 1..2 are a gap of 2 > maxGapSteps 1: NaN.
        timestampsMs: Float64Array.from([gridStartMs + 10_000, gridStartMs + 3 * MINUTE_MS + 10_000]),
        values: Float64Array.from([50, 80]),
      },
    ],
    calendar: ['hourOfDay'],
    maxGapSteps: 1,
  });

  it('names the series first (target at 0), then the calendar columns', () => {
    assert.deepEqual(built.names, ['temperature', 'humidity', 'hourOfDay_sin', 'hourOfDay_cos']);
    assert.equal(built.features, 4);
    assert.equal(built.rows, 4);
    assert.equal(built.matrix.length, 16);
  });

  it('lays out resampled, gap-filled series and calendar values row-major', () => {
    // Hour of day at row r is 6 + r/60: angle 2π(6 + r/60)/24.
    const angle = (r: number): number => (2 * Math.PI * (6 + r / 60)) / 24;
    assertCloseArray(
      built.matrix,
      [
        2,
        50,
        1,
        0, // angle π/2: sin 1, cos 0
        4,
        NaN,
        Math.sin(angle(1)),
        Math.cos(angle(1)),
        6,
        NaN,
        Math.sin(angle(2)),
        Math.cos(angle(2)),
        8,
        80,
        Math.sin(angle(3)),
        Math.cos(angle(3)),
      ],
      1e-12,
    );
  });
});

describe('prepareTrainingData', () => {
  // 10 one-minute rows, one reading per row. Training rows (validationFraction 0.2 -> splitRow 8)
  // hold 2, 4, ..., 16: mean 9; deviations ±1, ±3, ±5, ±7 -> variance (2*(1+9+25+49))/8 = 21.
  function input(validationValues: [number, number], relativeToLast: boolean) {
    const values = [2, 4, 6, 8, 10, 12, 14, 16, ...validationValues];
    return {
      gridStartMs,
      intervalMs: MINUTE_MS,
      rows: 10,
      series: [
        {
          name: 'temperature',
          timestampsMs: Float64Array.from(values.map((_, r) => gridStartMs + r * MINUTE_MS)),
          values: Float64Array.from(values),
        },
      ],
      calendar: ['hourOfDay'] as const,
      maxGapSteps: 0,
      steps: 2,
      horizon: 2,
      validationFraction: 0.2,
      relativeToLast,
    };
  }
  const sd = Math.sqrt(21);

  it('fits the scaler on the training rows only and leaves calendar columns unscaled', () => {
    const data = prepareTrainingData(input([100, 200], false));
    assert.equal(data.splitRow, 8);
    assert.equal(data.rows, 10);
    assert.deepEqual(data.names, ['temperature', 'hourOfDay_sin', 'hourOfDay_cos']);
    assertClose(data.scaler.mean[0], 9);
    assertClose(data.scaler.std[0], sd);
    assert.deepEqual(data.scaler.mean.slice(1), [0, 0]);
    assert.deepEqual(data.scaler.std.slice(1), [1, 1]);
  });

  it('gives the same scaler and training windows whatever the validation rows hold', () => {
    const a = prepareTrainingData(input([100, 200], false));
    const b = prepareTrainingData(input([-5, 3], false));
    assert.deepEqual(a.scaler, b.scaler);
    assert.deepEqual(a.train, b.train);
    assert.notDeepEqual(a.validation.targets, b.validation.targets);
  });

  it('windows the scaled matrix and splits it chronologically', () => {
    const data = prepareTrainingData(input([100, 200], false));
    // Origins 2..8. Train: origin + 2 <= 8 -> 2..6. Validation: origin >= 8 -> 8. Origin 7 straddles.
    assert.deepEqual(Array.from(data.train.originRows), [2, 3, 4, 5, 6]);
    assert.deepEqual(Array.from(data.validation.originRows), [8]);
    assert.equal(data.train.features, 3);
    // First training window, targets at rows 2, 3: (6 - 9)/sd, (8 - 9)/sd.
    assertCloseArray(data.train.targets.subarray(0, 2), [-3 / sd, -1 / sd], 1e-6);
    // Its inputs, rows 0 and 1: scaled temperature, then the unscaled calendar values.
    const angle1 = (2 * Math.PI * (6 + 1 / 60)) / 24;
    assertCloseArray(data.train.inputs.subarray(0, 6), [-7 / sd, 1, 0, -5 / sd, Math.sin(angle1), Math.cos(angle1)], 1e-6);
    // Validation targets at rows 8, 9 are scaled with the training stats: (100 - 9)/sd, (200 - 9)/sd.
    assertCloseArray(data.validation.targets, [91 / sd, 191 / sd], 1e-5);
  });

  it('with relativeToLast, targets are changes from the anchor and add back to the original values', () => {
    const data = prepareTrainingData(input([100, 200], true));
    // Origin 2: anchor = scaled row 1 = (4 - 9)/sd = -5/sd;
    // targets (6 - 9)/sd + 5/sd = 2/sd and (8 - 9)/sd + 5/sd = 4/sd.
    assertClose(data.train.anchors[0], -5 / sd, 1e-6);
    assertCloseArray(data.train.targets.subarray(0, 2), [2 / sd, 4 / sd], 1e-6);
    // Input target column: (2 - 9)/sd + 5/sd = -2/sd, then 0 at the last step.
    assert.ok(Math.abs(data.train.inputs[0] - -2 / sd) < 1e-6);
    assert.equal(data.train.inputs[3], 0);
    // Back to degrees: unscale(target + anchor) = 6 and 8.
    assertClose(unscale(data.train.targets[0] + data.train.anchors[0], data.scaler, 0), 6, 1e-4);
    assertClose(unscale(data.train.targets[1] + data.train.anchors[0], data.scaler, 0), 8, 1e-4);
  });
});
