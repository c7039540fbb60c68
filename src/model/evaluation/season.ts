/**
 * The season of the seasonal-naive baseline: from the config, else detected from the autocorrelation
 * of the training part, else one day when the interval divides it. Pure.
 */

export type SeasonSource = 'config' | 'detected' | 'default' | 'none';

export interface Season {
  /** In grid intervals; null when the series has no usable season (seasonal naive is then left out). */
  length: number | null;
  source: SeasonSource;
  /** Autocorrelation at the chosen lag, when it was measured. */
  acf?: number;
}

const DAY_SECONDS = 86_400;
/** A peak must reach this autocorrelation... */
const MIN_PEAK_ACF = 0.3;
/** ...and rise this much above the lowest autocorrelation at a shorter lag, so a slow decay is no season. */
const MIN_PEAK_PROMINENCE = 0.1;
/** Among peaks this close to the highest, the shortest lag wins: a daily cycle also peaks at 2, 3, 7 days. */
const PEAK_TOLERANCE = 0.1;

/**
 * Sample autocorrelation of `values` (NaN skipped pairwise) at lags [0, maxLag], after removing a
 * least-squares line so that a trend does not look like a season. Each lag is normalised by its own
 * number of pairs, so long lags are not shrunk towards 0.
 */
export function autocorrelation(values: ArrayLike<number>, maxLag: number): Float64Array {
  const n = values.length;
  const detrended = new Float64Array(n);
  let count = 0;
  let sumT = 0;
  let sumV = 0;
  for (let t = 0; t < n; t++) {
    if (!Number.isFinite(values[t])) continue;
    count++;
    sumT += t;
    sumV += values[t];
  }
  const acf = new Float64Array(Math.max(0, maxLag + 1));
  if (count < 3) return acf.fill(NaN);
  const meanT = sumT / count;
  const meanV = sumV / count;
  let covariance = 0;
  let varianceT = 0;
  for (let t = 0; t < n; t++) {
    if (!Number.isFinite(values[t])) continue;
    covariance += (t - meanT) * (values[t] - meanV);
    varianceT += (t - meanT) ** 2;
  }
  const slope = varianceT > 0 ? covariance / varianceT : 0;
  let variance = 0;
  for (let t = 0; t < n; t++) {
    detrended[t] = Number.isFinite(values[t]) ? values[t] - meanV - slope * (t - meanT) : NaN;
    if (Number.isFinite(detrended[t])) variance += detrended[t] ** 2;
  }
  variance /= count;
  if (!(variance > 0)) return acf.fill(NaN);
  for (let lag = 0; lag <= maxLag; lag++) {
    let sum = 0;
    let pairs = 0;
    for (let t = lag; t < n; t++) {
      const product = detrended[t] * detrended[t - lag];
      if (Number.isNaN(product)) continue;
      sum += product;
      pairs++;
    }
    acf[lag] = pairs > 0 ? sum / pairs / variance : NaN;
  }
  return acf;
}

/** The dominant season of `values` in [2, maxLag], or null when no autocorrelation peak stands out. */
export function detectSeason(values: ArrayLike<number>, maxLag: number): { length: number; acf: number } | null {
  const limit = Math.min(maxLag, Math.floor(values.length / 2));
  if (limit < 3) return null;
  const acf = autocorrelation(values, limit + 1);
  const peaks: Array<{ lag: number; acf: number }> = [];
  let lowest = acf[1];
  for (let lag = 2; lag <= limit; lag++) {
    if (!Number.isFinite(acf[lag])) continue;
    if (acf[lag - 1] < lowest) lowest = acf[lag - 1];
    const isPeak = acf[lag] >= acf[lag - 1] && acf[lag] > acf[lag + 1];
    if (isPeak && acf[lag] >= MIN_PEAK_ACF && acf[lag] - lowest >= MIN_PEAK_PROMINENCE) peaks.push({ lag, acf: acf[lag] });
  }
  if (peaks.length === 0) return null;
  const highest = Math.max(...peaks.map((peak) => peak.acf));
  const chosen = peaks.find((peak) => peak.acf >= highest - PEAK_TOLERANCE)!;
  return { length: chosen.lag, acf: chosen.acf };
}

/** One day in intervals when the interval divides a day into at least two steps; else null. */
export function dailySeason(intervalSeconds: number): number | null {
  if (!(intervalSeconds > 0) || DAY_SECONDS % intervalSeconds !== 0) return null;
  const length = DAY_SECONDS / intervalSeconds;
  return length >= 2 ? length : null;
}

/**
 * The season to use. `trainingValues` is the target over the training part only (never the
 * held-out part), so the choice does not peek at what it is evaluated on.
 */
export function resolveSeason(setting: 'auto' | number, intervalSeconds: number, trainingValues: ArrayLike<number>): Season {
  if (setting !== 'auto') return { length: setting, source: 'config' };
  // Look as far as eight days, to find weekly cycles too; a longer season rarely has enough history on a Pi.
  const maxLag = Math.min(Math.round((8 * DAY_SECONDS) / intervalSeconds), 5000);
  const detected = detectSeason(trainingValues, maxLag);
  if (detected) return { length: detected.length, source: 'detected', acf: detected.acf };
  const daily = dailySeason(intervalSeconds);
  return daily === null ? { length: null, source: 'none' } : { length: daily, source: 'default' };
}
