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
export function splitWindows(set: WindowSet, splitRow: number): { train: WindowSet; validation: WindowSet } {
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

/** The windows whose targets all lie in rows [fromRow, toRow): origin >= fromRow and origin + horizon <= toRow. */
export function windowsInRange(set: WindowSet, fromRow: number, toRow: number): WindowSet {
  let first = 0;
  while (first < set.count && set.originRows[first] < fromRow) first++;
  let end = first;
  while (end < set.count && set.originRows[end] + set.horizon <= toRow) end++;
  return subsetWindows(set, first, end);
}

/** The windows at the given origins (a subset of the set's, in increasing order); unknown origins are ignored. */
export function windowsAtOrigins(set: WindowSet, origins: ArrayLike<number>): WindowSet {
  const wanted = new Set(Array.from(origins));
  const indices: number[] = [];
  for (let w = 0; w < set.count; w++) if (wanted.has(set.originRows[w])) indices.push(w);
  const windowSize = set.steps * set.features;
  const out: WindowSet = {
    count: indices.length,
    steps: set.steps,
    features: set.features,
    horizon: set.horizon,
    inputs: new Float32Array(indices.length * windowSize),
    targets: new Float32Array(indices.length * set.horizon),
    anchors: new Float32Array(indices.length),
    originRows: new Int32Array(indices.length),
  };
  indices.forEach((w, i) => {
    out.inputs.set(set.inputs.subarray(w * windowSize, (w + 1) * windowSize), i * windowSize);
    out.targets.set(set.targets.subarray(w * set.horizon, (w + 1) * set.horizon), i * set.horizon);
    out.anchors[i] = set.anchors[w];
    out.originRows[i] = set.originRows[w];
  });
  return out;
}
