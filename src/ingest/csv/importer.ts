/**
 * Backfill: a CSV file of history → readings in the store.
 *
 * One pass over the file, streamed: rows are parsed as chunks arrive and stored in transactions of a few thousand
 * rows, so memory stays flat whatever the file's size. Storing is idempotent (a reading already present is a
 * duplicate, not an error), so an interrupted or repeated import can simply be run again.
 *
 * Per cell: empty (or a `missing` marker) is a gap, not stored; text that is not a plain decimal number, or a number
 * beyond ±1e15, is rejected and counted for its column, never fatal. A column whose cells are all rejected (such as
 * the occupancy file's `source_file`) therefore stores nothing and creates no series; the summary names it.
 */
import type { Readings } from '../../store/store.js';
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { SeriesColumn } from '../../store/readings.js';
import { planColumns, type ColumnOptions, type ColumnPlan } from './columns.js';
import { CsvParser, detectDelimiter } from './parser.js';
import { parseTimestamp, type TimeZone } from '../../time/timestamps.js';
import { MAX_ABS_VALUE, parseDecimal } from './values.js';

/** The file cannot be imported at all (it is empty, or has no header). */
export class CsvFormatError extends Error {
  override readonly name = 'CsvFormatError';
}

export interface CsvSource {
  /** For messages: the file's name. */
  name: string;
  chunks: AsyncIterable<string> | Iterable<string>;
  /** Bytes read so far and in all, for the progress bar; unknown for a pipe. */
  bytesRead?: () => number;
  totalBytes?: number;
}

/** Streams a file as UTF-8 text. */
export function csvFileSource(path: string): CsvSource {
  const totalBytes = statSync(path).size;
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 256 * 1024 });
  return { name: basename(path), chunks: stream, bytesRead: () => stream.bytesRead, totalBytes };
}

export interface ImportProgress {
  rowsRead: number;
  readingsStored: number;
  bytesRead?: number;
  totalBytes?: number;
}

export interface CsvImportOptions extends ColumnOptions {
  timeZone: TimeZone;
  /** Default: detected from the header line (`,` `;` or tab). */
  delimiter?: string;
  /** Accept `2,6` as 2.6. Default: on when the delimiter is `;`, the usual pairing in European exports. */
  decimalComma?: boolean;
  /**
   * Cell values that mean "no value", such as `-200` in the raw UCI air-quality file. A number matches by value (the
   * raw file writes both `-200` and `-200,0`), anything else by its text.
   */
  missing?: readonly string[];
  /** A transaction is committed after this many rows, or this many readings, whichever comes first. */
  batchRows?: number;
  batchReadings?: number;
  onProgress?: (progress: ImportProgress) => void;
}

export interface Example {
  line: number;
  text: string;
}

export interface ColumnSummary {
  column: string;
  series: string;
  /** Cells with a valid number (stored or duplicate). */
  readings: number;
  rejected: number;
  firstRejected?: Example;
  /** Time range of the valid cells; NaN when there are none. */
  firstMs: number;
  lastMs: number;
}

export interface ImportSummary {
  source: string;
  delimiter: string;
  decimalComma: boolean;
  timeZone: string;
  plan: ColumnPlan;
  /** Data rows (the header is not counted), blank ones included. */
  rowsRead: number;
  blankRows: number;
  badTimestampRows: number;
  firstBadTimestamp?: Example;
  /** Rows with another number of fields than the header (read anyway: missing cells are gaps). */
  raggedRows: number;
  firstRagged?: Example;
  readingsStored: number;
  /** Valid readings that were already stored (an earlier import, or a repeated timestamp in this file). */
  duplicates: number;
  columns: ColumnSummary[];
  nonexistentLocalTimes: number;
  ambiguousLocalTimes: number;
  elapsedMs: number;
}

const DEFAULT_BATCH_ROWS = 4096;
/** About 50 ms of inserts on a slow board: short enough not to starve a running daemon's writes. */
const DEFAULT_BATCH_READINGS = 16_384;

