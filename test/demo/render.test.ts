/* eslint-disable no-control-regex -- ANSI escape sequences are what these tests look for */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CHART_HEIGHT, MAX_TABLE_ROWS, renderForecast, sparkline, type ForecastForDisplay } from '../../src/demo/render.js';

const ISSUED = '2024-06-01T14:05:00.000Z';
const INTERVAL_MS = 5 * 60_000;

/** HH:MM in local time, computed independently of the module under test. */
function hhmm(iso: string): string {
  const date = new Date(iso);
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

function series(count: number, startIso: string, value: (index: number) => number): Array<{ ts: string; value: number }> {
  const start = Date.parse(startIso);
  return Array.from({ length: count }, (_, index) => ({ ts: new Date(start + index * INTERVAL_MS).toISOString(), value: value(index) }));
}

function forecast(overrides: Partial<ForecastForDisplay> = {}): ForecastForDisplay {
  return {
    forecast: 'living-room-temperature',
    issuedAt: ISSUED,
    intervalSeconds: 300,
    modelVersion: 'v7-20240601',
    backend: 'tfjs-node',
    // Distinct values, so a value in the output can only come from its own point.
    points: series(12, '2024-06-01T14:10:00.000Z', (i) => 21 + i * 0.37),
    recent: series(24, '2024-06-01T12:10:00.000Z', (i) => 20 + Math.sin(i / 4)),
    unit: '°C',
    ...overrides,
  };
}

const stripAnsi = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, '');
const lines = (text: string): string[] => text.replace(/\n$/, '').split('\n');
const chartRows = (text: string): string[] => lines(text).filter((line) => /[┤│]/.test(line));
/** Table rows look like "  14:10   21.00 °C". */
const tableRows = (text: string): string[] => lines(text).filter((line) => /^ {2}\d\d:\d\d +-?\d/.test(line));

