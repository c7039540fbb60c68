/**
 * Home Assistant MQTT discovery: each forecast appears in Home Assistant as a device with
 *   - "Next value"          the first forecast point (numeric, state_class measurement)
 *   - "Forecast issued at"  device_class timestamp
 *   - diagnostics           readiness and served by (enums), model MAE, baseline MAE, model trained at
 *
 * Every entity reads one small retained JSON document per forecast, `<baseTopic>/<forecast>/summary`, which is
 * also the attributes of the "Next value" sensor. Home Assistant keeps a state to 255 characters and drops
 * attributes over 16 KB (and records every attribute change), so the summary is kept to a few KB: the full
 * horizon stays on the forecast topic, and the summary carries as many leading points as fit its budget.
 *
 * Availability follows forecastd's own availability topic (last will), and each value entity is also
 * unavailable while its value is missing (no model yet). Discovery is re-sent on every connect and whenever Home
 * Assistant announces itself on `<discoveryPrefix>/status` (its birth message, `online`).
 */
import type { MqttClient } from 'mqtt';
import type { Route } from '../broker/inbound.js';
import { forecastTopic, homeAssistantBirthTopic, homeAssistantDiscoveryTopic, summaryTopic } from '../broker/topics.js';
import { formatDuration } from '../time/duration.js';
import type { Config, ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { ForecastMessage } from './forecastMessage.js';
import { READINESS_STATES, type ForecastStatus, type StatusDocument } from './status.js';

/** The summary stays below this many bytes of JSON, far under Home Assistant's 16 KB attribute limit. */
export const SUMMARY_BYTES_BUDGET = 4096;

export interface ForecastSummary {
  forecast: string;
  readiness: ForecastStatus['readiness'];
  detail: string | null;
  /** `model` (the LSTM) or the baseline that serves. */
  servedBy: string | null;
  unit: string | null;
  next: number | null;
  nextAt: string | null;
  /** Prediction interval of the next value at `intervalLevel` percent, when the forecast carries intervals. */
  nextLower: number | null;
  nextUpper: number | null;
  intervalLevel: string | null;
  issuedAt: string | null;
  version: string | null;
  trainedAt: string | null;
  mae: number | null;
  persistenceMae: number | null;
  interval: string;
  horizonSteps: number;
  /** The retained topic with the whole forecast. */
  horizonTopic: string;
  /** Leading forecast points, as many as fit SUMMARY_BYTES_BUDGET. */
  points: ForecastMessage['points'];
  pointsTruncated: boolean;
}

/** What can make a forecast: the LSTM, or one of the baselines it has to beat. */
export const SERVED_BY_OPTIONS = ['model', 'persistence', 'seasonal_naive', 'linear'] as const;

export interface DiscoveryMessage {
  topic: string;
  payload: Record<string, unknown>;
}

type Point = ForecastMessage['points'][number];

/** The narrowest interval level a point carries ("80" of "80" and "95"): the one a single sensor shows. */
function innerLevel(point: Point | undefined): string | null {
  const keys = Object.keys(point?.lower ?? {}).filter((key) => point?.upper?.[key] !== undefined);
  return keys.length ? keys.sort((a, b) => Number(a) - Number(b))[0] : null;
}

export function forecastSummary(input: {
  forecast: ForecastConfig;
  status: ForecastStatus | undefined;
  message: ForecastMessage | null;
  horizonTopic: string;
  budgetBytes?: number;
}): ForecastSummary {
  const { forecast, status, message } = input;
  const first = message?.points[0];
  const level = innerLevel(first);
  const summary: ForecastSummary = {
    forecast: forecast.name,
    readiness: status?.readiness ?? 'warming_up',
    detail: status?.detail ?? null,
    servedBy: status?.servedBy ?? message?.servedBy ?? null,
    unit: forecast.unit ?? null,
    next: first?.value ?? null,
    nextAt: first?.ts ?? null,
    nextLower: level ? first!.lower![level] : null,
    nextUpper: level ? first!.upper![level] : null,
    intervalLevel: level,
    issuedAt: message?.issuedAt ?? null,
    version: status?.servingVersion ?? (message?.model.version || null),
    trainedAt: message?.model.trainedAt ?? status?.lastTrainedAt ?? null,
    mae: message?.model.validation?.mae ?? status?.validation?.mae ?? null,
    persistenceMae: message?.model.validation?.persistenceMae ?? status?.validation?.persistenceMae ?? null,
    interval: status?.interval ?? message?.interval ?? formatDuration(forecast.interval),
    horizonSteps: message?.points.length ?? forecast.horizon,
    horizonTopic: input.horizonTopic,
    points: [],
    pointsTruncated: false,
  };
  const budget = input.budgetBytes ?? SUMMARY_BYTES_BUDGET;
  // The detail is free text from an error message: keep it from eating the budget.
  if (summary.detail && summary.detail.length > 300) summary.detail = `${summary.detail.slice(0, 299)}…`;
  let size = Buffer.byteLength(JSON.stringify(summary));
  for (const point of message?.points ?? []) {
    const added = Buffer.byteLength(JSON.stringify(point)) + 1;
    if (size + added > budget) {
      summary.pointsTruncated = true;
      break;
    }
    summary.points.push(point);
    size += added;
  }
  return summary;
}

/** Topic-safe node id from the base topic: one forecastd instance, one node. */
export function nodeIdFor(baseTopic: string): string {
  return baseTopic.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'forecastd';
}

export interface DiscoveryContext {
  discoveryPrefix: string;
  baseTopic: string;
  availabilityTopic: string;
  forecastTopicTemplate: string;
  version: string;
  deviceClasses: Record<string, string>;
  /** The dashboard, linked from the device page. */
  configurationUrl?: string;
}

/** The discovery config messages of one forecast's device: retained, one per entity. */
export function discoveryMessages(forecast: ForecastConfig, context: DiscoveryContext): DiscoveryMessage[] {
  const node = nodeIdFor(context.baseTopic);
  const deviceId = `${node}_${forecast.name}`;
  const stateTopic = summaryTopic(context.baseTopic, forecast.name);
  const device: Record<string, unknown> = {
    identifiers: [deviceId],
    name: `Forecast ${forecast.name}`,
    manufacturer: 'forecastd',
    model: `LSTM forecast of ${forecast.target}`,
    sw_version: context.version,
  };
  if (context.configurationUrl) device.configuration_url = context.configurationUrl;
  const origin = { name: 'forecastd', sw_version: context.version };
  const forecastdOnline = { topic: context.availabilityTopic, payload_available: 'online', payload_not_available: 'offline' };
  /** Available while forecastd is online and the summary has a value for `field`. */
  const whileHas = (field: keyof ForecastSummary) => ({
    availability: [
      forecastdOnline,
      {
        topic: stateTopic,
        value_template: `{{ 'online' if value_json.${field} is not none else 'offline' }}`,
        payload_available: 'online',
        payload_not_available: 'offline',
      },
    ],
    availability_mode: 'all',
  });
  const unit = forecast.unit ? { unit_of_measurement: forecast.unit } : {};
  const deviceClass = context.deviceClasses[forecast.name];

  const entity = (key: string, fields: Record<string, unknown>): DiscoveryMessage => ({
    topic: homeAssistantDiscoveryTopic(context.discoveryPrefix, node, `${forecast.name}_${key}`),
    payload: {
      unique_id: `${deviceId}_${key}`,
      state_topic: stateTopic,
      availability: [forecastdOnline],
      ...fields,
      device,
      origin,
    },
  });

  return [
    entity('next', {
      name: 'Next value',
      value_template: '{{ value_json.next }}',
      ...unit,
      ...(deviceClass ? { device_class: deviceClass } : {}),
      state_class: 'measurement',
      suggested_display_precision: 2,
      json_attributes_topic: stateTopic,
      icon: deviceClass ? undefined : 'mdi:chart-bell-curve-cumulative',
      ...whileHas('next'),
    }),
    entity('issued_at', {
      name: 'Forecast issued at',
      device_class: 'timestamp',
      value_template: '{{ value_json.issuedAt }}',
      ...whileHas('issuedAt'),
    }),
    entity('readiness', {
      name: 'Readiness',
      entity_category: 'diagnostic',
      device_class: 'enum',
      options: [...READINESS_STATES],
      value_template: '{{ value_json.readiness }}',
      icon: 'mdi:progress-check',
    }),
    entity('served_by', {
      name: 'Served by',
      entity_category: 'diagnostic',
      device_class: 'enum',
      options: [...SERVED_BY_OPTIONS],
      value_template: '{{ value_json.servedBy }}',
      icon: 'mdi:swap-horizontal',
      ...whileHas('servedBy'),
    }),
    entity('mae', {
      name: 'Model accuracy (MAE)',
      entity_category: 'diagnostic',
      value_template: '{{ value_json.mae }}',
      ...unit,
      state_class: 'measurement',
      suggested_display_precision: 3,
      icon: 'mdi:target',
      ...whileHas('mae'),
    }),
    entity('baseline_mae', {
      name: 'Baseline MAE (repeat last value)',
      entity_category: 'diagnostic',
      value_template: '{{ value_json.persistenceMae }}',
      ...unit,
      state_class: 'measurement',
      suggested_display_precision: 3,
      enabled_by_default: false,
      icon: 'mdi:target-variant',
      ...whileHas('persistenceMae'),
    }),
    entity('trained_at', {
      name: 'Model trained at',
      entity_category: 'diagnostic',
      device_class: 'timestamp',
      value_template: '{{ value_json.trainedAt }}',
      ...whileHas('trainedAt'),
    }),
  ].map((message) => ({ ...message, payload: JSON.parse(JSON.stringify(message.payload)) as Record<string, unknown> }));
}

/** Publishes discovery and the per-forecast summaries, and answers Home Assistant's birth message. */
export class HomeAssistantPublisher {
  readonly counters = { discoverySent: 0, birthMessages: 0, summariesSent: 0 };
  private readonly lastSummary = new Map<string, string>();
  private lastStatus: StatusDocument | null = null;
  private readonly onConnect = () => this.sendDiscovery('connect');
  private removeRoute: (() => void) | null = null;

  constructor(
    private readonly deps: {
      client: MqttClient;
      /** Where the birth topic's route is added (the broker link). */
      routes: { addRoute(route: Route): () => void };
      config: Config['homeAssistant'];
      forecasts: ReadonlyArray<ForecastConfig>;
      context: DiscoveryContext;
      /** The last forecast issued (or stored) for a forecast. */
      lastMessage: (forecast: string) => ForecastMessage | null;
      log: Logger;
    },
  ) {}

  get birthTopic(): string {
    return homeAssistantBirthTopic(this.deps.config.discoveryPrefix);
  }

  start(): void {
    // The birth message is Home Assistant's, not a reading: its own route keeps it from ingest.
    this.removeRoute = this.deps.routes.addRoute({
      name: 'homeassistant',
      filters: [this.birthTopic],
      qos: 1,
      receive: (delivery) => {
        this.onBirth(delivery.payload.toString());
        delivery.ack();
      },
      subscribed: (outcome) => {
        const failure = outcome.error?.message ?? (outcome.refused.length > 0 ? `refused (reason code ${outcome.refused[0].reasonCode})` : null);
        if (failure) this.deps.log.warn({ topic: this.birthTopic, err: failure }, 'cannot subscribe to the Home Assistant birth topic');
      },
    });
    this.deps.client.on('connect', this.onConnect);
    if (this.deps.client.connected) this.onConnect();
  }

  stop(): void {
    this.deps.client.off('connect', this.onConnect);
    this.removeRoute?.();
    this.removeRoute = null;
  }

  private onBirth(payload: string): void {
    if (payload.trim() !== 'online') return;
    this.counters.birthMessages++;
    this.deps.log.info({ topic: this.birthTopic }, 'Home Assistant came online: re-sending discovery');
    this.sendDiscovery('birth');
  }

  sendDiscovery(reason: string): void {
    const { client, forecasts, context } = this.deps;
    for (const forecast of forecasts) {
      for (const message of discoveryMessages(forecast, context)) {
        client.publish(message.topic, JSON.stringify(message.payload), { qos: 1, retain: true });
        this.counters.discoverySent++;
      }
    }
    // Summaries again too: a broker that lost its retained messages would otherwise leave the entities empty.
    this.lastSummary.clear();
    this.publishSummaries(this.lastStatus);
    this.deps.log.debug({ reason, forecasts: forecasts.length }, 'Home Assistant discovery sent');
  }

  /** Called with every status publish: sends the summaries that changed. */
  publishSummaries(status: StatusDocument | null): void {
    this.lastStatus = status;
    if (!this.deps.client.connected) return;
    for (const forecast of this.deps.forecasts) {
      const summary = forecastSummary({
        forecast,
        status: status?.forecasts[forecast.name],
        message: this.deps.lastMessage(forecast.name),
        horizonTopic: forecastTopic(this.deps.context.forecastTopicTemplate, this.deps.context.baseTopic, forecast.name),
      });
      const text = JSON.stringify(summary);
      if (this.lastSummary.get(forecast.name) === text) continue;
      this.lastSummary.set(forecast.name, text);
      this.deps.client.publish(summaryTopic(this.deps.context.baseTopic, forecast.name), text, { qos: 1, retain: true });
      this.counters.summariesSent++;
    }
  }
}
