/**
 * The composition root: the one place where forecastd's parts are built and wired.
 *
 *   broker ──▶ ingest ──▶ store ──▶ (pool: windowing → model → checkpoint) ──▶ forecast jobs ──▶ publish ──▶ broker
 *                                   ▲ scheduler: cron retrains, interval ticks issue forecasts
 *
 * Each part receives only what it uses.
 */
import type { MqttClient } from 'mqtt';
import { BrokerStats, createBrokerLink, disconnectBroker } from '../broker/connection.js';
import type { MqttLinkCounters } from '../broker/mqttAdapter.js';
import { availabilityTopic } from '../broker/topics.js';
import type { Config, ForecastConfig } from '../config/schema.js';
import { wallIntervalPassed } from '../clock.js';
import { Ingestor } from '../ingest/ingestor.js';
import { IngestRoute } from '../ingest/ingestRoute.js';
import { trainRequestRoute } from '../scheduler/trainRequests.js';
import { BrokerDropWatch } from '../broker/brokerDrops.js';
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
import { DeadLetterStore } from '../store/deadLetters.js';
import { Housekeeping } from '../store/housekeeping.js';
import { ModelVersionStore } from '../store/modelVersions.js';
import { ReadingStore } from '../store/readings.js';
import { RetentionJob } from '../store/retention.js';
import { WriteMeter } from '../store/writeMeter.js';
import { statSync } from 'node:fs';
import { readinessCheck } from '../http/readiness.js';
import { collectMetrics } from '../http/metrics.js';
import { HttpServer } from '../http/server.js';
import { Telemetry } from '../http/telemetry.js';
import { HomeAssistantPublisher } from '../publish/homeAssistant.js';
import { forecastdVersion, StatusPublisher, type DaemonView } from '../publish/status.js';
import { ModelPinStore } from '../store/modelPins.js';
import { PublishedForecastStore } from '../store/publishedForecasts.js';
import { OutboxStore } from '../store/outbox.js';
import { IssuedForecastStore } from '../store/issuedForecasts.js';
import { LiveAccuracyJob } from '../scheduler/accuracyJob.js';
import { SeriesCatalog } from '../store/seriesCatalog.js';
import { readProcessWriteBytes } from '../store/writeMeter.js';
import { runShutdownSteps } from './shutdown.js';
import { statePaths } from './paths.js';

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
  readonly client: MqttClient;
  readonly ingestor: Ingestor;
  /** The ingest route: its health, its group-commit counters, and a listener per commit. */
  readonly ingest: Pick<IngestRoute, 'health' | 'counters' | 'onCommit'>;
  readonly readings: ReadingStore;
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