describe('renderForecast', () => {
  it('puts the forecast name, issue time, model version and backend on the first line', () => {
    const header = lines(renderForecast(forecast()))[0];
    assert.match(header, /living-room-temperature/);
    assert.ok(header.includes(hhmm(ISSUED)), header);
    assert.match(header, /v7-20240601/);
    assert.match(header, /tfjs-node/);
  });

  it('says there is no model when modelVersion is null', () => {
    assert.match(lines(renderForecast(forecast({ modelVersion: null })))[0], /model none/);
  });

  it('lists every point, time and value to 2 decimals, when there are at most 12', () => {
    const f = forecast();
    const rows = tableRows(renderForecast(f));
    assert.equal(rows.length, 12);
    f.points.forEach((point, index) => {
      assert.ok(rows[index].includes(hhmm(point.ts)), rows[index]);
      assert.ok(rows[index].includes(point.value.toFixed(2)), rows[index]);
      assert.ok(rows[index].includes('°C'), rows[index]);
    });
  });

  it('shows every k-th point, at most 12 rows, for longer forecasts', () => {
    const f = forecast({ points: series(30, '2024-06-01T14:10:00.000Z', (i) => 21 + i * 0.37) });
    const rows = tableRows(renderForecast(f));
    const step = 3; // ceil(30 / 12)
    const shown = f.points.filter((_, index) => index % step === 0);
    assert.ok(rows.length <= MAX_TABLE_ROWS);
    assert.equal(rows.length, shown.length);
    shown.forEach((point, index) => assert.ok(rows[index].includes(point.value.toFixed(2)) && rows[index].includes(hhmm(point.ts)), rows[index]));
    assert.ok(!rows.some((row) => row.includes(f.points[1].value.toFixed(2))), 'a skipped point is not listed');
  });

  it('draws a chart of CHART_HEIGHT rows with history, a now marker and forecast, labelled with min and max', () => {
    const f = forecast();
    const rows = chartRows(renderForecast(f));
    assert.equal(rows.length, CHART_HEIGHT);
    const values = [...f.recent!, ...f.points].map((p) => p.value);
    assert.ok(rows[0].trimStart().startsWith(Math.max(...values).toFixed(2)), rows[0]);
    assert.ok(rows[CHART_HEIGHT - 1].trimStart().startsWith(Math.min(...values).toFixed(2)), rows[CHART_HEIGHT - 1]);
    const plotted = rows.map((row) => row.slice(row.search(/[┤│]/) + 1));
    // One mark per point: the table's 12 points and 24 recent values fit in 72 columns.
    assert.equal(plotted.join('').split('*').length - 1, 12);
    assert.equal(plotted.join('').split('·').length - 1, 24);
    // Every history mark sits left of the separator and every forecast mark right of it, on every row.
    for (const row of plotted) {
      const now = row.indexOf('|');
      assert.equal(now, 24, row);
      assert.ok(!row.slice(0, now).includes('*') && !row.slice(now).includes('·'), row);
    }
    // The forecast rises steadily, so its highest point is on the top row.
    assert.ok(plotted[0].trimEnd().endsWith('*'), plotted[0]);
  });

  it('keeps every line within the width, even with long names and many points', () => {
    const f = forecast({
      forecast: 'a-very-long-forecast-name-that-would-not-fit-on-a-narrow-terminal-at-all',
      points: series(288, '2024-06-01T14:10:00.000Z', (i) => 21 + Math.sin(i / 20)),
      recent: series(500, '2024-05-30T00:00:00.000Z', (i) => 20 + Math.cos(i / 30)),
    });
    for (const width of [20, 40, 72, 120]) {
      for (const color of [false, true]) {
        const output = renderForecast(f, { width, color });
        for (const line of lines(output)) assert.ok(stripAnsi(line).length <= width, `width ${width}: ${JSON.stringify(line)}`);
        if (color) assert.match(output, /\x1b\[/, 'colour codes when asked for');
        else assert.doesNotMatch(output, /\x1b\[/, 'no colour codes unless asked for');
      }
    }
    // The chart uses the room it has when it has to squeeze.
    const rows = chartRows(renderForecast(f, { width: 72 }));
    assert.equal(rows.length, CHART_HEIGHT);
    assert.ok(rows.some((row) => row.length > 60));
  });

  it('handles a single point and no recent values', () => {
    const f = forecast({ points: [{ ts: '2024-06-01T14:10:00.000Z', value: 21.5 }], recent: [] });
    const output = renderForecast(f);
    assert.equal(tableRows(output).length, 1);
    assert.ok(tableRows(output)[0].includes('21.50'));
    const rows = chartRows(output);
    assert.equal(rows.length, CHART_HEIGHT);
    assert.equal(rows.join('').split('*').length - 1, 1);
    assert.ok(!rows.some((row) => row.includes('|') || row.includes('·')), 'no history, so no separator');
  });

  it('handles all-equal values by drawing a flat line', () => {
    const output = renderForecast(forecast({ points: series(6, ISSUED, () => 5), recent: series(6, ISSUED, () => 5) }));
    const rows = chartRows(output);
    assert.equal(rows.length, CHART_HEIGHT);
    const marked = rows.filter((row) => /[*·]/.test(row));
    assert.equal(marked.length, 1, 'all marks on one row');
    assert.equal(marked[0].split('*').length - 1, 6);
    assert.equal(marked[0].split('·').length - 1, 6);
  });

  it('skips NaN values in the chart and shows them as n/a in the table', () => {
    const points = series(4, ISSUED, (i) => (i === 1 ? Number.NaN : 21 + i));
    const recent = series(4, ISSUED, (i) => (i === 2 ? Number.NaN : 20 + i));
    const output = renderForecast(forecast({ points, recent }));
    const rows = chartRows(output);
    assert.equal(rows.join('').split('*').length - 1, 3);
    assert.equal(rows.join('').split('·').length - 1, 3);
    assert.doesNotMatch(output, /NaN/);
    assert.match(output, /n\/a/);
    assert.ok(rows[0].trimStart().startsWith('24.00'), 'NaN does not poison the y range');
  });

  it('says so instead of drawing an empty chart when there is nothing to plot', () => {
    const output = renderForecast(forecast({ points: [], recent: [] }));
    assert.equal(chartRows(output).length, 0);
    assert.match(output, /no forecast points/);
  });

  it('shows the model and baseline error when given', () => {
    const output = renderForecast(forecast({ model: { mae: 0.412 }, baseline: { name: 'seasonal-naive', mae: 0.634 } }));
    assert.match(output, /0\.41/);
    assert.match(output, /seasonal-naive 0\.63/);
  });

  it('keeps the header on one line when a name contains a newline', () => {
    const output = renderForecast(forecast({ forecast: 'evil\nname', backend: 'x\x1b[31m' }));
    assert.match(lines(output)[0], /evil name/);
    assert.doesNotMatch(output, /\x1b/);
  });

  it('rejects a width that is not a positive whole number', () => {
    assert.throws(() => renderForecast(forecast(), { width: 0 }), RangeError);
    assert.throws(() => renderForecast(forecast(), { width: 10.5 }), RangeError);
  });
});

describe('sparkline', () => {
  it('maps the lowest value to ▁ and the highest to █, one character per value', () => {
    assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7]), '▁▂▃▄▅▆▇█');
    assert.equal(sparkline([10, -10]), '█▁');
  });

  it('returns an empty string for no values', () => {
    assert.equal(sparkline([]), '');
  });

  it('draws a single value and all-equal values as a flat mid-height line', () => {
    assert.equal(sparkline([42]), '▄');
    assert.equal(sparkline([3, 3, 3]), '▄▄▄');
  });

  it('skips NaN and infinite values', () => {
    assert.equal(sparkline([0, Number.NaN, 7, Number.POSITIVE_INFINITY]), '▁█');
    assert.equal(sparkline([Number.NaN]), '');
  });
});
