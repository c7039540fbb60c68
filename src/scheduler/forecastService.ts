/**
 * The rules of issuing forecasts, in one place: what happens at a forecast tick (warm-up trainings, a changed pin
 * reloads the model), what happens after a training (record it, reload, forecast at once), and where an issued
 * forecast goes (every sink, and its record, in one transaction; then live accuracy).
 *
 * It owns the ForecastJobs (the models on the main thread) and listens to the TrainingRunner; the composition root
 * only builds it.
 */
import type { ModelPins, ModelVersions, PublishedForecasts, Readings } from '../store/store.js';
import { wallIntervalPassed } from '../clock.js';
import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BackendName, Tf } from '../model/backend.js';
import type { TrainingSummary } from '../model/training.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import type { SinkSet } from '../publish/sink.js';
import type { LiveAccuracyJob } from './accuracyJob.js';
import { ForecastJobs } from './forecastJobs.js';
import type { TrainingRunner } from './trainingRunner.js';

/** A forecast without a model retries its first training this often while it warms up. */
export const WARM_UP_RETRY_MS = 10 * 60_000;

export interface ForecastServiceDeps {
  forecasts: readonly ForecastConfig[];
  tf: Tf;
  backend: BackendName;
  checkpointRoot: string;
  readings: Readings;
  versions: ModelVersions;
  pins: ModelPins;
  published: PublishedForecasts;
  trainings: TrainingRunner;
  sinks: SinkSet;
  liveAccuracy: LiveAccuracyJob;
  /** Runs `work` in one database transaction (the sinks' outbox row and the published record commit together). */
  transaction: (work: () => void) => void;
  clock: () => number;
  log: Logger;
}

export class ForecastService {
  readonly jobs: ForecastJobs;
  /** When each forecast last had a tick (readiness checks that ticks keep coming). */
  readonly lastTicks = new Map<string, number>();
  private readonly issuedListeners: Array<(message: ForecastMessage) => void> = [];
  private readonly trainedListeners: Array<(summary: TrainingSummary) => void> = [];

  constructor(private readonly deps: ForecastServiceDeps) {
    this.jobs = new ForecastJobs({
      tf: deps.tf,
      backend: deps.backend,
      checkpointRoot: deps.checkpointRoot,
      readings: deps.readings,
      versions: deps.versions,
      pins: deps.pins,
      clock: deps.clock,
      log: deps.log,
      // A failed last training makes the forecast degraded.
      trainingFailure: (name) => deps.trainings.lastFailure.get(name),
      publish: (message) => this.published(message),
    });
    deps.trainings.whenTrained((summary) => this.afterTraining(summary));
  }

  /** Called for every forecast issued (after its sinks and record), e.g. the demo's console and the tests. */
  onIssued(listener: (message: ForecastMessage) => void): void {
    this.issuedListeners.push(listener);
  }

  /** Called after every successful training, once it is recorded and its model loaded. */
  onTrained(listener: (summary: TrainingSummary) => void): void {
    this.trainedListeners.push(listener);
  }

  /**
   * Loads every forecast's serving model. A model that cannot be read (a damaged checkpoint directory, a permission
   * problem) must not stop the daemon: that forecast serves nothing until its next training writes a good checkpoint.
   */
  async loadAll(): Promise<void> {
    for (const forecast of this.deps.forecasts) {
      await this.jobs
        .load(forecast)
        .catch((error: Error) =>
          this.deps.log.error(
            { forecast: forecast.name, err: error.message },
            'model could not be loaded; this forecast waits for its next training',
          ),
        );
    }
  }

  /** The first training of each forecast that has no model yet (training.onStart). */
  requestStartupTrainings(): void {
    for (const forecast of this.deps.forecasts) {
      if (!this.jobs.hasModel(forecast.name) && forecast.training.onStart) this.deps.trainings.request(forecast.name, 'no_model_at_start');
    }
  }

  /** A forecast tick: issues the forecast now (null when nothing can serve yet, or a reload comes first). */
  issue(name: string): ForecastMessage | null {
    const forecast = this.forecastNamed(name);
    if (!forecast) return null;
    const { clock, trainings } = this.deps;
    this.lastTicks.set(name, clock());
    // A forecast that a baseline serves because no model beat persistence retrains on its schedule, not every few minutes.
    if (!this.jobs.hasModel(name) && !this.jobs.hasEvaluation(name) && forecast.training.onStart && !trainings.running.has(name)) {
      const failure = trainings.lastFailure.get(name);
      if (!failure || wallIntervalPassed(failure.at, clock(), WARM_UP_RETRY_MS)) trainings.request(name, 'warming_up');
    }
    if (this.jobs.pinChanged(name)) {
      // `forecastd models --promote/--rollback/--unpin` changed the pin: this tick reloads, then forecasts with it.
      void this.jobs
        .load(forecast)
        .then((ok) => (ok ? this.jobs.run(forecast) : null))
        .catch((error: Error) => this.deps.log.error({ forecast: name, err: error.message }, 'model could not be reloaded after a pin change'));
      return null;
    }
    return this.jobs.run(forecast);
  }

  /** The last forecast issued, or the last one recorded before this start. */
  lastMessage(name: string): ForecastMessage | null {
    return this.jobs.lastIssued.get(name) ?? this.deps.published.latest(name);
  }

  dispose(): void {
    this.jobs.dispose();
  }

  private forecastNamed(name: string): ForecastConfig | undefined {
    return this.deps.forecasts.find((forecast) => forecast.name === name);
  }

  private published(message: ForecastMessage): void {
    // One transaction: every sink's share (the MQTT outbox row) and the "latest forecast" record, together or not at all.
    this.deps.transaction(() => {
      this.deps.sinks.publishForecast(message);
      this.deps.published.record(message);
    });
    const forecast = this.forecastNamed(message.forecast);
    if (forecast) this.deps.liveAccuracy.afterTick(forecast, message, this.deps.forecasts);
    for (const listener of this.issuedListeners) listener(message);
  }

  private async afterTraining(summary: TrainingSummary): Promise<void> {
    this.deps.versions.record(summary);
    const forecast = this.forecastNamed(summary.forecast);
    if (forecast && (await this.jobs.load(forecast))) this.jobs.run(forecast);
    for (const listener of this.trainedListeners) listener(summary);
  }
}
