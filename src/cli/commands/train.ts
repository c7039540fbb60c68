/**
 * `forecastd train <forecast> --config <file.yaml> [--verbose 0|1|2]`: one training now, on the configured
 * database, through the same runner and thread pool as the daemon's scheduled trainings, with Keras-style
 * output (1: a progress bar per epoch, 2: one line per epoch) and a summary at the end.
 *
 * With the daemon stopped, the training runs here. With `--daemon`, the running daemon is asked over
 * MQTT to train through its own queue instead (never two writers of one forecast's checkpoints).
 */
import { openSqliteStore } from '../../store/sqliteStore.js';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { statePaths } from '../../daemon/paths.js';
import { EXIT_CODES } from '../../daemon/lifecycle.js';
import { createLogger } from '../../log.js';
import type { Verbosity } from '../../model/progress.js';
import type { TrainingSummary } from '../../model/training.js';
import { TrainingPool } from '../../scheduler/trainingPool.js';
import { TrainingRunner, type TrainingResult } from '../../scheduler/trainingRunner.js';
import { UsageError } from '../usage.js';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { clientOptions } from '../../broker/connection.js';
import type { Config } from '../../config/schema.js';
import { trainRequestTopic } from '../../broker/topics.js';

export interface TrainCommandIo {
  write: (text: string) => void;
  isTTY: boolean;
  signals: NodeJS.EventEmitter;
}

export async function trainCommand(
  args: string[],
  io: TrainCommandIo = { write: (text) => process.stdout.write(text), isTTY: Boolean(process.stdout.isTTY), signals: process },
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, verbose: { type: 'string', short: 'v' }, daemon: { type: 'boolean' } },
  });
  if (!values.config) throw new UsageError('train needs --config <file.yaml>');
  if (positionals.length !== 1) throw new UsageError('usage: forecastd train <forecast> --config <file.yaml> [--verbose 0|1|2]');
  const verbose = parseVerbosity(values.verbose, io.isTTY);
  const config = loadConfigFile(values.config);
  const name = positionals[0];
  if (!config.forecasts.some((forecast) => forecast.name === name)) {
    throw new UsageError(
      `no forecast "${name}" in ${values.config} (it has: ${config.forecasts.map((forecast) => forecast.name).join(', ') || 'none'})`,
    );
  }
  if (values.daemon) return requestFromDaemon(config, name, io);
  // Warnings and errors go to stderr, so that stdout carries only the training's own output.
  const log = createLogger(config.log.level === 'debug' || config.log.level === 'trace' ? config.log.level : 'warn', 2);
  const { databasePath, checkpointRoot } = statePaths(config);
  const store = openSqliteStore({
    path: databasePath,
    synchronous: config.storage.synchronous,
    log,
    onRefused: (refusal) => log.warn({ err: refusal.message }, 'a stored record was refused (left out)'),
  });
  const { versions } = store;
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
    store.close();
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
  if (result.status === 'aborted')
    return `training aborted after ${result.epochsCompleted} epoch(s); the checkpoint of the last completed epoch is kept\n`;
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
    lines.push(
      `  validation MAE    ${formatNumber(summary.metrics.model.mae)} (repeating the last value: ${formatNumber(summary.metrics.persistence.mae)})`,
    );
  }
  lines.push(`  checkpoint        ${summary.checkpointId ?? 'none'}`);
  return `${lines.join('\n')}\n`;
}

const formatNumber = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(4));

/**
 * `--daemon`: the running daemon trains, through its own queue (no overlap with its scheduled
 * trainings, one writer of the checkpoints). Its own client id would take over the daemon's session,
 * so this connects as a short-lived client with a clean session and no last will.
 */
async function requestFromDaemon(config: Config, forecast: string, io: TrainCommandIo): Promise<number> {
  const options = clientOptions(config.mqtt);
  const client = await mqtt.connectAsync(config.mqtt.url, {
    ...options,
    clientId: `${config.mqtt.clientId}-cli-${randomBytes(3).toString('hex')}`,
    clean: true,
    will: undefined,
    properties: undefined,
    reconnectPeriod: 0,
  });
  try {
    const topic = trainRequestTopic(config.mqtt.baseTopic, forecast);
    await client.publishAsync(topic, 'train', { qos: 1 });
    io.write(
      `requested a training of ${forecast} on ${topic}; progress shows in the daemon's log, on ${config.mqtt.baseTopic}/status and on the dashboard\n`,
    );
    return EXIT_CODES.ok;
  } finally {
    await client.endAsync();
  }
}
