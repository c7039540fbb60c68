import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../src/model/backend.js';
import { modelSpecFor } from '../../src/model/fromConfig.js';
import { dense, lstm, ModelSpecError, sequential, Sequential, type LstmSpec } from '../../src/model/sequential.js';
import { forecastConfig } from './fixtures.js';

let tf: Tf;
before(async () => {
  ({ tf } = await initBackend('wasm', { allowNative: false }));
});

const kerasStack = () => sequential([lstm(8, { returnSequences: true, inputShape: [12, 3] }), lstm(4), dense(5)]);

function weightValues(model: LayersModel, layerIndex: number, suffix: string): Float32Array {
  const variable = model.layers[layerIndex].weights.find((w) => w.name.endsWith(suffix));
  assert.ok(variable, `layer ${layerIndex} has a weight ending in ${suffix}`);
  return variable.read().dataSync() as Float32Array;
}

function weightShape(model: LayersModel, layerIndex: number, suffix: string): number[] {
  return model.layers[layerIndex].weights.find((w) => w.name.endsWith(suffix))!.shape as number[];
}

/** Asserts that `fn` throws a ModelSpecError whose message matches `pattern`. */
function assertSpecError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ModelSpecError, `expected a ModelSpecError, got ${String(error)}`);
    assert.equal(error.name, 'ModelSpecError');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('Sequential: the Keras surface', () => {
  it('builds LSTM(8, returnSequences) → LSTM(4) → Dense(5) into a tfjs model of the described shape', () => {
    const spec = kerasStack();
    assert.deepEqual(spec.outputShape(), [5]);
    const model = spec.build(tf, { seed: 3 });
    try {
      assert.deepEqual(
        model.layers.map((layer) => layer.getClassName()),
        ['LSTM', 'LSTM', 'Dense'],
      );
      assert.deepEqual(model.inputs[0].shape, [null, 12, 3]);
      assert.deepEqual(model.outputs[0].shape, [null, 5]);
      assert.deepEqual(model.layers[0].outputShape, [null, 12, 8]);
      assert.deepEqual(model.layers[1].outputShape, [null, 4]);
      const output = tf.tidy(() => (model.predict(tf.ones([2, 12, 3])) as Tensor).shape);
      assert.deepEqual(output, [2, 5]);
    } finally {
      model.dispose();
    }
  });

  it('outputShape follows returnSequences: the full sequence, or the last output only', () => {
    assert.deepEqual(sequential([lstm(8, { returnSequences: true, inputShape: [12, 3] })]).outputShape(), [12, 8]);
    assert.deepEqual(sequential([lstm(8, { inputShape: [12, 3] })]).outputShape(), [8]);
  });

  it('add() appends a layer and returns the model, pop() removes and returns the last one', () => {
    const model = sequential();
    assert.equal(model.layers.length, 0);
    const first = lstm(6, { inputShape: [10, 2] });
    const second = dense(3);
    assert.equal(model.add(first), model);
    model.add(second);
    assert.deepEqual(model.layers, [first, second]);
    assert.deepEqual(model.outputShape(), [3]);

    assert.equal(model.pop(), second);
    assert.deepEqual(model.layers, [first]);
    assert.deepEqual(model.outputShape(), [6]);

    model.add(dense(7));
    assert.deepEqual(model.outputShape(), [7]);
    assert.equal(model.pop().units, 7);
    assert.equal(model.pop(), first);
    assert.equal(model.layers.length, 0);
  });

  it('pop() on an empty model throws a ModelSpecError', () => {
    assertSpecError(() => sequential().pop(), /empty/);
    const model = sequential([dense(1, { inputShape: [4] })]);
    model.pop();
    assertSpecError(() => model.pop(), /empty/);
  });

  it('does not share its stack with the array it was given', () => {
    const layers = [lstm(4, { inputShape: [6, 2] }), dense(2)];
    const model = new Sequential(layers);
    model.pop();
    assert.equal(layers.length, 2);
    assert.equal(model.layers.length, 1);
  });

  it('Dense on a 3D input keeps the time axis (Keras semantics), in outputShape and in the built model', () => {
    const spec = sequential([lstm(8, { returnSequences: true, inputShape: [12, 3] }), dense(5)]);
    assert.deepEqual(spec.outputShape(), [12, 5]);
    const model = spec.build(tf, { seed: 1 });
    try {
      assert.deepEqual(model.outputs[0].shape, [null, 12, 5]);
      // The kernel is (last axis, units), applied to every time step.
      assert.deepEqual(weightShape(model, 1, '/kernel'), [8, 5]);
    } finally {
      model.dispose();
    }
    assert.deepEqual(sequential([dense(4, { inputShape: [7, 3] }), dense(2)]).outputShape(), [7, 2]);
  });
});

