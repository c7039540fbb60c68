// Grids sit on epoch multiples of the interval so that buckets of different series, of different
// runs and of different devices line up without any bookkeeping of where a grid started.

/** Start of the grid cell that contains `tsMs`. */
export function alignDown(tsMs: number, intervalMs: number): number {
  assertInterval(intervalMs);
  return Math.floor(tsMs / intervalMs) * intervalMs;
}

/** First grid boundary at or after `tsMs`. */
export function alignUp(tsMs: number, intervalMs: number): number {
  assertInterval(intervalMs);
  // `+ 0` turns the -0 that Math.ceil gives for (-interval, 0) into 0, so results compare equal.
  return Math.ceil(tsMs / intervalMs) * intervalMs + 0;
}

/**
 * Mean of the readings in each bucket [gridStartMs + i*intervalMs, gridStartMs + (i+1)*intervalMs);
 * NaN where a bucket has no reading. Readings may come in any order; readings outside the grid and
 * readings whose value is not finite are ignored, because a sensor's NaN means "no reading" and must
 * not poison the mean of the other readings in its bucket.
 */
export function resampleMean(
  timestampsMs: Float64Array,
  values: Float64Array,
  gridStartMs: number,
  intervalMs: number,
  bucketCount: number,
): Float64Array {
  assertInterval(intervalMs);
  if (timestampsMs.length !== values.length) {
    throw new RangeError(`resampleMean: ${timestampsMs.length} timestamps but ${values.length} values`);
  }
  if (!Number.isInteger(bucketCount) || bucketCount < 0) {
    throw new RangeError(`resampleMean: bucketCount must be a non-negative integer, got ${bucketCount}`);
  }
  const sums = new Float64Array(bucketCount);
  const readingCounts = new Uint32Array(bucketCount);
  for (let i = 0; i < timestampsMs.length; i++) {
    const value = values[i];
    if (!Number.isFinite(value)) continue;
    const bucket = Math.floor((timestampsMs[i] - gridStartMs) / intervalMs);
    // Written as a negated range test so that a NaN timestamp is also rejected.
    if (!(bucket >= 0 && bucket < bucketCount)) continue;
    sums[bucket] += value;
    readingCounts[bucket]++;
  }
  const means = new Float64Array(bucketCount);
  for (let b = 0; b < bucketCount; b++) {
    means[b] = readingCounts[b] === 0 ? NaN : sums[b] / readingCounts[b];
  }
  return means;
}

function assertInterval(intervalMs: number): void {
  if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
    throw new RangeError(`intervalMs must be a positive finite number, got ${intervalMs}`);
  }
}
