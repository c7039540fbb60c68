/**
 * `forecastd backtest <forecast> --config <file> [--train-from T] --train-until T [--val-until T] --from T --to T
 *  [--stride N] [--level L] [--timezone Z] [--out file.csv] [--json]`
 *
 * Trains the forecast's configured model on the configured database's history (read-only; a running
 * daemon is not disturbed and its checkpoints are not touched), forecasts from every origin in
 * [from, to) without retraining, and scores the model next to persistence, seasonal naive and the
 * linear baseline on the same origins. Progress goes to stderr; the table to stdout (to stderr with
 * --json, whose document then is the only thing on stdout).
 */
import { openSqliteStore } from '../../store/sqliteStore.js';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { statePaths } from '../../daemon/paths.js';
import { parseTimestamp, timeZone, type TimeZone } from '../../time/timestamps.js';
import { initBackend } from '../../model/backend.js';
import { BacktestError, backtestCsv, backtestTable, runBacktest, type BacktestResult } from '../../model/backtest.js';
import { Progress, type ProgressSink } from '../progress.js';
import { UsageError } from '../usage.js';

const USAGE_LINE =
  'forecastd backtest <forecast> --config <file> [--train-from T] --train-until T [--val-until T] --from T --to T [--stride N] [--level L] [--out file.csv] [--json]';

export interface BacktestCommandIo {
  stdout: (text: string) => void;
  stderr: ProgressSink;
}

const defaultIo = (): BacktestCommandIo => ({ stdout: (text) => process.stdout.write(text), stderr: process.stderr });

function parseTime(option: string, text: string | undefined, zone: TimeZone): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseTimestamp(text, zone);
  if (Number.isNaN(ms))
    throw new UsageError(`--${option} ${JSON.stringify(text)}: not a time; write e.g. 2004-11-01T00:00:00Z, 2004-11-01 or epoch milliseconds`);
  return ms;
}

/** The --json document: everything but the per-row CSV data. */
export function backtestJson(result: BacktestResult): Record<string, unknown> {
  const { rows, origins, ...rest } = result;
  return {
    ...rest,
    rows: rows.length,
    origins: { count: origins.length, first: new Date(origins[0]).toISOString(), last: new Date(origins[origins.length - 1]).toISOString() },
  };
}

export async function backtestCommand(args: string[], io: BacktestCommandIo = defaultIo()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'train-from': { type: 'string' },
      'train-until': { type: 'string' },
      'val-until': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      stride: { type: 'string' },
      level: { type: 'string' },
      timezone: { type: 'string' },
      out: { type: 'string', short: 'o' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length !== 1 || !values.config) throw new UsageError(`usage: ${USAGE_LINE}`);
  for (const required of ['train-until', 'from', 'to'] as const) {
    if (values[required] === undefined) throw new UsageError(`backtest needs --${required} (usage: ${USAGE_LINE})`);
  }
  let zone: TimeZone;
  try {
    zone = timeZone(values.timezone ?? 'local');
  } catch (error) {
    throw new UsageError(`--timezone: ${(error as Error).message}`);
  }
  const stride = values.stride === undefined ? 1 : Number(values.stride);
  if (!Number.isInteger(stride) || stride < 1) throw new UsageError('--stride takes a positive whole number of intervals');
  const level = values.level === undefined ? undefined : Number(values.level);
  if (level !== undefined && !(level > 0 && level < 1)) throw new UsageError('--level takes a coverage level between 0 and 1, e.g. 0.95');

  const config = loadConfigFile(values.config);
  const name = positionals[0];
  const forecast = config.forecasts.find((candidate) => candidate.name === name);
  if (!forecast)
    throw new UsageError(`no forecast "${name}" in ${values.config} (it has: ${config.forecasts.map((f) => f.name).join(', ') || 'none'})`);
  const times = {
    trainFromMs: parseTime('train-from', values['train-from'], zone),
    trainUntilMs: parseTime('train-until', values['train-until'], zone)!,
    valUntilMs: parseTime('val-until', values['val-until'], zone),
    fromMs: parseTime('from', values.from, zone)!,
    toMs: parseTime('to', values.to, zone)!,
  };

  const { databasePath } = statePaths(config);
  const store = openSqliteStore({ path: databasePath, synchronous: config.storage.synchronous, readonly: true });
  let series;
  try {
    const { readings } = store;
    const readFrom = times.trainFromMs ?? 0;
    const readTo = times.toMs + (forecast.horizon + 1) * forecast.interval * 1000;
    series = [forecast.target, ...forecast.covariates].map((seriesName) => readings.read(seriesName, readFrom, readTo));
  } finally {
    store.close();
  }
  if (series[0].values.length === 0) throw new UsageError(`no readings of "${forecast.target}" in ${databasePath}`);

  const { tf, name: backend } = await initBackend(config.model.backend, { allowNative: true });
  // Made when forecasting starts, so that its rate and ETA do not count the training.
  let progress = null as Progress | null;
  io.stderr.write(`backtest "${name}": training on ${backend} (${forecast.training.epochs} epochs at most)\n`);
  let result: BacktestResult;
  try {
    result = await runBacktest({
      tf,
      backend,
      forecast,
      series,
      ...times,
      stride,
      level,
      verbose: io.stderr.isTTY ? 1 : 2,
      write: (text) => io.stderr.write(text),
      onForecastProgress: (done, total) => {
        progress ??= new Progress({ label: 'forecasting origins', sink: io.stderr });
        progress.update({ rows: done, done, total });
      },
    });
  } catch (error) {
    if (error instanceof BacktestError) throw new UsageError(error.message);
    throw error;
  }
  progress?.finish();

  if (values.out) writeFileSync(values.out, backtestCsv(result));
  const table = backtestTable(result) + (values.out ? `${result.rows.length} rows written to ${values.out}\n` : '');
  if (values.json) {
    io.stderr.write(table);
    io.stdout(`${JSON.stringify(backtestJson(result), null, 2)}\n`);
  } else {
    io.stdout(table);
  }
  return 0;
}
