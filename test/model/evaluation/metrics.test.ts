import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bestBaseline, decidePromotion, readinessOf, type Evaluation, type MethodEvaluation } from '../../../src/model/evaluation/index.js';
import { conformalQuantile, conformalWidths, intervalBounds, levelKey } from '../../../src/model/evaluation/conformal.js';
import { actualsAt, baselinePredictions, commonOrigins, scoreMethods } from '../../../src/model/evaluation/evaluate.js';
import { coverage, maseScaleFor, naiveScale, scoreForecasts } from '../../../src/model/evaluation/metrics.js';

const close = (actual: number, expected: number, tolerance = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} vs ${expected}`);

describe('scoreForecasts', () => {
  // Two windows, horizon 2: errors [1, -2] and [3, 0].
  const actual = [10, 10, 10, 10];
  const predicted = [11, 8, 13, 10];

  it('MAE, RMSE per step and overall, in original units', () => {
    const scores = scoreForecasts(actual, predicted, 2);
    assert.equal(scores.windows, 2);
    assert.deepEqual(scores.maeByStep, [2, 1]);
    close(scores.mae, 1.5);
    close(scores.rmse, Math.sqrt((1 + 4 + 9 + 0) / 4));
    assert.deepEqual(scores.rmseByStep, [Math.sqrt(5), Math.sqrt(2)]);
    assert.equal(scores.mase, null);
    assert.equal(scores.mseScaled, null);
  });

  it('MASE divides by the in-sample naive MAE; MSE on scaled values by the variance', () => {
    const scores = scoreForecasts(actual, predicted, 2, { maseScale: 0.5, targetStd: 2 });
    close(scores.mase!, 3);
    assert.deepEqual(scores.maseByStep, [4, 2]);
    close(scores.mseScaled!, 3.5 / 4);
  });

  it('refuses arrays that do not line up', () => {
    assert.throws(() => scoreForecasts([1, 2, 3], [1, 2], 1), RangeError);
    assert.throws(() => scoreForecasts([1, 2, 3], [1, 2, 3], 2), RangeError);
  });
});

describe('the MASE scale (Hyndman & Koehler): in-sample naive MAE on the training part', () => {
  it('mean |y[t] - y[t-lag]| over the rows given, skipping missing pairs', () => {
    const y = [1, 3, 2, NaN, 6, 5];
    close(naiveScale(y, 0, 6, 1)!, (2 + 1 + 1) / 3);
    close(naiveScale(y, 0, 3, 1)!, 1.5, 1e-12);
    close(naiveScale(y, 0, 6, 2)!, (1 + 4) / 2);
    assert.equal(naiveScale([4, 4, 4], 0, 3, 1), null, 'a constant series has no scale');
  });

  it('uses the season when it fits twice into the training rows, else lag 1', () => {
    const y = Array.from({ length: 40 }, (_, t) => (t % 10) + 0.1 * t);
    assert.deepEqual(maseScaleFor(y, 40, 10)!.lag, 10);
    close(maseScaleFor(y, 40, 10)!.mae, 1);
    assert.equal(maseScaleFor(y, 15, 10)!.lag, 1);
    assert.equal(maseScaleFor(y, 40, null)!.lag, 1);
  });
});

describe('conformal intervals', () => {
  it('the ⌈(n+1)q⌉-th smallest absolute residual, capped at the largest', () => {
    const sorted = Float64Array.from({ length: 19 }, (_, i) => i + 1); // 1..19
    assert.equal(conformalQuantile(sorted, 0.8), 16); // ⌈20 × 0.8⌉ = 16
    assert.equal(conformalQuantile(sorted, 0.95), 19);
    assert.equal(conformalQuantile(sorted, 0.99), 19, 'n too small for 0.99: the largest');
    assert.ok(Number.isNaN(conformalQuantile(new Float64Array(0), 0.8)));
  });

  it("widths per level and step, from that step's residuals only", () => {
    const actual = [0, 0, 0, 0, 0, 0];
    const predicted = [1, 10, 2, 20, 3, 30]; // 3 windows, horizon 2
    const widths = conformalWidths(actual, predicted, 2, [0.5, 0.9]);
    assert.deepEqual(widths, [
      [2, 20],
      [3, 30],
    ]);
    const { lower, upper } = intervalBounds([5, 5], 2, widths[0]);
    assert.deepEqual(Array.from(lower), [3, -15]);
    assert.deepEqual(Array.from(upper), [7, 25]);
  });

  it('covers about the level on exchangeable residuals (calibrate on 1000, check on 5000)', () => {
    let state = 11;
    const random = () => {
      // mulberry32
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
    };
    const normal = () => Math.sqrt(-2 * Math.log(random())) * Math.cos(2 * Math.PI * random());
    const draw = (n: number) => Float64Array.from({ length: n }, normal);
    const widths = conformalWidths(draw(1000), new Float64Array(1000), 1, [0.8, 0.95]);
    const test = draw(5000);
    for (const [index, level] of [0.8, 0.95].entries()) {
      const { lower, upper } = intervalBounds(new Float64Array(5000), 1, widths[index]);
      const covered = coverage(test, lower, upper, 1).overall;
      assert.ok(Math.abs(covered - level) < 0.04, `level ${level}: coverage ${covered}`);
    }
  });

  it('level keys are percents', () => {
    assert.deepEqual([0.8, 0.95, 0.975, 0.5].map(levelKey), ['80', '95', '97.5', '50']);
  });
});

describe('every method on the same origins', () => {
  const y = Float64Array.from({ length: 60 }, (_, t) => 10 + Math.sin((2 * Math.PI * t) / 8) + 0.01 * t);

  it('baselines forecast at exactly the given origins; actuals line up with them', () => {
    const origins = Int32Array.from([20, 21, 30, 45]);
    const predictions = baselinePredictions(y, origins, 3, { season: 8, linear: null });
    assert.deepEqual(Object.keys(predictions).sort(), ['persistence', 'seasonal_naive']);
    assert.equal(predictions.persistence!.length, 12);
    assert.equal(predictions.persistence![3 * 3], y[44]);
    assert.equal(predictions.seasonal_naive![1], y[20 + 1 - 8], 'origin 20, step 1 copies row 13');
    assert.deepEqual(Array.from(actualsAt(y, origins, 3).subarray(0, 3)), [y[20], y[21], y[22]]);
  });

  it('origins without a season of history are dropped for all methods, or the season is dropped when that would lose most', () => {
    const many = Int32Array.from({ length: 20 }, (_, i) => 5 + i);
    const kept = commonOrigins(y, many, 2, 8);
    assert.equal(kept.season, 8);
    assert.equal(kept.origins[0], 8);
    const longSeason = commonOrigins(y, many, 2, 20);
    assert.equal(longSeason.season, null, 'a season longer than most histories is dropped instead');
    assert.equal(longSeason.origins.length, many.length);
  });

  it('scores each method, with intervals calibrated elsewhere when given', () => {
    const origins = Int32Array.from({ length: 30 }, (_, i) => 16 + i);
    const actual = actualsAt(y, origins, 2);
    const predictions = baselinePredictions(y, origins, 2, { season: 8, linear: null });
    const own = scoreMethods({ actual, horizon: 2, predictions, levels: [0.8], maseScale: 0.5, targetStd: 1 });
    const given = scoreMethods({
      actual,
      horizon: 2,
      predictions,
      levels: [0.8],
      maseScale: 0.5,
      targetStd: 1,
      calibration: { persistence: [[0, 0]] },
    });
    assert.equal(own.persistence!.windows, 30);
    assert.equal(own.seasonal_naive!.windows, 30);
    assert.ok(own.persistence!.coverage[0] >= 0.8, 'calibrated on the same windows: at least the level');
    assert.equal(given.persistence!.coverage[0], 0, 'zero-width intervals cover nothing');
    assert.ok(own.seasonal_naive!.mae < 0.2, 'a clean cycle: seasonal naive is nearly exact');
  });
});

function method(mae: number): MethodEvaluation {
  return {
    windows: 10,
    mae,
    rmse: mae,
    maeByStep: [mae],
    rmseByStep: [mae],
    mase: null,
    maseByStep: null,
    mseScaled: null,
    intervalWidths: [[mae]],
    coverage: [0.8],
  };
}

function evaluation(methods: Evaluation['methods']): Evaluation {
  return {
    windows: 10,
    fromMs: 0,
    toMs: 1,
    horizon: 1,
    levels: [0.8],
    season: { length: null, source: 'none' },
    maseScale: null,
    targetStd: 1,
    methods,
    linear: null,
    championVersion: null,
  };
}

describe('champion / challenger', () => {
  it('a first model that beats persistence is promoted and serves', () => {
    const decision = decidePromotion({
      evaluation: evaluation({ model: method(1), persistence: method(2), linear: method(1.5) }),
      challengerVersion: 'v2',
      championVersion: null,
    });
    assert.equal(decision.promoted, true);
    assert.equal(decision.servingVersion, 'v2');
    assert.equal(decision.servedBy, 'model');
    assert.match(decision.reason, /beats persistence/);
  });

  it('a model that beats persistence but not the serving one: the serving one keeps serving', () => {
    const real = decidePromotion({
      evaluation: evaluation({ model: method(1.5), champion: method(1.2), persistence: method(2) }),
      challengerVersion: 'v2',
      championVersion: 'v1',
    });
    assert.equal(real.promoted, false);
    assert.equal(real.servingVersion, 'v1');
    assert.equal(real.servedBy, 'model');
    assert.match(real.reason, /does not beat the serving model v1/);
  });

  it('a model that beats both replaces the serving one', () => {
    const decision = decidePromotion({
      evaluation: evaluation({ model: method(1), champion: method(1.2), persistence: method(2) }),
      challengerVersion: 'v2',
      championVersion: 'v1',
    });
    assert.equal(decision.promoted, true);
    assert.equal(decision.servingVersion, 'v2');
    assert.match(decision.reason, /beats the serving model v1 \(1\.200\) and persistence \(2\.000\)/);
  });

  it('no model beats persistence: the best baseline serves (degraded), ties never promote', () => {
    const decision = decidePromotion({
      evaluation: evaluation({ model: method(2), champion: method(2.5), persistence: method(2), seasonal_naive: method(1.9), linear: method(1.7) }),
      challengerVersion: 'v2',
      championVersion: 'v1',
    });
    assert.equal(decision.promoted, false);
    assert.equal(decision.servedBy, 'linear');
    assert.equal(decision.modelBeatsPersistence, false);
    assert.match(decision.reason, /does not beat persistence.*linear serves/);
    assert.deepEqual(bestBaseline({ persistence: method(2), seasonal_naive: method(1.9) }), { method: 'seasonal_naive', mae: 1.9 });
  });

  it('a serving model of another configuration is not a champion to beat, and cannot keep serving', () => {
    const won = decidePromotion({
      evaluation: evaluation({ model: method(1), persistence: method(2) }),
      challengerVersion: 'v2',
      championVersion: 'v1',
      championIncompatible: true,
    });
    assert.equal(won.promoted, true);
    assert.match(won.reason, /built for another configuration/);
    const lost = decidePromotion({
      evaluation: evaluation({ model: method(3), persistence: method(2) }),
      challengerVersion: 'v2',
      championVersion: 'v1',
      championIncompatible: true,
    });
    assert.equal(lost.servingVersion, null);
    assert.equal(lost.servedBy, 'persistence');
  });

  it('readiness: warming up before any evaluation, degraded when a baseline serves or the last training failed', () => {
    assert.equal(readinessOf({ hasEvaluation: false, servedBy: null, lastTrainingFailure: null, notEnoughHistory: true }).readiness, 'warming_up');
    assert.equal(readinessOf({ hasEvaluation: false, servedBy: null, lastTrainingFailure: null, notEnoughHistory: false }).readiness, 'warming_up');
    assert.equal(readinessOf({ hasEvaluation: true, servedBy: 'model', lastTrainingFailure: null, notEnoughHistory: false }).readiness, 'ready');
    assert.equal(readinessOf({ hasEvaluation: true, servedBy: 'linear', lastTrainingFailure: null, notEnoughHistory: false }).readiness, 'degraded');
    const failed = readinessOf({ hasEvaluation: true, servedBy: 'model', lastTrainingFailure: 'out of memory', notEnoughHistory: false });
    assert.equal(failed.readiness, 'degraded');
    assert.match(failed.reason, /last training failed: out of memory/);
    assert.equal(
      readinessOf({ hasEvaluation: false, servedBy: 'persistence', lastTrainingFailure: 'boom', notEnoughHistory: false }).readiness,
      'degraded',
    );
  });
});
