import { availableParallelism } from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { EpochProgress, TrainingSummary } from '../model/training.js';
import type { TrainTask } from './trainWorker.js';

export interface TrainingPoolOptions {
  threads?: number;
  workerHeapMb: number;
  /** Whether a worker may try the native backend: only when one thread exists, since the addon loads once. */
  nativeAllowed: boolean;
}

/** Default pool size: leave a core to ingest and the broker. */
export const defaultPoolThreads = () => Math.max(1, availableParallelism() - 1);

/** The worker-thread pool that runs trainings; a crash or OOM in a worker rejects its task, never the daemon. */
export class TrainingPool {
  private readonly piscina: Piscina;
  readonly threads: number;
  readonly nativeAllowed: boolean;

  constructor(options: TrainingPoolOptions) {
    this.threads = options.threads ?? defaultPoolThreads();
    this.nativeAllowed = options.nativeAllowed && this.threads === 1;
    this.piscina = new Piscina({
      filename: new URL('./trainWorker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: this.threads,
      idleTimeout: 60_000,
      resourceLimits: { maxOldGenerationSizeMb: options.workerHeapMb },
    });
  }

  async run(task: Omit<TrainTask, 'progressPort' | 'allowNative'>, onEpoch: (progress: EpochProgress) => void, signal?: AbortSignal): Promise<TrainingSummary> {
    const channel = new MessageChannel();
    channel.port1.on('message', onEpoch);
    try {
      return await this.piscina.run({ ...task, allowNative: this.nativeAllowed, progressPort: channel.port2 } satisfies TrainTask, {
        transferList: [channel.port2],
        signal,
      });
    } finally {
      channel.port1.close();
    }
  }

  async close(): Promise<void> {
    await this.piscina.close({ force: true });
  }
}
