import { formatDuration } from '../config/duration.js';
import type { BackendName } from '../model/backend.js';
import type { ForecastResult } from '../model/forecaster.js';
import type { TrainingSummary } from '../model/training.js';

/** The JSON document consumers (Home Assistant, Node-RED, dashboards) receive for each forecast. */
export interface ForecastMessage {
  forecast: string;
  target: string;
  issuedAt: string;
  interval: string;
  intervalSeconds: number;
  origin: string;
  lastObserved: number;
  points: Array<{ ts: string; value: number }>;
  model: {
    version: string;
    trainedAt: string | null;
    validation: { mae: number; rmse: number; persistenceMae: number } | null;
  };
  backend: BackendName;
}

const round = (value: number) => Math.round(value * 1e4) / 1e4;

export function forecastMessage(input: {
  forecast: string;
  target: string;
  issuedAtMs: number;
  intervalSeconds: number;
  result: ForecastResult;
  version: string;
  training: TrainingSummary | null;
  backend: BackendName;
}): ForecastMessage {
  const metrics = input.training?.metrics;
  return {
    forecast: input.forecast,
    target: input.target,
    issuedAt: new Date(input.issuedAtMs).toISOString(),
    interval: formatDuration(input.intervalSeconds),
    intervalSeconds: input.intervalSeconds,
    origin: new Date(input.result.originMs).toISOString(),
    lastObserved: round(input.result.lastObserved),
    points: input.result.points.map((point) => ({ ts: new Date(point.ts).toISOString(), value: round(point.value) })),
    model: {
      version: input.version,
      trainedAt: input.training ? new Date(input.training.startedAt).toISOString() : null,
      validation: metrics ? { mae: round(metrics.model.mae), rmse: round(metrics.model.rmse), persistenceMae: round(metrics.persistence.mae) } : null,
    },
    backend: input.backend,
  };
}

export function forecastTopic(template: string, baseTopic: string, forecast: string): string {
  return template.replaceAll('{baseTopic}', baseTopic).replaceAll('{forecast}', forecast);
}
