/**
 * The worker threads that run trainings (Piscina). What it guarantees the daemon:
 *
 * - A training that throws, calls process.exit or runs out of its heap (`resourceLimits`) rejects its
 *   own task and nothing else: the thread is replaced, the daemon and its other tasks carry on.
 *   (`process.abort()` cannot be contained by a thread: it ends the whole process, and systemd restarts it.)
 * - Threads do not live forever. An idle thread exits after `idleTimeoutMs`, and the whole set of threads
 *   is replaced after `recycleAfter` trainings, because a WebAssembly memory never shrinks: the only way to
 *   give back what the biggest training grew it to is to end the thread that owns it.
 * - Aborting is cooperative first (the training stops at its next batch end, keeping the checkpoint of its
 *   last completed epoch) and forced after `abortGraceMs` (the thread is terminated).
 * - The native backend (tfjs-node) is offered to one thread only, and only when the pool has exactly one:
 *   its addon loads once per process, and fails in any later worker thread, even after the first has
 *   exited (tensorflow/tfjs#2079, #8388). So a native thread is never idled out or recycled (native
 *   tensors are freed on dispose; there is no wasm heap to give back), and the main thread never loads it.
 *   If that thread dies anyway, later trainings fall back to wasm until forecastd restarts.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Logger } from '../log.js';
import type { BackendName } from '../model/backend.js';
import type { EpochProgress, TrainingSummary } from '../model/training.js';
import type { MainMessage, TrainTask, WorkerMessage } from './trainWorker.js';

export interface TrainingPoolOptions {
  threads?: number;
  workerHeapMb: number;
  /** Whether a worker may try the native backend; honoured only when the pool has one thread. */
  nativeAllowed: boolean;
  /** Trainings after which the threads are replaced by fresh ones; 0 never. */
  recycleAfter?: number;
  /** An idle thread exits after this long, returning its memory. */
  idleTimeoutMs?: number;
  /** After an abort, how long a training may take to stop on its own before its thread is terminated. */
  abortGraceMs?: number;
  /** Nice value of the training threads (Linux sets it per thread); 0 leaves them at the daemon's priority. */
  threadNice?: number;
  /** The module that runs a task; tests substitute one that fails on purpose. */
  workerModule?: URL;
  log?: Logger;
}

export interface TrainingHandlers {
  onEpoch?: (progress: EpochProgress) => void;
  /** Console output of a verbose training (`TrainTask.verbose`). */
  onText?: (text: string) => void;
  onBackend?: (backend: BackendName) => void;
}

/** What runs a training: the pool, or a stand-in in tests. */
export interface TrainingExecutor {
  run(task: PoolTask, handlers: TrainingHandlers, signal?: AbortSignal): Promise<TrainingSummary>;
}

export type PoolTask = Omit<TrainTask, 'progressPort' | 'allowNative'>;

/** Why a task failed, for counters and logs. */
export type TrainingFailureKind = 'out_of_memory' | 'worker_exited' | 'aborted' | 'task_error';

export function failureKind(error: unknown): TrainingFailureKind {
  const { code, name, message } = (error ?? {}) as { code?: string; name?: string; message?: string };
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return 'out_of_memory';
  if (name === 'AbortError') return 'aborted';
  if (/^worker exited with code/.test(message ?? '') || message === 'Terminating worker thread') return 'worker_exited';
  return 'task_error';
}

/** Default pool size: leave a core to ingest and the broker. */
export const defaultPoolThreads = () => Math.max(1, availableParallelism() - 1);

export const DEFAULT_RECYCLE_AFTER = 20;
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export const DEFAULT_ABORT_GRACE_MS = 3_000;
export const DEFAULT_THREAD_NICE = 19;

interface Generation {
  id: number;
  piscina: Piscina;
  /** Tasks handed to this generation so far. */
  started: number;
  inflight: number;
  /** Pinned: the thread that owns the native addon; never idled out or recycled. */
  native: boolean;
  idleWaiters: Array<() => void>;
  retired: Promise<void> | null;
}

