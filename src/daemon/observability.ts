/**
 * What forecastd says about itself, built from read-only views of the running parts: the status document (to the
 * sinks), Home Assistant discovery, and (http.enabled) health, metrics, the JSON API and the dashboard. Each extension
 * has its own start and stop and gets only what it reads.
 */
import { statSync } from 'node:fs';
import type { BrokerDropWatch } from '../broker/brokerDrops.js';
import type { BrokerStats } from '../broker/stats.js';
import type { MqttLink } from '../broker/mqttAdapter.js';
import { availabilityTopic } from '../broker/topics.js';
import type { Config } from '../config/schema.js';
import type { IngestRoute } from '../ingest/ingestRoute.js';
import type { Ingestor } from '../ingest/ingestor.js';
import { collectMetrics } from '../http/metrics.js';
import { readinessCheck } from '../http/readiness.js';
import { HttpServer } from '../http/server.js';
import { Telemetry } from '../http/telemetry.js';
import type { Logger } from '../log.js';
import type { BackendName, Tf } from '../model/backend.js';
import { HomeAssistantPublisher } from '../publish/homeAssistant.js';
import type { ForecastPublisher } from '../publish/publisher.js';
import type { SinkSet } from '../publish/sink.js';
import { forecastdVersion, StatusReporter, type DaemonView } from '../publish/status.js';
import type { LiveAccuracyJob } from '../scheduler/accuracyJob.js';
import type { ForecastService } from '../scheduler/forecastService.js';
import type { TrainingRunner } from '../scheduler/trainingRunner.js';
import type { SqliteStore } from '../store/sqliteStore.js';
import { readProcessWriteBytes } from '../store/writeMeter.js';

export interface ObservedParts {
  config: Config;
  store: SqliteStore;
  startedAt: number;
  clock: () => number;
  tf: Tf;
  backend: BackendName;
  link: MqttLink;
  brokerStats: BrokerStats;
  brokerDrops: BrokerDropWatch | null;
  ingestor: Ingestor;
  ingest: IngestRoute;
  forecasting: ForecastService;
  trainings: TrainingRunner;
  outbox: ForecastPublisher;
  sinks: SinkSet;
  liveAccuracy: LiveAccuracyJob;
  log: Logger;
}

export interface Observability {
  /** Where the HTTP endpoint listens, e.g. http://127.0.0.1:8765; null when off or it could not listen. */
  readonly httpUrl: string | null;
  stop(): Promise<void>;
}

/** The daemon as the status document, the dashboard and /metrics see it. */
function daemonView(parts: ObservedParts): DaemonView {
  const { config, forecasting, trainings } = parts;
  const { versions } = parts.store;
  return {
    version: forecastdVersion(),
    startedAt: parts.startedAt,
    backend: parts.backend,
    baseTopic: config.mqtt.baseTopic,
    clock: parts.clock,
    brokerConnected: () => parts.link.client.connected,
    ingest: () => parts.ingest.health(),
    databaseQuarantinedAs: parts.store.quarantinedAs,
    forecasts: () =>
      config.forecasts.map((forecast) => ({
        config: forecast,
        hasModel: forecasting.jobs.hasModel(forecast.name),
        serving: forecasting.jobs.choose(forecast),
        lastIssued: forecasting.lastMessage(forecast.name),
        training: trainings.running.get(forecast.name) ?? null,
        lastFailure: trainings.lastFailure.get(forecast.name) ?? null,
        lastTraining: versions.latest(forecast.name)[0] ?? null,
      })),
  };
}

const walBytesOf = (databasePath: string) => {
  try {
    return statSync(`${databasePath}-wal`).size;
  } catch {
    return 0; // no WAL file right now
  }
};

/** Starts the status reporter, Home Assistant discovery and the HTTP endpoint; resolves once HTTP listens (or gave up). */
export async function startObservability(parts: ObservedParts): Promise<Observability> {
  const { config, log, clock, link } = parts;
  const view = daemonView(parts);
  const { store } = parts;
  const { catalog } = store;
  const telemetry = config.http.enabled ? new Telemetry({ readingsStored: () => parts.ingestor.counters.stored }) : null;
  if (telemetry) parts.forecasting.onTrained((summary) => telemetry.recordTraining(summary));
  let homeAssistant: HomeAssistantPublisher | null = null;
  const lastMessage = (name: string) => parts.forecasting.lastMessage(name);

  const http = telemetry
    ? new HttpServer({
        config: config.http,
        log: log.child({ component: 'http' }),
        view,
        forecasts: config.forecasts,
        readings: store.readings,
        catalog,
        versions: store.versions,
        pins: store.pins,
        lastMessage,
        readiness: () =>
          readinessCheck({
            brokerConnected: () => link.client.connected,
            brokerUrl: config.mqtt.url,
            db: store.db,
            ingest: () => parts.ingest.health(),
            forecasts: config.forecasts,
            lastTick: (name) => parts.forecasting.lastTicks.get(name),
            startedAt: parts.startedAt,
            clock,
          }),
        metrics: () =>
          collectMetrics({
            view,
            ingest: parts.ingestor.counters,
            trainingCounters: parts.trainings.counters,
            forecastCounters: parts.forecasting.jobs.counters,
            forecastsPublished: () => parts.outbox.published,
            outbox: () => ({ ...parts.outbox.backlog(), ...parts.outbox.counters }),
            database: () => ({ ...catalog.size(), walBytes: walBytesOf(store.path) }),
            writtenBytes: () => readProcessWriteBytes(),
            tensorCount: () => parts.tf.memory().numTensors,
            telemetry,
            homeAssistant: homeAssistant?.counters ?? null,
            liveAccuracy: () => [...parts.liveAccuracy.latest.values()],
            broker: parts.brokerStats,
            brokerDropped: () => parts.brokerDrops?.dropped ?? null,
            acks: link.counters,
          }),
      })
    : null;
  const httpUrl = http
    ? await http.start().catch((error: Error) => {
        log.error(
          { host: config.http.host, port: config.http.port, err: error.message },
          'HTTP could not listen (is the port taken? set http.port); running without it',
        );
        return null;
      })
    : null;
  telemetry?.start();

  const status = new StatusReporter({
    view,
    publish: (doc) => parts.sinks.publishStatus(doc),
    intervalSeconds: config.status.intervalSeconds,
    log: log.child({ component: 'status' }),
  });
  if (config.homeAssistant.enabled) {
    const reachable = httpUrl && !['127.0.0.1', '::1', 'localhost', '0.0.0.0', '::'].includes(config.http.host);
    const ha = new HomeAssistantPublisher({
      client: link.client,
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
    status.onPublish((doc) => ha.publishSummaries(doc));
    ha.start();
  }
  status.start();

  return {
    httpUrl,
    async stop() {
      status.stop();
      homeAssistant?.stop();
      telemetry?.stop();
      await http?.stop();
    },
  };
}
