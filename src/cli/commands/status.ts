/**
 * `forecastd status --config <file.yaml> [--json]`: per forecast, its readiness, what serves it and how that scores
 * against the baselines, the last and next training, the history there is, plus the database size and backend.
 * Read from the database and the checkpoints, so it answers whether or not the daemon runs.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import type { Config, ForecastConfig } from '../../config/schema.js';
import type { TrainingSummary } from '../../model/training.js';
import type { ForecastMessage } from '../../publish/forecastMessage.js';
import { nextTrainingAt, readinessOf, type Readiness } from '../../publish/status.js';
import { ago, bytes, fmt, lastPublished, localTime, openState, StateError, type StateReader } from '../stateReader.js';
import { UsageError } from '../usage.js';

export interface ForecastReport {
  name: string;
  target: string;
  unit: string | null;
  readiness: Readiness;
  detail: string | null;
  servedBy: string | null;
  servingVersion: string | null;
  /** MAE of the model and each baseline on the newest training's held-out windows. */
  scores: Record<string, { mae: number; rmse: number; mase: number | null }> | null;
  evaluationWindows: number | null;
  lastTraining: { version: string; startedAt: string; durationSeconds: number; epochs: number; backend: string; outcome: string } | null;
  nextTrainingAt: string | null;
  history: { firstTs: string | null; lastTs: string | null; days: number; readings: number; trainingUsesDays: number };
  lastForecast: { issuedAt: string; next: number | null; backend: string } | null;
  pinned: string | null;
}

export interface StatusReport {
  config: string;
  database: { path: string; bytes: number; walBytes: number; usedBytes: number; series: number };
  backend: string | null;
  forecasts: ForecastReport[];
}

const USAGE = 'usage: forecastd status --config <file.yaml> [--json]';

