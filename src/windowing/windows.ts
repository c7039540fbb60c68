/**
 * Supervised windows cut from a scaled row-major [rows, features] matrix.
 *
 * Window w has origin `originRows[w]`: its inputs are rows [origin - steps, origin) of every feature,
 * its targets rows [origin, origin + horizon) of the target feature.
 */
export interface WindowSet {
  count: number;
  steps: number;
  features: number;
  horizon: number;
  /** count * steps * features, row-major [window, step, feature]. */
  inputs: Float32Array;
  /** count * horizon, row-major [window, step]. */
  targets: Float32Array;
  /** Per window, the last input value of the target feature; 0 when not relative to last. */
  anchors: Float32Array;
  /** Per window, the row index of its first target, in increasing order. */
  originRows: Int32Array;
}

export interface CutWindowsOptions {
  steps: number;
  horizon: number;
  targetFeature: number;
  /**
   * Subtract each window's anchor from the target column of its inputs and from its targets, so
   * the model predicts the change from the last observation (NLinear) instead of having to
   * reproduce a drifting level; add the anchor back to its outputs.
   */
  relativeToLast: boolean;
  /** First origin to consider; default and lower bound `steps`. */
  firstOrigin?: number;
  /** Last origin to consider (inclusive); default and upper bound `rows - horizon`. */
  lastOrigin?: number;
}

/**
 * Every window (stride 1) whose inputs and targets hold no NaN, in increasing order of origin.
 * Windows touching a NaN are skipped rather than filled: the gaps left after short-gap filling are
 * outages, and training on invented values would teach the model the filler.
 */
export function cutWindows(matrix: Float32Array, rows: number, features: number, opts: CutWindowsOptions): WindowSet {
  const { steps, horizon, targetFeature, relativeToLast } = opts;
  assertWindowShape(matrix, rows, features, steps, targetFeature);
  if (!Number.isInteger(horizon) || horizon < 1) {
    throw new RangeError(`cutWindows: horizon must be a positive integer, got ${horizon}`);
  }
  for (const [name, origin] of [
    ['firstOrigin', opts.firstOrigin],
    ['lastOrigin', opts.lastOrigin],
  ] as const) {
    if (origin !== undefined && !Number.isInteger(origin)) {
      throw new RangeError(`cutWindows: ${name} must be an integer, got ${origin}`);
    }
  }
  const firstOrigin = Math.max(steps, opts.firstOrigin ?? steps);
  const lastOrigin = Math.min(rows - horizon, opts.lastOrigin ?? rows - horizon);

  // Prefix counts of NaN rows (any feature) and of NaN target cells make the check O(1) per window
  // instead of O(steps * features).
  const nanRowsBefore = new Int32Array(rows + 1);
  const nanTargetsBefore = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) {
    let rowHasNaN = 0;
    for (let f = 0; f < features; f++) {
      if (Number.isNaN(matrix[r * features + f])) {
        rowHasNaN = 1;
        break;
      }
    }
    nanRowsBefore[r + 1] = nanRowsBefore[r] + rowHasNaN;
    nanTargetsBefore[r + 1] = nanTargetsBefore[r] + (Number.isNaN(matrix[r * features + targetFeature]) ? 1 : 0);
  }

  const candidateOrigins = new Int32Array(Math.max(0, lastOrigin - firstOrigin + 1));
  let count = 0;
  for (let origin = firstOrigin; origin <= lastOrigin; origin++) {
    const inputsClean = nanRowsBefore[origin] - nanRowsBefore[origin - steps] === 0;
    const targetsClean = nanTargetsBefore[origin + horizon] - nanTargetsBefore[origin] === 0;
    if (inputsClean && targetsClean) candidateOrigins[count++] = origin;
  }
  const originRows = candidateOrigins.slice(0, count);

  const windowSize = steps * features;
  const inputs = new Float32Array(count * windowSize);
  const targets = new Float32Array(count * horizon);
  const anchors = new Float32Array(count);
  for (let w = 0; w < count; w++) {
    const origin = originRows[w];
    const anchor = relativeToLast ? matrix[(origin - 1) * features + targetFeature] : 0;
    anchors[w] = anchor;
    copyInputRows(matrix, features, origin - steps, steps, targetFeature, anchor, inputs, w * windowSize);
    for (let h = 0; h < horizon; h++) {
      targets[w * horizon + h] = matrix[(origin + h) * features + targetFeature] - anchor;
    }
  }
  return { count, steps, features, horizon, inputs, targets, anchors, originRows };
}

/**
 * The final `steps` rows as one model input, for inference; null when there are fewer rows or any
 * of them holds NaN (a forecast from a hole would be a forecast of the filler).
 */
export function lastWindow(
  matrix: Float32Array,
  rows: number,
  features: number,
  steps: number,
  targetFeature: number,
  relativeToLast: boolean,
): { input: Float32Array; anchor: number } | null {
  assertWindowShape(matrix, rows, features, steps, targetFeature);
  if (rows < steps) return null;
  const firstRow = rows - steps;
  for (let cell = firstRow * features; cell < rows * features; cell++) {
    if (Number.isNaN(matrix[cell])) return null;
  }
  const anchor = relativeToLast ? matrix[(rows - 1) * features + targetFeature] : 0;
  const input = new Float32Array(steps * features);
  copyInputRows(matrix, features, firstRow, steps, targetFeature, anchor, input, 0);
  return { input, anchor };
}

function copyInputRows(
  matrix: Float32Array,
  features: number,
  firstRow: number,
  steps: number,
  targetFeature: number,
  anchor: number,
  destination: Float32Array,
  destinationOffset: number,
): void {
  destination.set(matrix.subarray(firstRow * features, (firstRow + steps) * features), destinationOffset);
  if (anchor === 0) return;
  for (let s = 0; s < steps; s++) {
    destination[destinationOffset + s * features + targetFeature] -= anchor;
  }
}

function assertWindowShape(matrix: Float32Array, rows: number, features: number, steps: number, targetFeature: number): void {
  if (matrix.length !== rows * features) {
    throw new RangeError(`matrix holds ${matrix.length} cells, expected ${rows} x ${features}`);
  }
  if (!Number.isInteger(steps) || steps < 1) {
    throw new RangeError(`steps must be a positive integer, got ${steps}`);
  }
  if (!Number.isInteger(targetFeature) || targetFeature < 0 || targetFeature >= features) {
    throw new RangeError(`targetFeature ${targetFeature} is not in [0, ${features})`);
  }
}
