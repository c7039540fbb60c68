import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../src/model/backend.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { dense, lstm, sequential } from '../../src/model/sequential.js';
import { modelFromContent, modelToContent } from '../../src/model/serialize.js';
import { removeTempDirs, tempDir } from './fixtures.js';

let tf: Tf;
let model: LayersModel;
let input: Tensor;
const SEED = 17;
const stack = () => sequential([lstm(8, { returnSequences: true, inputShape: [10, 3] }), lstm(4), dense(5)]);

function predictValues(target: LayersModel): Float32Array {
  return tf.tidy(() => (target.predict(input) as Tensor).dataSync() as Float32Array);
}

interface TopologyJson {
  class_name: string;
  config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> };
}

before(async () => {
  ({ tf } = await initBackend('wasm', { allowNative: false }));
  model = stack().build(tf, { seed: SEED });
  // Weights unlike anything an initializer gives: a loaded model can only reproduce them by loading them
  // (the topology carries seeded initializers, so a rebuilt-but-not-loaded model would match an untouched one).
  const replaced = model.getWeights().map((weight, index) => tf.randomNormal(weight.shape, 0, 0.5, 'float32', 100 + index));
  model.setWeights(replaced);
  for (const tensor of replaced) tensor.dispose();
  input = tf.randomNormal([3, 10, 3], 0, 1, 'float32', 1);
});

after(() => {
  model?.dispose();
  input?.dispose();
  removeTempDirs();
});

describe('modelToContent / modelFromContent', () => {
  it('a saved and loaded model predicts identically', async () => {
    const content = await modelToContent(tf, model, { note: 'test' });
    const loaded = await modelFromContent(tf, content);
    const fresh = stack().build(tf, { seed: SEED });
    try {
      const expected = predictValues(model);
      assert.equal(expected.length, 3 * 5);
      assert.deepEqual(predictValues(loaded), expected);
      // Guard: the comparison can fail: a model with the initial weights predicts otherwise.
      assert.notDeepEqual(predictValues(fresh), expected);
    } finally {
      loaded.dispose();
      fresh.dispose();
    }
  });

  it('the content holds every weight once: specs in model order, 4 bytes per element', async () => {
    const content = await modelToContent(tf, model, { epoch: 3 });
    assert.deepEqual(content.meta, { epoch: 3 });
    assert.deepEqual(
      content.weightSpecs.map((spec) => spec.shape),
      model.weights.map((weight) => weight.shape),
    );
    const elements = model.weights.reduce((sum, weight) => sum + weight.shape.reduce((n: number, d) => n * (d ?? 1), 1), 0);
    assert.equal(content.weightData.byteLength, elements * 4);
    assert.ok(content.weightSpecs.every((spec) => spec.dtype === 'float32'));
  });

  it('the topology is a plain tfjs Sequential of LSTM and Dense layers, with the Keras settings kept', async () => {
    const content = await modelToContent(tf, model, {});
    const topology = content.modelTopology as TopologyJson;
    assert.equal(topology.class_name, 'Sequential');
    const classes = topology.config.layers.map((layer) => layer.class_name);
    assert.deepEqual(classes, ['LSTM', 'LSTM', 'Dense']);
    const [first, second] = topology.config.layers;
    assert.equal(first.config.recurrent_activation ?? first.config.recurrentActivation, 'sigmoid');
    assert.equal(first.config.return_sequences ?? first.config.returnSequences, true);
    assert.equal(second.config.return_sequences ?? second.config.returnSequences, false);

    const loaded = await modelFromContent(tf, content);
    try {
      assert.equal(loaded.getClassName(), 'Sequential');
      assert.deepEqual(
        loaded.layers.map((layer) => layer.getClassName()),
        ['LSTM', 'LSTM', 'Dense'],
      );
      assert.equal(loaded.layers[0].getConfig().recurrentActivation, 'sigmoid');
      assert.deepEqual(loaded.inputs[0].shape, [null, 10, 3]);
      assert.deepEqual(loaded.outputs[0].shape, [null, 5]);
    } finally {
      loaded.dispose();
    }
  });

  it('survives a round trip through a CheckpointStore (bytes on disk)', async () => {
    const store = new CheckpointStore(tempDir(), 'serialize-roundtrip');
    await store.save(await modelToContent(tf, model, { epoch: 1 }), 1);
    const latest = await store.loadLatest();
    assert.ok(latest);
    const loaded = await modelFromContent(tf, latest.content);
    try {
      assert.deepEqual(predictValues(loaded), predictValues(model));
    } finally {
      loaded.dispose();
    }
  });

  it('saving does not change the model or leave tensors behind', async () => {
    const before = tf.memory().numTensors;
    const prediction = predictValues(model);
    await modelToContent(tf, model, {});
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(predictValues(model), prediction);
  });
});
