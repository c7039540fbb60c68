/**
 * The equivalence check shared by the wasm and cpu backend tests: a stock tfjs LSTM and a fused one with the
 * same random weights must give the same output and the same gradients. No side effects at import (node --test
 * also loads this file as a "test file").
 */
import assert from 'node:assert/strict';
import type { LSTMLayerArgs, Scalar, Tensor, Variable } from '@tensorflow/tfjs';
import type { Tf } from '../../../src/model/backend.js';
import { fusedLstmLayer, type FusedLstmLayer } from '../../../src/model/fused/index.js';

/**
 * Float32 agreement: the two implementations sum in different orders, so values agree to a few ulp of the
 * largest magnitude involved, not bit for bit.
 */
export function assertClose(actual: Tensor | Float32Array, expected: Tensor | Float32Array, label: string, tolerance = 2e-5): void {
  const got = actual instanceof Float32Array ? actual : (actual.dataSync() as Float32Array);
  const want = expected instanceof Float32Array ? expected : (expected.dataSync() as Float32Array);
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 0;
  for (const value of want) scale = Math.max(scale, Math.abs(value));
  assert.ok(scale > 0 || got.every((value) => value === 0), `${label}: all-zero reference`);
  let worst = 0;
  let worstIndex = 0;
  for (let i = 0; i < want.length; i++) {
    const difference = Math.abs(got[i] - want[i]);
    assert.ok(Number.isFinite(got[i]), `${label}[${i}] is ${got[i]}`);
    if (difference > worst) [worst, worstIndex] = [difference, i];
  }
  assert.ok(worst <= tolerance * scale + 1e-7, `${label}: [${worstIndex}] ${got[worstIndex]} vs ${want[worstIndex]} (scale ${scale})`);
}

export interface Case {
  units: number;
  steps: number;
  features: number;
  batch: number;
  activation: LSTMLayerArgs['activation'];
  recurrentActivation: LSTMLayerArgs['recurrentActivation'];
  returnSequences: boolean;
  useBias?: boolean;
}

export const CASES: Case[] = [
  { units: 32, steps: 24, features: 7, batch: 16, activation: 'tanh', recurrentActivation: 'sigmoid', returnSequences: true },
  { units: 32, steps: 24, features: 32, batch: 8, activation: 'tanh', recurrentActivation: 'sigmoid', returnSequences: false },
  { units: 5, steps: 3, features: 2, batch: 3, activation: 'tanh', recurrentActivation: 'hardSigmoid', returnSequences: false },
  { units: 6, steps: 7, features: 9, batch: 2, activation: 'relu', recurrentActivation: 'sigmoid', returnSequences: true },
  { units: 8, steps: 5, features: 3, batch: 4, activation: 'softplus', recurrentActivation: 'sigmoid', returnSequences: true },
  { units: 7, steps: 4, features: 1, batch: 5, activation: 'softsign', recurrentActivation: 'tanh', returnSequences: false },
  { units: 9, steps: 6, features: 4, batch: 3, activation: 'selu', recurrentActivation: 'elu', returnSequences: true },
  { units: 4, steps: 2, features: 3, batch: 1, activation: 'linear', recurrentActivation: 'sigmoid', returnSequences: false, useBias: false },
];

export const describeCase = (c: Case) =>
  `units ${c.units}, ${c.steps} steps × ${c.features} features, batch ${c.batch}, ${c.activation}/${c.recurrentActivation}` +
  `${c.returnSequences ? ', returnSequences' : ''}${c.useBias === false ? ', no bias' : ''}`;

/** A stock and a fused layer with the same (random, not initializer-made) weights, both built. */
export function layerPair(tf: Tf, c: Case, seed: number) {
  const args: LSTMLayerArgs = {
    units: c.units,
    activation: c.activation,
    recurrentActivation: c.recurrentActivation,
    returnSequences: c.returnSequences,
    useBias: c.useBias ?? true,
    unitForgetBias: true,
    recurrentInitializer: 'glorotUniform',
  };
  const stock = tf.layers.lstm(args);
  const fused = fusedLstmLayer(tf, args);
  const x = tf.randomNormal([c.batch, c.steps, c.features], 0, 1, 'float32', seed);
  tf.tidy(() => {
    stock.apply(x);
    fused.apply(x);
  });
  const weights = stock.getWeights().map((weight, index) => tf.randomNormal(weight.shape, 0, 0.5, 'float32', seed * 10 + index));
  stock.setWeights(weights);
  fused.setWeights(weights);
  tf.dispose(weights);
  return { stock, fused, x };
}

/** Output and gradients of sum(output ⊙ r) w.r.t. the input and every weight. */
function outputAndGradients(tf: Tf, layer: FusedLstmLayer | ReturnType<Tf['layers']['lstm']>, x: Tensor, r: Tensor) {
  const input = tf.variable(x, true, undefined);
  const variables = [input, ...layer.trainableWeights.map((weight) => weight.read() as Variable)];
  const output = tf.tidy(() => layer.apply(input) as Tensor);
  const { value, grads } = tf.variableGrads(() => tf.sum<Scalar>(tf.mul(layer.apply(input) as Tensor, r)), variables);
  const result = { output, value, gradients: variables.map((variable) => grads[variable.name]) };
  input.dispose();
  return result;
}

/** Output and all gradients of one case, fused against stock. */
export function checkCase(tf: Tf, c: Case, index: number): void {
  const { stock, fused, x } = layerPair(tf, c, 100 + index);
  const outputShape = c.returnSequences ? [c.batch, c.steps, c.units] : [c.batch, c.units];
  const r = tf.randomNormal(outputShape, 0, 1, 'float32', 200 + index);
  try {
    const expected = outputAndGradients(tf, stock, x, r);
    const actual = outputAndGradients(tf, fused, x, r);
    assert.ok(fused.lastCallFused, 'the fused path ran');
    assert.deepEqual(actual.output.shape, outputShape);
    assertClose(actual.output, expected.output, 'output');
    assertClose(actual.value, expected.value, 'loss');
    const names = ['input', 'kernel', 'recurrent_kernel', 'bias'];
    assert.equal(actual.gradients.length, c.useBias === false ? 3 : 4);
    actual.gradients.forEach((gradient, i) => assertClose(gradient, expected.gradients[i], `d${names[i]}`));
    tf.dispose([expected.output, expected.value, ...expected.gradients, actual.output, actual.value, ...actual.gradients]);
  } finally {
    tf.dispose([x, r]);
    stock.dispose();
    fused.dispose();
  }
}
