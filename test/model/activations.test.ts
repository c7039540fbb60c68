import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { ACTIVATIONS } from '../../src/config/schema.js';
import { initBackend, type Tf } from '../../src/model/backend.js';
import { activationCode } from '../../src/model/fused/activations.js';
import { dense, lstm, sequential } from '../../src/model/sequential.js';
import { modelFromContent, modelToContent } from '../../src/model/serialize.js';

let tf: Tf;
before(async () => {
  ({ tf } = await initBackend('wasm', { allowNative: false }));
});

const scratch = mkdtempSync(join(tmpdir(), 'forecastd-activations-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function values(model: LayersModel, input: Tensor): number[] {
  return Array.from(tf.tidy(() => (model.predict(input) as Tensor).dataSync()));
}

describe('exponential activation', () => {
  it('a Dense layer computes exp(xW + b)', () => {
    const model = sequential([dense(2, { activation: 'exponential', inputShape: [2] })]).build(tf, { seed: 1 });
    const kernel = tf.tensor2d([
      [0.5, -1],
      [0.25, 0.1],
    ]);
    const bias = tf.tensor1d([0.1, -0.2]);
    model.setWeights([kernel, bias]);
    const input = tf.tensor2d([[1, 2]]);
    // xW = [1·0.5 + 2·0.25, 1·(−1) + 2·0.1] = [1.0, −0.8]; + b = [1.1, −1.0]
    const expected = [Math.exp(1.1), Math.exp(-1.0)];
    const got = values(model, input);
    assert.equal(got.length, 2);
    got.forEach((value, i) => assert.ok(Math.abs(value - expected[i]) < 1e-5, `output ${i}: ${value} vs ${expected[i]}`));
    assert.equal((model.layers[0].getConfig() as { activation: string }).activation, 'exponential');
    tf.dispose([kernel, bias, input]);
    model.dispose();
  });

  it('an LSTM with activation exponential predicts finite values and reloads identically', async () => {
    // exp for both the cell and the gates diverges (forget gate ≈ e > 1 with unitForgetBias, then h = o·exp(c)),
    // in Keras too; so each LSTM here uses it in one place only.
    const spec = sequential([
      lstm(4, { recurrentActivation: 'exponential', returnSequences: true, inputShape: [5, 2] }),
      lstm(3, { activation: 'exponential' }),
      dense(2, { activation: 'exponential' }),
    ]);
    const model = spec.build(tf, { seed: 7 });
    const input = tf.tidy(() => tf.randomUniform([3, 5, 2], -0.1, 0.1, 'float32', 3));
    const before = values(model, input);
    assert.equal(before.length, 6);
    assert.ok(before.every(Number.isFinite), `non-finite output: ${before.join(', ')}`);

    const content = await modelToContent(tf, model, {});
    const topology = JSON.stringify(content.modelTopology);
    assert.match(topology, /"activation":"exponential"/);
    assert.match(topology, /"recurrent_activation":"exponential"/);
    const reloaded = await modelFromContent(tf, content);
    assert.deepEqual(values(reloaded, input), before);
    reloaded.dispose();

    // The fused kernel has no code for it, so the fused model runs tfjs's own cell — same numbers.
    assert.equal(activationCode('exponential'), null);
    const fused = await modelFromContent(tf, content, { fusedLstm: true });
    values(fused, input).forEach((value, i) => assert.ok(Math.abs(value - before[i]) < 1e-5));
    fused.dispose();

    const builtFused = spec.build(tf, { seed: 7, fusedLstm: true });
    assert.ok(values(builtFused, input).every(Number.isFinite));
    builtFused.dispose();
    input.dispose();
    model.dispose();
  });

  it('validates in a config', () => {
    assert.ok((ACTIVATIONS as readonly string[]).includes('exponential'));
    const layers = [
      { type: 'lstm', units: 8, activation: 'exponential', recurrentActivation: 'exponential' },
      { type: 'dense', activation: 'exponential' },
    ];
    const config = parseConfig({ forecasts: [{ name: 'living_room', target: 'livingroom.temperature', layers }] }, 'test.yaml', {});
    assert.equal(config.forecasts[0].layers[0].activation, 'exponential');
    assert.equal(config.forecasts[0].layers[1].activation, 'exponential');

    const file = join(scratch, 'forecastd.yaml');
    writeFileSync(
      file,
      [
        'forecasts:',
        '  - name: living_room',
        '    target: livingroom.temperature',
        '    layers:',
        '      - type: lstm',
        '        units: 8',
        '        activation: exponential',
        '      - type: dense',
        '        activation: exponential',
        '',
      ].join('\n'),
    );
    const loaded = loadConfigFile(file, {});
    assert.equal(loaded.forecasts[0].layers[0].activation, 'exponential');
    assert.equal(loaded.forecasts[0].layers[1].activation, 'exponential');
  });
});
