/**
 * Home Assistant MQTT discovery: the payloads meet what Home Assistant requires of an MQTT sensor
 * (https://www.home-assistant.io/integrations/sensor.mqtt/, https://www.home-assistant.io/integrations/mqtt/#discovery),
 * the state stays within HA's limits, and discovery is re-sent when Home Assistant announces itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import {
  discoveryMessages,
  forecastSummary,
  nodeIdFor,
  SERVED_BY_OPTIONS,
  SUMMARY_BYTES_BUDGET,
  type DiscoveryContext,
  type DiscoveryMessage,
} from '../../src/publish/homeAssistant.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { READINESS_STATES, type ForecastStatus } from '../../src/publish/status.js';
import { waitFor } from '../helpers/broker.js';
import { startFixture, trainAndForecast, type Fixture } from '../http/daemonFixture.js';

/** Home Assistant's limits: a state longer than 255 characters is rejected, attributes over 16 KB are not stored. */
const HA_STATE_MAX = 255;
const HA_ATTRIBUTES_MAX = 16 * 1024;
const DEVICE_CLASSES_WITHOUT_UNIT = new Set(['timestamp', 'enum', 'date']);

/**
 * What Home Assistant requires of an MQTT discovery config for a sensor, and what forecastd promises on top
 * (availability tied to its availability topic, a device, stable unique ids).
 */
function validateSensorDiscovery(message: DiscoveryMessage, context: { prefix: string; availabilityTopic: string }): string[] {
  const problems: string[] = [];
  const p = message.payload as Record<string, any>;
  const topic = new RegExp(`^${context.prefix}/sensor/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$`);
  if (!topic.test(message.topic)) problems.push(`topic ${message.topic} is not <prefix>/sensor/<node_id>/<object_id>/config`);
  if (typeof p.unique_id !== 'string' || !/^[a-zA-Z0-9_-]+$/.test(p.unique_id)) problems.push('unique_id missing or not a plain id');
  if (typeof p.state_topic !== 'string' || /[#+]/.test(p.state_topic) || p.state_topic === '') problems.push('state_topic missing or a wildcard');
  if (typeof p.name !== 'string' || p.name.length === 0) problems.push('name missing');
  if (!Array.isArray(p.availability) || p.availability.length === 0) problems.push('availability missing');
  else {
    if (!p.availability.every((entry: any) => typeof entry.topic === 'string' && entry.topic.length > 0))
      problems.push('an availability entry without a topic');
    const own = p.availability.find((entry: any) => entry.topic === context.availabilityTopic);
    if (!own) problems.push("availability is not tied to forecastd's availability topic");
    else if (own.payload_available !== 'online' || own.payload_not_available !== 'offline')
      problems.push('availability payloads are not online/offline');
    if (p.availability.length > 1 && p.availability_mode !== 'all') problems.push('several availability topics need availability_mode all');
  }
  if (!p.device || !Array.isArray(p.device.identifiers) || p.device.identifiers.length === 0) problems.push('device.identifiers missing');
  if (p.device && typeof p.device.name !== 'string') problems.push('device.name missing');
  if (p.entity_category !== undefined && !['diagnostic', 'config'].includes(p.entity_category))
    problems.push(`entity_category ${p.entity_category} is not diagnostic or config`);
  // A sensor with a configured category must be a diagnostic one: "config" is for entities that change settings.
  if (p.entity_category === 'config') problems.push('a read-only sensor cannot be a config entity');
  if (p.device_class === 'enum' && (!Array.isArray(p.options) || p.options.length === 0)) problems.push('an enum sensor needs options');
  if (p.device_class === 'enum' && (p.unit_of_measurement !== undefined || p.state_class !== undefined))
    problems.push('an enum sensor has no unit or state class');
  if (DEVICE_CLASSES_WITHOUT_UNIT.has(p.device_class) && p.unit_of_measurement !== undefined) problems.push(`${p.device_class} with a unit`);
  if (p.state_class !== undefined && !['measurement', 'total', 'total_increasing'].includes(p.state_class)) problems.push('bad state_class');
  if (p.value_template !== undefined && !/^\{\{ value_json\.[a-zA-Z]+ \}\}$/.test(p.value_template))
    problems.push(`unexpected value_template ${p.value_template}`);
  if (p.json_attributes_topic !== undefined && typeof p.json_attributes_topic !== 'string') problems.push('json_attributes_topic is not a topic');
  for (const [key, value] of Object.entries(p)) if (value === undefined || value === null) problems.push(`${key} is ${value}`);
  return problems;
}

/** Renders the `{{ value_json.<field> }}` templates forecastd uses, the way Home Assistant would (None for null). */
function renderState(template: string, doc: Record<string, unknown>): string {
  const field = /value_json\.([a-zA-Z]+)/.exec(template)![1];
  const value = doc[field];
  return value === null || value === undefined ? 'None' : typeof value === 'string' ? value : JSON.stringify(value);
}

const config = parseConfig(
  {
    forecasts: [
      { name: 'living_room', target: 'livingroom.temperature', unit: '°C', horizon: 1024, layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }] },
      { name: 'power', target: 'meter.power', unit: 'W' },
    ],
  },
  'test',
  {},
);
const context: DiscoveryContext = {
  discoveryPrefix: 'homeassistant',
  baseTopic: 'forecastd',
  availabilityTopic: 'forecastd/availability',
  forecastTopicTemplate: '{baseTopic}/{forecast}/forecast',
  version: '1.2.3',
  deviceClasses: { living_room: 'temperature' },
};