export class TrainingPool implements TrainingExecutor {
  readonly threads: number;
  /** True while a thread may still load the native backend (see the file comment). */
  nativeAllowed: boolean;
  readonly counters = {
    tasks: 0,
    succeeded: 0,
    failed: 0,
    aborted: 0,
    /** Aborted tasks whose thread had to be terminated because they did not stop within the grace period. */
    terminatedAfterGrace: 0,
    outOfMemory: 0,
    workerExited: 0,
    /** Errors a thread raised outside any task (Piscina 'error' events). */
    workerErrors: 0,
    threadsCreated: 0,
    generationsRetired: 0,
  };
  /** The backend the last task ran on. */
  lastBackend: BackendName | null = null;
  /** The nice value the last training thread runs at (null: it could not be set). */
  threadNice: number | null = null;

  private readonly recycleAfter: number;
  private readonly idleTimeoutMs: number;
  private readonly abortGraceMs: number;
  private readonly workerModule: URL;
  private generation: Generation | null = null;
  private generationIds = 0;
  private turns: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly retiring = new Set<Promise<void>>();

  constructor(private readonly options: TrainingPoolOptions) {
    this.threads = options.threads ?? defaultPoolThreads();
    this.nativeAllowed = options.nativeAllowed && this.threads === 1;
    this.recycleAfter = options.recycleAfter ?? DEFAULT_RECYCLE_AFTER;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.abortGraceMs = options.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS;
    this.workerModule = options.workerModule ?? new URL('./trainWorker.js', import.meta.url);
  }

  /** Trainings started in the current set of threads (for tests and the soak report). */
  get generationInfo(): { id: number; started: number; inflight: number; threads: number } | null {
    const generation = this.generation;
    return (
      generation && { id: generation.id, started: generation.started, inflight: generation.inflight, threads: generation.piscina.threads.length }
    );
  }

  async run(task: PoolTask, handlers: TrainingHandlers = {}, signal?: AbortSignal): Promise<TrainingSummary> {
    if (signal?.aborted) throw abortError();
    const generation = await this.acquire();
    this.counters.tasks++;
    const channel = new MessageChannel();
    const terminate = new AbortController();
    let grace: NodeJS.Timeout | undefined;
    const onAbort = () => {
      channel.port1.postMessage({ kind: 'abort' } satisfies MainMessage);
      grace = setTimeout(() => {
        this.counters.terminatedAfterGrace++;
        this.options.log?.warn({ graceMs: this.abortGraceMs }, 'training did not stop after the abort: terminating its thread');
        terminate.abort();
      }, this.abortGraceMs);
    };
    channel.port1.on('message', (message: WorkerMessage) => {
      if (message.kind === 'epoch') handlers.onEpoch?.(message.progress);
      else if (message.kind === 'text') handlers.onText?.(message.text);
      else if (message.kind === 'priority') this.notePriority(message.nice, message.error);
      else if (message.kind === 'backend') {
        this.lastBackend = message.backend;
        this.noteBackend(generation, message.backend);
        handlers.onBackend?.(message.backend);
      }
    });
    try {
      if (signal?.aborted) throw abortError();
      signal?.addEventListener('abort', onAbort, { once: true });
      const payload: TrainTask = {
        ...task,
        allowNative: this.nativeAllowed,
        nice: this.options.threadNice ?? DEFAULT_THREAD_NICE,
        progressPort: channel.port2,
      };
      const summary = (await generation.piscina.run(payload, { transferList: [channel.port2], signal: terminate.signal })) as TrainingSummary;
      if (signal?.aborted) this.counters.aborted++;
      else this.counters.succeeded++;
      return summary;
    } catch (error) {
      const kind = failureKind(error);
      if (kind === 'aborted' || signal?.aborted) this.counters.aborted++;
      else this.counters.failed++;
      if (kind === 'out_of_memory') this.counters.outOfMemory++;
      if (kind === 'worker_exited') this.counters.workerExited++;
      if (generation.native && (kind === 'out_of_memory' || kind === 'worker_exited' || terminate.signal.aborted)) this.loseNative();
      throw error;
    } finally {
      clearTimeout(grace);
      signal?.removeEventListener('abort', onAbort);
      channel.port1.close();
      this.release(generation);
    }
  }

  /** Rejects queued tasks, waits for running ones (abort them first) and ends every thread. */
  async close(): Promise<void> {
    this.closed = true;
    await this.turns.catch(() => undefined);
    const generation = this.generation;
    this.generation = null;
    if (generation) await this.retire(generation);
    await Promise.all(this.retiring);
  }

