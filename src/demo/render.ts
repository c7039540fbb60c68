/**
 * How `forecastd demo` shows a forecast to a person at a terminal: a header, a short table of the
 * forecast points and a small line chart of recent actuals followed by the forecast.
 * Pure string building: no I/O, no terminal queries; the caller passes the width.
 */

import { formatDuration } from '../time/duration.js';

export interface ForecastForDisplay {
  forecast: string;
  /** ISO 8601. */
  issuedAt: string;
  intervalSeconds: number;
  modelVersion: string | null;
  backend: string;
  points: Array<{ ts: string; value: number }>;
  /** The last actual values, oldest first, drawn before the forecast. */
  recent?: Array<{ ts: string; value: number }>;
  unit?: string;
  baseline?: { name: string; mae: number };
  model?: { mae: number };
}

export interface RenderOptions {
  /** Longest line, in terminal columns. Default 72. */
  width?: number;
  /** ANSI colours. Default false. */
  color?: boolean;
}

/** Rows of the line chart. */
export const CHART_HEIGHT = 8;
/** The table shows at most this many points; longer forecasts show every k-th point. */
export const MAX_TABLE_ROWS = 12;

const DEFAULT_WIDTH = 72;
const HISTORY_MARK = '·';
const FORECAST_MARK = '*';
const NOW_MARK = '|';
/** Below this many plot columns a chart says nothing useful, so it is left out. */
const MIN_PLOT_COLUMNS = 4;
/** The forecast name keeps at least this many characters when the header is shortened. */
const MIN_HEADER_NAME = 12;
const SPARK_LEVELS = '▁▂▃▄▅▆▇█';

type Style = 'bold' | 'dim' | 'history' | 'forecast';
interface Segment {
  text: string;
  style?: Style;
}
type Line = Segment[];

const ANSI: Record<Style, string> = { bold: '\x1b[1m', dim: '\x1b[2m', history: '\x1b[36m', forecast: '\x1b[33;1m' };
const ANSI_RESET = '\x1b[0m';

export function renderForecast(f: ForecastForDisplay, options: RenderOptions = {}): string {
  const width = options.width ?? DEFAULT_WIDTH;
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`width must be a positive whole number, got ${width}`);
  const lines: Line[] = [headerLine(f, width), [{ text: summaryText(f), style: 'dim' }], [], ...pointsTable(f), [], ...chart(f, width)];
  return lines.map((line) => toText(fitToWidth(line, width), options.color ?? false)).join('\n') + '\n';
}

/** One character per finite value, lowest ▁ to highest █; non-finite values are skipped. */
export function sparkline(values: number[]): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return '';
  const { min, max } = extent(finite);
  const top = SPARK_LEVELS.length - 1;
  // All equal: no rise or fall to show, so draw a flat line at mid height.
  if (max === min) return SPARK_LEVELS[Math.floor(top / 2)].repeat(finite.length);
  return finite.map((value) => SPARK_LEVELS[Math.round(((value - min) / (max - min)) * top)]).join('');
}

/** When the header is too long the forecast name gives way first, since the reader already knows which one they asked for. */
function headerLine(f: ForecastForDisplay, width: number): Line {
  const details = `  issued ${clockTime(f.issuedAt)}  model ${singleLine(f.modelVersion ?? 'none')} (${singleLine(f.backend)})`;
  const name = singleLine(f.forecast);
  const room = Math.max(MIN_HEADER_NAME, width - details.length);
  return [{ text: name.length <= room ? name : `${name.slice(0, room - 1)}…`, style: 'bold' }, { text: details }];
}

