/** The status document: per-forecast readiness from what the daemon knows, and when the retained topic is published. */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { MqttSink } from '../../src/publish/mqttSink.js';
import type { ForecastPublisher } from '../../src/publish/publisher.js';
import { readinessOf, statusDocument, StatusReporter, type DaemonView, type ForecastFacts } from '../../src/publish/status.js';

const MINUTE = 60_000;
const START = Date.parse('2026-11-28T12:00:00Z');
const forecastConfig = (training: Record<string, unknown> = {}) =>
  parseConfig({ forecasts: [{ name: 'room', target: 'room.temp', interval: '10m', training }] }, 'test', {}).forecasts[0];

const issued = (atMs: number, readiness: 'ready' | 'degraded' = 'ready'): ForecastMessage =>
  ({
    forecast: 'room',
    issuedAt: new Date(atMs).toISOString(),
    readiness,
    readinessReason: readiness === 'ready' ? 'the model beats persistence' : 'no model beats persistence: seasonal naive serves',
    servedBy: readiness === 'ready' ? 'model' : 'seasonal_naive',
    points: [],
    model: { version: 'room@1', trainedAt: null, validation: null },
  }) as unknown as ForecastMessage;

const facts = (overrides: Partial<ForecastFacts> = {}): ForecastFacts => ({
  config: forecastConfig(),
  hasModel: false,
  serving: null,
  lastIssued: null,
  training: null,
  lastFailure: null,
  lastTraining: null,
  ...overrides,
});

describe('forecast readiness', () => {
  it('ready while a model that beats persistence serves and forecasts come every interval', () => {
    const state = facts({
      hasModel: true,
      serving: { servedBy: 'model', readiness: 'ready', reason: 'beats persistence' },
      lastIssued: issued(START + 30 * MINUTE),
    });
    assert.deepEqual(readinessOf(state, START + 35 * MINUTE, START), { readiness: 'ready', detail: null });
  });

  it('degraded, with the reason, while a baseline serves', () => {
    const state = facts({
      serving: { servedBy: 'seasonal_naive', readiness: 'degraded', reason: 'no model beats persistence: seasonal naive serves' },
      lastIssued: issued(START, 'degraded'),
    });
    assert.deepEqual(readinessOf(state, START + MINUTE, START), {
      readiness: 'degraded',
      detail: 'no model beats persistence: seasonal naive serves',
    });
  });

  it('stale when no forecast came for more than two intervals (the sensor went silent)', () => {
    const state = facts({ hasModel: true, serving: { servedBy: 'model', readiness: 'ready', reason: '' }, lastIssued: issued(START + 10 * MINUTE) });
    const verdict = readinessOf(state, START + 40 * MINUTE, START);
    assert.equal(verdict.readiness, 'stale');
    assert.match(verdict.detail!, /no forecast for 30 min.*room\.temp/);
  });

  it('a forecast stored before a restart does not make the new run stale', () => {
    const state = facts({ hasModel: true, serving: { servedBy: 'model', readiness: 'ready', reason: '' }, lastIssued: issued(START - 86_400_000) });
    assert.equal(readinessOf(state, START + 5 * MINUTE, START).readiness, 'ready');
    assert.equal(readinessOf(state, START + 25 * MINUTE, START).readiness, 'stale');
  });

  it('training while the first training runs, with its epoch', () => {
    const state = facts({
      training: {
        startedAt: START,
        reason: 'no_model_at_start',
        progress: { forecast: 'room', epoch: 3, epochs: 30, loss: 0.1, valLoss: 0.2, elapsedMs: 1000, etaMs: 9000 },
      },
    });
    assert.deepEqual(readinessOf(state, START, START), { readiness: 'training', detail: 'first training, epoch 3/30' });
  });

  it('warming up with the reason: not enough history, waiting, or training.onStart off', () => {
    const notEnough = facts({
      lastFailure: { at: START, message: 'forecast "room" has 5 training windows, needs at least 32', kind: 'not_enough_history' },
    });
    assert.deepEqual(readinessOf(notEnough, START, START), {
      readiness: 'warming_up',
      detail: 'forecast "room" has 5 training windows, needs at least 32',
    });
    assert.equal(readinessOf(facts(), START, START).detail, 'waiting for the first training');
    assert.match(readinessOf(facts({ config: forecastConfig({ onStart: false }) }), START, START).detail!, /training\.onStart is off/);
  });
});

/** A stand-in for the MQTT client: records publishes, emits `connect`. */
function fakeClient() {
  const emitter = new EventEmitter() as EventEmitter & { connected: boolean; published: Array<{ topic: string; payload: string; retain: boolean }> };
  emitter.connected = true;
  emitter.published = [];
  (emitter as any).publish = (topic: string, payload: string, options: { retain: boolean }) =>
    emitter.published.push({ topic, payload, retain: options.retain });
  return emitter;
}

describe('status topic', () => {
  const view = (clock: () => number, state: { training: ForecastFacts['training'] }): DaemonView => ({
    version: '1.0.0',
    startedAt: START,
    backend: 'wasm',
    baseTopic: 'fd',
    clock,
    brokerConnected: () => true,
    forecasts: () => [facts({ training: state.training })],
  });

  it('the document has version, uptime, backend and per-forecast readiness', () => {
    const doc = statusDocument(view(() => START + 90_000, { training: null }));
    assert.equal(doc.version, '1.0.0');
    assert.equal(doc.uptimeSeconds, 90);
    assert.equal(doc.backend, 'wasm');
    assert.equal(doc.forecasts.room.readiness, 'warming_up');
    assert.equal(doc.forecasts.room.interval, '10m');
  });

  it('is published retained on connect, on every change, and at the interval, but not when nothing changed', () => {
    let now = START;
    const state: { training: ForecastFacts['training'] } = { training: null };
    const client = fakeClient();
    // The reporter makes the document; the MQTT sink keeps it retained on the status topic, as the daemon wires them.
    const outbox = { start: () => undefined, stop: () => undefined, publish: () => undefined } as unknown as ForecastPublisher;
    const sink = new MqttSink({ client: client as unknown as MqttClient, forecasts: outbox, baseTopic: 'fd', log: createLogger('silent') });
    sink.start();
    const publisher = new StatusReporter({
      view: view(() => now, state),
      publish: (doc) => sink.publishStatus(doc),
      intervalSeconds: 60,
      log: createLogger('silent'),
      pollMs: 3_600_000,
    });
    publisher.start();
    assert.equal(client.published.length, 1, 'published at start');
    assert.equal(client.published[0].topic, 'fd/status');
    assert.equal(client.published[0].retain, true);

    now += 5_000;
    publisher.tick();
    assert.equal(client.published.length, 1, 'nothing changed: not published');

    state.training = {
      startedAt: now,
      reason: 'schedule',
      progress: { forecast: 'room', epoch: 1, epochs: 5, loss: 1, valLoss: 1, elapsedMs: 100, etaMs: 400 },
    };
    publisher.tick();
    assert.equal(client.published.length, 2, 'the training started: published');
    assert.equal(JSON.parse(client.published[1].payload).forecasts.room.training.epoch, 1);

    now += 61_000;
    publisher.tick();
    assert.equal(client.published.length, 3, 'the interval is up: published');

    client.emit('connect');
    assert.equal(client.published.length, 4, 'published again after a reconnect');
    publisher.stop();
    sink.stop();
  });
});