  /** The current generation, after replacing it if it is due; serialised, so tasks keep their order. */
  private acquire(): Promise<Generation> {
    const turn = this.turns.then(async () => {
      if (this.closed) throw new Error('the training pool is closed');
      let generation = this.generation;
      if (generation && this.recycleDue(generation)) {
        this.generation = null;
        await this.retire(generation);
        generation = null;
      }
      if (!generation) generation = this.generation = this.createGeneration();
      generation.started++;
      generation.inflight++;
      return generation;
    });
    this.turns = turn.catch(() => undefined);
    return turn;
  }

  private release(generation: Generation): void {
    generation.inflight--;
    if (generation.inflight > 0) return;
    for (const wake of generation.idleWaiters.splice(0)) wake();
    // Retire a generation that is due as soon as it is idle, so that its memory goes back now and not
    // when the next training comes (which may be tomorrow).
    if (generation === this.generation && this.recycleDue(generation)) {
      this.generation = null;
      void this.retire(generation);
    }
  }

  private recycleDue(generation: Generation): boolean {
    if (generation.native) return !this.nativeAllowed && generation.inflight === 0; // native did not load after all
    return this.recycleAfter > 0 && generation.started >= this.recycleAfter;
  }

  private createGeneration(): Generation {
    const native = this.nativeAllowed;
    const piscina = new Piscina({
      filename: this.workerModule.href,
      minThreads: 0,
      maxThreads: native ? 1 : this.threads,
      idleTimeout: native ? Infinity : this.idleTimeoutMs,
      // Cut short by the pool itself: close() first aborts what runs.
      closeTimeout: 5_000,
      // Piscina's default parks an idle thread in a blocking Atomics.wait, which freezes its event loop: a
      // timer a training left behind would then fire (and maybe throw) inside the *next* training and fail
      // it. With a plain event loop such leftovers run, and fail, while the thread is idle.
      atomics: 'disabled',
      resourceLimits: { maxOldGenerationSizeMb: this.options.workerHeapMb },
    });
    const generation: Generation = { id: ++this.generationIds, piscina, started: 0, inflight: 0, native, idleWaiters: [], retired: null };
    // An error outside any task (e.g. a thread that dies while idle) would otherwise be an unhandled
    // 'error' event, which ends the process.
    piscina.on('error', (error: Error) => {
      this.counters.workerErrors++;
      this.options.log?.warn(
        { err: error.message, generation: generation.id },
        'training thread error outside a task; the thread is replaced when needed',
      );
    });
    piscina.on('workerCreate', () => {
      this.counters.threadsCreated++;
    });
    this.options.log?.debug({ generation: generation.id, maxThreads: native ? 1 : this.threads, native }, 'training threads (re)created');
    return generation;
  }

  private retire(generation: Generation): Promise<void> {
    generation.retired ??= (async () => {
      if (generation.inflight > 0) await new Promise<void>((resolve) => generation.idleWaiters.push(resolve));
      await generation.piscina.close({ force: true });
      this.counters.generationsRetired++;
      this.options.log?.debug({ generation: generation.id, trainings: generation.started }, 'training threads retired');
    })();
    const retired = generation.retired;
    this.retiring.add(retired);
    void retired.finally(() => this.retiring.delete(retired));
    return retired;
  }

  private noteBackend(generation: Generation, backend: BackendName): void {
    if (generation.native && backend !== 'native' && this.nativeAllowed) {
      // The addon is not installed or did not load: no reason to keep a pinned thread.
      this.nativeAllowed = false;
    }
  }

  private priorityWarned = false;

  private notePriority(nice: number | null, error: string | undefined): void {
    this.threadNice = nice;
    if (error === undefined || this.priorityWarned) return;
    this.priorityWarned = true;
    this.options.log?.warn(
      { err: error },
      'could not lower the priority of the training thread, so training competes with ingest for the CPU (under systemd: allow setpriority in SystemCallFilter)',
    );
  }

  private loseNative(): void {
    if (!this.nativeAllowed) return;
    this.nativeAllowed = false;
    this.options.log?.warn(
      'the thread that owned the native TensorFlow backend died; a new thread cannot load the addon again, so trainings use wasm until forecastd restarts',
    );
  }
}

function abortError(): Error {
  const error = new Error('training aborted');
  error.name = 'AbortError';
  return error;
}
