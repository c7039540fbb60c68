/** Per-feature z-score statistics; `std` is never 0, so scaling never divides by zero. */
export interface ScalerStats {
  mean: number[];
  std: number[];
}

// Below this a feature is treated as constant: dividing by a rounding-noise std would blow the
// noise up into large scaled values.
const MIN_STD = 1e-9;

/**
 * Mean and population standard deviation of each feature of a row-major [rows, features] matrix,
 * over rows [0, fitRows) only, ignoring NaN. Fitting on the training rows alone keeps the
 * validation period from leaking into the inputs the model trains on.
 *
 * A feature with no finite value in those rows gets mean 0, std 1; a constant feature keeps its
 * mean and gets std 1, so it scales to 0.
 */
export function fitScaler(matrix: Float64Array, rows: number, features: number, fitRows: number): ScalerStats {
  assertShape(matrix, rows, features);
  if (!Number.isInteger(fitRows) || fitRows < 0 || fitRows > rows) {
    throw new RangeError(`fitScaler: fitRows must be an integer in [0, ${rows}], got ${fitRows}`);
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let f = 0; f < features; f++) {
    // Two passes (mean, then squared deviations) rather than sum of squares, which loses all
    // precision for sensors with a large offset such as pressure in Pa.
    let sum = 0;
    let finiteCount = 0;
    for (let r = 0; r < fitRows; r++) {
      const value = matrix[r * features + f];
      if (Number.isNaN(value)) continue;
      sum += value;
      finiteCount++;
    }
    if (finiteCount === 0) {
      mean.push(0);
      std.push(1);
      continue;
    }
    const featureMean = sum / finiteCount;
    let squaredDeviationSum = 0;
    for (let r = 0; r < fitRows; r++) {
      const value = matrix[r * features + f];
      if (Number.isNaN(value)) continue;
      squaredDeviationSum += (value - featureMean) ** 2;
    }
    const featureStd = Math.sqrt(squaredDeviationSum / finiteCount);
    mean.push(featureMean);
    std.push(featureStd < MIN_STD ? 1 : featureStd);
  }
  return { mean, std };
}

/** (value - mean) / std for every cell; NaN stays NaN so windowing can still see the holes. */
export function scaleMatrix(matrix: Float64Array, rows: number, features: number, stats: ScalerStats): Float32Array {
  assertShape(matrix, rows, features);
  if (stats.mean.length !== features || stats.std.length !== features) {
    throw new RangeError(`scaleMatrix: stats hold ${stats.mean.length} means and ${stats.std.length} stds for ${features} features`);
  }
  const scaled = new Float32Array(rows * features);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < features; f++) {
      const cell = r * features + f;
      scaled[cell] = (matrix[cell] - stats.mean[f]) / stats.std[f];
    }
  }
  return scaled;
}

/** Back to original units, e.g. a forecast of feature `feature`. */
export function unscale(value: number, stats: ScalerStats, feature: number): number {
  assertFeature(stats, feature);
  return value * stats.std[feature] + stats.mean[feature];
}

export function unscaleArray(values: Float32Array | Float64Array, stats: ScalerStats, feature: number): Float64Array {
  assertFeature(stats, feature);
  const featureMean = stats.mean[feature];
  const featureStd = stats.std[feature];
  const unscaled = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) unscaled[i] = values[i] * featureStd + featureMean;
  return unscaled;
}

function assertShape(matrix: Float64Array, rows: number, features: number): void {
  if (matrix.length !== rows * features) {
    throw new RangeError(`matrix holds ${matrix.length} cells, expected ${rows} x ${features}`);
  }
}

// An out-of-range feature would silently turn every forecast into NaN.
function assertFeature(stats: ScalerStats, feature: number): void {
  if (!Number.isInteger(feature) || feature < 0 || feature >= stats.mean.length) {
    throw new RangeError(`feature ${feature} is not in [0, ${stats.mean.length})`);
  }
}
