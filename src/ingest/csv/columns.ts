/**
 * Which CSV column holds the time and which series each other column feeds: decided once, from the header.
 */
import { SERIES_NAME } from '../../config/schema.js';

/** The options do not fit the file (an unknown column, a clash of series names): the user must change the command. */
export class ColumnPlanError extends Error {
  override readonly name = 'ColumnPlanError';
}

export interface ColumnOptions {
  /** A column name, or a position counting from 1. Default: see `planColumns`. */
  timestampColumn?: string;
  /** A separate time-of-day column, joined to a date-only timestamp column (the raw UCI file's `Date` + `Time`). */
  timeColumn?: string;
  /** Column (name or position) → series name, used as given (the prefix does not apply). */
  map?: Readonly<Record<string, string>>;
  /** Prepended to the series names derived from column names. */
  prefix?: string;
  /** Columns (names or positions) not to import. */
  skip?: readonly string[];
}

export interface PlannedColumn {
  /** 0-based position in the record. */
  index: number;
  column: string;
}

export interface ValueColumn extends PlannedColumn {
  series: string;
}

export interface ColumnPlan {
  timestamp: PlannedColumn;
  time: PlannedColumn | null;
  values: ValueColumn[];
  /** Columns left out: by --skip, or because their header is empty. */
  ignored: Array<PlannedColumn & { reason: 'skipped' | 'unnamed' }>;
}

/** `CO(GT)` → `CO_GT`, `PT08.S1(CO)` → `PT08.S1_CO`: runs of characters a series name cannot hold become one `_`. */
export function sanitizeColumnName(column: string): string {
  return column
    .trim()
    .replace(/[^A-Za-z0-9_.:-]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

const describe = (header: readonly string[]) => header.map((name, index) => (name ? `"${name}"` : `#${index + 1} (unnamed)`)).join(', ');

/** A column by exact name, by name ignoring case when that is unambiguous, or by position counting from 1. */
export function findColumn(header: readonly string[], reference: string, option: string): number {
  const exact = header.indexOf(reference);
  if (exact !== -1) return exact;
  const folded = header.flatMap((name, index) => (name.toLowerCase() === reference.toLowerCase() ? [index] : []));
  if (folded.length === 1) return folded[0];
  if (/^\d+$/.test(reference)) {
    const position = Number(reference);
    if (position >= 1 && position <= header.length) return position - 1;
    throw new ColumnPlanError(`${option} ${reference}: the file has ${header.length} columns (positions count from 1)`);
  }
  throw new ColumnPlanError(`${option} "${reference}": no such column; the header has ${describe(header)}`);
}

const TIMESTAMP_NAMES = ['timestamp', 'datetime', 'date_time'];

function detectTimeColumns(header: readonly string[]): { timestamp: number; time: number | null } {
  const lower = header.map((name) => name.toLowerCase());
  const named = lower.findIndex((name) => TIMESTAMP_NAMES.includes(name));
  if (named !== -1) return { timestamp: named, time: null };
  const date = lower.indexOf('date');
  const time = lower.indexOf('time');
  if (date !== -1 && time !== -1) return { timestamp: date, time };
  if (time !== -1) return { timestamp: time, time: null };
  if (date !== -1) return { timestamp: date, time: null };
  return { timestamp: 0, time: null };
}

/**
 * The timestamp column is `--timestamp-column`, else the first column named timestamp / datetime, else `date` joined
 * with `time` when both exist, else a column named time or date, else the first column. Every other named column
 * becomes a series unless skipped.
 */
export function planColumns(rawHeader: readonly string[], options: ColumnOptions = {}): ColumnPlan {
  const header = rawHeader.map((name) => name.trim());
  const detected = detectTimeColumns(header);
  const timestampIndex =
    options.timestampColumn !== undefined ? findColumn(header, options.timestampColumn, '--timestamp-column') : detected.timestamp;
  let timeIndex: number | null = null;
  if (options.timeColumn !== undefined) timeIndex = findColumn(header, options.timeColumn, '--time-column');
  else if (options.timestampColumn === undefined) timeIndex = detected.time;
  if (timeIndex === timestampIndex) throw new ColumnPlanError(`--time-column and --timestamp-column are the same column "${header[timeIndex]}"`);

  const skipped = new Set((options.skip ?? []).map((reference) => findColumn(header, reference, '--skip')));
  const mapped = new Map<number, string>();
  for (const [reference, series] of Object.entries(options.map ?? {})) {
    const index = findColumn(header, reference, '--map');
    if (!SERIES_NAME.test(series)) {
      throw new ColumnPlanError(
        `--map ${reference}=${series}: a series name is 1-128 characters of letters, digits, _ . : - (not starting with . : -)`,
      );
    }
    if (index === timestampIndex || index === timeIndex) throw new ColumnPlanError(`--map ${reference}: "${header[index]}" is the timestamp column`);
    if (skipped.has(index)) throw new ColumnPlanError(`--map ${reference}: "${header[index]}" is also given to --skip`);
    mapped.set(index, series);
  }

  const plan: ColumnPlan = {
    timestamp: { index: timestampIndex, column: header[timestampIndex] },
    time: timeIndex === null ? null : { index: timeIndex, column: header[timeIndex] },
    values: [],
    ignored: [],
  };
  const prefix = options.prefix ?? '';
  const seriesOwners = new Map<string, string>();
  header.forEach((column, index) => {
    if (index === timestampIndex || index === timeIndex) return;
    if (skipped.has(index)) return plan.ignored.push({ index, column, reason: 'skipped' });
    let series = mapped.get(index);
    if (series === undefined) {
      if (column === '') return plan.ignored.push({ index, column, reason: 'unnamed' });
      series = prefix + sanitizeColumnName(column);
      if (!SERIES_NAME.test(series)) {
        throw new ColumnPlanError(
          `column "${column}" gives the series name "${series}", which is not valid (1-128 of A-Z a-z 0-9 _ . : -, not starting with . : -): ` +
            `name it with --map "${column}=<series>", or leave it out with --skip "${column}"`,
        );
      }
    }
    const owner = seriesOwners.get(series);
    if (owner !== undefined) {
      throw new ColumnPlanError(
        `columns "${owner}" and "${column}" would both feed the series "${series}": give one of them another name with --map`,
      );
    }
    seriesOwners.set(series, column);
    plan.values.push({ index, column, series });
  });
  if (plan.values.length === 0) throw new ColumnPlanError(`no value columns to import: the header has ${describe(header)}`);
  return plan;
}
