import assert from 'node:assert/strict';

// Float32 storage rounds values, so expectations computed in double are compared with a tolerance;
// NaN must match NaN exactly, because NaN is how the pipeline marks missing data.
export function assertCloseArray(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-6, message = ''): void {
  assert.equal(actual.length, expected.length, `${message} length`);
  for (let i = 0; i < expected.length; i++) {
    const want = expected[i];
    const got = actual[i];
    if (Number.isNaN(want)) {
      assert.ok(Number.isNaN(got), `${message} [${i}]: expected NaN, got ${got}`);
    } else {
      assert.ok(Math.abs(got - want) <= tolerance, `${message} [${i}]: expected ${want}, got ${got}`);
    }
  }
}

export function assertClose(actual: number, expected: number, tolerance = 1e-9, message = ''): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${message} expected ${expected}, got ${actual}`);
}
