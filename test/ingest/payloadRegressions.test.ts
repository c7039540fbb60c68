/**
 * Regressions found by the F9 fuzz suite (test/faults/fuzz.test.ts), each with the shrunk counterexample.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodePayload, type DecodeLimits } from '../../src/ingest/payload.js';

const NOW = 1_767_268_800_000;
const LIMITS: DecodeLimits = { maxPayloadBytes: 4096, maxFutureMs: 300_000, maxAgeMs: 86_400_000 };
/** The largest maxPayloadBytes the config schema allows. */
const LARGEST_LIMITS: DecodeLimits = { ...LIMITS, maxPayloadBytes: 1_048_576 };

const bytes = (text: string) => new TextEncoder().encode(text);

function timed<T>(run: () => T): { result: T; ms: number } {
  const started = performance.now();
  const result = run();
  return { result, ms: performance.now() - started };
}

describe('decodePayload regressions from fuzzing', () => {
  // Shrunk counterexample: tens of thousands of '1' and then 'x' (a 70 KB limit let it reach the decoder). The pattern
  // `\d+\.?\d*` could split the run between its two quantifiers in n ways before failing: 36 ms at 4 KB,
  // 9 s at 64 KB, and (by the square law) over half an hour at the 1 MB that maxPayloadBytes allows.
  // 10⁵ digits: about 20 s with the old pattern (so this fails instead of hanging), a millisecond with the new one.
  it('rejects a long run of digits ending in a letter in linear time', () => {
    for (const text of [
      '1'.repeat(100_000) + 'x',
      `-${'9'.repeat(50_000)}.${'9'.repeat(50_000)}x`,
      `${' '.repeat(500_000)}1${' '.repeat(500_000)}x`,
    ]) {
      const { result, ms } = timed(() => decodePayload(bytes(text), NOW, LARGEST_LIMITS));
      assert.equal(result.ok ? 'accepted' : result.reason, 'not_a_number');
      assert.ok(ms < 1000, `${text.length} characters took ${ms.toFixed(0)} ms`);
    }
  });

  it('still reads a 4 KB run of digits as one number', () => {
    const { result, ms } = timed(() => decodePayload(bytes(`${'0'.repeat(4094)}42`), NOW, LIMITS));
    assert.deepEqual(result, { ok: true, readings: [{ ts: NOW, value: 42 }] });
    assert.ok(ms < 1000);
  });

  it('accepts exactly the plain numbers it accepted before the fix', () => {
    // The old pattern, kept here as the specification of the language (it is only slow on long input).
    const before = /^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$/;
    const text = fc.array(fc.constantFrom(' ', '\t', '+', '-', '.', 'e', 'E', '0', '1', '9', 'x'), { maxLength: 12 }).map((chars) => chars.join(''));
    fc.assert(
      fc.property(text, (candidate) => {
        const result = decodePayload(bytes(candidate), NOW, LIMITS, { format: 'number' });
        const readAsNumber = result.ok || result.reason !== 'not_a_number';
        assert.equal(readAsNumber, before.test(candidate), JSON.stringify(candidate));
      }),
      { numRuns: 20_000 },
    );
    for (const number of ['1', '1.', '.5', '1.5e3', ' -3e2 ', '+5\n', '007'])
      assert.ok(decodePayload(bytes(number), NOW, LIMITS, { format: 'number' }).ok, number);
  });
});
