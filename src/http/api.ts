/**
 * The JSON API under /api: what the dashboard polls, and what scripts may use.
 *
 *   GET /api/status                          the status document (as on <baseTopic>/status)
 *   GET /api/series                          every stored series: first and last reading
 *   GET /api/forecasts                       every configured forecast with its status and latest forecast summary
 *   GET /api/forecasts/<name>                the latest forecast message (intervals included when the model gives them)
 *   GET /api/forecasts/<name>/history        actuals of the target on the forecast's grid; ?from=&to= (ISO or epoch ms)
 *   GET /api/models/<forecast>               model versions, newest first, with their loss curves and metrics; ?limit=
 */
import type { ForecastList, HistoryResponse, MethodScore, ModelsResponse, ModelVersionResponse, SeriesList } from '../contracts/api.js';
import type { ModelPins, ModelVersions, Readings, SeriesCatalogView } from '../store/store.js';
import { parseTimestamp, timeZone } from '../time/timestamps.js';
import type { ForecastConfig } from '../config/schema.js';
import type { TrainingSummary } from '../model/training.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import { statusDocument, type DaemonView } from '../publish/status.js';
import { alignDown, resampleMean } from '../windowing/index.js';

export interface ApiSources {
  view: DaemonView;
  forecasts: ReadonlyArray<ForecastConfig>;
  readings: Readings;
  catalog: SeriesCatalogView;
  versions: ModelVersions;
  pins: ModelPins;
  lastMessage: (forecast: string) => ForecastMessage | null;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

/** History answers at most this many buckets; a longer range is answered on a coarser grid. */
export const MAX_HISTORY_BUCKETS = 5000;
const DEFAULT_HISTORY_MS = 2 * 86_400_000;
const DEFAULT_MODEL_LIMIT = 20;
const MAX_MODEL_LIMIT = 200;

const notFound = (message: string): ApiResponse => ({ status: 404, body: { error: message } });
const badRequest = (message: string): ApiResponse => ({ status: 400, body: { error: message } });
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

const UTC = timeZone('UTC');

/** A date and time (UTC when it names no zone) or epoch seconds / milliseconds; undefined when absent, NaN when unparseable. */
function parseTime(raw: string | null): number | undefined {
  if (raw === null || raw === '') return undefined;
  return parseTimestamp(raw, UTC);
}

export function handleApi(path: string, query: URLSearchParams, sources: ApiSources): ApiResponse {
  let parts: string[];
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return badRequest('malformed percent-encoding in the path');
  }
  // parts[0] is 'api'
  const [, resource, name, sub, ...rest] = parts;
  if (rest.length) return notFound(`no such resource: ${path}`);
  const forecastOf = (forecastName: string) => sources.forecasts.find((forecast) => forecast.name === forecastName);

  if (resource === 'status' && !name) return { status: 200, body: statusDocument(sources.view) };
  if (resource === 'series' && !name) {
    return {
      status: 200,
      body: sources.catalog.list().map((series) => ({
        name: series.name,
        firstTs: iso(series.firstTs),
        lastTs: iso(series.lastTs),
        lastValue: series.lastValue,
      })) satisfies SeriesList,
    };
  }
  if (resource === 'forecasts' && !name) {
    const status = statusDocument(sources.view);
    return {
      status: 200,
      body: sources.forecasts.map((forecast) => {
        const message = sources.lastMessage(forecast.name);
        return {
          name: forecast.name,
          ...status.forecasts[forecast.name],
          next: message?.points[0] ?? null,
          issuedAt: message?.issuedAt ?? null,
        };
      }) satisfies ForecastList,
    };
  }
  if (resource === 'forecasts' && name) {
    const forecast = forecastOf(name);
    if (!forecast) return notFound(`no forecast named "${name}" (configured: ${sources.forecasts.map((f) => f.name).join(', ') || 'none'})`);
    if (!sub) {
      const message = sources.lastMessage(name);
      if (!message) {
        const readiness = statusDocument(sources.view).forecasts[name];
        return notFound(`no forecast issued yet for "${name}" (${readiness.readiness}${readiness.detail ? `: ${readiness.detail}` : ''})`);
      }
      return { status: 200, body: message };
    }
    if (sub === 'history') return history(forecast, query, sources);
    return notFound(`no such resource: ${path}`);
  }
  if (resource === 'models' && name && !sub) {
    const forecast = forecastOf(name);
    if (!forecast) return notFound(`no forecast named "${name}"`);
    const limitRaw = query.get('limit');
    const limit = limitRaw === null ? DEFAULT_MODEL_LIMIT : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_MODEL_LIMIT)
      return badRequest(`limit must be a whole number from 1 to ${MAX_MODEL_LIMIT}`);
    const serving = statusDocument(sources.view).forecasts[name].servingVersion;
    return {
      status: 200,
      body: {
        forecast: name,
        serving,
        pinned: sources.pins.get(name)?.version ?? null,
        versions: sources.versions.latest(name, limit).map((summary) => modelVersion(summary, serving)),
      } satisfies ModelsResponse,
    };
  }
  return notFound(`no such resource: ${path}`);
}

