/**
 * The composition root: the one place where forecastd's parts are built and wired. It holds no policy: the rules live
 * in the parts (ingest: src/ingest/ingestRoute.ts; issuing, warm-up and pins: src/scheduler/forecastService.ts; what
 * forecastd says about itself: ./observability.ts; the stop order: ./shutdown.ts).
 *
 *   broker ──▶ ingest ──▶ store ──▶ (pool: windowing → model → checkpoint) ──▶ forecast service ──▶ sinks ──▶ broker
 *                                   ▲ scheduler: cron retrains, interval ticks issue forecasts
 *
 * Each part receives only what it uses, and every part exists before anything refers to it.
 */
import type { MqttClient } from 'mqtt';
import { BrokerDropWatch } from '../broker/brokerDrops.js';
import { BrokerStats, createBrokerLink, disconnectBroker } from '../broker/connection.js';
import type { MqttLinkCounters } from '../broker/mqttAdapter.js';
import { availabilityTopic } from '../broker/topics.js';
import type { Config } from '../config/schema.js';
import { Ingestor } from '../ingest/ingestor.js';
import { IngestRoute } from '../ingest/ingestRoute.js';
import { createTopicMapper } from '../ingest/topics.js';
import type { Logger } from '../log.js';
import { initBackend, type BackendName } from '../model/backend.js';
import type { EpochProgress, TrainingSummary } from '../model/training.js';
import type { ForecastMessage } from '../publish/forecastMessage.js';
import { MqttSink } from '../publish/mqttSink.js';
import { ForecastPublisher } from '../publish/publisher.js';
import { SinkSet } from '../publish/sink.js';
import { LiveAccuracyJob } from '../scheduler/accuracyJob.js';
import type { ForecastJobs } from '../scheduler/forecastJobs.js';
import { ForecastService } from '../scheduler/forecastService.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { trainRequestRoute } from '../scheduler/trainRequests.js';
import { TrainingPool } from '../scheduler/trainingPool.js';
import { TrainingRunner, type TrainingRequestOutcome } from '../scheduler/trainingRunner.js';
import { Housekeeping } from '../store/housekeeping.js';
import { openSqliteStore } from '../store/sqliteStore.js';
import type { Readings } from '../store/store.js';
import { RetentionJob } from '../store/retention.js';
import { WriteMeter } from '../store/writeMeter.js';
import { startObservability } from './observability.js';
import { statePaths } from './paths.js';
import { runShutdownSteps } from './shutdown.js';

export interface DaemonOptions {
  config: Config;
  log: Logger;
  clock?: () => number;
  onForecast?: (message: ForecastMessage) => void;
  onTrained?: (summary: TrainingSummary) => void;
  onProgress?: (progress: EpochProgress) => void;
  /** The module that runs a training in a pool thread; tests substitute one that fails on purpose. */
  trainingWorkerModule?: URL;
}

export interface Daemon {
  readonly backend: BackendName;
  /** The broker connection, for its state and events; its message handling belongs to src/broker/mqttAdapter.ts. */
  readonly client: MqttClient;
  readonly ingestor: Ingestor;
  /** The ingest route: its health, its group-commit counters, and a listener per commit. */
  readonly ingest: Pick<IngestRoute, 'health' | 'counters' | 'onCommit'>;
  readonly readings: Readings;
  readonly trainings: TrainingRunner;
  readonly pool: TrainingPool;
  readonly forecasts: ForecastJobs;
  /** Cron training ticks and interval forecast ticks fired so far (the clock-jump tests count them). */
  readonly schedulerCounters: Readonly<Scheduler['counters']>;
  readonly databasePath: string;
  readonly checkpointRoot: string;
  /** Where the HTTP endpoint listens (http.enabled), e.g. http://127.0.0.1:8765; null when off or it could not listen. */
  readonly httpUrl: string | null;
  /** Forecasts on their way to the broker: the outbox backlog and its counters (also on /metrics). */
  readonly publisher: ForecastPublisher;
  /** Broker connection attempts, failures by reason and ACL refusals (also on /metrics). */
  readonly brokerStats: BrokerStats;
  /** PUBACKs sent, and those sent for a message before its commit (must stay 0; also on /metrics). */
  readonly ackCounters: Readonly<MqttLinkCounters>;
  train(forecast: string, reason?: string): TrainingRequestOutcome;
  issue(forecast: string): ForecastMessage | null;
  stop(): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const clock = options.clock ?? Date.now;
  const startedAt = clock();
  const { databasePath, checkpointRoot } = statePaths(config);
  const child = (component: string) => log.child({ component });

