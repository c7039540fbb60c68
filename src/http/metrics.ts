/**
 * What `/metrics` reports, gathered at scrape time from the parts that own each number.
 * Names follow Prometheus conventions: base units (seconds, bytes), `_total` for counters; the process and
 * Node.js memory metrics use prom-client's names, so existing Grafana panels find them.
 */
import type { IngestCounters } from '../ingest/ingestor.js';
import type { DaemonView } from '../publish/status.js';
import { READINESS_STATES, forecastStatus } from '../publish/status.js';
import type { LiveAccuracyReport } from '../scheduler/accuracyJob.js';
import type { MetricFamily, Sample } from './prometheus.js';
import type { Telemetry } from './telemetry.js';

export interface MetricsSources {
  view: DaemonView;
  ingest: IngestCounters;
  /** TrainingRunner.counters: started, succeeded, failed, skippedOverlap, ... (each key becomes an `outcome`). */
  trainingCounters: Readonly<Record<string, number>>;
  forecastCounters: { issued: number; issuedByBaseline?: number; skippedNoModel: number; skippedGap: number; checkpointsRejected: number };
  forecastsPublished: () => number;
  database: () => { usedBytes: number; fileBytes: number; walBytes: number };
  /** Bytes this process made the kernel write to storage (/proc/self/io), or null where unknown. */
  writtenBytes: () => number | null;
  tensorCount: () => number;
  telemetry: Telemetry;
  homeAssistant: { discoverySent: number; birthMessages: number; summariesSent: number } | null;
  /** The newest live accuracy report per forecast (scheduler/accuracyJob.ts); absent: no live accuracy gauges. */
  liveAccuracy?: () => readonly LiveAccuracyReport[];
  /** The forecast outbox (publish/outboxDrain.ts); absent: no outbox metrics. */
  outbox?: () => { pending: number; inFlight: number; published: number; refused: number; republished: number; expired: number; dropped: number };
  /** Broker connection counters (broker/stats.ts BrokerStats); absent: no broker connection families. */
  broker?: BrokerCounters;
  /** The broker's $SYS dropped-messages count (broker/brokerDrops.ts); null or absent: unknown, no gauge. */
  brokerDropped?: () => number | null;
  /** PUBACKs sent by the inbound router (broker/mqttAdapter.ts); absent: no acknowledgement families. */
  acks?: { readonly acksSent: number; readonly acksBeforeCommit: number };
}

export interface BrokerCounters {
  readonly attempts: number;
  readonly connects: number;
  readonly failures: Readonly<Record<string, number>>;
  readonly connectionsLost: number;
  readonly sessionTakeovers: number;
  readonly refusals: Readonly<Record<string, number>>;
  readonly lastFailure: { readonly at: number } | null;
}

const snakeCase = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

const family = (name: string, type: MetricFamily['type'], help: string, samples: Sample[]): MetricFamily => ({ name, type, help, samples });
const value = (v: number | null | undefined, labels?: Record<string, string>): Sample[] =>
  v === null || v === undefined || !Number.isFinite(v) ? [] : [{ labels, value: v }];

/** Why the broker is not connected (failures by reason) and what its ACL refuses, for an alert that names the fix. */
function brokerFamilies(broker: BrokerCounters | undefined): MetricFamily[] {
  if (!broker) return [];
  return [
    family('forecastd_broker_connect_attempts_total', 'counter', 'Broker connection attempts: the first one and every reconnect.', [
      { value: broker.attempts },
    ]),
    family('forecastd_broker_connects_total', 'counter', 'Broker connection attempts the broker accepted.', [{ value: broker.connects }]),
    family(
      'forecastd_broker_connect_failures_total',
      'counter',
      'Failed broker connection attempts, by reason: tls (certificate, CA, name, expiry), auth (login refused), network (refused, reset, timeout), other.',
      Object.entries(broker.failures).map(([reason, count]) => ({ labels: { reason }, value: count })),
    ),
    family('forecastd_broker_connections_lost_total', 'counter', 'Established broker connections that dropped.', [{ value: broker.connectionsLost }]),
    family(
      'forecastd_broker_session_takeovers_total',
      'counter',
      'Times another client connected with our client id and took over the MQTT session (MQTT 5 DISCONNECT 0x8E); readings it receives are not stored here.',
      [{ value: broker.sessionTakeovers }],
    ),
    family(
      'forecastd_broker_refusals_total',
      'counter',
      'Topic filters (operation="subscribe") and publishes (operation="publish", MQTT 5 only) the broker refused, usually by its ACL.',
      Object.entries(broker.refusals).map(([operation, count]) => ({ labels: { operation }, value: count })),
    ),
    family(
      'forecastd_broker_last_connect_failure_timestamp_seconds',
      'gauge',
      'When the last broker connection attempt failed (Unix time).',
      value(broker.lastFailure ? broker.lastFailure.at / 1000 : null),
    ),
  ];
}

