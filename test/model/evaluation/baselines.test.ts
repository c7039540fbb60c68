import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fitLinear,
  linearAt,
  persistenceAt,
  seasonalNaiveAt,
  seasonalNaiveAvailable,
  seasonalSourceRow,
  solveSymmetricPositive,
} from '../../../src/model/evaluation/baselines.js';
import { autocorrelation, dailySeason, detectSeason, resolveSeason } from '../../../src/model/evaluation/season.js';
import { seededRandom } from '../../../src/model/random.js';

const prng = seededRandom;

const series = (count: number, at: (t: number) => number) => Float64Array.from({ length: count }, (_, t) => at(t));

describe('persistence', () => {
  it('repeats the value just before the origin at every step', () => {
    const out = new Float64Array(4);
    assert.equal(persistenceAt([1, 2, 3, 4, 5], 3, 4, out), true);
    assert.deepEqual(Array.from(out), [3, 3, 3, 3]);
  });

  it('cannot forecast from a missing last value or from the first row', () => {
    const out = new Float64Array(2);
    assert.equal(persistenceAt([1, NaN, 3], 2, 2, out), false);
    assert.equal(persistenceAt([1, 2, 3], 0, 2, out), false);
  });
});

describe('seasonal naive', () => {
  it('copies the same phase of the last complete season, also beyond one season ahead', () => {
    const y = series(20, (t) => 100 + t); // the value names its row
    const out = new Float64Array(10);
    assert.equal(seasonalNaiveAt(y, 12, 10, 4, out), true);
    // Steps 0-3 copy rows 8-11, steps 4-7 the same rows again (the last full season), steps 8-9 rows 8-9.
    assert.deepEqual(Array.from(out), [108, 109, 110, 111, 108, 109, 110, 111, 108, 109]);
    for (let step = 0; step < 10; step++) assert.ok(seasonalSourceRow(12, step, 4) < 12, 'never a row at or after the origin');
  });

  it('is unavailable when the season reaches before the grid or onto a missing value', () => {
    const y = series(20, (t) => t);
    assert.equal(seasonalNaiveAvailable(y, 3, 2, 4), false);
    assert.equal(seasonalNaiveAvailable(y, 4, 2, 4), true);
    y[5] = NaN;
    assert.equal(seasonalNaiveAvailable(y, 9, 2, 4), false);
    assert.equal(seasonalNaiveAt(y, 9, 2, 4, new Float64Array(2)), false);
  });
});