  // The store.
  const store = openSqliteStore({
    path: databasePath,
    synchronous: config.storage.synchronous,
    log: child('store'),
    clock,
    outboxMaxPending: config.publish.outbox.maxPending,
    deadLetter: config.ingest.deadLetter,
    onRefused: (refusal) => log.error({ err: refusal.message }, 'a stored record was refused (left out; see the message for which)'),
  });
  const { db, readings, versions, pins } = store;
  if (store.quarantinedAs) log.error({ quarantinedAs: store.quarantinedAs }, 'started with an empty database after quarantining a corrupt one');

  // Inference runs here on the main thread; the native addon is left to the (single) training thread.
  const { tf, name: backend, skipped } = await initBackend(config.model.backend, { allowNative: false });
  log.info({ backend, passedOver: skipped }, `TensorFlow.js backend for inference: ${backend}`);

  // The broker link and ingest. The link's router is the client's only message handler from before the first CONNECT:
  // a message no route has claimed yet waits unacknowledged (src/broker/inbound.ts), so no order below can lose one.
  const brokerStats = new BrokerStats();
  const link = createBrokerLink(config.mqtt, child('broker'), { stats: brokerStats });
  const { client } = link;
  const topicMapper = createTopicMapper(config.ingest.topics);
  const ingestor = new Ingestor({
    store: readings,
    mapper: topicMapper,
    limits: {
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      maxFutureMs: config.ingest.maxFutureSeconds * 1000,
      maxAgeMs: config.ingest.maxAgeDays * 86_400_000,
      maxReadings: config.ingest.maxReadingsPerMessage,
    },
    clock,
    log: child('ingest'),
    deadLetters: store.deadLetters ?? undefined,
  });
  const ingest = new IngestRoute({
    ingestor,
    store: readings,
    filters: topicMapper.filters,
    requestRedelivery: () => client.reconnect(),
    log: child('ingest'),
  });
  link.setFallbackRoute(ingest);
  // Readings the broker dropped never reach ingest: its own counter is the only way to see them.
  const brokerDrops = config.mqtt.watchBrokerDrops ? new BrokerDropWatch({ log: child('broker') }) : null;
  if (brokerDrops) link.addRoute(brokerDrops);
  link.connect();

  // The sinks: forecasts go out through the outbox table, kept until the broker's PUBACK, across disconnects and restarts.
  const outbox = new ForecastPublisher({
    client,
    outbox: store.outbox,
    config: { publish: config.publish, baseTopic: config.mqtt.baseTopic },
    clock,
    log: child('publish'),
  });
  const sinks = new SinkSet(
    [new MqttSink({ client, forecasts: outbox, baseTopic: config.mqtt.baseTopic, log: child('publish') })],
    (sink, what, error) => log.error({ sink, what, err: error.message }, 'a sink failed'),
  );
  sinks.start();

  // Training and forecasting.
  const pool = new TrainingPool({
    threads: config.scheduler.poolThreads,
    workerHeapMb: config.scheduler.workerHeapMb,
    nativeAllowed: config.model.backend === 'auto' || config.model.backend === 'native',
    recycleAfter: config.scheduler.recycleWorkerAfter,
    idleTimeoutMs: config.scheduler.idleThreadSeconds * 1000,
    threadNice: config.scheduler.threadNice,
    // A training gets a third of the shutdown budget to stop at a batch end before its thread is ended.
    abortGraceMs: Math.round((config.lifecycle.shutdownTimeoutSeconds * 1000) / 3),
    workerModule: options.trainingWorkerModule,
    log: child('training'),
  });
  const trainings = new TrainingRunner({
    pool,
    forecasts: () => config.forecasts,
    databasePath,
    checkpointRoot,
    backend: config.model.backend,
    clock,
    log: child('training'),
    onProgress: options.onProgress,
  });
  // Live accuracy: every issued forecast is kept for a few days and scored after each tick.
  const liveAccuracy = new LiveAccuracyJob({
    issued: store.issued,
    readings,
    clock,
    publish: (report) => sinks.publishAccuracy(report),
    log: child('accuracy'),
  });
  const forecasting = new ForecastService({
    forecasts: config.forecasts,
    tf,
    backend,
    checkpointRoot,
    readings,
    versions,
    pins,
    // The last published forecast per forecast, kept across restarts for the CLI, the API and the dashboard.
    published: store.published,
    trainings,
    sinks,
    liveAccuracy,
    transaction: (work) => store.transaction(work),
    clock,
    log: child('forecast'),
  });
  if (options.onForecast) forecasting.onIssued(options.onForecast);
  if (options.onTrained) forecasting.onTrained(options.onTrained);
  await forecasting.loadAll();

