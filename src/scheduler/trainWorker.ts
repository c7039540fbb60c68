/**
 * The body of a training task, run by Piscina in a worker thread: the main thread never trains.
 * It opens its own read-only database connection (connections cannot cross threads) and talks to the
 * main thread through the MessagePort it was given: progress out, an abort request in.
 */
import { openSqliteStore } from '../store/sqliteStore.js';
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import type { ForecastConfig } from '../config/schema.js';
import { initBackend, type BackendName, type BackendPreference } from '../model/backend.js';
import { forecastCheckpoints } from '../model/stores.js';
import type { Verbosity } from '../model/progress.js';
import { trainForecastModel, type EpochProgress, type TrainingSummary } from '../model/training.js';

export interface TrainTask {
  forecast: ForecastConfig;
  databasePath: string;
  checkpointRoot: string;
  backend: BackendPreference;
  allowNative: boolean;
  nowMs: number;
  /** Keras-style console output (1: a bar per batch, 2: a line per epoch), forwarded as `text` messages. */
  verbose?: Verbosity;
  /** Nice value for this thread (Linux: per thread), so that the main thread gets the CPU first; 0 leaves it. */
  nice?: number;
  progressPort?: MessagePort;
}

/** What a worker tells the main thread while a task runs. */
export type WorkerMessage =
  | { kind: 'backend'; backend: BackendName }
  | { kind: 'priority'; nice: number | null; error?: string }
  | { kind: 'epoch'; progress: EpochProgress }
  | { kind: 'text'; text: string };

/** What the main thread may tell a running task. */
export type MainMessage = { kind: 'abort' };

/** Thrown when an abort arrives before the training began; the pool reports it as an abort. */
export class TrainingAbortedError extends Error {
  override name = 'AbortError';
}

export default async function runTrainTask(task: TrainTask): Promise<TrainingSummary> {
  const port = task.progressPort;
  // A cooperative abort: the training stops at its next batch end, so the checkpoint of the last
  // completed epoch stays and no checkpoint write is cut in half. The pool terminates the thread
  // only when this does not happen within its grace period.
  const abort = new AbortController();
  port?.on('message', (message: MainMessage) => {
    if (message?.kind === 'abort') abort.abort();
  });
  const post = (message: WorkerMessage) => port?.postMessage(message);
  if (task.nice) post(lowerThreadPriority(task.nice));
  try {
    const { tf, name } = await initBackend(task.backend, { allowNative: task.allowNative });
    post({ kind: 'backend', backend: name });
    if (abort.signal.aborted) throw new TrainingAbortedError('training aborted before it began');
    const store = openSqliteStore({ path: task.databasePath, synchronous: 'NORMAL', readonly: true });
    let series;
    try {
      const { readings } = store;
      const fromMs = task.nowMs - task.forecast.training.historyDays * 86_400_000;
      const names = [task.forecast.target, ...task.forecast.covariates];
      // One short read transaction per series keeps WAL checkpoints on the ingest side from starving.
      series = names.map((seriesName) => readings.read(seriesName, fromMs, task.nowMs));
    } finally {
      // Closed before the (long) fit: a training never holds the database open.
      store.close();
    }
    // The operator's pin, read now and again at each prune of the serving store (a pin may be set meanwhile).
    const pinnedVersion = (): string | null => readPin(task.databasePath, task.forecast.name);
    const stores = forecastCheckpoints(task.checkpointRoot, task.forecast, { pinnedVersion });
    return await trainForecastModel({
      tf,
      backend: name,
      forecast: task.forecast,
      series,
      nowMs: task.nowMs,
      checkpoints: stores.latest,
      best: stores.best,
      serving: stores.serving,
      pinnedVersion: pinnedVersion(),
      signal: abort.signal,
      verbose: task.verbose ?? 0,
      write: (text) => post({ kind: 'text', text }),
      onEpoch: (progress) => post({ kind: 'epoch', progress }),
    });
  } finally {
    port?.close();
  }
}

/** The pinned version of a forecast (model_pins), through a short read-only connection; null without one. */
function readPin(databasePath: string, forecast: string): string | null {
  const store = openSqliteStore({ path: databasePath, synchronous: 'NORMAL', readonly: true });
  try {
    return store.pins.get(forecast)?.version ?? null;
  } catch {
    return null; // a database from before model_pins existed
  } finally {
    store.close();
  }
}

/**
 * Lowers the priority of this thread only. On Linux the nice value belongs to each thread, and
 * setpriority(PRIO_PROCESS, <thread id>) sets it; the thread id comes from /proc/thread-self. Raising the
 * nice value needs no privilege, but the systemd unit's system-call filter must allow setpriority.
 */
function lowerThreadPriority(nice: number): WorkerMessage {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').at(-1));
    if (!Number.isInteger(threadId) || threadId <= 0) throw new Error('no thread id in /proc/thread-self');
    if (getPriority(threadId) < nice) setPriority(threadId, nice);
    return { kind: 'priority', nice: getPriority(threadId) };
  } catch (error) {
    return { kind: 'priority', nice: null, error: (error as Error).message };
  }
}
