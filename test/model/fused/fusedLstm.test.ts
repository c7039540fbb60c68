import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayersModel, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../../src/model/backend.js';
import { fusedLstmLayer, useFusedLstm, withFusedLstm, type FusedLstmLayer } from '../../../src/model/fused/index.js';
import { lstmKernel } from '../../../src/model/fused/kernel.js';
import { modelFromContent, modelToContent } from '../../../src/model/serialize.js';
import { dense, lstm, sequential } from '../../../src/model/sequential.js';
import { assertClose, CASES, checkCase, describeCase, layerPair, type Case } from './equivalence.js';

let tf: Tf;

before(async () => {
  ({ tf } = await initBackend('wasm', { allowNative: false }));
});

describe("fused LSTM: numerically tfjs-layers' LSTM", () => {
  CASES.forEach((c, index) => {
    it(`${describeCase(c)}: output and every gradient match`, () => checkCase(tf, c, index));
  });

  it("one time step: the output is the first step of a longer sequence (tfjs's own LSTM cannot run T = 1)", () => {
    const c: Case = { units: 6, steps: 3, features: 4, batch: 2, activation: 'tanh', recurrentActivation: 'sigmoid', returnSequences: true };
    const { stock, fused, x } = layerPair(tf, c, 11);
    try {
      const expected = tf.tidy(() => tf.slice(stock.apply(x) as Tensor, [0, 0, 0], [2, 1, 6]).reshape([2, 6]));
      const single = fusedLstmLayer(tf, { units: 6, recurrentActivation: 'sigmoid' });
      const first = tf.slice(x, [0, 0, 0], [2, 1, 4]);
      tf.tidy(() => {
        single.apply(first);
      });
      single.setWeights(fused.getWeights());
      const actual = tf.tidy(() => single.apply(first) as Tensor);
      assertClose(actual, expected, 'output', 1e-6);
      tf.dispose([expected, actual, first]);
      single.dispose();
    } finally {
      x.dispose();
      stock.dispose();
      fused.dispose();
    }
  });

  it('unitForgetBias starts the forget-gate bias at one, as the stock layer does', () => {
    const layer = fusedLstmLayer(tf, { units: 3, unitForgetBias: true, inputShape: [2, 2] });
    const model = tf.sequential({ layers: [layer] });
    assert.deepEqual(Array.from(layer.getWeights()[2].dataSync()), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    model.dispose();
  });

  it("predict() outside a gradient tape gives the training pass's output", () => {
    const c = CASES[0];
    const { fused, x } = layerPair(tf, c, 7);
    try {
      const inference = tf.tidy(() => fused.apply(x) as Tensor);
      const trained = tf.tidy(() => {
        let output: Tensor | null = null;
        tf.variableGrads(
          () => {
            output = tf.keep(fused.apply(x) as Tensor);
            return tf.sum<Scalar>(output);
          },
          fused.trainableWeights.map((weight) => weight.read() as Variable),
        );
        return output!;
      });
      assertClose(inference, trained, 'output', 1e-6);
      tf.dispose([inference, trained]);
    } finally {
      x.dispose();
      fused.dispose();
    }
  });

  it('a layer applied twice under one tape still gets both gradients right', () => {
    const c: Case = { units: 4, steps: 3, features: 4, batch: 2, activation: 'tanh', recurrentActivation: 'sigmoid', returnSequences: true };
    const { stock, fused, x } = layerPair(tf, c, 9);
    try {
      const twice = (layer: typeof stock) => {
        const variables = layer.trainableWeights.map((weight) => weight.read() as Variable);
        const { grads } = tf.variableGrads(() => tf.sum<Scalar>(layer.apply(layer.apply(x)) as Tensor), variables);
        return variables.map((variable) => grads[variable.name]);
      };
      const expected = twice(stock);
      const actual = twice(fused);
      actual.forEach((gradient, i) => assertClose(gradient, expected[i], `weight ${i}`));
      tf.dispose([...expected, ...actual]);
    } finally {
      x.dispose();
      stock.dispose();
      fused.dispose();
    }
  });

  it('falls back to the stock cell where the fused path does not apply (dropout while training)', () => {
    const layer = fusedLstmLayer(tf, { units: 4, dropout: 0.5, inputShape: [3, 2] });
    const x = tf.ones([2, 3, 2]);
    const model = tf.sequential({ layers: [layer] });
    try {
      tf.tidy(() => {
        layer.apply(x, { training: true });
      });
      assert.equal(layer.lastCallFused, false);
      tf.tidy(() => {
        layer.apply(x, { training: false });
      });
      assert.equal(layer.lastCallFused, true, 'without training, dropout is the identity and the fused path runs');
    } finally {
      x.dispose();
      model.dispose();
    }
  });

  it('leaves no tensors behind: predict and training steps keep tf.memory().numTensors flat', async () => {
    const model = referenceModel(tf, 3).fused;
    const x = tf.randomNormal([8, 12, 3], 0, 1, 'float32', 3);
    const y = tf.randomNormal([8, 6], 0, 1, 'float32', 4);
    try {
      tf.tidy(() => {
        model.predict(x);
      });
      await model.trainOnBatch(x, y);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) {
        tf.tidy(() => {
          (model.predict(x) as Tensor).dataSync();
        });
        await model.trainOnBatch(x, y);
      }
      assert.equal(tf.memory().numTensors, before);
    } finally {
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  it('gives its kernel memory back when the model is disposed', async () => {
    const before = lstmKernel().retainedBytes;
    const { stock, fused } = referenceModel(tf, 4);
    stock.dispose();
    const x = tf.randomNormal([16, 12, 3], 0, 1, 'float32', 5);
    const y = tf.randomNormal([16, 6], 0, 1, 'float32', 6);
    await fused.trainOnBatch(x, y);
    assert.ok(lstmKernel().retainedBytes > before, "training keeps each layer's activations");
    fused.dispose();
    tf.dispose([x, y]);
    assert.equal(lstmKernel().retainedBytes, before);
  });
});

/** The project's stack at test size: stock from the model builder, fused as withFusedLstm makes it. */
function referenceModel(tfjs: Tf, seed: number) {
  const stock = sequential([lstm(8, { returnSequences: true, inputShape: [12, 3] }), lstm(8), dense(6)]).build(tfjs, { seed });
  const fused = withFusedLstm(tfjs, stock);
  fused.compile({ optimizer: tfjs.train.adam(0.01), loss: 'meanSquaredError' });
  return { stock, fused };
}

function predictValues(model: LayersModel, x: Tensor): Float32Array {
  return tf.tidy(() => (model.predict(x) as Tensor).dataSync() as Float32Array);
}

/** A seeded set of windows of a noisy daily sine: something an LSTM can learn in a few epochs. */
function sineWindows(count: number, steps: number, horizon: number) {
  let state = 12345;
  const noise = () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return (state / 2 ** 32 - 0.5) * 0.1;
  };
  const series = Array.from({ length: count + steps + horizon }, (_, t) => Math.sin((2 * Math.PI * t) / 24) + noise());
  const inputs = new Float32Array(count * steps * 3);
  const targets = new Float32Array(count * horizon);
  for (let w = 0; w < count; w++) {
    for (let s = 0; s < steps; s++) {
      const t = w + s;
      inputs.set([series[t], Math.sin((2 * Math.PI * t) / 24), Math.cos((2 * Math.PI * t) / 24)], (w * steps + s) * 3);
    }
    for (let h = 0; h < horizon; h++) targets[w * horizon + h] = series[w + steps + h];
  }
  return { xs: tf.tensor3d(inputs, [count, steps, 3]), ys: tf.tensor2d(targets, [count, horizon]) };
}

describe('fused LSTM: models and checkpoints', () => {
  let data: { xs: Tensor; ys: Tensor };
  before(() => {
    data = sineWindows(256, 12, 6);
  });
  after(() => tf.dispose([data.xs, data.ys]));

  it("a model with fused layers saves the stock model's topology (class LSTM) and weight specs", async () => {
    const { stock, fused } = referenceModel(tf, 5);
    try {
      assert.deepEqual(fused.toJSON(null, false), stock.toJSON(null, false));
      const [fusedContent, stockContent] = [await modelToContent(tf, fused, {}), await modelToContent(tf, stock, {})];
      assert.deepEqual(fusedContent.modelTopology, stockContent.modelTopology);
      assert.deepEqual(fusedContent.weightSpecs, stockContent.weightSpecs);
      const topology = fusedContent.modelTopology as { config: { layers: Array<{ class_name: string }> } };
      assert.deepEqual(
        topology.config.layers.map((layer) => layer.class_name),
        ['LSTM', 'LSTM', 'Dense'],
      );
      assert.deepEqual(new Uint8Array(fusedContent.weightData), new Uint8Array(stockContent.weightData));
    } finally {
      stock.dispose();
      fused.dispose();
    }
  });

  it('trained with the fused layer, saved, and loaded by plain tfjs (stock LSTM): predicts the same', async () => {
    const { stock, fused } = referenceModel(tf, 6);
    stock.dispose();
    try {
      await fused.fit(data.xs, data.ys, { epochs: 2, batchSize: 32, shuffle: false, verbose: 0 });
      const content = await modelToContent(tf, fused, {});
      const loaded = await modelFromContent(tf, content);
      try {
        assert.equal(
          Object.getPrototypeOf(loaded.layers[0]),
          Object.getPrototypeOf(tf.layers.lstm({ units: 1, name: 'probe' })),
          'loads as the stock class',
        );
        assertClose(predictValues(loaded, data.xs), predictValues(fused, data.xs), 'prediction', 1e-5);
      } finally {
        loaded.dispose();
      }
    } finally {
      fused.dispose();
    }
  });

  it("a stock model's weights load into the fused layers (withFusedLstm) and predict the same", async () => {
    const { stock, fused } = referenceModel(tf, 7);
    try {
      stock.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
      await stock.fit(data.xs, data.ys, { epochs: 1, batchSize: 64, shuffle: false, verbose: 0 });
      const stockLoaded = await modelFromContent(tf, await modelToContent(tf, stock, {}));
      const loaded = withFusedLstm(tf, stockLoaded);
      // The fused model shares the loaded weights, so the loaded stock model can go.
      stockLoaded.dispose();
      try {
        assertClose(predictValues(loaded, data.xs), predictValues(stock, data.xs), 'prediction', 1e-5);
        assert.ok((loaded.layers[0] as FusedLstmLayer).lastCallFused);
      } finally {
        loaded.dispose();
      }
    } finally {
      stock.dispose();
      fused.dispose();
    }
  });

  it('trains to the same losses as the stock layer from the same weights and data', async () => {
    const { stock, fused } = referenceModel(tf, 8);
    try {
      stock.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
      const options = { epochs: 4, batchSize: 32, shuffle: false, verbose: 0 as const };
      const stockLoss = (await stock.fit(data.xs, data.ys, options)).history.loss as number[];
      const fusedLoss = (await fused.fit(data.xs, data.ys, options)).history.loss as number[];
      assert.ok(fusedLoss[3] < fusedLoss[0] * 0.8, `it learns: ${fusedLoss.join(', ')}`);
      fusedLoss.forEach((loss, epoch) => {
        assert.ok(Math.abs(loss - stockLoss[epoch]) <= 1e-4 * stockLoss[epoch], `epoch ${epoch}: fused ${loss}, stock ${stockLoss[epoch]}`);
      });
    } finally {
      stock.dispose();
      fused.dispose();
    }
  });
});

describe('useFusedLstm', () => {
  it('fuses on wasm and cpu, not on the native backend, unless told', () => {
    assert.equal(useFusedLstm('wasm'), true);
    assert.equal(useFusedLstm('cpu'), true);
    assert.equal(useFusedLstm('native'), false);
    assert.equal(useFusedLstm('native', 'fused'), true);
    assert.equal(useFusedLstm('wasm', 'stock'), false);
  });
});