function outboxFamilies(outbox: ReturnType<NonNullable<MetricsSources['outbox']>> | undefined): MetricFamily[] {
  if (!outbox) return [];
  return [
    family(
      'forecastd_outbox_pending',
      'gauge',
      'Forecasts waiting in the outbox for the broker (in flight included); a steady rise means the broker is unreachable.',
      [{ value: outbox.pending }],
    ),
    family('forecastd_outbox_in_flight', 'gauge', "Forecasts sent and awaiting the broker's PUBACK.", [{ value: outbox.inFlight }]),
    family('forecastd_outbox_published_total', 'counter', 'Forecasts that left the outbox confirmed by the broker.', [{ value: outbox.published }]),
    family('forecastd_outbox_refused_total', 'counter', 'Forecasts the broker refused (PUBACK reason code >= 0x80, e.g. an ACL); not retried.', [
      { value: outbox.refused },
    ]),
    family(
      'forecastd_outbox_republished_total',
      'counter',
      'Forecasts sent again after a restart or a lost hand-over (each a possible duplicate; consumers deduplicate by issuedAt).',
      [{ value: outbox.republished }],
    ),
    family('forecastd_outbox_expired_total', 'counter', 'Forecasts not sent because their horizon was over before the broker could be reached.', [
      { value: outbox.expired },
    ]),
    family('forecastd_outbox_dropped_total', 'counter', 'Forecasts given up because publish.outbox.maxPending were waiting.', [
      { value: outbox.dropped },
    ]),
  ];
}

/** Whether readings are being committed now (0: the database refuses writes, e.g. a full disk; the broker keeps them). */
function ingestHealthFamilies(health: ReturnType<NonNullable<DaemonView['ingest']>> | undefined): MetricFamily[] {
  if (!health) return [];
  return [
    family(
      'forecastd_ingest_storing',
      'gauge',
      '1 while readings are committed; 0 while the database refuses writes (a full disk): messages then stay unacknowledged at the broker and are retried.',
      [{ value: health.storing ? 1 : 0 }],
    ),
    family(
      'forecastd_ingest_held_messages',
      'gauge',
      'Messages received but not yet acknowledged because their commit failed; they are retried, and the broker still holds them.',
      [{ value: health.held }],
    ),
  ];
}

/** forecastd's first promise, checked at run time: no PUBACK leaves for a reading before its commit. */
function ackFamilies(acks: MetricsSources['acks']): MetricFamily[] {
  if (!acks) return [];
  return [
    family('forecastd_ingest_acks_total', 'counter', 'PUBACKs sent for messages after they were committed (readings) or handled.', [
      { value: acks.acksSent },
    ]),
    family(
      'forecastd_ingest_acks_before_commit_total',
      'counter',
      'PUBACKs that left for a message no route had released, i.e. a reading acknowledged to the broker before its commit. Must stay 0: anything else is a bug that can lose readings (alert on it).',
      [{ value: acks.acksBeforeCommit }],
    ),
  ];
}

