import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { BackendPreference } from '../model/backend.js';
import type { Verbosity } from '../model/progress.js';
import { NotEnoughHistoryError, type EpochProgress, type TrainingSummary } from '../model/training.js';
import { failureKind, type TrainingExecutor, type TrainingFailureKind } from './trainingPool.js';

export type TrainingRequestOutcome = 'started' | 'skipped_running' | 'unknown_forecast';

export interface TrainingState {
  startedAt: number;
  reason: string;
  progress: EpochProgress | null;
}

export interface RunningTraining extends TrainingState {
  abort: AbortController;
  done: Promise<TrainingResult>;
}

/** How one training ended. */
export type TrainingResult =
  | { status: 'succeeded'; summary: TrainingSummary }
  | { status: 'aborted'; epochsCompleted: number; checkpointId: string | null }
  | { status: 'not_enough_history'; message: string }
  | { status: 'failed'; kind: TrainingFailureKind; message: string };

export interface TrainingFailure {
  at: number;
  message: string;
  kind: TrainingFailureKind | 'not_enough_history';
}

/** Epoch lines are logged at info at most this often (and always for the first and the last epoch). */
export const PROGRESS_INFO_EVERY_MS = 30_000;

/**
 * Sends trainings to the pool, one at a time per forecast: a cron tick that fires while the
 * previous training of the same forecast still runs is skipped and counted, never queued twice.
 * A failed training (an error, a crashed or out-of-memory thread) is recorded here and retried at the
 * next scheduled time; the model that serves meanwhile is the last good one.
 */
export class TrainingRunner {
  readonly running = new Map<string, RunningTraining>();
  readonly counters = { started: 0, succeeded: 0, failed: 0, aborted: 0, skippedOverlap: 0, notEnoughHistory: 0, outOfMemory: 0, workerExited: 0 };
  readonly lastFailure = new Map<string, TrainingFailure>();
  private stopping = false;
  private readonly trainedListeners: Array<(summary: TrainingSummary) => Promise<void> | void> = [];

  constructor(
    private readonly deps: {
      pool: TrainingExecutor;
      forecasts: () => ReadonlyArray<ForecastConfig>;
      databasePath: string;
      checkpointRoot: string;
      backend: BackendPreference;
      clock: () => number;
      log: Logger;
      /** Called (and awaited) first after each successful training; more listeners can be added with whenTrained. */
      onTrained?: (summary: TrainingSummary) => Promise<void> | void;
      onProgress?: (progress: EpochProgress) => void;
      /** Keras-style console output of each training, for `forecastd train --verbose`. */
      verbose?: Verbosity;
      write?: (text: string) => void;
    },
  ) {}

  /** Adds a listener that runs (awaited, in order) after each successful training: a failure there fails the training. */
  whenTrained(listener: (summary: TrainingSummary) => Promise<void> | void): void {
    this.trainedListeners.push(listener);
  }

  request(name: string, reason: string): TrainingRequestOutcome {
    const forecast = this.deps.forecasts().find((candidate) => candidate.name === name);
    if (!forecast) return 'unknown_forecast';
    if (this.running.has(name)) {
      this.counters.skippedOverlap++;
      this.deps.log.warn({ forecast: name, reason, skippedOverlap: this.counters.skippedOverlap }, 'training still running: this tick is skipped');
      return 'skipped_running';
    }
    if (this.stopping) return 'skipped_running';
    const abort = new AbortController();
    const training = { startedAt: this.deps.clock(), reason, progress: null, abort } as RunningTraining;
    this.running.set(name, training);
    this.counters.started++;
    this.deps.log.info({ forecast: name, reason }, 'training started');
    training.done = this.execute(forecast, training, abort.signal).finally(() => this.running.delete(name));
    return 'started';
  }

  /** Starts a training and waits for it: the manual `forecastd train` path. */
  async run(name: string, reason: string): Promise<TrainingResult | Exclude<TrainingRequestOutcome, 'started'>> {
    const outcome = this.request(name, reason);
    if (outcome !== 'started') return outcome;
    return this.running.get(name)!.done;
  }

  /** Resolves when the named training (or every running one) has finished. */
  async idle(name?: string): Promise<void> {
    const states = name ? [this.running.get(name)].filter((state) => state !== undefined) : [...this.running.values()];
    await Promise.all(states.map((state) => state.done));
  }