/** A forecast message of `horizon` points with 80 % and 95 % intervals. */
function bigMessage(horizon: number): ForecastMessage {
  const start = Date.parse('2026-11-28T12:00:00Z');
  return {
    messageVersion: 1,
    forecast: 'living_room',
    target: 'livingroom.temperature',
    issuedAt: '2026-11-28T12:00:02.000Z',
    interval: '15m',
    intervalSeconds: 900,
    origin: '2026-11-28T12:00:00.000Z',
    lastObserved: 21.43,
    readiness: 'ready',
    readinessReason: 'the model beats persistence on the newest held-out windows',
    servedBy: 'model',
    points: Array.from({ length: horizon }, (_, step) => ({
      ts: new Date(start + step * 900_000).toISOString(),
      value: 21.5 + step / 1000,
      lower: { '80': 21.1, '95': 20.8 },
      upper: { '80': 21.9, '95': 22.2 },
    })),
    intervals: { levels: [0.8, 0.95], method: 'conformal', calibrationWindows: 100 },
    model: {
      version: 'living_room@20261128T031700Z',
      trainedAt: '2026-11-28T03:17:00.000Z',
      validation: { mae: 0.21, rmse: 0.29, persistenceMae: 0.48, mase: 0.7, seasonalNaiveMae: 0.3, linearMae: 0.25, windows: 100 },
    },
    backend: 'wasm',
  };
}

const readyStatus = (): ForecastStatus => ({
  readiness: 'ready',
  detail: null,
  servedBy: 'model',
  target: 'livingroom.temperature',
  unit: '°C',
  interval: '15m',
  intervalSeconds: 900,
  horizon: 1024,
  servingVersion: 'living_room@20261128T031700Z',
  lastForecastAt: '2026-11-28T12:00:02.000Z',
  training: null,
  lastTrainedAt: '2026-11-28T03:17:00.000Z',
  nextTrainingAt: '2026-11-29T03:17:00.000Z',
  validation: bigMessage(1).model.validation,
});

describe('Home Assistant discovery payloads', () => {
  const messages = config.forecasts.flatMap((forecast) => discoveryMessages(forecast, context));

  it('every entity meets what Home Assistant requires of an MQTT sensor', () => {
    for (const message of messages) {
      assert.deepEqual(validateSensorDiscovery(message, { prefix: 'homeassistant', availabilityTopic: 'forecastd/availability' }), [], message.topic);
    }
  });

  it('gives each forecast one device with next value, issued at, and diagnostic readiness, served-by and accuracy entities', () => {
    const forForecast = messages.filter((message) => message.topic.includes('/living_room_'));
    const byKey = Object.fromEntries(
      forForecast.map((message) => [/living_room_([a-z_]+)\/config$/.exec(message.topic)![1], message.payload as Record<string, any>]),
    );
    assert.deepEqual(Object.keys(byKey).sort(), ['baseline_mae', 'issued_at', 'mae', 'next', 'readiness', 'served_by', 'trained_at']);
    assert.equal(byKey.next.unit_of_measurement, '°C');
    assert.equal(byKey.next.device_class, 'temperature');
    assert.equal(byKey.next.state_class, 'measurement');
    assert.equal(byKey.issued_at.device_class, 'timestamp');
    assert.equal(byKey.readiness.entity_category, 'diagnostic');
    assert.deepEqual(byKey.readiness.options, [...READINESS_STATES]);
    assert.deepEqual(byKey.served_by.options, [...SERVED_BY_OPTIONS]);
    assert.equal(byKey.mae.entity_category, 'diagnostic');
    assert.equal(byKey.mae.unit_of_measurement, '°C');
    assert.equal(byKey.trained_at.device_class, 'timestamp');
    const devices = new Set(forForecast.map((message) => JSON.stringify((message.payload as any).device.identifiers)));
    assert.equal(devices.size, 1, 'one device per forecast');
    assert.equal((byKey.next as any).origin.name, 'forecastd');
  });

  it('unique ids are stable across restarts and unique across entities and forecasts', () => {
    const again = config.forecasts.flatMap((forecast) => discoveryMessages(forecast, context));
    assert.deepEqual(
      again.map((message) => (message.payload as any).unique_id),
      messages.map((message) => (message.payload as any).unique_id),
    );
    const ids = messages.map((message) => (message.payload as any).unique_id);
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(nodeIdFor('home/forecastd'), 'home_forecastd');
  });

  it('keeps the horizon out of oversized attributes: 1024 points still make a small summary, states stay under 255 characters', () => {
    const summary = forecastSummary({
      forecast: config.forecasts[0],
      status: readyStatus(),
      message: bigMessage(1024),
      horizonTopic: 'forecastd/living_room/forecast',
    });
    const text = JSON.stringify(summary);
    assert.ok(Buffer.byteLength(text) <= SUMMARY_BYTES_BUDGET, `${Buffer.byteLength(text)} bytes`);
    assert.ok(Buffer.byteLength(text) < HA_ATTRIBUTES_MAX);
    assert.equal(summary.pointsTruncated, true);
    assert.ok(summary.points.length > 10 && summary.points.length < 1024);
    assert.equal(summary.horizonTopic, 'forecastd/living_room/forecast', 'the whole horizon is on its own topic');
    assert.equal(summary.next, 21.5);
    assert.deepEqual([summary.nextLower, summary.nextUpper, summary.intervalLevel], [21.1, 21.9, '80']);
    for (const message of messages.filter((entry) => entry.topic.includes('/living_room_'))) {
      const state = renderState((message.payload as any).value_template, summary as unknown as Record<string, unknown>);
      assert.ok(state.length <= HA_STATE_MAX, `${message.topic}: ${state.length} characters`);
      assert.notEqual(state, 'None', `${message.topic} has a value once a forecast exists`);
    }
  });

  it('before the first forecast, value entities are unavailable rather than "None"', () => {
    const summary = forecastSummary({ forecast: config.forecasts[1], status: undefined, message: null, horizonTopic: 'forecastd/power/forecast' });
    assert.equal(summary.next, null);
    assert.equal(summary.readiness, 'warming_up');
    const next = messages.find((message) => message.topic.endsWith('/power_next/config'))!.payload as any;
    const ownDoc = next.availability.find((entry: any) => entry.topic === next.state_topic);
    assert.ok(ownDoc, 'the next-value sensor is also available only while the summary has a value');
    assert.match(ownDoc.value_template, /value_json\.next is not none/);
  });
});