describe('linear baseline (NLinear, ridge least squares)', () => {
  it('solves a small symmetric positive definite system exactly', () => {
    // A = [[4, 2], [2, 3]], B = A · [[1, -1], [2, 0.5]]
    const a = Float64Array.from([4, 2, 2, 3]);
    const x = [1, -1, 2, 0.5];
    const b = Float64Array.from([4 * x[0] + 2 * x[2], 4 * x[1] + 2 * x[3], 2 * x[0] + 3 * x[2], 2 * x[1] + 3 * x[3]]);
    const solved = solveSymmetricPositive(a, b, 2, 2)!;
    solved.forEach((value, index) => assert.ok(Math.abs(value - x[index]) < 1e-12, `${value} vs ${x[index]}`));
    assert.equal(solveSymmetricPositive(Float64Array.from([1, 2, 2, 1]), Float64Array.from([1, 1]), 2, 1), null, 'not positive definite');
  });

  it('forecasts a trend plus a cycle (a linear recurrence whose coefficients sum to 1) almost exactly, at every step', () => {
    const signal = (t: number) => 3 + 0.05 * t + 2 * Math.sin((2 * Math.PI * t) / 12);
    const y = series(400, signal);
    const trainOrigins = Int32Array.from({ length: 280 }, (_, i) => 20 + i);
    const model = fitLinear(y, trainOrigins, { steps: 16, horizon: 6, ridge: 1e-8, scale: 1.5 })!;
    assert.ok(model);
    assert.equal(model.lags, 15, 'the last input is always 0 relative to itself: left out');
    assert.equal(model.trainWindows, 280);
    const out = new Float64Array(6);
    for (const origin of [320, 350, 390]) {
      assert.equal(linearAt(model, y, origin, out), true);
      out.forEach((value, step) =>
        assert.ok(Math.abs(value - signal(origin + step)) < 1e-3, `origin ${origin} step ${step}: ${value} vs ${signal(origin + step)}`),
      );
    }
  });

  it('on noise, a strong ridge shrinks towards persistence (zero change)', () => {
    const random = prng(3);
    const y = series(500, () => random());
    const origins = Int32Array.from({ length: 400 }, (_, i) => 40 + i);
    const strong = fitLinear(y, origins, { steps: 24, horizon: 3, ridge: 1e6, scale: 0.3 })!;
    const weak = fitLinear(y, origins, { steps: 24, horizon: 3, ridge: 1e-6, scale: 0.3 })!;
    const norm = (weights: number[]) => Math.sqrt(weights.reduce((sum, w) => sum + w * w, 0));
    assert.ok(norm(strong.weights) < norm(weak.weights) / 100, `${norm(strong.weights)} vs ${norm(weak.weights)}`);
    assert.ok(strong.lambda > weak.lambda);
  });

  it('skips windows with a missing value and gives up with fewer windows than inputs', () => {
    const y = series(100, (t) => Math.sin(t / 3));
    y[50] = NaN;
    const model = fitLinear(
      y,
      Int32Array.from({ length: 80 }, (_, i) => 10 + i),
      { steps: 8, horizon: 2, ridge: 1e-3, scale: 1 },
    )!;
    // Origins whose inputs [o-8, o) or targets [o, o+2) touch row 50 are left out: o in [49, 58].
    assert.equal(model.trainWindows, 80 - 10);
    assert.equal(fitLinear(y, Int32Array.from([10, 11, 12]), { steps: 8, horizon: 2, ridge: 1e-3, scale: 1 }), null);
    assert.equal(linearAt(model, y, 55, new Float64Array(2)), false, 'no forecast from a window with a hole');
  });
});

describe('season detection', () => {
  it('finds the period of a noisy daily cycle on a trend', () => {
    const random = prng(1);
    const y = series(24 * 20, (t) => 0.01 * t + Math.sin((2 * Math.PI * t) / 24) + 0.3 * (random() - 0.5));
    const found = detectSeason(y, 24 * 8);
    assert.ok(found);
    assert.equal(found.length, 24);
    assert.ok(found.acf > 0.5);
  });

  it('finds none in white noise or a random walk', () => {
    const random = prng(2);
    assert.equal(
      detectSeason(
        series(1000, () => random()),
        200,
      ),
      null,
    );
    let level = 0;
    assert.equal(
      detectSeason(
        series(1000, () => (level += random() - 0.5)),
        200,
      ),
      null,
    );
  });

  it('autocorrelation is 1 at lag 0 and skips missing values pairwise', () => {
    const y = series(200, (t) => Math.sin(t / 5));
    y[17] = NaN;
    const acf = autocorrelation(y, 10);
    assert.ok(Math.abs(acf[0] - 1) < 1e-12);
    assert.ok(acf.every(Number.isFinite));
  });

  it('config first, then detection, then one day when the interval divides it, else none', () => {
    const random = prng(4);
    const noise = series(500, () => random());
    assert.deepEqual(resolveSeason(48, 900, noise), { length: 48, source: 'config' });
    assert.deepEqual(resolveSeason('auto', 900, noise), { length: 96, source: 'default' });
    assert.deepEqual(resolveSeason('auto', 7 * 3600, noise), { length: null, source: 'none' });
    const cycle = series(500, (t) => Math.sin((2 * Math.PI * t) / 10));
    assert.equal(resolveSeason('auto', 3600, cycle).source, 'detected');
    assert.equal(resolveSeason('auto', 3600, cycle).length, 10);
    assert.equal(dailySeason(600), 144);
    assert.equal(dailySeason(86_400), null, 'a daily grid has no daily season');
  });
});