export async function statusCommand(args: string[], write: (text: string) => void = (text) => process.stdout.write(text)): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } },
  });
  if (!values.config) throw new UsageError(`status needs --config <file.yaml>\n${USAGE}`);
  if (positionals.length) throw new UsageError(`status takes no arguments besides its options\n${USAGE}`);
  const config = loadConfigFile(values.config);
  let state: StateReader;
  try {
    state = openState(config);
  } catch (error) {
    if (error instanceof StateError) {
      process.stderr.write(`forecastd: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  try {
    const report = await statusReport(config, values.config, state);
    write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
    return 0;
  } finally {
    state.close();
  }
}

export async function statusReport(config: Config, configPath: string, state: StateReader, now = Date.now()): Promise<StatusReport> {
  const sizes = state.fileSizes();
  const forecasts: ForecastReport[] = [];
  for (const forecast of config.forecasts) forecasts.push(await forecastReport(forecast, state, now));
  const messages = forecasts.map((report) => report.lastForecast).filter((entry) => entry !== null);
  return {
    config: configPath,
    database: {
      path: state.databasePath,
      bytes: sizes.db,
      walBytes: sizes.wal,
      usedBytes: state.catalog.size().usedBytes,
      series: state.catalog.list().length,
    },
    backend: messages[0]?.backend ?? state.versions.latest(config.forecasts[0]?.name ?? '', 1)[0]?.backend ?? null,
    forecasts,
  };
}

/** What served according to the newest evaluation, the way the daemon decides it (ForecastJobs.choose). */
function servingFrom(
  record: TrainingSummary | null,
  hasModel: boolean,
): { servedBy: string; readiness: 'ready' | 'degraded'; reason: string } | null {
  const decision = record?.decision;
  if (decision) return { servedBy: decision.servedBy, readiness: decision.servedBy === 'model' ? 'ready' : 'degraded', reason: decision.reason };
  return hasModel ? { servedBy: 'model', readiness: 'ready', reason: 'a model is loaded (no evaluation recorded)' } : null;
}

async function forecastReport(forecast: ForecastConfig, state: StateReader, now: number): Promise<ForecastReport> {
  const records = state.versions.latest(forecast.name, 5);
  const record = records[0] ?? null;
  const evaluated = records.find((summary) => summary.evaluation || summary.metrics) ?? null;
  const servingVersion = await state.servingCheckpointVersion(forecast).catch(() => null);
  const message: ForecastMessage | null = lastPublished(state, forecast.name);
  const serving = servingFrom(record, servingVersion !== null);
  // Offline, a published forecast is judged by its own age (no restart grace); without one, what would serve is "ready".
  const startedAt = message ? 0 : now;
  const { readiness, detail } = readinessOf(
    { config: forecast, hasModel: servingVersion !== null, serving, lastIssued: message, training: null, lastFailure: null, lastTraining: record },
    now,
    startedAt,
  );
  const series = state.catalog.get(forecast.target);
  const readings = series ? state.catalog.readingCount(forecast.target) : 0;
  const methods = evaluated?.evaluation?.methods;
  const scores = methods
    ? Object.fromEntries(Object.entries(methods).map(([method, score]) => [method, { mae: score.mae, rmse: score.rmse, mase: score.mase ?? null }]))
    : evaluated?.metrics
      ? Object.fromEntries(Object.entries(evaluated.metrics).map(([method, score]) => [method, { mae: score.mae, rmse: score.rmse, mase: null }]))
      : null;
  const next = nextTrainingAt(forecast, now);
  return {
    name: forecast.name,
    target: forecast.target,
    unit: forecast.unit ?? null,
    readiness,
    detail,
    servedBy: serving?.servedBy ?? null,
    servingVersion: serving?.servedBy === 'model' ? servingVersion : null,
    scores,
    evaluationWindows: evaluated?.evaluation?.windows ?? evaluated?.validationWindows ?? null,
    lastTraining: record
      ? {
          version: record.version,
          startedAt: new Date(record.startedAt).toISOString(),
          durationSeconds: Math.round(record.durationMs / 100) / 10,
          epochs: record.epochsCompleted,
          backend: record.backend,
          outcome: record.decision
            ? record.decision.promoted
              ? `promoted: ${record.decision.reason}`
              : `not promoted: ${record.decision.reason}`
            : (record.status ?? 'finished'),
        }
      : null,
    nextTrainingAt: next === null ? null : new Date(next).toISOString(),
    history: {
      firstTs: series?.firstTs ? new Date(series.firstTs).toISOString() : null,
      lastTs: series?.lastTs ? new Date(series.lastTs).toISOString() : null,
      days: series?.firstTs && series.lastTs ? Math.round(((series.lastTs - series.firstTs) / 86_400_000) * 10) / 10 : 0,
      readings,
      trainingUsesDays: forecast.training.historyDays,
    },
    lastForecast: message ? { issuedAt: message.issuedAt, next: message.points[0]?.value ?? null, backend: message.backend } : null,
    pinned: state.pins?.get(forecast.name)?.version ?? null,
  };
}

const METHOD_NAMES: Record<string, string> = {
  model: 'model',
  champion: 'previous model',
  persistence: 'persistence',
  seasonal_naive: 'seasonal naive',
  linear: 'linear',
};

export function renderStatus(report: StatusReport, now = Date.now()): string {
  const lines: string[] = [];
  const { database } = report;
  lines.push(`forecastd status (${report.config})`);
  lines.push(
    `database   ${database.path}: ${bytes(database.bytes)}${database.walBytes ? ` + ${bytes(database.walBytes)} WAL` : ''}, ${bytes(database.usedBytes)} in use, ${database.series} series`,
  );
  lines.push(`backend    ${report.backend ?? 'unknown (no forecast or training yet)'}`);
  if (report.forecasts.length === 0) lines.push('', 'No forecasts configured: add one under "forecasts:" in the config file.');
  for (const forecast of report.forecasts) {
    const unit = forecast.unit ? ` ${forecast.unit}` : '';
    lines.push('');
    lines.push(`${forecast.name}  ${forecast.readiness.toUpperCase().replace('_', ' ')}  (${forecast.target})`);
    if (forecast.detail) lines.push(`  why        ${forecast.detail}`);
    if (forecast.servedBy === 'model')
      lines.push(`  serving    model ${forecast.servingVersion ?? '(version unknown)'}${forecast.pinned ? `  (pinned: ${forecast.pinned})` : ''}`);
    else if (forecast.servedBy)
      lines.push(`  serving    ${METHOD_NAMES[forecast.servedBy] ?? forecast.servedBy} (a baseline: no model beats persistence)`);
    else lines.push('  serving    nothing yet');
    if (forecast.scores) {
      const ordered = Object.entries(forecast.scores).sort(([a], [b]) => Object.keys(METHOD_NAMES).indexOf(a) - Object.keys(METHOD_NAMES).indexOf(b));
      lines.push(`  accuracy   MAE ${ordered.map(([method, score]) => `${METHOD_NAMES[method] ?? method} ${fmt(score.mae)}${unit}`).join(' · ')}`);
      if (forecast.evaluationWindows) lines.push(`             on ${forecast.evaluationWindows} held-out windows of the last training`);
    }
    if (forecast.lastTraining) {
      const training = forecast.lastTraining;
      lines.push(
        `  trained    ${localTime(training.startedAt)} (${ago(Date.parse(training.startedAt), now)}), ${training.epochs} epochs in ${training.durationSeconds} s on ${training.backend}`,
      );
      lines.push(`             ${training.outcome}`);
    } else lines.push('  trained    never');
    lines.push(
      `  next       ${forecast.nextTrainingAt ? `${localTime(forecast.nextTrainingAt)} (${ago(Date.parse(forecast.nextTrainingAt), now)})` : 'no scheduled training'}`,
    );
    const history = forecast.history;
    lines.push(
      history.readings
        ? `  history    ${history.days} days, ${history.readings} readings (${localTime(history.firstTs)} to ${localTime(history.lastTs)}); training reads up to ${history.trainingUsesDays} days`
        : '  history    no readings yet',
    );
    if (forecast.lastForecast) {
      const next = forecast.lastForecast.next === null ? '' : `: next ${fmt(forecast.lastForecast.next, 2)}${unit}`;
      lines.push(`  forecast   issued ${localTime(forecast.lastForecast.issuedAt)} (${ago(Date.parse(forecast.lastForecast.issuedAt), now)})${next}`);
    } else lines.push('  forecast   none published yet');
  }
  return `${lines.join('\n')}\n`;
}
