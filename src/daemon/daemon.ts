/**
 * The composition root: the one place where forecastd's parts are built and wired.
 *
 *   broker ──▶ ingest ──▶ store ──▶ (pool: windowing → model → checkpoint) ──▶ forecast jobs ──▶ publish ──▶ broker
 *                                   ▲ scheduler: cron retrains, interval ticks issue forecasts
 *
 * Each part receives only what it uses.
 */
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { availabilityTopic, connectBroker, disconnectBroker } from '../broker/connection.js';
import type { Config, ForecastConfig } from '../config/schema.js';
import { Ingestor } from '../ingest/ingestor.js';
import { subscribeIngest } from '../ingest/subscription.js';
import { createTopicMapper } from '../ingest/topics.js';
import type { Logger } from '../log.js';
import { initBackend, type BackendName } from '../model/backend.js';
import type { EpochProgress, TrainingSummary } from '../model/training.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import { ForecastPublisher } from '../publish/publisher.js';
import { ForecastJobs } from '../scheduler/forecastJobs.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { TrainingPool } from '../scheduler/trainingPool.js';
import { TrainingRunner, type TrainingRequestOutcome } from '../scheduler/trainingRunner.js';
import { openDatabase } from '../store/database.js';
import { ModelVersionStore } from '../store/modelVersions.js';
import { ReadingStore } from '../store/readings.js';

export interface DaemonOptions {
  config: Config;
  log: Logger;
  clock?: () => number;
  onForecast?: (message: ForecastMessage) => void;
  onTrained?: (summary: TrainingSummary) => void;
  onProgress?: (progress: EpochProgress) => void;
}

export interface Daemon {
  readonly backend: BackendName;
  readonly client: MqttClient;
  readonly ingestor: Ingestor;
  readonly readings: ReadingStore;
  readonly trainings: TrainingRunner;
  readonly forecasts: ForecastJobs;
  readonly databasePath: string;
  readonly checkpointRoot: string;
  train(forecast: string, reason?: string): TrainingRequestOutcome;
  issue(forecast: string): ForecastMessage | null;
  stop(): Promise<void>;
}

export const statePaths = (config: Config) => ({
  databasePath: join(config.storage.stateDir, 'forecastd.db'),
  checkpointRoot: join(config.storage.stateDir, 'checkpoints'),
});

/** A forecast without a model retries its first training this often while it warms up. */
const WARM_UP_RETRY_MS = 10 * 60_000;

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const clock = options.clock ?? Date.now;
  const { databasePath, checkpointRoot } = statePaths(config);

  const { db, quarantined } = openDatabase({ path: databasePath, synchronous: config.storage.synchronous, log: log.child({ component: 'store' }) });
  if (quarantined) log.error({ quarantinedAs: quarantined }, 'started with an empty database after quarantining a corrupt one');
  const readings = new ReadingStore(db);
  const versions = new ModelVersionStore(db);

  // Inference runs here on the main thread; the native addon is left to the (single) training thread.
  const { tf, name: backend, skipped } = await initBackend(config.model.backend, { allowNative: false });
  log.info({ backend, passedOver: skipped }, `TensorFlow.js backend for inference: ${backend}`);

  const client = connectBroker(config.mqtt, log.child({ component: 'broker' }));
  const publisher = new ForecastPublisher(client, { publish: config.publish, baseTopic: config.mqtt.baseTopic }, log.child({ component: 'publish' }));
  const forecasts = new ForecastJobs({
    tf,
    backend,
    checkpointRoot,
    readings,
    versions,
    clock,
    log: log.child({ component: 'forecast' }),
    publish: (message) => {
      publisher.publish(message);
      options.onForecast?.(message);
    },
  });
  for (const forecast of config.forecasts) await forecasts.load(forecast);

  const ingestor = new Ingestor({
    store: readings,
    mapper: createTopicMapper(config.ingest.topics),
    limits: {
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      maxFutureMs: config.ingest.maxFutureSeconds * 1000,
      maxAgeMs: config.ingest.maxAgeDays * 86_400_000,
    },
    clock,
    log: log.child({ component: 'ingest' }),
  });
  subscribeIngest(client, ingestor, createTopicMapper(config.ingest.topics).filters, log.child({ component: 'ingest' }));

  const forecastByName = (name: string): ForecastConfig | undefined => config.forecasts.find((forecast) => forecast.name === name);
  const pool = new TrainingPool({
    threads: config.scheduler.poolThreads,
    workerHeapMb: config.scheduler.workerHeapMb,
    nativeAllowed: config.model.backend === 'auto' || config.model.backend === 'native',
  });
  const trainings = new TrainingRunner({
    pool,
    forecasts: () => config.forecasts,
    databasePath,
    checkpointRoot,
    backend: config.model.backend,
    clock,
    log: log.child({ component: 'training' }),
    onProgress: options.onProgress,
    onTrained: async (summary) => {
      versions.record(summary);
      const forecast = forecastByName(summary.forecast);
      if (forecast && (await forecasts.load(forecast))) forecasts.run(forecast);
      options.onTrained?.(summary);
    },
  });

  const issue = (name: string): ForecastMessage | null => {
    const forecast = forecastByName(name);
    if (!forecast) return null;
    if (!forecasts.hasModel(name) && forecast.training.onStart && !trainings.running.has(name)) {
      const failure = trainings.lastFailure.get(name);
      if (!failure || clock() - failure.at >= WARM_UP_RETRY_MS) trainings.request(name, 'warming_up');
    }
    return forecasts.run(forecast);
  };

  const scheduler = new Scheduler({ clock, log: log.child({ component: 'scheduler' }), train: (name, reason) => trainings.request(name, reason), issue });
  scheduler.start(config.forecasts);
  for (const forecast of config.forecasts) {
    if (!forecasts.hasModel(forecast.name) && forecast.training.onStart) trainings.request(forecast.name, 'no_model_at_start');
  }
  log.info({ forecasts: config.forecasts.map((forecast) => forecast.name), availability: availabilityTopic(config.mqtt), stateDir: config.storage.stateDir }, 'forecastd started');

  let stopping: Promise<void> | null = null;
  return {
    backend,
    client,
    ingestor,
    readings,
    trainings,
    forecasts,
    databasePath,
    checkpointRoot,
    train: (name, reason = 'manual') => trainings.request(name, reason),
    issue,
    stop() {
      stopping ??= (async () => {
        await scheduler.stop();
        await trainings.stop();
        await pool.close();
        await disconnectBroker(client, config.mqtt);
        forecasts.dispose();
        db.close();
        log.info('forecastd stopped');
      })();
      return stopping;
    },
  };
}
