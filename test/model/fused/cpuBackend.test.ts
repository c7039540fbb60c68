import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Tensor } from '@tensorflow/tfjs';
import { initBackend, type Tf } from '../../../src/model/backend.js';
import { withFusedLstm } from '../../../src/model/fused/index.js';
import { dense, lstm, sequential } from '../../../src/model/sequential.js';
import { assertClose, CASES, checkCase, describeCase } from './equivalence.js';

// The same kernel serves the cpu backend; what differs is how tensors come in and go out (the cpu backend
// hands out its own arrays, which the kernel must copy, never keep or write).
let tf: Tf;

before(async () => {
  const choice = await initBackend('cpu', { allowNative: false });
  assert.equal(choice.name, 'cpu');
  tf = choice.tf;
});

describe('fused LSTM on the cpu backend', () => {
  for (const index of [0, 2, 7]) {
    const c = CASES[index];
    it(`${describeCase(c)}: output and every gradient match the stock layer`, () => checkCase(tf, c, index));
  }

  it('a training step leaves the input untouched and predicts like the stock model it came from', async () => {
    const stock = sequential([lstm(8, { returnSequences: true, inputShape: [6, 2] }), lstm(4), dense(3)]).build(tf, { seed: 3 });
    const fused = withFusedLstm(tf, stock);
    const x = tf.randomNormal([5, 6, 2], 0, 1, 'float32', 1);
    const y = tf.randomNormal([5, 3], 0, 1, 'float32', 2);
    const before = Float32Array.from(x.dataSync());
    try {
      assertClose(
        (fused.predict(x) as Tensor).dataSync() as Float32Array,
        (stock.predict(x) as Tensor).dataSync() as Float32Array,
        'prediction',
        1e-5,
      );
      fused.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
      await fused.trainOnBatch(x, y);
      assert.deepEqual(x.dataSync(), before);
    } finally {
      tf.dispose([x, y]);
      stock.dispose();
      fused.dispose();
    }
  });
});