  const trainRequests = trainRequestRoute({
    baseTopic: config.mqtt.baseTopic,
    forecasts: config.forecasts.map((forecast) => forecast.name),
    request: (name, reason) => trainings.request(name, reason),
    log: child('training'),
  });
  if (trainRequests) link.addRoute(trainRequests);
  const scheduler = new Scheduler({
    clock,
    log: child('scheduler'),
    train: (name, reason) => trainings.request(name, reason),
    issue: (name) => forecasting.issue(name),
  });
  scheduler.start(config.forecasts);
  const housekeeping = new Housekeeping({
    retention: new RetentionJob(db, config.storage.retention, { clock }),
    writeMeter: new WriteMeter(),
    schedule: config.storage.retention.schedule,
    log: child('housekeeping'),
  });
  housekeeping.start();
  forecasting.requestStartupTrainings();

  const observability = await startObservability({
    config,
    store,
    startedAt,
    clock,
    tf,
    backend,
    link,
    brokerStats,
    brokerDrops,
    ingestor,
    ingest,
    forecasting,
    trainings,
    outbox,
    sinks,
    liveAccuracy,
    log,
  });

  log.info(
    {
      forecasts: config.forecasts.map((forecast) => forecast.name),
      availability: availabilityTopic(config.mqtt.baseTopic),
      stateDir: config.storage.stateDir,
    },
    'forecastd started',
  );

  let stopping: Promise<void> | null = null;
  return {
    backend,
    client,
    ingestor,
    ingest,
    readings,
    trainings,
    pool,
    forecasts: forecasting.jobs,
    schedulerCounters: scheduler.counters,
    databasePath,
    checkpointRoot,
    httpUrl: observability.httpUrl,
    publisher: outbox,
    brokerStats,
    ackCounters: link.counters,
    train: (name, reason = 'manual') => trainings.request(name, reason),
    issue: (name) => forecasting.issue(name),
    stop() {
      // The order and its reasons: src/daemon/shutdown.ts.
      stopping ??= (async () => {
        const budgetMs = config.lifecycle.shutdownTimeoutSeconds * 1000;
        const failed = await runShutdownSteps(
          [
            { name: 'close intake', run: () => link.closeIntake() },
            // Readings already taken in are committed and acknowledged before anything else stops.
            { name: 'commit pending readings', run: () => ingest.flush() },
            { name: 'stop ingest retries', run: () => ingest.stop() },
            { name: 'stop status, discovery and HTTP', run: () => observability.stop() },
            { name: 'stop scheduler', run: () => scheduler.stop() },
            { name: 'stop housekeeping', run: () => housekeeping.stop() },
            { name: 'abort trainings', run: () => trainings.stop() },
            { name: 'close training pool', run: () => pool.close() },
            // A broker that is down would keep QoS 1 publishes waiting for ever: give it a share of the budget.
            { name: 'disconnect broker', run: () => disconnectBroker(client, config.mqtt), timeoutMs: Math.round(budgetMs / 4) },
            { name: 'force-close broker connection', run: () => void client.end(true) },
            // PUBACKs that came in time are recorded by now; forecasts still pending go out at the next start.
            { name: 'stop sinks', run: () => sinks.stop() },
            { name: 'dispose models', run: () => forecasting.dispose() },
            { name: 'close database', run: () => store.close() },
          ],
          child('shutdown'),
          { defaultTimeoutMs: Math.round(budgetMs / 2) },
        );
        log.info({ failedSteps: failed }, 'forecastd stopped');
      })();
      return stopping;
    },
  };
}
