import type { WindowSet } from './windows.js';

/**
 * First row of the validation period: validation rows are [splitRow, rows), the most recent
 * `validationFraction` of the grid, so that early stopping judges the model on the future of what
 * it trained on, as it will be used.
 */
export function splitRowFor(rows: number, validationFraction: number): number {
  if (!Number.isInteger(rows) || rows < 0) {
    throw new RangeError(`splitRowFor: rows must be a non-negative integer, got ${rows}`);
  }
  // A fraction of 1 would leave no training rows to fit the scaler on.
  if (!(validationFraction >= 0 && validationFraction < 1)) {
    throw new RangeError(`splitRowFor: validationFraction must be in [0, 1), got ${validationFraction}`);
  }
  return rows - Math.round(rows * validationFraction);
}

/**
 * Chronological split of windows at `splitRow`. Train holds windows whose targets all lie before the
 * split (origin + horizon <= splitRow); validation holds windows whose targets all lie at or after it
 * (origin >= splitRow; their inputs may reach back into the training period, as at inference).
 * Windows straddling the split are dropped, so no training target is a validation value.
 */
export function splitWindows(
  set: WindowSet,
  splitRow: number,
): { train: WindowSet; validation: WindowSet } {
  // Origins are increasing, so train is a prefix and validation a suffix of the set.
  let trainEnd = 0;
  while (trainEnd < set.count && set.originRows[trainEnd] + set.horizon <= splitRow) trainEnd++;
  let validationStart = trainEnd;
  while (validationStart < set.count && set.originRows[validationStart] < splitRow) validationStart++;
  return {
    train: subsetWindows(set, 0, trainEnd),
    validation: subsetWindows(set, validationStart, set.count),
  };
}

/**
 * Windows [from, to) of `set`, by window index. The arrays are copies, not views: consumers may hand
 * them to a tensor or transfer them to a worker, which would otherwise take the whole parent buffer.
 */
export function subsetWindows(set: WindowSet, from: number, to: number): WindowSet {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || from > to || to > set.count) {
    throw new RangeError(`subsetWindows: [${from}, ${to}) is not a range within [0, ${set.count})`);
  }
  const windowSize = set.steps * set.features;
  return {
    count: to - from,
    steps: set.steps,
    features: set.features,
    horizon: set.horizon,
    inputs: set.inputs.slice(from * windowSize, to * windowSize),
    targets: set.targets.slice(from * set.horizon, to * set.horizon),
    anchors: set.anchors.slice(from, to),
    originRows: set.originRows.slice(from, to),
  };
}
