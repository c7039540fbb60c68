/**
 * `forecastd train <forecast> --config <file.yaml> [--verbose 0|1|2]`: one training now, on the configured
 * database, through the same runner and thread pool as the daemon's scheduled trainings, with Keras-style
 * output (1: a progress bar per epoch, 2: one line per epoch) and a summary at the end.
 *
 * The new checkpoint becomes the forecast's current model. A daemon that is running meanwhile keeps
 * serving the model it loaded until its own next training or restart; stop it first
 * (`systemctl stop forecastd`) if both could write the same forecast's checkpoints at once.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { statePaths } from '../../daemon/paths.js';
import { EXIT_CODES } from '../../daemon/lifecycle.js';
import { createLogger } from '../../log.js';
import type { Verbosity } from '../../model/progress.js';
import type { TrainingSummary } from '../../model/training.js';
import { TrainingPool } from '../../scheduler/trainingPool.js';
import { TrainingRunner, type TrainingResult } from '../../scheduler/trainingRunner.js';
import { openDatabase } from '../../store/database.js';
import { ModelVersionStore } from '../../store/modelVersions.js';
import { UsageError } from '../usage.js';

export interface TrainCommandIo {
  write: (text: string) => void;
  isTTY: boolean;
  signals: NodeJS.EventEmitter;
}

export async function trainCommand(args: string[], io: TrainCommandIo = { write: (text) => process.stdout.write(text), isTTY: Boolean(process.stdout.isTTY), signals: process }): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, verbose: { type: 'string', short: 'v' } },
  });
  if (!values.config) throw new UsageError('train needs --config <file.yaml>');
  if (positionals.length !== 1) throw new UsageError('usage: forecastd train <forecast> --config <file.yaml> [--verbose 0|1|2]');
  const verbose = parseVerbosity(values.verbose, io.isTTY);
  const config = loadConfigFile(values.config);
  const name = positionals[0];
  if (!config.forecasts.some((forecast) => forecast.name === name)) {
    throw new UsageError(`no forecast "${name}" in ${values.config} (it has: ${config.forecasts.map((forecast) => forecast.name).join(', ') || 'none'})`);
  }
  // Warnings and errors go to stderr, so that stdout carries only the training's own output.
  const log = createLogger(config.log.level === 'debug' || config.log.level === 'trace' ? config.log.level : 'warn', 2);
  const { databasePath, checkpointRoot } = statePaths(config);
  const { db } = openDatabase({ path: databasePath, synchronous: config.storage.synchronous, log });
  const versions = new ModelVersionStore(db);
  const pool = new TrainingPool({
    threads: 1,
    workerHeapMb: config.scheduler.workerHeapMb,
    nativeAllowed: config.model.backend === 'auto' || config.model.backend === 'native',
    recycleAfter: 0,
    // The command's own training: no daemon to give way to.
    threadNice: 0,
    log,
  });
  const runner = new TrainingRunner({
    pool,
    forecasts: () => config.forecasts,
    databasePath,
    checkpointRoot,
    backend: config.model.backend,
    clock: Date.now,
    log,
    verbose,
    write: io.write,
    onTrained: (summary) => versions.record(summary),
  });

  // Ctrl-C stops the training at its next batch end (its last epoch checkpoint stays); a second one exits.
  let interrupted = false;
  const onInterrupt = () => {
    if (interrupted) process.exit(EXIT_CODES.failure);
    interrupted = true;
    io.write('\ninterrupted: stopping after the current batch (Ctrl-C again to quit at once)\n');
    void runner.stop();
  };
  io.signals.on('SIGINT', onInterrupt);
  io.signals.on('SIGTERM', onInterrupt);
  try {
    const result = await runner.run(name, 'manual');
    if (typeof result === 'string') throw new Error(`training not started: ${result}`);
    io.write(describe(result));
    return result.status === 'succeeded' ? EXIT_CODES.ok : EXIT_CODES.failure;
  } finally {
    io.signals.off('SIGINT', onInterrupt);
    io.signals.off('SIGTERM', onInterrupt);
    await pool.close();
    db.close();
  }
}

function parseVerbosity(raw: string | undefined, isTTY: boolean): Verbosity {
  // Keras's "auto": a progress bar on a terminal, one line per epoch in a log file.
  if (raw === undefined) return isTTY ? 1 : 2;
  if (raw === '0' || raw === '1' || raw === '2') return Number(raw) as Verbosity;
  throw new UsageError(`--verbose takes 0, 1 or 2, not "${raw}"`);
}

function describe(result: TrainingResult): string {
  if (result.status === 'succeeded') return describeSummary(result.summary);
  if (result.status === 'aborted') return `training aborted after ${result.epochsCompleted} epoch(s); the checkpoint of the last completed epoch is kept\n`;
  if (result.status === 'not_enough_history') return `not enough history to train: ${result.message}\n`;
  return `training failed (${result.kind}): ${result.message}\n`;
}

function describeSummary(summary: TrainingSummary): string {
  const lines = [
    `trained ${summary.version} on ${summary.backend}`,
    `  epochs            ${summary.epochsCompleted}`,
    `  windows           ${summary.trainWindows} training, ${summary.validationWindows} validation`,
    `  duration          ${(summary.durationMs / 1000).toFixed(1)} s (${Math.round(summary.samplesPerSecond)} samples/s)`,
    `  final loss        ${formatNumber(summary.loss.at(-1))}${summary.valLoss.length ? `, val_loss ${formatNumber(summary.valLoss.at(-1))}` : ''}`,
  ];
  if (summary.metrics) {
    lines.push(`  validation MAE    ${formatNumber(summary.metrics.model.mae)} (repeating the last value: ${formatNumber(summary.metrics.persistence.mae)})`);
  }
  lines.push(`  checkpoint        ${summary.checkpointId ?? 'none'}`);
  return `${lines.join('\n')}\n`;
}

const formatNumber = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(4));