  /** Aborts running trainings and starts no new ones; their last epoch checkpoint stays on disk. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const state of this.running.values()) state.abort.abort();
    await this.idle();
  }

  private async execute(forecast: ForecastConfig, state: TrainingState, signal: AbortSignal): Promise<TrainingResult> {
    const log = this.deps.log.child({ forecast: forecast.name });
    let lastInfoAt = -Infinity;
    const onEpoch = (progress: EpochProgress) => {
      state.progress = progress;
      const now = this.deps.clock();
      const fields = {
        epoch: progress.epoch,
        epochs: progress.epochs,
        loss: progress.loss,
        valLoss: progress.valLoss,
        etaMs: Math.round(progress.etaMs),
      };
      // Every epoch at debug; at info, a line now and then, so that a long training on a Pi shows it is alive
      // without filling the journal (and the SD card) with one line per epoch.
      if (progress.epoch === 1 || progress.epoch === progress.epochs || now - lastInfoAt >= PROGRESS_INFO_EVERY_MS) {
        lastInfoAt = now;
        log.info(fields, 'training progress');
      } else {
        log.debug(fields, 'epoch done');
      }
      this.deps.onProgress?.(progress);
    };
    try {
      const summary = await this.deps.pool.run(
        {
          forecast,
          databasePath: this.deps.databasePath,
          checkpointRoot: this.deps.checkpointRoot,
          backend: this.deps.backend,
          nowMs: state.startedAt,
          verbose: this.deps.verbose,
        },
        { onEpoch, onText: this.deps.write, onBackend: (backend) => log.debug({ backend }, 'training thread backend') },
        signal,
      );
      if (signal.aborted || summary.status === 'aborted') {
        // Stopped at a batch end: the epochs before it are checkpointed, the run is not a new model version.
        this.counters.aborted++;
        log.warn(
          { epochsCompleted: summary.epochsCompleted, checkpoint: summary.checkpointId },
          'training aborted; its last epoch checkpoint is kept',
        );
        return { status: 'aborted', epochsCompleted: summary.epochsCompleted, checkpointId: summary.checkpointId };
      }
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
          promoted: summary.decision?.promoted,
          servedBy: summary.decision?.servedBy,
          decision: summary.decision?.reason,
        },
        'training finished',
      );
      // Recording the version and loading the new model; if that fails, the training counts as failed.
      await this.deps.onTrained?.(summary);
      for (const listener of this.trainedListeners) await listener(summary);
      this.counters.succeeded++;
      this.lastFailure.delete(forecast.name);
      return { status: 'succeeded', summary };
    } catch (error) {
      const message = (error as Error).message;
      const kind = failureKind(error);
      if (signal.aborted || kind === 'aborted') {
        this.counters.aborted++;
        log.warn({ reason: message }, 'training aborted; its last epoch checkpoint is kept');
        return { status: 'aborted', epochsCompleted: state.progress?.epoch ?? 0, checkpointId: null };
      }
      // Not enough history is an expected state while a new sensor warms up, not an error. (The error's
      // class does not survive the trip from the worker thread; its message does.)
      if ((error as Error).name === NotEnoughHistoryError.name || message.includes('training windows')) {
        this.counters.notEnoughHistory++;
        this.counters.failed++;
        this.lastFailure.set(forecast.name, { at: this.deps.clock(), message, kind: 'not_enough_history' });
        log.info({ reason: message }, 'not enough history to train yet');
        return { status: 'not_enough_history', message };
      }
      this.counters.failed++;
      if (kind === 'out_of_memory') this.counters.outOfMemory++;
      if (kind === 'worker_exited') this.counters.workerExited++;
      this.lastFailure.set(forecast.name, { at: this.deps.clock(), message, kind });
      log.error(
        { err: message, kind, code: (error as NodeJS.ErrnoException).code, epochsCompleted: state.progress?.epoch ?? 0 },
        kind === 'out_of_memory'
          ? 'training ran out of memory (scheduler.workerHeapMb); the current model keeps serving, the next scheduled training retries'
          : 'training failed; the current model keeps serving, the next scheduled training retries',
      );
      return { status: 'failed', kind, message };
    }
  }
}