export function collectMetrics(sources: MetricsSources): MetricFamily[] {
  const { view, ingest } = sources;
  const now = view.clock();
  const facts = view.forecasts();
  const statuses = facts.map((fact) => ({ fact, status: forecastStatus(fact, now, view.startedAt) }));
  const perForecast = (pick: (entry: (typeof statuses)[number]) => number | null | undefined): Sample[] =>
    statuses.flatMap((entry) => value(pick(entry), { forecast: entry.fact.config.name }));
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  const loop = sources.telemetry.eventLoopDelay();
  const database = sources.database();
  const live = sources.liveAccuracy?.() ?? [];

  return [
    family('forecastd_build_info', 'gauge', 'forecastd version and the TensorFlow.js backend serving forecasts; always 1.', [
      { labels: { version: view.version, backend: view.backend }, value: 1 },
    ]),
    family('forecastd_broker_connected', 'gauge', '1 while connected to the MQTT broker.', [{ value: view.brokerConnected() ? 1 : 0 }]),
    ...brokerFamilies(sources.broker),
    ...ackFamilies(sources.acks),
    family(
      'forecastd_broker_dropped_messages',
      'gauge',
      'Messages the broker says it dropped (Mosquitto $SYS/broker/publish/messages/dropped) since it started, for all its clients, not only forecastd: queue limits (max_queued_messages, max_queued_bytes) reached for an offline or slow client. Absent when the broker does not publish $SYS.',
      value(sources.brokerDropped?.()),
    ),

    ...ingestHealthFamilies(view.ingest?.()),
    family('forecastd_readings_received_total', 'counter', 'MQTT messages received on the ingest topics.', [{ value: ingest.received }]),
    family('forecastd_readings_stored_total', 'counter', 'Readings committed to the database (a message can hold several).', [
      { value: ingest.stored },
    ]),
    family('forecastd_readings_duplicate_total', 'counter', 'Readings already stored (an MQTT redelivery), not stored again.', [
      { value: ingest.duplicates },
    ]),
    family(
      'forecastd_readings_rejected_total',
      'counter',
      'Messages rejected, by reason (not_a_number, too_large, unknown_topic, too_old, in_future, ...; clock_unsynced: the system clock was not set yet, e.g. a Pi before NTP).',
      Object.entries(ingest.rejected).map(([reason, count]) => ({ labels: { reason }, value: count })),
    ),
    family('forecastd_readings_stored_per_second', 'gauge', 'Readings stored per second over the last minute.', [
      { value: sources.telemetry.readingsPerSecond() },
    ]),

    family(
      'forecastd_trainings_total',
      'counter',
      'Trainings by outcome: started, succeeded, failed (of which not_enough_history, out_of_memory, worker_exited), aborted, skipped_overlap (a schedule tick during a running training).',
      Object.entries(sources.trainingCounters).map(([outcome, count]) => ({ labels: { outcome: snakeCase(outcome) }, value: count })),
    ),
    family(
      'forecastd_training_duration_seconds',
      'histogram',
      'Duration of the successful trainings since start, per forecast.',
      [...sources.telemetry.trainingDurations.entries()].flatMap(([forecast, histogram]) => histogram.samples({ forecast })),
    ),
    family(
      'forecastd_training_in_progress',
      'gauge',
      '1 while a training of the forecast runs.',
      perForecast(({ fact }) => (fact.training ? 1 : 0)),
    ),
    family(
      'forecastd_training_epoch',
      'gauge',
      'Epoch the running training has completed.',
      perForecast(({ status }) => status.training?.epoch),
    ),
    family(
      'forecastd_training_last_duration_seconds',
      'gauge',
      'Duration of the newest recorded training.',
      perForecast(({ fact }) => (fact.lastTraining ? fact.lastTraining.durationMs / 1000 : null)),
    ),
    family(
      'forecastd_training_last_timestamp_seconds',
      'gauge',
      'When the newest recorded training started (Unix time).',
      perForecast(({ fact }) => (fact.lastTraining ? fact.lastTraining.startedAt / 1000 : null)),
    ),
    family(
      'forecastd_training_last_loss',
      'gauge',
      'Training loss (MSE, scaled units) at the last epoch of the newest training.',
      perForecast(({ fact }) => fact.lastTraining?.loss.at(-1)),
    ),
    family(
      'forecastd_training_last_val_loss',
      'gauge',
      'Validation loss (MSE, scaled units) at the last epoch of the newest training.',
      perForecast(({ fact }) => fact.lastTraining?.valLoss.at(-1)),
    ),

    family(
      'forecastd_model_info',
      'gauge',
      'The model version serving each forecast; always 1.',
      statuses.flatMap(({ fact, status }) =>
        status.servingVersion ? [{ labels: { forecast: fact.config.name, version: status.servingVersion }, value: 1 }] : [],
      ),
    ),
    family(
      'forecastd_serving_info',
      'gauge',
      'What makes the forecasts: served_by="model" (the LSTM) or a baseline; always 1.',
      statuses.flatMap(({ fact, status }) =>
        status.servedBy ? [{ labels: { forecast: fact.config.name, served_by: status.servedBy }, value: 1 }] : [],
      ),
    ),
    family(
      'forecastd_model_validation_mae',
      'gauge',
      'Mean absolute error of what serves, on the newest held-out windows, in the unit of the target.',
      perForecast(({ status }) => status.validation?.mae),
    ),
    family(
      'forecastd_model_validation_rmse',
      'gauge',
      'Root mean squared error of what serves, on the newest held-out windows.',
      perForecast(({ status }) => status.validation?.rmse),
    ),
    family(
      'forecastd_model_validation_mase',
      'gauge',
      'Mean absolute scaled error of what serves (1: as wrong as the in-sample naive forecast).',
      perForecast(({ status }) => status.validation?.mase),
    ),
    family(
      'forecastd_baseline_validation_mae',
      'gauge',
      'Mean absolute error of each baseline on the same held-out windows: persistence (repeat the last value), seasonal_naive, linear.',
      statuses.flatMap(({ fact, status }) => [
        ...value(status.validation?.persistenceMae, { forecast: fact.config.name, baseline: 'persistence' }),
        ...value(status.validation?.seasonalNaiveMae, { forecast: fact.config.name, baseline: 'seasonal_naive' }),
        ...value(status.validation?.linearMae, { forecast: fact.config.name, baseline: 'linear' }),
      ]),
    ),
    family(
      'forecastd_forecast_state',
      'gauge',
      'Readiness of each forecast: 1 for its current state, 0 for the others.',
      statuses.flatMap(({ fact, status }) =>
        READINESS_STATES.map((state) => ({ labels: { forecast: fact.config.name, state }, value: status.readiness === state ? 1 : 0 })),
      ),
    ),
    family(
      'forecastd_forecast_ready',
      'gauge',
      '1 when the forecast is ready (a model that beats persistence serves, and forecasts are issued).',
      perForecast(({ status }) => (status.readiness === 'ready' ? 1 : 0)),
    ),
    family(
      'forecastd_forecast_last_issued_timestamp_seconds',
      'gauge',
      'When the last forecast was issued (Unix time).',
      perForecast(({ fact }) => (fact.lastIssued ? Date.parse(fact.lastIssued.issuedAt) / 1000 : null)),
    ),
    family('forecastd_forecasts_issued_total', 'counter', 'Forecasts issued, all forecasts together, by what made them.', [
      { labels: { served_by: 'model' }, value: sources.forecastCounters.issued - (sources.forecastCounters.issuedByBaseline ?? 0) },
      { labels: { served_by: 'baseline' }, value: sources.forecastCounters.issuedByBaseline ?? 0 },
    ]),
    family('forecastd_forecasts_published_total', 'counter', 'Forecast messages the broker confirmed (QoS 1 PUBACK).', [
      { value: sources.forecastsPublished() },
    ]),
    ...outboxFamilies(sources.outbox?.()),
    family('forecastd_forecasts_skipped_total', 'counter', 'Forecast ticks without a forecast, by reason.', [
      { labels: { reason: 'warming_up' }, value: sources.forecastCounters.skippedNoModel },
      { labels: { reason: 'input_gap' }, value: sources.forecastCounters.skippedGap },
    ]),
    family(
      'forecastd_checkpoints_rejected_total',
      'counter',
      'Checkpoints that failed verification when loading (damaged or built for another model shape).',
      [{ value: sources.forecastCounters.checkpointsRejected }],
    ),

    family(
      'forecastd_live_mae',
      'gauge',
      'Mean absolute error of the forecasts actually issued over the live window (evaluation.liveWindowDays), per horizon step (0-based), in the unit of the target.',
      live.flatMap((report) => report.steps.flatMap((step) => value(step.mae, { forecast: report.forecast, step: String(step.step) }))),
    ),
    family(
      'forecastd_live_interval_coverage',
      'gauge',
      'Share of the actual values inside the issued prediction intervals over the live window, per level (percent), all steps together.',
      live.flatMap((report) => Object.entries(report.coverage).flatMap(([level, share]) => value(share, { forecast: report.forecast, level }))),
    ),
    family(
      'forecastd_live_samples',
      'gauge',
      'Forecast points scored against actual values over the live window, all steps together.',
      live.flatMap((report) => value(report.samples, { forecast: report.forecast })),
    ),

    family(
      'forecastd_database_quarantined',
      'gauge',
      '1 when this run started with an empty database because the previous one was corrupt (moved aside as <file>.corrupt-<time>, see the log); 0 otherwise.',
      [{ value: view.databaseQuarantinedAs ? 1 : 0 }],
    ),
    family('forecastd_database_used_bytes', 'gauge', 'Bytes of live pages in the SQLite database.', [{ value: database.usedBytes }]),
    family('forecastd_database_file_bytes', 'gauge', 'Size of the database files on disk.', [
      { labels: { file: 'db' }, value: database.fileBytes },
      { labels: { file: 'wal' }, value: database.walBytes },
    ]),
    family(
      'forecastd_storage_written_bytes_total',
      'counter',
      'Bytes this process had the kernel write to storage (/proc/self/io write_bytes; SD-card wear).',
      value(sources.writtenBytes()),
    ),
    family('forecastd_tf_tensors', 'gauge', 'TensorFlow.js tensors alive on the main thread; a steady rise is a leak.', [
      { value: sources.tensorCount() },
    ]),

    family(
      'forecastd_homeassistant_discovery_sent_total',
      'counter',
      'Home Assistant discovery messages published.',
      value(sources.homeAssistant?.discoverySent),
    ),
    family(
      'forecastd_homeassistant_birth_messages_total',
      'counter',
      'Home Assistant birth messages (online) received.',
      value(sources.homeAssistant?.birthMessages),
    ),

    family(
      'forecastd_event_loop_delay_seconds',
      'gauge',
      'How late the event loop ran timers over the last minute (perf_hooks monitorEventLoopDelay, less its 20 ms sampling period), by statistic.',
      [
        { labels: { stat: 'min' }, value: loop.minSeconds },
        { labels: { stat: 'mean' }, value: loop.meanSeconds },
        { labels: { stat: 'p50' }, value: loop.p50Seconds },
        { labels: { stat: 'p90' }, value: loop.p90Seconds },
        { labels: { stat: 'p99' }, value: loop.p99Seconds },
        { labels: { stat: 'max' }, value: loop.maxSeconds },
      ],
    ),
    family('nodejs_heap_size_total_bytes', 'gauge', 'V8 heap size.', [{ value: memory.heapTotal }]),
    family('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap in use.', [{ value: memory.heapUsed }]),
    family('nodejs_external_memory_bytes', 'gauge', 'Memory of C++ objects bound to JavaScript (buffers, WebAssembly memory).', [
      { value: memory.external },
    ]),
    family('process_resident_memory_bytes', 'gauge', 'Resident set size.', [{ value: memory.rss }]),
    family('process_cpu_user_seconds_total', 'counter', 'User CPU time of the process, training threads included.', [{ value: cpu.user / 1e6 }]),
    family('process_cpu_system_seconds_total', 'counter', 'System CPU time of the process, training threads included.', [
      { value: cpu.system / 1e6 },
    ]),
    family('process_start_time_seconds', 'gauge', 'Start time of the daemon (Unix time).', [{ value: view.startedAt / 1000 }]),
  ];
}