describe('Home Assistant discovery on a running daemon', { timeout: 120_000 }, () => {
  let fixture: Fixture;
  let ha: MqttClient;
  const configs = new Map<string, Array<Record<string, any>>>();
  const summaries: Array<Record<string, any>> = [];

  before(async () => {
    fixture = await startFixture({ epochs: 2 });
    ha = await mqtt.connectAsync(fixture.broker.url, { protocolVersion: 4, clientId: `ha-${fixture.prefix}` });
    ha.on('message', (topic, payload) => {
      if (topic.endsWith('/config')) configs.set(topic, [...(configs.get(topic) ?? []), JSON.parse(payload.toString())]);
      else if (topic.endsWith('/summary') && payload.length) summaries.push(JSON.parse(payload.toString()));
    });
    await ha.subscribeAsync([`homeassistant/sensor/+/+/config`, `${fixture.baseTopic}/+/summary`], { qos: 1 });
  });
  after(async () => {
    await ha?.endAsync();
    await fixture?.close();
  });

  const entityCount = 7;

  it('publishes discovery at connect, retained, for every entity of the forecast', async () => {
    await waitFor(() => configs.size === entityCount, 5_000, `${entityCount} discovery configs`);
    for (const [topic, payloads] of configs) {
      assert.deepEqual(
        validateSensorDiscovery({ topic, payload: payloads[0] }, { prefix: 'homeassistant', availabilityTopic: `${fixture.baseTopic}/availability` }),
        [],
        topic,
      );
    }
    await waitFor(() => summaries.length > 0, 5_000, 'the summary document');
    assert.equal(summaries.at(-1)!.readiness, 'warming_up');
  });

  it('re-sends discovery when Home Assistant publishes its birth message, which is not taken for a reading', async () => {
    const before = [...configs.values()].reduce((sum, payloads) => sum + payloads.length, 0);
    const birthHandled = fixture.daemon.ingestor.counters.received;
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor(
      () => [...configs.values()].reduce((sum, payloads) => sum + payloads.length, 0) >= before + entityCount,
      5_000,
      'discovery to be re-sent',
    );
    assert.equal(fixture.daemon.ingestor.counters.received, birthHandled, 'the birth message never reached ingest');
    assert.equal(fixture.daemon.ingestor.counters.rejected.unknown_topic, 0);
    // "offline" (Home Assistant's last will) re-sends nothing.
    const afterBirth = [...configs.values()].reduce((sum, payloads) => sum + payloads.length, 0);
    await ha.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(
      [...configs.values()].reduce((sum, payloads) => sum + payloads.length, 0),
      afterBirth,
    );
  });

  it('after a training, the summary carries the next value, issued-at and accuracy', async () => {
    await fixture.publishHistory(2);
    await trainAndForecast(fixture);
    await waitFor(() => summaries.some((summary) => summary.next !== null), 10_000, 'a summary with a forecast');
    const summary = summaries.filter((entry) => entry.next !== null).at(-1)!;
    assert.ok(['ready', 'degraded'].includes(summary.readiness));
    assert.equal(typeof summary.next, 'number');
    assert.ok(!Number.isNaN(Date.parse(summary.issuedAt)));
    assert.equal(typeof summary.mae, 'number');
    assert.equal(summary.points.length, 6);
    assert.equal(summary.horizonTopic, `${fixture.baseTopic}/room/forecast`);
  });
});
