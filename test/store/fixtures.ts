import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
/** The "now" of the retention tests: 2026-01-01T00:00:00Z. */
export const T0 = Date.UTC(2026, 0, 1);

/** A scratch directory per test file, removed after it. */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

let counter = 0;

/** A fresh forecastd database (real schema, real pragmas) in `dir`. */
export function freshStore(dir: string, name = `t${++counter}.db`): { db: Db; readings: ReadingStore; path: string } {
  const path = join(dir, name);
  const { db } = openDatabase({ path, synchronous: 'NORMAL' });
  return { db, readings: new ReadingStore(db), path };
}

/** Stores `count` readings of `series` at `firstTs`, `firstTs + stepMs`, ... (one transaction). */
export function fill(readings: ReadingStore, series: string, firstTs: number, stepMs: number, count: number): void {
  const batch = Array.from({ length: count }, (_, index) => ({ series, ts: firstTs + index * stepMs, value: index % 100 }));
  readings.insertMany(batch);
}

/** The timestamps of a series, oldest first. */
export function timestamps(db: Db, series: string): number[] {
  return db
    .prepare('SELECT ts FROM readings JOIN series ON series.id = readings.series_id WHERE series.name = ? ORDER BY ts')
    .pluck()
    .all(series) as number[];
}

export function countOf(db: Db, series: string): number {
  return db
    .prepare('SELECT count(*) FROM readings JOIN series ON series.id = readings.series_id WHERE series.name = ?')
    .pluck()
    .get(series) as number;
}
