import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BackendPreference } from '../model/backend.js';
import { NotEnoughHistoryError, type EpochProgress, type TrainingSummary } from '../model/training.js';
import type { TrainingPool } from './trainingPool.js';

export type TrainingRequestOutcome = 'started' | 'skipped_running' | 'unknown_forecast';

export interface TrainingState {
  startedAt: number;
  reason: string;
  progress: EpochProgress | null;
}

/**
 * Sends trainings to the pool, one at a time per forecast: a cron tick that fires while the
 * previous training of the same forecast still runs is skipped and counted, never queued twice.
 */
export class TrainingRunner {
  readonly running = new Map<string, TrainingState & { abort: AbortController; done: Promise<void> }>();
  readonly counters = { started: 0, succeeded: 0, failed: 0, skippedOverlap: 0 };
  readonly lastFailure = new Map<string, { at: number; message: string }>();

  constructor(
    private readonly deps: {
      pool: TrainingPool;
      forecasts: () => ReadonlyArray<ForecastConfig>;
      databasePath: string;
      checkpointRoot: string;
      backend: BackendPreference;
      clock: () => number;
      log: Logger;
      onTrained: (summary: TrainingSummary) => Promise<void> | void;
      onProgress?: (progress: EpochProgress) => void;
    },
  ) {}

  request(name: string, reason: string): TrainingRequestOutcome {
    const forecast = this.deps.forecasts().find((candidate) => candidate.name === name);
    if (!forecast) return 'unknown_forecast';
    if (this.running.has(name)) {
      this.counters.skippedOverlap++;
      this.deps.log.warn({ forecast: name, reason }, 'training still running: this tick is skipped');
      return 'skipped_running';
    }
    const abort = new AbortController();
    const startedAt = this.deps.clock();
    const state = { startedAt, reason, progress: null as EpochProgress | null, abort, done: Promise.resolve() };
    this.running.set(name, state);
    this.counters.started++;
    this.deps.log.info({ forecast: name, reason }, 'training started');
    state.done = this.execute(forecast, state, abort.signal).finally(() => this.running.delete(name));
    return 'started';
  }

  /** Resolves when the named training (or every running one) has finished. */
  async idle(name?: string): Promise<void> {
    const states = name ? [this.running.get(name)].filter((state) => state !== undefined) : [...this.running.values()];
    await Promise.all(states.map((state) => state.done));
  }

  /** Aborts running trainings; their last epoch checkpoint stays on disk. */
  async stop(): Promise<void> {
    for (const state of this.running.values()) state.abort.abort();
    await this.idle();
  }

  private async execute(forecast: ForecastConfig, state: TrainingState, signal: AbortSignal): Promise<void> {
    const log = this.deps.log.child({ forecast: forecast.name });
    try {
      const summary = await this.deps.pool.run(
        {
          forecast,
          databasePath: this.deps.databasePath,
          checkpointRoot: this.deps.checkpointRoot,
          backend: this.deps.backend,
          nowMs: state.startedAt,
        },
        (progress) => {
          state.progress = progress;
          log.debug({ epoch: progress.epoch, epochs: progress.epochs, loss: progress.loss, valLoss: progress.valLoss, etaMs: Math.round(progress.etaMs) }, 'epoch done');
          this.deps.onProgress?.(progress);
        },
        signal,
      );
      this.counters.succeeded++;
      this.lastFailure.delete(forecast.name);
      log.info(
        {
          version: summary.version,
          backend: summary.backend,
          epochs: summary.epochsCompleted,
          trainWindows: summary.trainWindows,
          samplesPerSecond: Math.round(summary.samplesPerSecond),
          durationMs: Math.round(summary.durationMs),
          valMae: summary.metrics?.model.mae,
          persistenceMae: summary.metrics?.persistence.mae,
        },
        'training finished',
      );
      await this.deps.onTrained(summary);
    } catch (error) {
      this.counters.failed++;
      const message = (error as Error).message;
      this.lastFailure.set(forecast.name, { at: this.deps.clock(), message });
      // Not enough history is an expected state while a new sensor warms up, not an error.
      if ((error as Error).name === NotEnoughHistoryError.name || message.includes('training windows')) log.info({ reason: message }, 'not enough history to train yet');
      else if (signal.aborted) log.warn('training aborted; its last epoch checkpoint is kept');
      else log.error({ err: message }, 'training failed; the current model keeps serving');
    }
  }
}