function summaryText(f: ForecastForDisplay): string {
  const count = f.points.length;
  let text = `${count} ${count === 1 ? 'point' : 'points'} every ${formatInterval(f.intervalSeconds)}`;
  const unit = f.unit ? ` ${f.unit}` : '';
  if (f.model && f.baseline) text += `  MAE ${formatValue(f.model.mae)}${unit} vs ${f.baseline.name} ${formatValue(f.baseline.mae)}${unit}`;
  else if (f.model) text += `  MAE ${formatValue(f.model.mae)}${unit}`;
  else if (f.baseline) text += `  ${f.baseline.name} MAE ${formatValue(f.baseline.mae)}${unit}`;
  return text;
}

function pointsTable(f: ForecastForDisplay): Line[] {
  if (f.points.length === 0) return [[{ text: '  (no forecast points)', style: 'dim' }]];
  const step = Math.ceil(f.points.length / MAX_TABLE_ROWS);
  const shown = f.points.filter((_, index) => index % step === 0);
  const values = shown.map((point) => formatValue(point.value));
  const valueWidth = Math.max('value'.length, ...values.map((text) => text.length));
  const unit = f.unit ? ` ${f.unit}` : '';
  const rows: Line[] = [[{ text: `  time   ${'value'.padStart(valueWidth)}`, style: 'dim' }]];
  shown.forEach((point, index) => rows.push([{ text: `  ${clockTime(point.ts)}  ${values[index].padStart(valueWidth)}${unit}` }]));
  if (step > 1) rows.push([{ text: `  (showing 1 in ${step} of ${f.points.length} points)`, style: 'dim' }]);
  return rows;
}

interface Column {
  value: number;
  kind: 'history' | 'forecast' | 'now';
}

function chart(f: ForecastForDisplay, width: number): Line[] {
  const recent = f.recent ?? [];
  const finite = [...recent, ...f.points].map((point) => point.value).filter(Number.isFinite);
  if (finite.length === 0) return [[{ text: '  (nothing to chart)', style: 'dim' }]];
  const { min, max } = extent(finite);
  const maxLabel = formatValue(max);
  const minLabel = formatValue(min);
  const labelWidth = Math.max(maxLabel.length, minLabel.length);
  const plotWidth = width - labelWidth - 2; // label, space, axis
  if (plotWidth < MIN_PLOT_COLUMNS) return [];

  const columns = chartColumns(
    recent.map((point) => point.value),
    f.points.map((point) => point.value),
    plotWidth,
  );
  const rowOf = (value: number): number =>
    max === min ? Math.floor(CHART_HEIGHT / 2) : CHART_HEIGHT - 1 - Math.round(((value - min) / (max - min)) * (CHART_HEIGHT - 1));

  const lines: Line[] = [];
  for (let row = 0; row < CHART_HEIGHT; row++) {
    const label = row === 0 ? maxLabel : row === CHART_HEIGHT - 1 ? minLabel : '';
    const line: Line = [{ text: `${label.padStart(labelWidth)} ${label ? '┤' : '│'}`, style: 'dim' }];
    for (const column of columns) {
      if (column.kind === 'now') line.push({ text: NOW_MARK, style: 'dim' });
      else if (Number.isFinite(column.value) && rowOf(column.value) === row) {
        line.push({ text: column.kind === 'history' ? HISTORY_MARK : FORECAST_MARK, style: column.kind });
      } else line.push({ text: ' ' });
    }
    lines.push(trimEnd(line));
  }
  lines.push([{ text: `${' '.repeat(labelWidth)} └${'─'.repeat(columns.length)}`, style: 'dim' }]);

  const firstTs = clockTime((recent[0] ?? f.points[0]).ts);
  const lastTs = clockTime((f.points[f.points.length - 1] ?? recent[recent.length - 1]).ts);
  const timeGap = columns.length - firstTs.length - lastTs.length;
  const times = timeGap >= 1 ? `${firstTs}${' '.repeat(timeGap)}${lastTs}` : firstTs;
  lines.push([{ text: `${' '.repeat(labelWidth + 2)}${times}`, style: 'dim' }]);

  const legend: Line = [{ text: ' '.repeat(labelWidth + 2) }];
  if (recent.length > 0) legend.push({ text: HISTORY_MARK, style: 'history' }, { text: ' actual  ' });
  if (f.points.length > 0) legend.push({ text: FORECAST_MARK, style: 'forecast' }, { text: ' forecast' });
  if (recent.length > 0 && f.points.length > 0) legend.push({ text: `  ${NOW_MARK} now` });
  lines.push(legend);
  return lines;
}