export function modelVersion(summary: TrainingSummary, serving: string | null): ModelVersionResponse {
  const methods = summary.evaluation?.methods;
  let scores: Record<string, MethodScore> | null = null;
  if (methods && Object.keys(methods).length) {
    // The new model, the one it challenged (champion) and every baseline, on the same windows.
    scores = Object.fromEntries(
      Object.entries(methods).map(([method, score]) => [
        method,
        { mae: score.mae, rmse: score.rmse, mase: score.mase ?? null, maeByStep: score.maeByStep ?? [], coverage: score.coverage ?? null },
      ]),
    );
  } else if (summary.metrics) {
    // Records of earlier versions only compared with persistence.
    scores = Object.fromEntries(
      Object.entries(summary.metrics).map(([method, score]) => [
        method,
        { mae: score.mae, rmse: score.rmse, mase: null, maeByStep: score.maeByStep ?? [], coverage: null },
      ]),
    );
  }
  return {
    version: summary.version,
    serving: summary.version === serving,
    trainedAt: new Date(summary.startedAt).toISOString(),
    backend: summary.backend,
    status: summary.status ?? 'finished',
    durationSeconds: summary.durationMs / 1000,
    epochs: summary.epochsCompleted,
    bestEpoch: summary.bestEpoch ?? null,
    trainWindows: summary.trainWindows,
    validationWindows: summary.validationWindows,
    samplesPerSecond: summary.samplesPerSecond,
    loss: summary.loss,
    valLoss: summary.valLoss,
    levels: summary.evaluation?.levels ?? [],
    scores,
    decision: summary.decision ? { promoted: summary.decision.promoted, servedBy: summary.decision.servedBy, reason: summary.decision.reason } : null,
    dataRange: { from: new Date(summary.dataRange.fromMs).toISOString(), to: new Date(summary.dataRange.toMs).toISOString() },
  };
}

function history(forecast: ForecastConfig, query: URLSearchParams, sources: ApiSources): ApiResponse {
  const now = sources.view.clock();
  const to = parseTime(query.get('to')) ?? now;
  const from = parseTime(query.get('from')) ?? to - DEFAULT_HISTORY_MS;
  if (!Number.isFinite(from) || !Number.isFinite(to)) return badRequest('from and to are ISO 8601 times or epoch milliseconds');
  if (from >= to) return badRequest('from must be before to');
  const intervalMs = forecast.interval * 1000;
  const coarsen = Math.max(1, Math.ceil((to - from) / intervalMs / MAX_HISTORY_BUCKETS));
  const bucketMs = intervalMs * coarsen;
  const gridStart = alignDown(from, bucketMs);
  const buckets = Math.max(0, Math.ceil((to - gridStart) / bucketMs));
  const readings = sources.readings.read(forecast.target, gridStart, gridStart + buckets * bucketMs);
  const means = resampleMean(readings.timestampsMs, readings.values, gridStart, bucketMs, buckets);
  const points: Array<{ ts: string; value: number | null }> = [];
  means.forEach((mean, index) =>
    points.push({ ts: new Date(gridStart + index * bucketMs).toISOString(), value: Number.isFinite(mean) ? Math.round(mean * 1e4) / 1e4 : null }),
  );
  return {
    status: 200,
    body: {
      forecast: forecast.name,
      series: forecast.target,
      unit: forecast.unit ?? null,
      from: new Date(gridStart).toISOString(),
      to: new Date(gridStart + buckets * bucketMs).toISOString(),
      bucketSeconds: bucketMs / 1000,
      readings: readings.values.length,
      points,
    } satisfies HistoryResponse,
  };
}
