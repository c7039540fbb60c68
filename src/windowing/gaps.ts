/**
 * Returns a copy of `grid` in which every interior run of NaN no longer than `maxGapSteps` is
 * linearly interpolated between the values on either side of it.
 *
 * Leading and trailing runs stay NaN: there is only one neighbour, and extrapolating would invent a
 * trend. Longer runs stay NaN too: a straight line across a long outage is a guess, and windowing
 * skips any window that touches NaN, so the model never trains on it.
 */
export function fillShortGaps(grid: Float64Array, maxGapSteps: number): Float64Array {
  if (!(maxGapSteps >= 0)) {
    throw new RangeError(`fillShortGaps: maxGapSteps must be >= 0, got ${maxGapSteps}`);
  }
  const filled = grid.slice();
  let lastValidIndex = -1;
  for (let i = 0; i < filled.length; i++) {
    if (Number.isNaN(filled[i])) continue;
    const gapLength = i - lastValidIndex - 1;
    if (lastValidIndex >= 0 && gapLength > 0 && gapLength <= maxGapSteps) {
      const before = filled[lastValidIndex];
      const after = filled[i];
      const stepCount = gapLength + 1;
      for (let k = 1; k <= gapLength; k++) {
        filled[lastValidIndex + k] = before + ((after - before) * k) / stepCount;
      }
    }
    lastValidIndex = i;
  }
  return filled;
}
