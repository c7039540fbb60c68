/**
 * F17, HTTP: with `http.token` set (here through FORECASTD_HTTP_TOKEN, as a unit file would), every request without
 * the token is refused with 401 (no header, a wrong bearer, a wrong `?token=`, a browser), the bearer gets through,
 * and the token appears nowhere in the daemon's output at level debug, even after a request carried it in its URL.
 * The daemon runs as a process so that its stderr is searched too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { uniquePrefix } from '../helpers/broker.js';
import { spawnDaemon, writeYaml, type DaemonProcess } from '../helpers/daemonProcess.js';
import { recordFault } from '../helpers/faultReport.js';
import { mosquittoAvailable, startMosquitto, type PrivateMosquitto } from '../helpers/mosquitto.js';
import { parseExposition, sampleValue } from '../http/promText.js';

const skip = mosquittoAvailable() ? false : 'needs mosquitto';

describe('HTTP token (F17)', { skip, timeout: 90_000 }, () => {
  let broker: PrivateMosquitto | undefined;
  let daemon: DaemonProcess | undefined;
  let stateDir: string | undefined;

  after(async () => {
    await daemon?.stop().catch(() => undefined);
    await broker?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('refuses every request without the token, serves the bearer, and never logs the token', async () => {
    const token = `tok-${randomBytes(16).toString('hex')}`;
    broker = await startMosquitto();
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-http-token-'));
    const configPath = join(stateDir, 'forecastd.yaml');
    writeYaml(configPath, {
      mqtt: { url: broker.url, clientId: uniquePrefix('http-token'), reconnectSeconds: 0.5 },
      storage: { stateDir },
      http: { enabled: true, host: '127.0.0.1', port: 0 },
      log: { level: 'debug' },
    });
    daemon = spawnDaemon(configPath, { FORECASTD_HTTP_TOKEN: token });
    const listening = await daemon.waitForLog(
      (line) => typeof line.url === 'string' && /dashboard and metrics at/.test(String(line.msg)),
      30_000,
      'its HTTP address',
    );
    const base = String(listening.url);
    await daemon.waitForLog((line) => line.msg === 'connected to broker', 30_000, 'its broker connection');

    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers, redirect: 'manual' });
    const refusedRequests: Array<[string, Promise<Response>]> = [
      ['no token', get('/metrics')],
      ['wrong bearer', get('/metrics', { authorization: `Bearer ${token.slice(0, -1)}x` })],
      ['wrong ?token=', get('/api/forecasts?token=not-the-token')],
      ['API without token', get('/api/forecasts')],
      ['browser without token', get('/', { accept: 'text/html' })],
    ];
    const refused = await Promise.all(refusedRequests.map(async ([what, response]) => ({ what, status: (await response).status })));
    for (const { what, status } of refused) assert.equal(status, 401, `${what}: ${status}`);

    const health = await get('/healthz');
    assert.equal(health.status, 200, '/healthz stays open for the service manager (it says nothing but "ok")');
    const metrics = await get('/metrics', { authorization: `Bearer ${token}` });
    assert.equal(metrics.status, 200);
    const families = parseExposition(await metrics.text());
    assert.ok((sampleValue(families, 'forecastd_broker_connects_total') ?? 0) >= 1, 'the broker connection counters are on /metrics');
    assert.equal(sampleValue(families, 'forecastd_broker_connect_failures_total', { reason: 'auth' }), 0);
    // The dashboard's one-time `?token=` login: the token is in a URL, the likeliest way into a log.
    const login = await get(`/?token=${token}`, { accept: 'text/html' });
    assert.equal(login.status, 303);
    const served = 2;

    const outcome = await daemon.stop();
    assert.equal(outcome.code, 0, 'stops cleanly');
    const output = [...daemon.lines.map((line) => JSON.stringify(line)), daemon.stderr()];
    assert.ok(
      daemon.lines.some((line) => line.level === 20),
      'debug lines were written',
    );
    const leaks = output.filter((text) => text.includes(token));
    assert.deepEqual(leaks, [], 'the token is in no log line and not on stderr');

    recordFault({
      fault: 'F17 HTTP without token',
      mechanism: 'http.token from FORECASTD_HTTP_TOKEN; requests without it, with a wrong one, and with it',
      published: refused.length + served + 1,
      acked: 'n/a',
      stored: 'n/a',
      duplicates: 'n/a',
      rejected: refused.filter(({ status }) => status === 401).length,
      brokerDropped: 'n/a',
      lost: 'n/a',
      recovery: 'n/a',
      note: `published = HTTP requests, rejected = 401s: ${refused.map(({ what }) => what).join(', ')}; 200 with the bearer, 303 for the ?token= login; /healthz open by design; token in 0 of ${daemon.lines.length} log lines (debug) and stderr`,
    });
  });
});
