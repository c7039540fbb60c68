import { progressBar } from '../time/duration.js';
/**
 * Keras's `verbose` for fit(): 0 silent, 1 an animated progress bar per batch, 2 one line per epoch.
 * Written as a tfjs callback config so that it composes with the other callbacks.
 */
export type Verbosity = 0 | 1 | 2;

export interface EpochLogs {
  loss?: number;
  val_loss?: number;
  [metric: string]: number | undefined;
}

/** tfjs's per-batch bookkeeping, which Keras does not print. */
const INTERNAL_LOG_KEYS = new Set(['batch', 'size']);

/** Keras order: training metrics first, then their val_ twins. */
const formatLogs = (logs: EpochLogs | undefined) =>
  Object.entries(logs ?? {})
    .filter(([key, value]) => typeof value === 'number' && !INTERNAL_LOG_KEYS.has(key))
    .sort(([a], [b]) => Number(a.startsWith('val_')) - Number(b.startsWith('val_')))
    .map(([key, value]) => `${key}: ${(value as number).toFixed(4)}`)
    .join(' - ');

export function progressCallback(
  verbose: Verbosity,
  options: { epochs: number; batchesPerEpoch: number; write: (text: string) => void; barWidth?: number },
) {
  const width = options.barWidth ?? 30;
  let epochStartedAt = 0;
  return {
    // tfjs awaits each callback: they return promises, with nothing to wait for here.
    onEpochBegin: (epoch: number) => {
      epochStartedAt = performance.now();
      if (verbose === 1) options.write(`Epoch ${epoch + 1}/${options.epochs}\n`);
      return Promise.resolve();
    },
    onBatchEnd: (batch: number, logs?: EpochLogs) => {
      if (verbose !== 1) return Promise.resolve();
      const done = batch + 1;
      const bar = progressBar(done / options.batchesPerEpoch, width);
      options.write(`\r${done}/${options.batchesPerEpoch} [${bar}] - ${formatLogs(logs)}`);
      return Promise.resolve();
    },
    onEpochEnd: (epoch: number, logs?: EpochLogs) => {
      const seconds = ((performance.now() - epochStartedAt) / 1000).toFixed(1);
      if (verbose === 1)
        options.write(`\r${options.batchesPerEpoch}/${options.batchesPerEpoch} [${progressBar(1, width)}] - ${seconds}s - ${formatLogs(logs)}\n`);
      if (verbose === 2) options.write(`Epoch ${epoch + 1}/${options.epochs} - ${seconds}s - ${formatLogs(logs)}\n`);
      return Promise.resolve();
    },
  };
}
