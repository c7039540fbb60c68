import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { initBackend, type BackendName, type Tf } from '../../src/model/backend.js';
import { CheckpointStore } from '../../src/model/checkpoint.js';
import { progressCallback, type Verbosity } from '../../src/model/progress.js';
import { dense, lstm, sequential } from '../../src/model/sequential.js';
import { trainForecastModel } from '../../src/model/training.js';
import { forecastConfig, NOW_MS, removeTempDirs, sineSeries, tempDir } from './fixtures.js';

let tf: Tf;
let backend: BackendName;
let model: LayersModel;
let data: { xs: Tensor; ys: Tensor; valXs: Tensor; valYs: Tensor };

// 40 samples in batches of 16: batches of 16, 16 and 8.
const SAMPLES = 40;
const BATCH = 16;
const BATCHES = 3;

before(async () => {
  ({ tf, name: backend } = await initBackend('wasm', { allowNative: false }));
  model = sequential([lstm(4, { inputShape: [6, 2] }), dense(3)]).build(tf, { seed: 5 });
  model.compile({ optimizer: 'adam', loss: 'meanSquaredError' });
  data = {
    xs: tf.randomUniform([SAMPLES, 6, 2], -1, 1, 'float32', 1),
    ys: tf.randomUniform([SAMPLES, 3], -1, 1, 'float32', 2),
    valXs: tf.randomUniform([10, 6, 2], -1, 1, 'float32', 3),
    valYs: tf.randomUniform([10, 3], -1, 1, 'float32', 4),
  };
});

after(() => {
  model?.dispose();
  if (data) for (const tensor of Object.values(data)) tensor.dispose();
  removeTempDirs();
});

/** A real fit of the tiny model with the progress callback; returns every write, in order. */
async function fitWith(verbose: Verbosity, epochs: number, withValidation = true): Promise<string[]> {
  const writes: string[] = [];
  await model.fit(data.xs, data.ys, {
    epochs,
    batchSize: BATCH,
    verbose: 0,
    validationData: withValidation ? [data.valXs, data.valYs] : undefined,
    callbacks: [progressCallback(verbose, { epochs, batchesPerEpoch: BATCHES, write: (text) => writes.push(text) })],
  });
  return writes;
}

const NUMBER = String.raw`\d+\.\d{4}`;

