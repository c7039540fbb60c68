import { FORECAST_MESSAGE_VERSION, type ForecastMessage, type ForecastPointMessage } from '../contracts/forecastMessage.js';
import { formatDuration } from '../time/duration.js';
import type { BackendName } from '../model/backend.js';
import { levelKey, type Readiness, type ServedBy } from '../model/evaluation/index.js';
import type { ForecastResult } from '../model/forecaster.js';
import type { TrainingSummary } from '../model/training.js';

export type { Readiness, ServedBy };

// The message's enums are the model's: a new readiness state or serving method must enter the contract too.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const enumsAgree: Same<Readiness, ForecastMessage['readiness']> = true;
void enumsAgree;

export type { ForecastMessage, ForecastPointMessage } from '../contracts/forecastMessage.js';

const round = (value: number) => Math.round(value * 1e4) / 1e4;
const roundOrNull = (value: number | null | undefined) => (value === null || value === undefined || !Number.isFinite(value) ? null : round(value));

export interface MessageEvaluation {
  /** Scores of what served (model or baseline) and of persistence on the same windows. */
  served: { mae: number; rmse: number; mase: number | null };
  persistenceMae: number;
  seasonalNaiveMae: number | null;
  linearMae: number | null;
  windows: number;
  levels: number[];
  /** [level][step] half-widths of the served method. */
  intervalWidths: number[][];
}

export function forecastMessage(input: {
  forecast: string;
  target: string;
  issuedAtMs: number;
  intervalSeconds: number;
  result: ForecastResult;
  version: string;
  training: TrainingSummary | null;
  backend: BackendName;
  readiness?: Readiness;
  readinessReason?: string;
  servedBy?: ServedBy;
  evaluation?: MessageEvaluation | null;
}): ForecastMessage {
  const evaluation = input.evaluation ?? null;
  const legacy = input.training?.metrics;
  const widths = evaluation && evaluation.intervalWidths.length === evaluation.levels.length ? evaluation.intervalWidths : null;
  const points = input.result.points.map((point, step): ForecastPointMessage => {
    const out: ForecastPointMessage = { ts: new Date(point.ts).toISOString(), value: round(point.value) };
    if (widths && evaluation) {
      out.lower = {};
      out.upper = {};
      evaluation.levels.forEach((level, index) => {
        const width = widths[index][step];
        if (!Number.isFinite(width)) return;
        out.lower![levelKey(level)] = round(point.value - width);
        out.upper![levelKey(level)] = round(point.value + width);
      });
    }
    return out;
  });
  return {
    messageVersion: FORECAST_MESSAGE_VERSION,
    forecast: input.forecast,
    target: input.target,
    issuedAt: new Date(input.issuedAtMs).toISOString(),
    interval: formatDuration(input.intervalSeconds),
    intervalSeconds: input.intervalSeconds,
    origin: new Date(input.result.originMs).toISOString(),
    lastObserved: round(input.result.lastObserved),
    readiness: input.readiness ?? 'ready',
    readinessReason: input.readinessReason ?? 'no evaluation recorded for this model',
    servedBy: input.servedBy ?? 'model',
    points,
    intervals: widths && evaluation ? { levels: evaluation.levels, method: 'conformal', calibrationWindows: evaluation.windows } : null,
    model: {
      version: input.version,
      trainedAt: input.training ? new Date(input.training.startedAt).toISOString() : null,
      validation: evaluation
        ? {
            mae: round(evaluation.served.mae),
            rmse: round(evaluation.served.rmse),
            persistenceMae: round(evaluation.persistenceMae),
            mase: roundOrNull(evaluation.served.mase),
            seasonalNaiveMae: roundOrNull(evaluation.seasonalNaiveMae),
            linearMae: roundOrNull(evaluation.linearMae),
            windows: evaluation.windows,
          }
        : legacy
          ? {
              mae: round(legacy.model.mae),
              rmse: round(legacy.model.rmse),
              persistenceMae: round(legacy.persistence.mae),
              mase: null,
              seasonalNaiveMae: null,
              linearMae: null,
              windows: 0,
            }
          : null,
    },
    backend: input.backend,
  };
}