export async function importCsv(source: CsvSource, store: Readings, options: CsvImportOptions): Promise<ImportSummary> {
  const startedAt = performance.now();
  const batchRows = options.batchRows ?? DEFAULT_BATCH_ROWS;
  const batchReadings = options.batchReadings ?? DEFAULT_BATCH_READINGS;
  const zone = options.timeZone;
  const missingTexts = new Set((options.missing ?? []).map((text) => text.trim()));
  const missingValues = new Set([...missingTexts].map((text) => parseDecimal(text, true)).filter((value) => !Number.isNaN(value)));
  const zoneCountsBefore = { nonexistent: zone.nonexistent, ambiguous: zone.ambiguous };

  let summary: ImportSummary | null = null;
  let parser: CsvParser | null = null;
  let headerLength = 0;
  let columns: Array<SeriesColumn & { index: number; summary: ColumnSummary }> = [];
  let decimalComma = false;
  let timestampIndex = 0;
  let timeIndex = -1;
  let pendingRows = 0;
  let pendingReadings = 0;

  const flush = () => {
    if (pendingRows === 0) return;
    const stored = store.insertColumns(columns);
    summary!.readingsStored += stored;
    summary!.duplicates += pendingReadings - stored;
    for (const column of columns) column.length = 0;
    pendingRows = 0;
    pendingReadings = 0;
  };

  const onHeader = (fields: string[], delimiter: string) => {
    const plan = planColumns(fields, options);
    headerLength = fields.length;
    decimalComma = options.decimalComma ?? delimiter === ';';
    timestampIndex = plan.timestamp.index;
    timeIndex = plan.time?.index ?? -1;
    columns = plan.values.map(({ index, column, series }) => ({
      index,
      series,
      timestampsMs: new Float64Array(batchRows),
      values: new Float64Array(batchRows),
      length: 0,
      summary: { column, series, readings: 0, rejected: 0, firstMs: Number.NaN, lastMs: Number.NaN },
    }));
    summary = {
      source: source.name,
      delimiter,
      decimalComma,
      timeZone: zone.name,
      plan,
      rowsRead: 0,
      blankRows: 0,
      badTimestampRows: 0,
      raggedRows: 0,
      readingsStored: 0,
      duplicates: 0,
      columns: columns.map((column) => column.summary),
      nonexistentLocalTimes: 0,
      ambiguousLocalTimes: 0,
      elapsedMs: 0,
    };
  };

  const onRow = (fields: string[], line: number) => {
    const totals = summary!;
    totals.rowsRead++;
    if (fields.length !== headerLength) {
      if (fields.every((field) => field === '')) {
        totals.blankRows++;
        return;
      }
      if (totals.raggedRows++ === 0) totals.firstRagged = { line, text: `${fields.length} fields, the header has ${headerLength}` };
    }
    const stamp = timeIndex === -1 ? (fields[timestampIndex] ?? '') : `${fields[timestampIndex] ?? ''} ${fields[timeIndex] ?? ''}`;
    const ts = parseTimestamp(stamp, zone);
    if (Number.isNaN(ts)) {
      if (fields.every((field) => field === '')) {
        totals.blankRows++;
        return;
      }
      if (totals.badTimestampRows++ === 0) totals.firstBadTimestamp = { line, text: stamp };
      return;
    }
    for (const column of columns) {
      const cell = fields[column.index];
      if (cell === undefined || cell === '') continue;
      const value = parseDecimal(cell, decimalComma);
      if (Number.isNaN(value) || value > MAX_ABS_VALUE || value < -MAX_ABS_VALUE) {
        if (cell.trim() === '' || (missingTexts.size && missingTexts.has(cell.trim()))) continue;
        const stats = column.summary;
        if (stats.rejected++ === 0) stats.firstRejected = { line, text: cell };
        continue;
      }
      if (missingValues.size && missingValues.has(value)) continue;
      column.timestampsMs[column.length] = ts;
      column.values[column.length++] = value;
      const stats = column.summary;
      stats.readings++;
      if (!(ts >= stats.firstMs)) stats.firstMs = ts; // NaN-safe: the first comparison with NaN is false
      if (!(ts <= stats.lastMs)) stats.lastMs = ts;
      pendingReadings++;
    }
    if (++pendingRows >= batchRows || pendingReadings >= batchReadings) flush();
  };

  const report = () =>
    options.onProgress?.({
      rowsRead: summary?.rowsRead ?? 0,
      readingsStored: summary?.readingsStored ?? 0,
      bytesRead: source.bytesRead?.(),
      totalBytes: source.totalBytes,
    });

  for await (const chunk of source.chunks) {
    if (parser === null) {
      if (chunk.length === 0) continue;
      const delimiter = options.delimiter ?? detectDelimiter(chunk);
      let sawHeader = false;
      parser = new CsvParser(delimiter, (fields, line) => {
        if (sawHeader) return onRow(fields, line);
        sawHeader = true;
        onHeader(fields, delimiter);
      });
    }
    parser.push(chunk);
    report();
  }
  parser?.end();
  if (summary === null) throw new CsvFormatError(`${source.name} is empty: expected a header line and rows of data`);
  flush();
  report();
  const totals = summary as ImportSummary;
  totals.nonexistentLocalTimes = zone.nonexistent - zoneCountsBefore.nonexistent;
  totals.ambiguousLocalTimes = zone.ambiguous - zoneCountsBefore.ambiguous;
  totals.elapsedMs = performance.now() - startedAt;
  return totals;
}