/** A forecast without a model retries its first training this often while it warms up. */
const WARM_UP_RETRY_MS = 10 * 60_000;

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { config, log } = options;
  const clock = options.clock ?? Date.now;
  const { databasePath, checkpointRoot } = statePaths(config);

  const { db, quarantined } = openDatabase({ path: databasePath, synchronous: config.storage.synchronous, log: log.child({ component: 'store' }) });
  if (quarantined) log.error({ quarantinedAs: quarantined }, 'started with an empty database after quarantining a corrupt one');
  const readings = new ReadingStore(db);
  const versions = new ModelVersionStore(db, (refusal) => log.error({ err: refusal.message }, 'a stored training record was refused (left out; its model version is not used)'));
  // The last published forecast per forecast, kept across restarts for the CLI, the API and the dashboard.
  const published = new PublishedForecastStore(db);
  const startedAt = clock();
  const lastTicks = new Map<string, number>();
  const telemetry = config.http.enabled ? new Telemetry({ readingsStored: () => ingestor.counters.stored }) : null;

  // Inference runs here on the main thread; the native addon is left to the (single) training thread.
  const { tf, name: backend, skipped } = await initBackend(config.model.backend, { allowNative: false });
  log.info({ backend, passedOver: skipped }, `TensorFlow.js backend for inference: ${backend}`);

  const brokerStats = new BrokerStats();
  // The link's router is the client's only message handler from before the first CONNECT: a message no route has
  // claimed yet waits unacknowledged (src/broker/inbound.ts), so nothing below can be in the wrong order.
  const link = createBrokerLink(config.mqtt, log.child({ component: 'broker' }), { stats: brokerStats });
  const { client } = link;
  const { deadLetter } = config.ingest;
  const ingestor = new Ingestor({
    store: readings,
    mapper: createTopicMapper(config.ingest.topics),
    limits: {
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      maxFutureMs: config.ingest.maxFutureSeconds * 1000,
      maxAgeMs: config.ingest.maxAgeDays * 86_400_000,
      maxReadings: config.ingest.maxReadingsPerMessage,
    },
    clock,
    log: log.child({ component: 'ingest' }),
    deadLetters: deadLetter.enabled ? new DeadLetterStore(db, deadLetter, clock()) : undefined,
  });
  const ingest = new IngestRoute({
    ingestor,
    store: readings,
    filters: createTopicMapper(config.ingest.topics).filters,
    requestRedelivery: () => client.reconnect(),
    log: log.child({ component: 'ingest' }),
  });
  link.setFallbackRoute(ingest);
  link.connect();
  // Forecasts go out through the outbox table: kept until the broker's PUBACK, across disconnects and restarts.
  const publisher = new ForecastPublisher({
    client,
    outbox: new OutboxStore(db, { maxPending: config.publish.outbox.maxPending, clock }),
    config: { publish: config.publish, baseTopic: config.mqtt.baseTopic },
    clock,
    log: log.child({ component: 'publish' }),
  });
  publisher.start();
  const pins = new ModelPinStore(db);
  // Live accuracy: every issued forecast is kept for a few days and scored after each tick (<baseTopic>/<forecast>/accuracy).
  const liveAccuracy = new LiveAccuracyJob({
    issued: new IssuedForecastStore(db),
    readings,
    clock,
    baseTopic: config.mqtt.baseTopic,
    publish: (topic, report) => client.publish(topic, JSON.stringify(report), { qos: 1, retain: true }),
    log: log.child({ component: 'accuracy' }),
  });
  const forecasts = new ForecastJobs({
    tf,
    backend,
    checkpointRoot,
    readings,
    versions,
    pins,
    clock,
    log: log.child({ component: 'forecast' }),
    // Read at forecast time only, after `trainings` exists: a failed last training makes the forecast degraded.
    trainingFailure: (name) => trainings.lastFailure.get(name),
    publish: (message) => {
      // One transaction: the outbox row and the "latest forecast" record exist together or not at all.
      db.transaction(() => {
        publisher.publish(message);
        published.record(message);
      })();
      const issuedFor = forecastByName(message.forecast);
      if (issuedFor) liveAccuracy.afterTick(issuedFor, message, config.forecasts);
      options.onForecast?.(message);
    },
  });
  for (const forecast of config.forecasts) {
    // A model that cannot be read (a damaged checkpoint directory, a permission problem) must not stop
    // ingest: the forecast serves nothing until its next training writes a good checkpoint.
    await forecasts.load(forecast).catch((error: Error) => log.error({ forecast: forecast.name, err: error.message }, 'model could not be loaded; this forecast waits for its next training'));
  }

  const forecastByName = (name: string): ForecastConfig | undefined => config.forecasts.find((forecast) => forecast.name === name);
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
    log: log.child({ component: 'training' }),
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
      telemetry?.recordTraining(summary);
      const forecast = forecastByName(summary.forecast);
      if (forecast && (await forecasts.load(forecast))) forecasts.run(forecast);
      options.onTrained?.(summary);
    },
  });

  const issue = (name: string): ForecastMessage | null => {
    const forecast = forecastByName(name);
    if (!forecast) return null;
    lastTicks.set(name, clock());
    // A forecast that a baseline serves because no model beat persistence retrains on its schedule, not every few minutes.
    if (!forecasts.hasModel(name) && !forecasts.hasEvaluation(name) && forecast.training.onStart && !trainings.running.has(name)) {
      const failure = trainings.lastFailure.get(name);
      if (!failure || wallIntervalPassed(failure.at, clock(), WARM_UP_RETRY_MS)) trainings.request(name, 'warming_up');
    }
    if (forecasts.pinChanged(name)) {
      // `forecastd models --promote/--rollback/--unpin` changed the pin: this tick reloads, then forecasts with it.
      void forecasts
        .load(forecast)
        .then((ok) => (ok ? forecasts.run(forecast) : null))
        .catch((error: Error) => log.error({ forecast: name, err: error.message }, 'model could not be reloaded after a pin change'));
      return null;
    }
    return forecasts.run(forecast);
  };

  const scheduler = new Scheduler({ clock, log: log.child({ component: 'scheduler' }), train: (name, reason) => trainings.request(name, reason), issue });
  scheduler.start(config.forecasts);
  const housekeeping = new Housekeeping({
    retention: new RetentionJob(db, config.storage.retention, { clock }),
    writeMeter: new WriteMeter(),
    schedule: config.storage.retention.schedule,
    log: log.child({ component: 'housekeeping' }),
  });
  housekeeping.start();
  for (const forecast of config.forecasts) {
    if (!forecasts.hasModel(forecast.name) && forecast.training.onStart) trainings.request(forecast.name, 'no_model_at_start');
  }

  // What forecastd says about itself: the status topic, Home Assistant discovery, and (http.enabled) health,
  // metrics, the JSON API and the dashboard. All read-only views of the parts above.
  const lastMessage = (name: string): ForecastMessage | null => forecasts.lastIssued.get(name) ?? published.latest(name);
  const view: DaemonView = {
    version: forecastdVersion(),
    startedAt,
    backend,
    baseTopic: config.mqtt.baseTopic,
    clock,
    brokerConnected: () => client.connected,
    ingest: () => ingest.health(),
    databaseQuarantinedAs: quarantined,
    forecasts: () =>
      config.forecasts.map((forecast) => ({
        config: forecast,
        hasModel: forecasts.hasModel(forecast.name),
        serving: forecasts.choose(forecast),
        lastIssued: lastMessage(forecast.name),
        training: trainings.running.get(forecast.name) ?? null,
        lastFailure: trainings.lastFailure.get(forecast.name) ?? null,
        lastTraining: versions.latest(forecast.name)[0] ?? null,
      })),
  };
  const catalog = new SeriesCatalog(db);
  let homeAssistant: HomeAssistantPublisher | null = null;
  // Readings the broker dropped never reach ingest: its own counter is the only way to see them.
  const brokerDrops = config.mqtt.watchBrokerDrops ? new BrokerDropWatch({ log: log.child({ component: 'broker' }) }) : null;
  if (brokerDrops) link.addRoute(brokerDrops);
  const http = config.http.enabled
    ? new HttpServer({
        config: config.http,
        log: log.child({ component: 'http' }),
        view,
        forecasts: config.forecasts,
        readings,
        catalog,
        versions,
        pins,
        lastMessage,
        readiness: () =>
          readinessCheck({
            brokerConnected: () => client.connected,
            brokerUrl: config.mqtt.url,
            db,
            ingest: () => ingest.health(),
            forecasts: config.forecasts,
            lastTick: (name) => lastTicks.get(name),
            startedAt,
            clock,
          }),
        metrics: () =>
          collectMetrics({
            view,
            ingest: ingestor.counters,
            trainingCounters: trainings.counters,
            forecastCounters: forecasts.counters,
            forecastsPublished: () => publisher.published,
            outbox: () => ({ ...publisher.backlog(), ...publisher.counters }),
            database: () => {
              let walBytes = 0;
              try {
                walBytes = statSync(`${databasePath}-wal`).size;
              } catch {
                // no WAL file right now
              }
              return { ...catalog.size(), walBytes };
            },
            writtenBytes: () => readProcessWriteBytes(),
            tensorCount: () => tf.memory().numTensors,
            telemetry: telemetry!,
            homeAssistant: homeAssistant?.counters ?? null,
            liveAccuracy: () => [...liveAccuracy.latest.values()],
            broker: brokerStats,
            brokerDropped: () => brokerDrops?.dropped ?? null,
            acks: link.counters,
          }),
      })
    : null;
  const httpUrl = http
    ? await http.start().catch((error: Error) => {
        log.error({ host: config.http.host, port: config.http.port, err: error.message }, 'HTTP could not listen (is the port taken? set http.port); running without it');
        return null;
      })
    : null;
  telemetry?.start();
  const statusPublisher = new StatusPublisher({ client, view, intervalSeconds: config.status.intervalSeconds, log: log.child({ component: 'status' }) });
  if (config.homeAssistant.enabled) {
    const reachable = httpUrl && !['127.0.0.1', '::1', 'localhost', '0.0.0.0', '::'].includes(config.http.host);
    const ha = new HomeAssistantPublisher({
      client,
      routes: link,
      config: config.homeAssistant,
      forecasts: config.forecasts,
      context: {
        discoveryPrefix: config.homeAssistant.discoveryPrefix,
        baseTopic: config.mqtt.baseTopic,
        availabilityTopic: availabilityTopic(config.mqtt.baseTopic),
        forecastTopicTemplate: config.publish.topicTemplate,
        version: view.version,
        deviceClasses: config.homeAssistant.deviceClasses,
        configurationUrl: reachable ? `${httpUrl}/` : undefined,
      },
      lastMessage,
      log: log.child({ component: 'homeassistant' }),
    });
    homeAssistant = ha;
    statusPublisher.onPublish((doc) => ha.publishSummaries(doc));
    ha.start();
  }
  const trainRequests = trainRequestRoute({
    baseTopic: config.mqtt.baseTopic,
    forecasts: config.forecasts.map((forecast) => forecast.name),
    request: (name, reason) => trainings.request(name, reason),
    log: log.child({ component: 'training' }),
  });
  if (trainRequests) link.addRoute(trainRequests);
  statusPublisher.start();
  const stopObservability = async () => {
    statusPublisher.stop();
    homeAssistant?.stop();
    telemetry?.stop();
    await http?.stop();
  };

  log.info({ forecasts: config.forecasts.map((forecast) => forecast.name), availability: availabilityTopic(config.mqtt.baseTopic), stateDir: config.storage.stateDir }, 'forecastd started');

  let stopping: Promise<void> | null = null;
  return {
    backend,
    client,
    ingestor,
    ingest,
    readings,
    trainings,
    pool,
    forecasts,
    schedulerCounters: scheduler.counters,
    databasePath,
    checkpointRoot,
    httpUrl,
    publisher,
    brokerStats,
    ackCounters: link.counters,
    train: (name, reason = 'manual') => trainings.request(name, reason),
    issue,
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
            { name: 'stop status, discovery and HTTP', run: () => stopObservability() },
            { name: 'stop scheduler', run: () => scheduler.stop() },
            { name: 'stop housekeeping', run: () => housekeeping.stop() },
            { name: 'abort trainings', run: () => trainings.stop() },
            { name: 'close training pool', run: () => pool.close() },
            // A broker that is down would keep QoS 1 publishes waiting for ever: give it a share of the budget.
            { name: 'disconnect broker', run: () => disconnectBroker(client, config.mqtt), timeoutMs: Math.round(budgetMs / 4) },
            { name: 'force-close broker connection', run: () => void client.end(true) },
            // PUBACKs that came in time are recorded by now; forecasts still pending go out at the next start.
            { name: 'stop forecast outbox', run: () => publisher.stop() },
            { name: 'dispose models', run: () => forecasts.dispose() },
            { name: 'close database', run: () => db.close() },
          ],
          log.child({ component: 'shutdown' }),
          { defaultTimeoutMs: Math.round(budgetMs / 2) },
        );
        log.info({ failedSteps: failed }, 'forecastd stopped');
      })();
      return stopping;
    },
  };
}
