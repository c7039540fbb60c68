import type { ForecastConfig } from '../config/schema.js';
import type { ModelVersions, Readings } from '../store/store.js';
import { failpointDelay } from '../failpoints.js';
import type { Logger } from '../log.js';
import type { BackendName, Tf } from '../model/backend.js';
import {
  bestBaseline,
  linearAt,
  persistenceAt,
  readinessOf,
  seasonalNaiveAt,
  type MethodEvaluation,
  type Readiness,
  type ServedBy,
} from '../model/evaluation/index.js';
import type { CheckpointStore } from '../model/checkpoint.js';
import { Forecaster, type ForecastResult } from '../model/forecaster.js';
import { useFusedLstm } from '../model/fused/index.js';
import { forecastCheckpoints } from '../model/stores.js';
import { isNotEnoughHistory, shapeKeyFor, type TrainingSummary } from '../model/training.js';
import { forecastMessage, type ForecastMessage, type MessageEvaluation } from '../publish/forecastMessage.js';
import { alignDown, fillShortGaps, resampleMean } from '../windowing/index.js';

interface ForecastState {
  /** The serving LSTM, when its checkpoint loads. */
  forecaster: Forecaster | null;
  /** The newest recorded training with an evaluation: it says what serves (model or a baseline) and holds the baselines. */
  record: TrainingSummary | null;
  /** The recorded training of the serving model's own version (its training time, its evaluation). */
  servingRecord: TrainingSummary | null;
  /** The pin (model_pins) this state was loaded under; null when none. */
  pinnedVersion: string | null;
}

export interface ServingChoice {
  servedBy: ServedBy;
  readiness: Readiness;
  reason: string;
}

/** The checkpoints of a store that fail verification, with the reason of each. */
async function unloadableCheckpoints(store: CheckpointStore): Promise<Array<{ id: string; reason: string }>> {
  const rejected: Array<{ id: string; reason: string }> = [];
  for (const info of await store.list()) {
    const loaded = await store.loadById(info.id);
    if (!loaded.content) rejected.push({ id: info.id, reason: loaded.reason });
  }
  return rejected;
}

/** A forecast's readiness for a status display: while warming up nothing serves, and the reason says why. */
export type ForecastReadiness = ServingChoice | { servedBy: null; readiness: 'warming_up'; reason: string };

/**
 * Issues forecasts on the main thread. What serves each forecast follows the newest evaluation:
 * the serving model when it beats persistence on the newest held-out windows, else the best baseline
 * (flagged `degraded`). Inference is milliseconds, so it never waits for a training in the pool.
 */
export class ForecastJobs {
  private readonly states = new Map<string, ForecastState>();
  private readonly loggedDecisions = new Map<string, string>();
  readonly lastIssued = new Map<string, ForecastMessage>();
  readonly counters = { issued: 0, issuedByBaseline: 0, skippedNoModel: 0, skippedGap: 0, checkpointsRejected: 0 };

  constructor(
    private readonly deps: {
      tf: Tf;
      backend: BackendName;
      checkpointRoot: string;
      readings: Readings;
      versions: ModelVersions;
      clock: () => number;
      log: Logger;
      publish: (message: ForecastMessage) => void;
      /** The operator's pins (`forecastd models --promote/--rollback`); without it no pin applies. */
      pins?: { get(forecast: string): { version: string } | null };
      /** The last training's failure, if the last training of this forecast failed. */
      trainingFailure?: (forecast: string) => { message: string; kind?: string } | undefined;
    },
  ) {}

  /** Whether a model (LSTM) checkpoint serves this forecast. */
  hasModel(name: string): boolean {
    return this.states.get(name)?.forecaster != null;
  }

  /** Whether a finished training has evaluated this forecast (then a baseline can serve even without a model). */
  hasEvaluation(name: string): boolean {
    return this.states.get(name)?.record?.decision != null;
  }

