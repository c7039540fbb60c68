import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BackendName, Tf } from '../model/backend.js';
import { CheckpointStore } from '../model/checkpoint.js';
import { Forecaster } from '../model/forecaster.js';
import { shapeKeyFor, type TrainingSummary } from '../model/training.js';
import { forecastMessage, type ForecastMessage } from '../publish/forecastMessage.js';
import type { ModelVersionStore } from '../store/modelVersions.js';
import type { ReadingStore } from '../store/readings.js';

interface ServingModel {
  forecaster: Forecaster;
  training: TrainingSummary | null;
}

/**
 * Issues forecasts on the main thread from the newest good checkpoint of each forecast. Inference is
 * milliseconds, so it never waits for a training that runs in the pool.
 */
export class ForecastJobs {
  private readonly serving = new Map<string, ServingModel>();
  readonly lastIssued = new Map<string, ForecastMessage>();
  readonly counters = { issued: 0, skippedNoModel: 0, skippedGap: 0, checkpointsRejected: 0 };

  constructor(
    private readonly deps: {
      tf: Tf;
      backend: BackendName;
      checkpointRoot: string;
      readings: ReadingStore;
      versions: ModelVersionStore;
      clock: () => number;
      log: Logger;
      publish: (message: ForecastMessage) => void;
    },
  ) {}

  hasModel(name: string): boolean {
    return this.serving.has(name);
  }

  /** (Re)loads the newest good checkpoint; a corrupt one is skipped for the previous good one. */
  async load(forecast: ForecastConfig): Promise<boolean> {
    const store = new CheckpointStore(this.deps.checkpointRoot, forecast.name, { keep: forecast.training.keepCheckpoints });
    await store.removeStaleTemp();
    const { forecaster, rejected } = await Forecaster.load(this.deps.tf, store, shapeKeyFor(forecast));
    this.counters.checkpointsRejected += rejected.length;
    for (const problem of rejected) this.deps.log.warn({ forecast: forecast.name, checkpoint: problem.id, reason: problem.reason }, 'checkpoint rejected');
    if (!forecaster) return false;
    const training = this.deps.versions.latest(forecast.name).find((summary) => summary.version === forecaster.meta.version) ?? null;
    this.serving.get(forecast.name)?.forecaster.dispose();
    this.serving.set(forecast.name, { forecaster, training });
    this.deps.log.info({ forecast: forecast.name, version: forecaster.meta.version, checkpoint: forecaster.checkpointId }, 'model loaded');
    return true;
  }

  /** Makes and publishes one forecast; returns it, or null when there is no model or the input has a gap. */
  run(forecast: ForecastConfig): ForecastMessage | null {
    const model = this.serving.get(forecast.name);
    if (!model) {
      this.counters.skippedNoModel++;
      return null;
    }
    const now = this.deps.clock();
    const range = model.forecaster.inputRange(now);
    const series = [forecast.target, ...forecast.covariates].map((name) => this.deps.readings.read(name, range.fromMs, range.toMs));
    const result = model.forecaster.predict(series, now);
    if (!result) {
      this.counters.skippedGap++;
      this.deps.log.warn({ forecast: forecast.name }, 'no forecast: the input window has a gap longer than maxGapSteps (sensor silent?)');
      return null;
    }
    const message = forecastMessage({
      forecast: forecast.name,
      target: forecast.target,
      issuedAtMs: now,
      intervalSeconds: forecast.interval,
      result,
      version: model.forecaster.meta.version,
      training: model.training,
      backend: this.deps.backend,
    });
    this.deps.publish(message);
    this.lastIssued.set(forecast.name, message);
    this.counters.issued++;
    return message;
  }

  dispose(): void {
    for (const model of this.serving.values()) model.forecaster.dispose();
    this.serving.clear();
  }
}