describe('Sequential: invalid stacks are rejected with a clear ModelSpecError', () => {
  it('an empty model', () => {
    assertSpecError(() => sequential().outputShape(), /no layers/);
  });

  it('no inputShape on the first layer', () => {
    const model = sequential([lstm(8), dense(5)]);
    assertSpecError(() => model.outputShape(), /first layer needs an inputShape/);
    assertSpecError(() => model.build(tf), /first layer needs an inputShape/);
  });

  it('inputShape on a later layer, naming that layer', () => {
    const model = sequential([lstm(8, { inputShape: [12, 3] }), dense(5, { inputShape: [8] })]);
    assertSpecError(() => model.outputShape(), /layer 1 \(dense\).*only the first layer takes an inputShape/);
  });

  it('LSTM after an LSTM without returnSequences, suggesting returnSequences', () => {
    const model = sequential([lstm(8, { inputShape: [12, 3] }), lstm(4), dense(5)]);
    assertSpecError(() => model.outputShape(), /layer 1 \(lstm\).*sequence input.*returnSequences/);
    assertSpecError(() => model.build(tf), /returnSequences/);
  });

  it('LSTM after a Dense on a flat input: no returnSequences hint (it would not help)', () => {
    const model = sequential([dense(8, { inputShape: [12] }), lstm(4)]);
    assert.throws(
      () => model.outputShape(),
      (error: unknown) => {
        assert.ok(error instanceof ModelSpecError);
        assert.match(error.message, /layer 1 \(lstm\): an LSTM needs a sequence input/);
        assert.doesNotMatch(error.message, /returnSequences/);
        return true;
      },
    );
  });

  for (const units of [0, -3, 2.5, Number.NaN]) {
    it(`units ${units}`, () => {
      assertSpecError(
        () => sequential([lstm(units, { inputShape: [12, 3] }), dense(5)]).outputShape(),
        /layer 0 \(lstm\).*units must be a positive integer/,
      );
      assertSpecError(
        () => sequential([lstm(8, { inputShape: [12, 3] }), dense(units)]).outputShape(),
        /layer 1 \(dense\).*units must be a positive integer/,
      );
    });
  }

  it('build() refuses an invalid stack before tfjs creates any tensor', () => {
    const before = tf.memory().numTensors;
    assertSpecError(() => sequential([lstm(8, { inputShape: [12, 3] }), lstm(0)]).build(tf), /units/);
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('Sequential.build: Keras defaults where tfjs differs', () => {
  let model: LayersModel;
  before(() => {
    model = kerasStack().build(tf, { seed: 11 });
  });

  it('LSTM activation tanh and recurrentActivation sigmoid (tfjs would use hardSigmoid)', () => {
    for (const index of [0, 1]) {
      const config = model.layers[index].getConfig();
      assert.equal(config.recurrentActivation, 'sigmoid');
      assert.equal(config.activation, 'tanh');
      assert.equal(config.unitForgetBias, true);
    }
    assert.equal(model.layers[2].getConfig().activation, 'linear');
  });

  it('unitForgetBias: the forget-gate slice of the bias starts at 1, the other gates at 0', () => {
    for (const [index, units] of [
      [0, 8],
      [1, 4],
    ] as const) {
      const bias = weightValues(model, index, '/bias');
      assert.equal(bias.length, 4 * units);
      // Gate order (Keras and tfjs): input, forget, cell, output.
      for (let i = 0; i < bias.length; i++) {
        const expected = i >= units && i < 2 * units ? 1 : 0;
        assert.equal(bias[i], expected, `layer ${index} bias[${i}]`);
      }
    }
  });

  it('kernels are glorotUniform: VarianceScaling(fanAvg, uniform) and values spread over ±sqrt(6 / (fanIn + fanOut))', () => {
    for (const index of [0, 1, 2]) {
      const initializer = model.layers[index].getConfig().kernelInitializer as { className: string; config: Record<string, unknown> };
      assert.equal(initializer.className, 'VarianceScaling');
      assert.equal(initializer.config.mode, 'fanAvg');
      assert.equal(initializer.config.distribution, 'uniform');
      assert.equal(initializer.config.scale, 1);
    }
    // Values: a uniform draw stays inside the limit and fills it; glorotNormal (tfjs's LSTM default) would
    // overshoot it on a few of these ~100 values, and a narrower initializer would not reach 80 % of it.
    for (const [index, [fanIn, fanOut]] of [
      [0, [3, 32]],
      [1, [8, 16]],
      [2, [4, 5]],
    ] as const) {
      const kernel = weightValues(model, index, '/kernel');
      assert.equal(kernel.length, fanIn * fanOut);
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      const largest = Math.max(...Array.from(kernel, Math.abs));
      assert.ok(largest <= limit + 1e-6, `layer ${index}: |w| = ${largest} > glorot-uniform limit ${limit}`);
      if (kernel.length >= 40) assert.ok(largest > 0.8 * limit, `layer ${index}: |w| max ${largest} does not fill ±${limit}`);
    }
  });

  it('the recurrent kernel is orthogonal, as in Keras', () => {
    const units = 4;
    const recurrent = weightValues(model, 1, '/recurrent_kernel'); // (units, 4 * units), orthonormal rows
    for (let a = 0; a < units; a++) {
      for (let b = 0; b < units; b++) {
        let dot = 0;
        for (let k = 0; k < 4 * units; k++) dot += recurrent[a * 4 * units + k] * recurrent[b * 4 * units + k];
        assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-4, `rows ${a}·${b} = ${dot}`);
      }
    }
  });

  it('the same seed gives the same weights, another seed others', () => {
    const again = kerasStack().build(tf, { seed: 11 });
    const other = kerasStack().build(tf, { seed: 12 });
    try {
      assert.deepEqual(weightValues(again, 0, '/kernel'), weightValues(model, 0, '/kernel'));
      assert.deepEqual(weightValues(again, 2, '/kernel'), weightValues(model, 2, '/kernel'));
      assert.notDeepEqual(weightValues(other, 0, '/kernel'), weightValues(model, 0, '/kernel'));
    } finally {
      again.dispose();
      other.dispose();
    }
  });

  it('layer options reach tfjs (activation, recurrentActivation, useBias, returnSequences)', () => {
    const custom = sequential([
      lstm(3, { inputShape: [5, 2], activation: 'relu', recurrentActivation: 'hardSigmoid', returnSequences: true }),
      lstm(2),
      dense(4, { activation: 'relu', useBias: false }),
    ]).build(tf);
    try {
      const [first, , last] = custom.layers.map((layer) => layer.getConfig());
      assert.equal(first.activation, 'relu');
      assert.equal(first.recurrentActivation, 'hardSigmoid');
      assert.equal(first.returnSequences, true);
      assert.equal(last.activation, 'relu');
      assert.equal(last.useBias, false);
      assert.equal(custom.layers[2].weights.length, 1);
    } finally {
      custom.dispose();
    }
  });
});

describe('modelSpecFor: the stack a forecast config describes', () => {
  it('returnSequences on every LSTM but the last, inputShape (steps, features) on the first only, Dense units = horizon', () => {
    const forecast = forecastConfig({
      steps: 16,
      horizon: 7,
      layers: [{ type: 'lstm', units: 8 }, { type: 'lstm', units: 6 }, { type: 'lstm', units: 4 }, { type: 'dense' }],
    });
    const spec = modelSpecFor(forecast, 3);
    const layers = spec.layers;
    assert.deepEqual(
      layers.map((layer) => layer.type),
      ['lstm', 'lstm', 'lstm', 'dense'],
    );
    assert.deepEqual(
      layers.map((layer) => (layer as LstmSpec).returnSequences),
      [true, true, false, undefined],
    );
    assert.deepEqual(layers[0].inputShape, [16, 3]);
    for (const layer of layers.slice(1)) assert.equal(layer.inputShape, undefined);
    assert.equal(layers.at(-1)!.units, 7);
    assert.deepEqual(spec.outputShape(), [7]);

    const model = spec.build(tf, { seed: 1 });
    try {
      assert.deepEqual(model.inputs[0].shape, [null, 16, 3]);
      assert.deepEqual(model.outputs[0].shape, [null, 7]);
      assert.equal(model.layers[0].getConfig().recurrentActivation, 'sigmoid');
    } finally {
      model.dispose();
    }
  });

  it('the default config (one LSTM, one Dense) gives LSTM(32) → Dense(horizon) with no returnSequences', () => {
    const forecast = forecastConfig({ steps: 24, horizon: 12 });
    const spec = modelSpecFor(forecast, 1);
    assert.equal(spec.layers.length, 2);
    assert.equal((spec.layers[0] as LstmSpec).returnSequences, false);
    assert.deepEqual(spec.layers[0].inputShape, [24, 1]);
    assert.deepEqual(spec.outputShape(), [12]);
  });

  it('an explicit returnSequences in the config wins over the default', () => {
    const forecast = forecastConfig({
      steps: 8,
      horizon: 2,
      layers: [{ type: 'lstm', units: 4, returnSequences: false }, { type: 'lstm', units: 4 }, { type: 'dense' }],
    });
    const spec = modelSpecFor(forecast, 2);
    assert.equal((spec.layers[0] as LstmSpec).returnSequences, false);
    assertSpecError(() => spec.outputShape(), /returnSequences/);
  });

  it("carries the config's layer options (Keras defaults from the schema)", () => {
    const forecast = forecastConfig({
      steps: 8,
      horizon: 2,
      layers: [
        { type: 'lstm', units: 4, dropout: 0.25 },
        { type: 'dense', activation: 'relu' },
      ],
    });
    const [first, last] = modelSpecFor(forecast, 1).layers;
    assert.equal(first.type, 'lstm');
    assert.equal(first.dropout, 0.25);
    assert.equal(first.recurrentActivation, 'sigmoid');
    assert.equal(first.activation, 'tanh');
    assert.equal(last.activation, 'relu');
    assert.equal(last.units, 2);
  });
});