  /**
   * (Re)loads the serving checkpoint (a corrupt one is skipped for the previous good one) and the newest
   * evaluation. True when the forecast has something to serve: a model, or baselines from an evaluation.
   */
  async load(forecast: ForecastConfig): Promise<boolean> {
    await failpointDelay('model.load.delayMs');
    const stores = forecastCheckpoints(this.deps.checkpointRoot, forecast);
    const { serving } = stores;
    await serving.removeStaleTemp();
    const shapeKey = shapeKeyFor(forecast);
    const fusedLstm = useFusedLstm(this.deps.backend, forecast.training.lstmImplementation);
    const pinnedVersion = this.pinnedVersion(forecast.name);
    let loaded =
      pinnedVersion === null
        ? null
        : await Forecaster.loadVersion(this.deps.tf, [serving, stores.best, stores.latest], pinnedVersion, shapeKey, { fusedLstm });
    if (pinnedVersion !== null && !loaded?.forecaster) {
      this.deps.log.error(
        { forecast: forecast.name, pinned: pinnedVersion },
        'the pinned model version has no usable checkpoint; the newest promoted model serves (forecastd models --unpin clears the pin)',
      );
    }
    if (!loaded?.forecaster) {
      const latest = await Forecaster.load(this.deps.tf, serving, shapeKey, { fusedLstm });
      // With every checkpoint damaged the store returns nothing, not even why: ask each one, so that the worst case
      // is counted and logged like a single damaged checkpoint (docs/reliability.md, F7).
      const latestRejected = latest.forecaster || latest.rejected.length > 0 ? latest.rejected : await unloadableCheckpoints(serving);
      loaded = { forecaster: latest.forecaster, rejected: [...(loaded?.rejected ?? []), ...latestRejected] };
    }
    const { forecaster, rejected } = loaded;
    this.counters.checkpointsRejected += rejected.length;
    for (const problem of rejected)
      this.deps.log.warn({ forecast: forecast.name, checkpoint: problem.id, reason: problem.reason }, 'checkpoint rejected');
    const recent = this.deps.versions.latest(forecast.name, 5);
    // An evaluation of another model shape (steps, horizon, ...) says nothing about this configuration.
    const record = recent.find((summary) => summary.decision && summary.shapeKey === shapeKey) ?? null;
    const servingRecord = forecaster ? this.deps.versions.get(forecaster.meta.version) : null;
    this.states.get(forecast.name)?.forecaster?.dispose();
    this.states.set(forecast.name, { forecaster, record, servingRecord, pinnedVersion });
    if (forecaster) {
      const pinned = pinnedVersion !== null && forecaster.meta.version === pinnedVersion;
      this.deps.log.info(
        { forecast: forecast.name, version: forecaster.meta.version, checkpoint: forecaster.checkpointId, pinned },
        pinned ? 'pinned model loaded' : 'model loaded',
      );
    }
    this.logDecision(forecast.name, record);
    return forecaster !== null || record !== null;
  }

  /**
   * Whether the pin of this forecast changed since its model was loaded (one indexed SELECT): the daemon checks
   * this at each forecast tick and reloads, so a `forecastd models --promote/--rollback/--unpin` applies at the next tick.
   */
  pinChanged(name: string): boolean {
    if (!this.deps.pins) return false;
    const state = this.states.get(name);
    return (state?.pinnedVersion ?? null) !== this.pinnedVersion(name);
  }

  private pinnedVersion(name: string): string | null {
    try {
      return this.deps.pins?.get(name)?.version ?? null;
    } catch (error) {
      this.deps.log.warn({ forecast: name, err: (error as Error).message }, 'model pin could not be read');
      return null;
    }
  }

  private logDecision(name: string, record: TrainingSummary | null): void {
    if (!record?.decision || this.loggedDecisions.get(name) === record.version) return;
    this.loggedDecisions.set(name, record.version);
    const { promoted, servedBy, servingVersion, reason } = record.decision;
    const fields = { forecast: name, version: record.version, promoted, servedBy, servingVersion, reason };
    if (promoted) this.deps.log.info(fields, 'new model promoted: it serves now');
    else if (servedBy === 'model') this.deps.log.warn(fields, 'new model not promoted: the current one keeps serving');
    else this.deps.log.warn(fields, `no model beats persistence: ${servedBy.replace('_', ' ')} serves (degraded)`);
  }

  /** What serves this forecast now, and how ready it is; null while warming up (nothing is published then). */
  choose(forecast: ForecastConfig): ServingChoice | null {
    const readiness = this.readiness(forecast);
    return readiness.servedBy === null ? null : readiness;
  }

  /**
   * warming_up (no evaluation yet; the reason carries the last "not enough history" message, which says
   * how much more is needed and when it will be there), ready, or degraded, with what serves.
   */
  readiness(forecast: ForecastConfig): ForecastReadiness {
    const state = this.states.get(forecast.name);
    const failure = this.deps.trainingFailure?.(forecast.name) ?? null;
    const notEnoughHistory = failure !== null && (failure.kind === 'not_enough_history' || isNotEnoughHistory(failure));
    const decision = state?.record?.decision ?? null;
    let servedBy: ServedBy | null;
    if (state?.forecaster) servedBy = decision ? decision.servedBy : 'model';
    else if (decision)
      servedBy =
        decision.servedBy === 'model' ? (bestBaseline(state!.record!.evaluation?.methods ?? {})?.method ?? 'persistence') : decision.servedBy;
    else servedBy = failure && !notEnoughHistory ? 'persistence' : null;
    const { readiness, reason } = readinessOf({
      hasEvaluation: decision !== null || Boolean(state?.forecaster),
      servedBy,
      lastTrainingFailure: failure && !notEnoughHistory ? failure.message : null,
      notEnoughHistory,
    });
    if (servedBy === null || readiness === 'warming_up') {
      return { servedBy: null, readiness: 'warming_up', reason: notEnoughHistory ? failure.message : reason };
    }
    if (readiness === 'ready' && !decision)
      return { servedBy, readiness, reason: 'no evaluation recorded for this model (trained before evaluations were kept)' };
    if (servedBy !== 'model' && decision?.servedBy === 'model' && !state?.forecaster) {
      return {
        servedBy,
        readiness: 'degraded',
        reason: `the serving model ${decision.servingVersion} could not be loaded: ${servedBy.replace('_', ' ')} serves`,
      };
    }
    return { servedBy, readiness, reason };
  }