/**
 * One column per value when they fit; otherwise each part is averaged into buckets, sharing the
 * width in proportion to its length (but at least one column each), with a '|' between them.
 */
function chartColumns(history: number[], forecast: number[], plotWidth: number): Column[] {
  const separator = history.length > 0 && forecast.length > 0 ? 1 : 0;
  const available = plotWidth - separator;
  let historyColumns = history.length;
  let forecastColumns = forecast.length;
  if (history.length + forecast.length > available) {
    const proportional = Math.round((available * history.length) / (history.length + forecast.length));
    historyColumns = history.length === 0 ? 0 : Math.min(Math.max(proportional, 1), available - (forecast.length > 0 ? 1 : 0));
    forecastColumns = Math.min(forecast.length, available - historyColumns);
  }
  return [
    ...bucketMeans(history, historyColumns).map((value): Column => ({ value, kind: 'history' })),
    ...(separator ? [{ value: Number.NaN, kind: 'now' } satisfies Column] : []),
    ...bucketMeans(forecast, forecastColumns).map((value): Column => ({ value, kind: 'forecast' })),
  ];
}

/** `values` squeezed into `buckets` means of their finite members (NaN for a bucket with none). */
function bucketMeans(values: number[], buckets: number): number[] {
  if (values.length <= buckets) return values.slice();
  const means: number[] = [];
  for (let bucket = 0; bucket < buckets; bucket++) {
    const start = Math.floor((bucket * values.length) / buckets);
    const end = Math.floor(((bucket + 1) * values.length) / buckets);
    let sum = 0;
    let count = 0;
    for (let index = start; index < end; index++) {
      if (Number.isFinite(values[index])) {
        sum += values[index];
        count++;
      }
    }
    means.push(count > 0 ? sum / count : Number.NaN);
  }
  return means;
}

function extent(values: number[]): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { min, max };
}

/** HH:MM in local time, or --:-- for a timestamp that does not parse. */
function clockTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '--:--';
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

function formatValue(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

/** Names come from config and MQTT; a newline or escape in one must not break the layout. */
function singleLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this removes
  return text.replace(/[\u0000-\u001f\u007f]/g, ' ');
}

function formatInterval(seconds: number): string {
  return Number.isInteger(seconds) && seconds > 0 ? formatDuration(seconds) : `${seconds}s`;
}

function trimEnd(line: Line): Line {
  const trimmed = line.slice();
  while (trimmed.length > 1 && trimmed[trimmed.length - 1].text === ' ') trimmed.pop();
  return trimmed;
}

/** Cuts a line to `width` columns, ending in '…' when something was cut. */
function fitToWidth(line: Line, width: number): Line {
  const length = line.reduce((total, segment) => total + segment.text.length, 0);
  if (length <= width) return line;
  const fitted: Line = [];
  let room = width - 1;
  for (const segment of line) {
    if (room <= 0) break;
    fitted.push({ ...segment, text: segment.text.slice(0, room) });
    room -= segment.text.length;
  }
  fitted.push({ text: '…' });
  return fitted;
}

function toText(line: Line, color: boolean): string {
  if (!color) return line.map((segment) => segment.text).join('');
  // One escape sequence per run of equally styled characters, not one per character.
  const runs: Segment[] = [];
  for (const segment of line) {
    const last = runs[runs.length - 1];
    if (last && last.style === segment.style) last.text += segment.text;
    else runs.push({ ...segment });
  }
  return runs.map((run) => (run.style ? `${ANSI[run.style]}${run.text}${ANSI_RESET}` : run.text)).join('');
}
