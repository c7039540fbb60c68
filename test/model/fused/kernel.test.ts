import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ACTIVATION_CODES } from '../../../src/model/fused/activations.js';
import { LstmKernel } from '../../../src/model/fused/kernel.js';
import { LSTM_KERNEL_SOURCE_SHA256 } from '../../../src/model/fused/kernel/lstmWasm.js';

/** Tests run from dist/test/fused/; the AssemblyScript source stays in src/. */
const KERNEL_SOURCE = fileURLToPath(new URL('../../../../src/model/fused/kernel/lstm.as', import.meta.url));

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

describe('fused LSTM kernel (WebAssembly)', () => {
  it('the embedded binary was built from the current lstm.as (npm run build:fused-kernel)', () => {
    const source = readFileSync(KERNEL_SOURCE, 'utf8');
    assert.equal(createHash('sha256').update(source).digest('hex'), LSTM_KERNEL_SOURCE_SHA256);
  });

  it('gemm matches a plain triple loop, with transposed A, odd sizes and a long K', () => {
    const kernel = new LstmKernel();
    const random = seeded(1);
    for (const [M, N, K] of [
      [7, 13, 300],
      [64, 128, 32],
      [1, 5, 3],
      [5, 8, 1030],
    ]) {
      const a = Float32Array.from({ length: K * M }, random); // stored as [K, M]: the product uses Aᵀ
      const b = Float32Array.from({ length: K * N }, random);
      const c = Float32Array.from({ length: M * N }, random);
      const at = kernel.scratch({ a: a.length, b: b.length, c: c.length });
      kernel.write(a, at.a);
      kernel.write(b, at.b);
      kernel.write(c, at.c);
      kernel.exports.gemm(M, N, K, at.a, 1, M, at.b, N, at.c, N, 1);
      const got = kernel.read(at.c, M * N);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let want = c[m * N + n];
          for (let k = 0; k < K; k++) want += a[k * M + m] * b[k * N + n];
          assert.ok(Math.abs(got[m * N + n] - want) <= 1e-5 * Math.sqrt(K), `${M}×${N}×${K} [${m}, ${n}]: ${got[m * N + n]} vs ${want}`);
        }
      }
    }
  });

  it('sigmoid and tanh are within a few float32 ulp of the exact values and saturate cleanly', () => {
    const kernel = new LstmKernel();
    const inputs = Float32Array.from([
      ...Array.from({ length: 4001 }, (_, i) => -20 + i / 100),
      0,
      -0,
      1e-8,
      -1e-8,
      3e-4,
      5e-4,
      88,
      -88,
      100,
      -100,
      1e4,
      -1e4,
      Infinity,
      -Infinity,
    ]);
    const at = kernel.scratch({ src: inputs.length, dst: inputs.length });
    kernel.write(inputs, at.src);
    const cases: Array<[string, (x: number) => number]> = [
      ['sigmoid', (x) => 1 / (1 + Math.exp(-x))],
      ['tanh', Math.tanh],
    ];
    for (const [name, reference] of cases) {
      kernel.exports.activate(ACTIVATION_CODES[name], at.src, at.dst, inputs.length);
      const got = kernel.read(at.dst, inputs.length);
      inputs.forEach((x, i) => {
        const want = reference(x);
        // 4e-7 is about 6 ulp just below 1, where tanh's rational approximation is least exact.
        assert.ok(Math.abs(got[i] - want) <= 4e-7 * Math.max(1, Math.abs(want)), `${name}(${x}) = ${got[i]}, want ${want}`);
      });
    }
  });

  it('memory given back by released regions is reused', () => {
    const kernel = new LstmKernel();
    const before = kernel.bytesInUse;
    const first = kernel.region({ a: 1000, b: 3000 });
    const second = kernel.region({ a: 5000 });
    assert.ok(kernel.bytesInUse >= before + 9000 * 4);
    first.release();
    second.release();
    assert.equal(kernel.bytesInUse, before);
    const third = kernel.region({ a: 4000 });
    assert.equal(third.start, first.start, 'first fit reuses the freed space');
    third.release();
  });
});
