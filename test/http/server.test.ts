/**
 * The HTTP endpoint of a running daemon: health, readiness (and its flip when the broker goes away), the token,
 * Prometheus metrics that move with the readings, the JSON API, and the retained status topic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { waitFor } from '../helpers/broker.js';
import { startFixture, type Fixture } from './daemonFixture.js';
import { parseExposition, sampleValue } from './promText.js';

const TOKEN = 'http-test-token-abcdef';

describe('http, homeAssistant and status config', () => {
  it('HTTP is off by default, on 127.0.0.1:8765 without a token; discovery is on under homeassistant', () => {
    const config = parseConfig({}, 'test', {});
    assert.deepEqual(config.http, { enabled: false, host: '127.0.0.1', port: 8765 });
    assert.deepEqual(config.homeAssistant, { enabled: true, discoveryPrefix: 'homeassistant', deviceClasses: {} });
    assert.deepEqual(config.status, { intervalSeconds: 60 });
  });

  it('FORECASTD_HTTP_TOKEN overrides http.token', () => {
    const config = parseConfig({ http: { enabled: true, token: 'from-the-file-123' } }, 'test', { FORECASTD_HTTP_TOKEN: 'from-the-environment' });
    assert.equal(config.http.token, 'from-the-environment');
  });

  it('refuses a short token, a bad port and a wildcard discovery prefix, naming the key', () => {
    const problems = (raw: unknown) => {
      try {
        parseConfig(raw, 'test', {});
      } catch (error) {
        return (error as ConfigError).problems.join('\n');
      }
      return '';
    };
    assert.match(problems({ http: { token: 'short' } }), /^http\.token: /m);
    assert.match(problems({ http: { port: 70000 } }), /^http\.port: /m);
    assert.match(problems({ homeAssistant: { discoveryPrefix: 'ha/#' } }), /^homeAssistant\.discoveryPrefix: no wildcards/m);
    assert.match(problems({ status: { intervalSeconds: 1 } }), /^status\.intervalSeconds: /m);
  });
});

describe('HTTP endpoint', { timeout: 60_000 }, () => {
  let fixture: Fixture;

  before(async () => {
    fixture = await startFixture({ token: TOKEN, statusIntervalSeconds: 5 });
  });
  after(async () => {
    await fixture?.close();
  });

  const metrics = async () => {
    const response = await fixture.get('/metrics');
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    return parseExposition(await response.text());
  };

  it('/healthz answers without a token', async () => {
    const response = await fixture.get('/healthz', { auth: false });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
  });

  it('every other path needs the token: 401 without it or with a wrong one', async () => {
    for (const path of ['/metrics', '/readyz', '/api/status', '/api/forecasts/room', '/', '/assets/dashboard.js']) {
      const response = await fixture.get(path, { auth: false });
      assert.equal(response.status, 401, path);
      assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    assert.equal((await fixture.get('/metrics', { auth: false, headers: { authorization: 'Bearer wrong-token-123' } })).status, 401);
    assert.equal((await fixture.get('/metrics', { auth: false, headers: { cookie: `forecastd_token=${TOKEN}` } })).status, 200, 'the cookie works');
    assert.equal((await fixture.get(`/metrics?token=${TOKEN}`, { auth: false })).status, 200, '?token= works');
  });

  it('the dashboard link with ?token= swaps the token for a cookie and redirects to /', async () => {
    const response = await fetch(`${fixture.url}/?token=${TOKEN}`, { redirect: 'manual' });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/');
    const cookie = response.headers.get('set-cookie') ?? '';
    assert.match(cookie, /^forecastd_token=/);
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
  });

  it('serves the dashboard and its assets from the package, with no external references', async () => {
    const page = await fixture.get('/');
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.doesNotMatch(html, /(src|href)=["']?(https?:)?\/\//, 'no CDN: every script and style sheet comes from the daemon');
    for (const asset of ['/assets/dashboard.js', '/assets/dashboard.css', '/assets/uPlot.iife.min.js', '/assets/uPlot.min.css']) {
      const response = await fixture.get(asset);
      assert.equal(response.status, 200, asset);
      assert.ok((await response.text()).length > 100, `${asset} has content`);
    }
  });

  it('/metrics parses, and its reading counters move when readings arrive', async () => {
    const before = await metrics();
    for (const name of [
      'forecastd_readings_received_total',
      'forecastd_readings_stored_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'forecastd_tf_tensors',
      'forecastd_database_used_bytes',
    ]) {
      assert.ok(sampleValue(before, name) !== undefined, `${name} is exported`);
    }
    assert.ok(sampleValue(before, 'forecastd_event_loop_delay_seconds', { stat: 'p99' }) !== undefined);
    assert.equal(sampleValue(before, 'forecastd_forecast_state', { forecast: 'room', state: 'warming_up' }), 1);
    for (const family of before.values()) assert.ok(family.help, `${family.name} has a HELP line`);

    const stored = await fixture.publishHistory(0.5);
    await fixture.sensor.publishAsync(`${fixture.prefix}/room/temp`, 'not a number', { qos: 1 });
    await waitFor(() => fixture.daemon.ingestor.counters.rejected.not_a_number === 1, 5_000, 'the bad reading to be rejected');

    const after = await metrics();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      (sampleValue(after, name, labels) ?? NaN) - (sampleValue(before, name, labels) ?? NaN);
    assert.equal(delta('forecastd_readings_stored_total'), stored);
    assert.equal(delta('forecastd_readings_received_total'), stored + 1);
    assert.equal(delta('forecastd_readings_rejected_total', { reason: 'not_a_number' }), 1);
    assert.ok((sampleValue(after, 'forecastd_readings_stored_per_second') ?? 0) > 0, 'the ingest rate shows the burst');
    assert.ok((sampleValue(after, 'forecastd_database_used_bytes') ?? 0) > (sampleValue(before, 'forecastd_database_used_bytes') ?? 0) - 1);
  });

  it('the JSON API lists series and forecasts, answers history, and says why there is no forecast yet', async () => {
    const series = (await (await fixture.get('/api/series')).json()) as Array<{ name: string; lastValue: number }>;
    assert.ok(series.some((entry) => entry.name === 'room.temp'));

    const forecasts = (await (await fixture.get('/api/forecasts')).json()) as Array<{ name: string; readiness: string; unit: string }>;
    assert.deepEqual(
      forecasts.map((forecast) => [forecast.name, forecast.readiness, forecast.unit]),
      [['room', 'warming_up', '°C']],
    );

    const latest = await fixture.get('/api/forecasts/room');
    assert.equal(latest.status, 404);
    assert.match(((await latest.json()) as { error: string }).error, /no forecast issued yet for "room" \(warming_up/);

    const history = (await (await fixture.get(`/api/forecasts/room/history?from=${new Date(Date.now() - 6 * 3_600_000).toISOString()}`)).json()) as {
      bucketSeconds: number;
      points: Array<{ ts: string; value: number | null }>;
    };
    assert.equal(history.bucketSeconds, 600);
    assert.ok(history.points.filter((point) => point.value !== null).length >= 30, 'six hours of 10-minute buckets');

    assert.equal((await fixture.get('/api/forecasts/room/history?from=yesterday')).status, 400);
    assert.equal((await fixture.get('/api/forecasts/nope')).status, 404);
    assert.deepEqual(await (await fixture.get('/api/models/room')).json(), { forecast: 'room', serving: null, pinned: null, versions: [] });
    assert.equal((await fixture.get('/api/models/room?limit=0')).status, 400);
    assert.equal((await fixture.get('/api/nothing')).status, 404);
  });

  it('is read-only: other methods get 405', async () => {
    const response = await fetch(`${fixture.url}/api/status`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
  });

  it('publishes a retained status document with version, uptime, backend and per-forecast readiness', async () => {
    const watcher = await mqtt.connectAsync(fixture.broker.url, { protocolVersion: 4, clientId: `status-${fixture.prefix}` });
    try {
      const received = new Promise<Record<string, any>>((resolve) =>
        watcher.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()))),
      );
      await watcher.subscribeAsync(`${fixture.baseTopic}/status`, { qos: 0 });
      const status = await received;
      assert.match(status.version, /^\d+\.\d+\.\d+/);
      assert.equal(typeof status.uptimeSeconds, 'number');
      assert.ok(['wasm', 'cpu', 'native'].includes(status.backend));
      assert.equal(status.forecasts.room.readiness, 'warming_up');
      assert.equal(status.forecasts.room.training, null);
      assert.match(status.forecasts.room.nextTrainingAt, /^\d{4}-/);
    } finally {
      await watcher.endAsync();
    }
  });

  it('/readyz is 200 with its checks, and flips to 503 with the reason when the broker stops', async () => {
    const ready = await fixture.get('/readyz');
    assert.equal(ready.status, 200);
    const body = (await ready.json()) as { ready: boolean; checks: Record<string, { ok: boolean; detail: string }> };
    assert.equal(body.ready, true);
    assert.deepEqual(Object.keys(body.checks).sort(), ['broker', 'database', 'scheduler']);
    assert.ok(Object.values(body.checks).every((check) => check.ok));

    await fixture.broker.close();
    await waitFor(() => !fixture.daemon.client.connected, 10_000, 'the daemon to notice the broker is gone');
    const notReady = await fixture.get('/readyz');
    assert.equal(notReady.status, 503);
    const verdict = (await notReady.json()) as typeof body;
    assert.equal(verdict.ready, false);
    assert.equal(verdict.checks.broker.ok, false);
    assert.match(verdict.checks.broker.detail, /not connected to mqtt:\/\/127\.0\.0\.1:\d+/);
    assert.equal(verdict.checks.database.ok, true, 'only the broker is at fault');
    assert.equal(sampleValue(await metrics(), 'forecastd_broker_connected'), 0);
  });
});
