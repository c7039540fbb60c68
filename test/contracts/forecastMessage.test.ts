/**
 * The forecast message contract: what forecastd issues validates against its schema, a stored message of 0.1.0 (no
 * version field) reads as version 1, a tampered one is refused naming the field, and the README's example is a valid
 * message (so the documentation cannot drift from the wire format).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FORECAST_MESSAGE_VERSION, forecastMessageSchema, parseForecastMessage } from '../../src/contracts/forecastMessage.js';
import { forecastMessage } from '../../src/publish/forecastMessage.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** The JSON block of the README's "What forecastd publishes" section. */
function readmeExample(): unknown {
  const text = readFileSync(README, 'utf8');
  const section = text.slice(text.indexOf('### What forecastd publishes'));
  const match = /```json\n([\s\S]*?)\n```/.exec(section);
  assert.ok(match, 'the README has a JSON example in that section');
  return JSON.parse(match[1]);
}

const issued = () =>
  forecastMessage({
    forecast: 'room',
    target: 'room.temp',
    issuedAtMs: Date.UTC(2026, 10, 28, 12, 0, 2),
    intervalSeconds: 900,
    result: {
      originMs: Date.UTC(2026, 10, 28, 12),
      lastObserved: 21.4,
      points: [0, 1, 2].map((step) => ({ ts: Date.UTC(2026, 10, 28, 12) + step * 900_000, value: 21 + step / 10 })),
    },
    version: 'room@20261128T031700Z',
    training: null,
    backend: 'wasm',
    evaluation: {
      served: { mae: 0.2, rmse: 0.3, mase: 0.6 },
      persistenceMae: 0.5,
      seasonalNaiveMae: null,
      linearMae: 0.25,
      windows: 50,
      levels: [0.8],
      intervalWidths: [[0.1, 0.2, 0.3]],
    },
  });

describe('the forecast message contract', () => {
  it('every message forecastd builds validates, with the current version', () => {
    const message = issued();
    assert.equal(message.messageVersion, FORECAST_MESSAGE_VERSION);
    assert.deepEqual(forecastMessageSchema.parse(JSON.parse(JSON.stringify(message))), message);
  });

  it("the README's example is a valid message, with every top-level field the schema has", () => {
    const example = readmeExample() as Record<string, unknown>;
    const parsed = forecastMessageSchema.safeParse(example);
    assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues[0]));
    assert.deepEqual(Object.keys(example).sort(), Object.keys(forecastMessageSchema.shape).sort());
  });

  it('a stored message of 0.1.0 (no version) reads as version 1; a tampered or newer one is refused, naming the field', () => {
    const old = issued() as Record<string, unknown>;
    delete old.messageVersion;
    assert.equal(parseForecastMessage(old, 'old').messageVersion, 1);
    assert.throws(() => parseForecastMessage({ ...issued(), points: [{ ts: 'soon', value: 1 }] }, 'x'), /points\.0\.ts: expected an ISO 8601 time/);
    assert.throws(() => parseForecastMessage({ ...issued(), servedBy: 'oracle' }, 'x'), /servedBy: /);
    assert.throws(() => parseForecastMessage({ ...issued(), messageVersion: 2 }, 'x'), /messageVersion: 2 is not a version/);
  });
});