  /** Makes and publishes one forecast; returns it, or null while warming up or when the input has a gap. */
  run(forecast: ForecastConfig): ForecastMessage | null {
    const choice = this.choose(forecast);
    if (!choice) {
      this.counters.skippedNoModel++;
      return null;
    }
    const state = this.states.get(forecast.name);
    const now = this.deps.clock();
    const forecaster = choice.servedBy === 'model' ? (state?.forecaster ?? null) : null;
    let result: ForecastResult | null;
    if (forecaster) {
      const range = forecaster.inputRange(now);
      const series = [forecast.target, ...forecast.covariates].map((name) => this.deps.readings.read(name, range.fromMs, range.toMs));
      result = forecaster.predict(series, now);
    } else {
      result = this.baselineForecast(forecast, choice.servedBy, state?.record ?? null, now);
    }
    if (!result) {
      this.counters.skippedGap++;
      this.deps.log.warn(
        { forecast: forecast.name, servedBy: choice.servedBy },
        'no forecast: the input window has a gap longer than maxGapSteps (sensor silent?)',
      );
      return null;
    }
    const message = forecastMessage({
      forecast: forecast.name,
      target: forecast.target,
      issuedAtMs: now,
      intervalSeconds: forecast.interval,
      result,
      version: forecaster?.meta.version ?? state?.record?.version ?? '',
      training: forecaster ? (state?.servingRecord ?? null) : (state?.record ?? null),
      backend: this.deps.backend,
      readiness: choice.readiness,
      readinessReason: choice.reason,
      servedBy: choice.servedBy,
      evaluation: this.messageEvaluation(state ?? null, choice.servedBy),
    });
    this.deps.publish(message);
    this.lastIssued.set(forecast.name, message);
    this.counters.issued++;
    if (!forecaster) this.counters.issuedByBaseline++;
    return message;
  }

  /** The scores and interval widths of what serves, from the evaluation that measured it. */
  private messageEvaluation(state: ForecastState | null, servedBy: ServedBy): MessageEvaluation | null {
    let source: TrainingSummary | null = state?.record ?? null;
    let scores: MethodEvaluation | undefined;
    if (servedBy === 'model') {
      const version = state?.forecaster?.meta.version;
      const decision = source?.decision;
      if (source && decision && decision.servingVersion === version) {
        scores = version === source.version ? source.evaluation?.methods.model : source.evaluation?.methods.champion;
      }
      if (!scores) {
        // The newest evaluation did not measure this model: fall back to the one made when it was trained.
        source = state?.servingRecord ?? null;
        scores = source?.evaluation?.methods.model;
      }
    } else {
      scores = source?.evaluation?.methods[servedBy];
    }
    const evaluation = source?.evaluation;
    if (!scores || !evaluation?.methods.persistence) return null;
    return {
      served: { mae: scores.mae, rmse: scores.rmse, mase: scores.mase },
      persistenceMae: evaluation.methods.persistence.mae,
      seasonalNaiveMae: evaluation.methods.seasonal_naive?.mae ?? null,
      linearMae: evaluation.methods.linear?.mae ?? null,
      windows: evaluation.windows,
      levels: evaluation.levels,
      intervalWidths: scores.intervalWidths,
    };
  }

  /** A baseline's forecast from the newest readings, built on the same grid (resampled, short gaps filled) as the model's. */
  private baselineForecast(forecast: ForecastConfig, servedBy: ServedBy, record: TrainingSummary | null, now: number): ForecastResult | null {
    const intervalMs = forecast.interval * 1000;
    const originMs = alignDown(now, intervalMs);
    const season = record?.evaluation?.season.length ?? null;
    const linear = record?.evaluation?.linear ?? null;
    const history = servedBy === 'seasonal_naive' && season ? season : servedBy === 'linear' && linear ? linear.lags + 1 : 1;
    const rows = history + forecast.maxGapSteps + 1;
    const fromMs = originMs - rows * intervalMs;
    const target = this.deps.readings.read(forecast.target, fromMs, originMs);
    const column = fillShortGaps(resampleMean(target.timestampsMs, target.values, fromMs, intervalMs, rows), forecast.maxGapSteps);
    const out = new Float64Array(forecast.horizon);
    const ok =
      servedBy === 'seasonal_naive' && season
        ? seasonalNaiveAt(column, rows, forecast.horizon, season, out)
        : servedBy === 'linear' && linear && linear.horizon === forecast.horizon
          ? linearAt(linear, column, rows, out)
          : persistenceAt(column, rows, forecast.horizon, out);
    if (!ok || !Number.isFinite(column[rows - 1])) return null;
    return {
      originMs,
      lastObserved: column[rows - 1],
      points: Array.from(out, (value, step) => ({ ts: originMs + step * intervalMs, value })),
    };
  }

  dispose(): void {
    for (const state of this.states.values()) state.forecaster?.dispose();
    this.states.clear();
  }
}
