/**
 * Real third-party measurements from ../shared/data (see its README), read in place: they must not be
 * copied into the repository. Tests that need them skip, saying why, when the folder is missing.
 * No side effects at import (node --test also loads this file as a "test file").
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReadingStore } from '../../../src/store/readings.js';
import type { SeriesReadings } from '../../../src/windowing/index.js';

/** Compiled tests live in dist/test/<area>/: the repository root is three levels up, the shared data next to it. */
export const SHARED_DATA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..', '..', 'shared', 'data');

export const DATASETS = {
  occupancy: path.join(SHARED_DATA, 'uci-occupancy', 'occupancy_uci_minutely.csv'),
  airQuality: path.join(SHARED_DATA, 'uci-air-quality', 'air_quality_uci_hourly.csv'),
} as const;

/** A reason to skip when the file is not there, else false (node:test's `skip` option takes either). */
export function missing(file: string): string | false {
  return fs.existsSync(file) ? false : `real data not found at ${file} (../shared/data next to the repository)`;
}

/**
 * One column of a "clean" shared CSV (comma-separated, first column an ISO local timestamp without zone,
 * empty field = missing) as a series. Times are read as UTC: the files carry no zone, and UTC keeps the
 * grid free of daylight-saving jumps whatever the machine's zone is.
 */
export function readColumn(file: string, column: string, name: string): SeriesReadings {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const header = lines[0].split(',');
  const index = header.indexOf(column);
  if (index < 0) throw new Error(`${file} has no column ${column} (it has ${header.join(', ')})`);
  const timestamps: number[] = [];
  const values: number[] = [];
  for (let line = 1; line < lines.length; line++) {
    if (lines[line] === '') continue;
    const fields = lines[line].split(',');
    if (fields[index] === '' || fields[index] === undefined) continue;
    timestamps.push(Date.parse(`${fields[0]}Z`));
    values.push(Number(fields[index]));
  }
  return { name, timestampsMs: Float64Array.from(timestamps), values: Float64Array.from(values) };
}

/** The small loader the tests use instead of the CLI import command: every reading, one transaction. */
export function importSeries(store: ReadingStore, series: SeriesReadings): number {
  return store.insertMany(Array.from(series.timestampsMs, (ts, index) => ({ series: series.name, ts, value: series.values[index] })));
}

/** Bucket means of a series on a grid, NaN where a bucket has no reading. */
export function bucketMeans(series: SeriesReadings, gridStartMs: number, intervalMs: number, rows: number): Float64Array {
  const sums = new Float64Array(rows);
  const counts = new Float64Array(rows);
  series.timestampsMs.forEach((ts, index) => {
    const row = Math.floor((ts - gridStartMs) / intervalMs);
    if (row < 0 || row >= rows) return;
    sums[row] += series.values[index];
    counts[row]++;
  });
  return sums.map((sum, row) => (counts[row] === 0 ? NaN : sum / counts[row]));
}
