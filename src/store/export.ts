/**
 * Export: stored readings of a few series as CSV text, one row per distinct timestamp:
 *
 *   timestamp,livingroom.temperature,livingroom.humidity
 *   2026-01-01T10:00:00Z,21.5,40
 *   2026-01-01T10:01:00Z,21.6,
 *
 * Timestamps are ISO 8601 UTC; a series without a value at a row's time has an empty cell. Numbers are written
 * in JavaScript's shortest round-trip form, so importing the file again gives back the same values.
 * Series names need no quoting: they are letters, digits and `_ . : -`.
 */
import type { Readings } from './store.js';

export interface CsvExportRange {
  series: readonly string[];
  /** Inclusive. */
  fromMs: number;
  /** Exclusive. */
  toMs: number;
}

/** `2004-03-10T17:00:00Z`, with `.250` only when there are milliseconds. */
export function formatTimestampUtc(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? `${iso.slice(0, -5)}Z` : iso;
}

/** Yields the CSV in lines (each ending with `\n`): the header, then the rows in time order. */
export function* csvLines(store: Readings, range: CsvExportRange): Generator<string> {
  yield `timestamp,${range.series.join(',')}\n`;
  const cells = new Array<string>(range.series.length).fill('');
  let rowTs = Number.NaN;
  for (const [ts, position, value] of store.iterateRows(range.series, range.fromMs, range.toMs)) {
    if (ts !== rowTs) {
      if (!Number.isNaN(rowTs)) {
        yield `${formatTimestampUtc(rowTs)},${cells.join(',')}\n`;
        cells.fill('');
      }
      rowTs = ts;
    }
    cells[position] = String(value);
  }
  if (!Number.isNaN(rowTs)) yield `${formatTimestampUtc(rowTs)},${cells.join(',')}\n`;
}