describe('progressCallback (Keras verbose) through a real model.fit', () => {
  it('verbose 0 writes nothing', async () => {
    assert.deepEqual(await fitWith(0, 2), []);
  });

  it('verbose 2 writes exactly one line per epoch: "Epoch k/N - <s>s - loss: … - val_loss: …"', async () => {
    const epochs = 3;
    const writes = await fitWith(2, epochs);
    assert.equal(writes.length, epochs, JSON.stringify(writes));
    const line = new RegExp(String.raw`^Epoch (\d+)/(\d+) - \d+\.\ds - loss: (${NUMBER}) - val_loss: (${NUMBER})\n$`);
    writes.forEach((text, index) => {
      const match = line.exec(text);
      assert.ok(match, `epoch line ${JSON.stringify(text)} does not read "Epoch k/N - 0.1s - loss: … - val_loss: …"`);
      assert.equal(Number(match[1]), index + 1);
      assert.equal(Number(match[2]), epochs);
      assert.ok(Number(match[3]) > 0 && Number(match[4]) > 0);
      assert.equal(text.indexOf('\n'), text.length - 1, 'one line, no embedded newline');
      assert.ok(!text.includes('\r'), 'no carriage return in verbose 2');
    });
  });

  it('verbose 2 without validation data shows loss only', async () => {
    const writes = await fitWith(2, 1, false);
    assert.equal(writes.length, 1);
    assert.match(writes[0], new RegExp(String.raw`^Epoch 1/1 - \d+\.\ds - loss: ${NUMBER}\n$`));
  });

  it('verbose 1 animates a \\r progress bar per batch and ends each epoch with a newline', async () => {
    const epochs = 2;
    const writes = await fitWith(1, epochs);
    const text = writes.join('');
    // Every epoch: a header, one bar per batch, one closing bar.
    assert.equal(writes.length, epochs * (1 + BATCHES + 1), JSON.stringify(writes));
    assert.equal(text.split('\n').length - 1, epochs * 2, 'a newline after each header and after each epoch');
    for (let epoch = 0; epoch < epochs; epoch++) {
      const chunk = writes.slice(epoch * (BATCHES + 2), (epoch + 1) * (BATCHES + 2));
      assert.equal(chunk[0], `Epoch ${epoch + 1}/${epochs}\n`);
      const bars = chunk.slice(1);
      let previousFilled = -1;
      bars.forEach((bar, index) => {
        assert.ok(bar.startsWith('\r'), `a bar starts with \\r: ${JSON.stringify(bar)}`);
        const match = /^\r(\d+)\/(\d+) \[([=>.]*)\] - /.exec(bar);
        assert.ok(match, `bar ${JSON.stringify(bar)}`);
        const done = Math.min(index + 1, BATCHES);
        assert.equal(Number(match[1]), done);
        assert.equal(Number(match[2]), BATCHES);
        assert.equal(match[3].length, 30, 'the bar keeps its width');
        const filled = match[3].replace(/\.+$/, '').length;
        assert.ok(filled >= previousFilled, 'the bar only grows');
        previousFilled = filled;
        assert.match(bar, new RegExp(String.raw`loss: ${NUMBER}`));
        const last = index === bars.length - 1;
        assert.equal(bar.endsWith('\n'), last, 'only the closing bar ends the line');
      });
      assert.match(bars[0], /\[=+>\.+\]/, 'the first bar is partly filled: [====>....]');
      assert.match(bars.at(-1)!, /\[={30}\] - \d+\.\ds - .*val_loss: /);
    }
  });

  it('verbose 1 bars show the metrics, not tfjs bookkeeping (batch index, batch size)', async () => {
    const writes = await fitWith(1, 1);
    for (const bar of writes.filter((text) => text.startsWith('\r'))) {
      assert.doesNotMatch(bar, /\bbatch: |\bsize: /, `bar ${JSON.stringify(bar)} shows tfjs's internal batch logs`);
    }
  });
});

describe('progressCallback bar geometry', () => {
  it('the bar is exactly barWidth characters at every batch, including the first of many', async () => {
    for (const [batchesPerEpoch, width] of [
      [3, 30],
      [100, 30],
      [7, 10],
      [250, 20],
    ]) {
      const writes: string[] = [];
      const callback = progressCallback(1, { epochs: 1, batchesPerEpoch, write: (text) => writes.push(text), barWidth: width });
      await callback.onEpochBegin(0);
      for (let batch = 0; batch < batchesPerEpoch; batch++) await callback.onBatchEnd(batch, { loss: 1 });
      await callback.onEpochEnd(0, { loss: 1 });
      for (const bar of writes.slice(1)) {
        const inside = /\[([^\]]*)\]/.exec(bar)![1];
        assert.equal(inside.length, width, `${batchesPerEpoch} batches, width ${width}: ${JSON.stringify(bar)}`);
      }
    }
  });
});

describe('trainForecastModel routes its verbose output through `write`', () => {
  it('verbose 2: one epoch line per epoch', async () => {
    const forecast = forecastConfig({
      steps: 8,
      horizon: 3,
      layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }],
      training: { epochs: 2, batchSize: 64, seed: 3 },
    });
    const writes: string[] = [];
    const store = new CheckpointStore(tempDir(), forecast.name, { keep: 2 });
    const summary = await trainForecastModel({
      tf,
      backend,
      forecast,
      series: [sineSeries({ points: 150 })],
      nowMs: NOW_MS,
      checkpoints: store,
      verbose: 2,
      write: (text) => writes.push(text),
    });
    assert.equal(summary.epochsCompleted, 2);
    assert.equal(writes.length, 2);
    assert.match(writes[0], /^Epoch 1\/2 - .*loss: /);
    assert.match(writes[1], /^Epoch 2\/2 - .*loss: /);
  });
});
