/**
 * Shared helpers for the model tests: forecast configs with the real defaults, a seeded synthetic periodic
 * series, scratch directories. No side effects at import (node --test also loads this file as a "test file").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { ForecastConfig } from '../../src/config/schema.js';
import type { SeriesReadings } from '../../src/windowing/index.js';
import { seededRandom } from '../../src/model/random.js';

export const HOUR_MS = 3_600_000;
/** A fixed "now" that is deliberately not on an hour boundary: 2024-01-31 12:30 UTC. */
export const NOW_MS = Date.UTC(2024, 0, 31, 12, 30, 0);
/** The last closed hourly bucket ends here (alignDown(NOW_MS, 1 h)). */
export const ORIGIN_MS = Date.UTC(2024, 0, 31, 12, 0, 0);

/** A full ForecastConfig with every default filled by the real schema; `fields` override the forecast's keys. */
export function forecastConfig(fields: Record<string, unknown> = {}): ForecastConfig {
  return parseConfig({ forecasts: [{ name: 'sine', target: 'site.temp', calendar: [], interval: '1h', ...fields }] }).forecasts[0];
}

/** mulberry32 (src/model/random.ts): seeded, so a failing case can be replayed. */
export const prng = seededRandom;

export interface SineOptions {
  /** How many hourly readings, the last one in the bucket just before `endMs`. */
  points: number;
  endMs?: number;
  periodSteps?: number;
  amplitude?: number;
  level?: number;
  /** Peak-to-peak uniform noise. */
  noise?: number;
  seed?: number;
  /** Hour buckets (counted back from endMs: 1 = the last closed bucket) that get no reading. */
  missingHoursBack?: ReadonlySet<number>;
}

/** The noise-free value of the synthetic signal in the bucket that starts at `bucketStartMs`. */
export function sineAt(bucketStartMs: number, options: Pick<SineOptions, 'periodSteps' | 'amplitude' | 'level'> = {}): number {
  const { periodSteps = 24, amplitude = 5, level = 20 } = options;
  return level + amplitude * Math.sin((2 * Math.PI * (bucketStartMs / HOUR_MS)) / periodSteps);
}

/** One reading per hour, 10 minutes into each bucket, ending in the bucket [endMs - 1 h, endMs). */
export function sineSeries(options: SineOptions, name = 'site.temp'): SeriesReadings {
  const { points, endMs = ORIGIN_MS, noise = 0, seed = 1, missingHoursBack = new Set<number>() } = options;
  const random = prng(seed);
  const timestamps: number[] = [];
  const values: number[] = [];
  for (let back = points; back >= 1; back--) {
    const bucketStart = endMs - back * HOUR_MS;
    const jitter = (random() - 0.5) * noise;
    if (missingHoursBack.has(back)) continue;
    timestamps.push(bucketStart + 10 * 60_000);
    values.push(sineAt(bucketStart, options) + jitter);
  }
  return { name, timestampsMs: Float64Array.from(timestamps), values: Float64Array.from(values) };
}

const scratch: string[] = [];

export function tempDir(prefix = 'forecastd-model-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
