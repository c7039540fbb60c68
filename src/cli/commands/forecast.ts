/**
 * `forecastd forecast <name> --config <file.yaml> [--compute] [--json] [--width <columns>]`: the current forecast as
 * a table and a small terminal chart, after the recent actuals. By default the last forecast the daemon published
 * (kept in its database); with --compute, or when none was published, one made now from the serving checkpoint.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import type { Config, ForecastConfig } from '../../config/schema.js';
import { renderForecast } from '../../demo/render.js';
import { initBackend } from '../../model/backend.js';
import { Forecaster } from '../../model/forecaster.js';
import { forecastCheckpoints } from '../../model/stores.js';
import { shapeKeyFor } from '../../model/training.js';
import { forecastMessage, type ForecastMessage } from '../../publish/forecastMessage.js';
import { alignDown, resampleMean } from '../../windowing/index.js';
import { ago, fmt, findForecast, lastPublished, openState, StateError, type StateReader } from '../stateReader.js';
import { UsageError } from '../usage.js';

const USAGE = 'usage: forecastd forecast <name> --config <file.yaml> [--compute] [--json] [--width <columns>]';
/** Actuals shown before the forecast: this many horizons, at least a dozen buckets. */
const RECENT_HORIZONS = 3;

export async function forecastCommand(args: string[], write: (text: string) => void = (text) => process.stdout.write(text)): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      compute: { type: 'boolean' },
      json: { type: 'boolean' },
      width: { type: 'string', short: 'w' },
    },
  });
  if (!values.config) throw new UsageError(`forecast needs --config <file.yaml>\n${USAGE}`);
  if (positionals.length > 1) throw new UsageError(USAGE);
  const width = values.width === undefined ? Math.max(60, Math.min(120, process.stdout.columns ?? 80)) : Number(values.width);
  if (!Number.isInteger(width) || width < 30 || width > 400) throw new UsageError('--width takes a number of columns from 30 to 400');
  const config = loadConfigFile(values.config);
  const forecast = findForecast(config, positionals[0], values.config, USAGE);

  let state: StateReader;
  try {
    state = openState(config);
  } catch (error) {
    if (!(error instanceof StateError)) throw error;
    process.stderr.write(`forecastd: ${error.message}\n`);
    return 1;
  }
  try {
    let message = values.compute ? null : lastPublished(state, forecast.name);
    let source = 'published by the daemon';
    if (!message) {
      message = await computeForecast(config, forecast, state);
      source = 'computed now from the serving checkpoint';
      if (!message) {
        process.stderr.write(
          values.compute
            ? `forecastd: no serving model checkpoint for "${forecast.name}" to compute from (a baseline serves while no model beats persistence, or none was trained yet; see \`forecastd status\`)\n`
            : `forecastd: no forecast for "${forecast.name}" yet: nothing was published and there is no serving model checkpoint (see \`forecastd status\`; \`forecastd train\` trains one now)\n`,
        );
        return 1;
      }
    }
    if (values.json) {
      write(`${JSON.stringify(message, null, 2)}\n`);
      return 0;
    }
    write(renderMessage(message, forecast, state, width, source));
    return 0;
  } finally {
    state.close();
  }
}

/** A forecast from the serving checkpoint and the stored readings, as the daemon would make it with its model. */
async function computeForecast(config: Config, forecast: ForecastConfig, state: StateReader): Promise<ForecastMessage | null> {
  const { tf, name: backend } = await initBackend(config.model.backend, { allowNative: true });
  const { forecaster } = await Forecaster.load(tf, forecastCheckpoints(state.checkpointRoot, forecast).serving, shapeKeyFor(forecast));
  if (!forecaster) return null;
  try {
    // The forecast from the newest data: "now" is the end of the last stored reading's bucket.
    const last = state.catalog.get(forecast.target)?.lastTs;
    if (last === null || last === undefined) return null;
    const now = alignDown(last, forecast.interval * 1000) + forecast.interval * 1000;
    const range = forecaster.inputRange(now);
    const series = [forecast.target, ...forecast.covariates].map((name) => state.readings.read(name, range.fromMs, range.toMs));
    const result = forecaster.predict(series, now);
    if (!result) return null;
    const training = state.versions.get(forecaster.meta.version);
    return forecastMessage({
      forecast: forecast.name,
      target: forecast.target,
      issuedAtMs: Date.now(),
      intervalSeconds: forecast.interval,
      result,
      version: forecaster.meta.version,
      training,
      backend,
      readinessReason: 'computed by `forecastd forecast` from the serving checkpoint',
    });
  } finally {
    forecaster.dispose();
  }
}

function renderMessage(message: ForecastMessage, forecast: ForecastConfig, state: StateReader, width: number, source: string): string {
  const intervalMs = message.intervalSeconds * 1000;
  const originMs = Date.parse(message.origin);
  const buckets = Math.max(12, RECENT_HORIZONS * message.points.length);
  const fromMs = alignDown(originMs - buckets * intervalMs, intervalMs);
  const readings = state.readings.read(forecast.target, fromMs, originMs);
  const means = resampleMean(readings.timestampsMs, readings.values, fromMs, intervalMs, buckets);
  const recent = Array.from(means, (value, index) => ({ ts: new Date(fromMs + index * intervalMs).toISOString(), value }));
  const validation = message.model.validation;
  const servedBy = message.servedBy && message.servedBy !== 'model' ? ` · served by ${message.servedBy.replace('_', ' ')} (a baseline)` : '';
  let text = renderForecast(
    {
      forecast: message.forecast,
      issuedAt: message.issuedAt,
      intervalSeconds: message.intervalSeconds,
      modelVersion: message.model.version || null,
      backend: message.backend,
      points: message.points,
      recent,
      unit: forecast.unit,
      model: validation ? { mae: validation.mae } : undefined,
      baseline: validation ? { name: 'repeat last value', mae: validation.persistenceMae } : undefined,
    },
    { width, color: Boolean(process.stdout.isTTY) && !process.env.NO_COLOR },
  );
  const first = message.points[0];
  const levels = Object.keys(first?.lower ?? {}).sort((a, b) => Number(a) - Number(b));
  const unit = forecast.unit ? ` ${forecast.unit}` : '';
  if (first && levels.length) {
    text += `  next ${fmt(first.value, 2)}${unit}: ${levels.map((level) => `${level} % interval ${fmt(first.lower![level], 2)} – ${fmt(first.upper![level], 2)}`).join(', ')}\n`;
  }
  const age = Date.now() - Date.parse(message.issuedAt);
  text += `  ${source}, ${ago(Date.parse(message.issuedAt))}${servedBy}`;
  if (message.readiness && message.readiness !== 'ready') text += ` · ${message.readiness}: ${message.readinessReason}`;
  text += '\n';
  if (source.startsWith('published') && age > 2 * intervalMs + 60_000) {
    text += `  note: this forecast is ${ago(Date.parse(message.issuedAt)).replace(' ago', '')} old: is the daemon running? (--compute makes one from the latest checkpoint)\n`;
  }
  return text;
}
