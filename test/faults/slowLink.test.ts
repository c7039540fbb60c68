/**
 * F3c slow links (docs/reliability.md, "Forecasts: the outbox"): forecasts drained from the outbox over a link with 500 ms of latency each way,
 * and over one of 10 kB/s, through the harness TCP proxy to a private Mosquitto.
 *
 * The publisher is the daemon's own client (createBrokerLink: persistent session, the expiry-aware outgoing store,
 * keepalive 5 s, the least the config allows) with the daemon's outbox drain (20 in flight). A subscriber
 * connected straight to the broker counts deliveries. The pass: every forecast delivered, none twice, the
 * connection never lost (a slow link must not look dead to keepalive), and the drain no faster than the link
 * allows (the proof that the shaping was in force). The long variant also drops the slow link mid-drain.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BrokerStats, createBrokerLink } from '../../src/broker/connection.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { OutboxDrain } from '../../src/publish/outboxDrain.js';
import { openDatabase } from '../../src/store/database.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { FaultScope } from '../helpers/faultScope.js';
import { MOSQUITTO_BIN, mosquittoAvailable } from '../helpers/mosquitto.js';
import { startTcpProxy, type LinkShape, type TcpProxy } from '../helpers/tcpProxy.js';
import mqtt from 'mqtt';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
const FORECASTS = LONG ? 500 : 100;
const PAYLOAD_BYTES = 1024;
const MAX_IN_FLIGHT = 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

interface SlowDrain {
  forecasts: number;
  drainMs: number;
  acked: number;
  delivered: number;
  duplicates: number;
  connects: number;
  lost: number;
  proxy: TcpProxy;
  brokerDropped: number | 'unknown';
}

/** The fault table's delivery columns for one drain. */
const deliveryFigures = (result: SlowDrain) => ({
  published: result.forecasts,
  acked: result.acked,
  stored: result.delivered,
  duplicates: result.duplicates,
  rejected: 0,
  brokerDropped: result.brokerDropped,
  lost: result.lost,
});

describe('F3c: forecasts over a slow link', { skip, timeout: LONG ? 900_000 : 180_000 }, () => {
  const scope = new FaultScope('slowlink');
  after(() => scope.close());

  /** Fills an outbox with `FORECASTS` 1 KB forecasts, drains it through a proxy shaped as `link`, counts deliveries. */
  async function drainOverSlowLink(
    label: string,
    link: Partial<LinkShape>,
    duringDrain?: (proxy: TcpProxy, published: () => number) => Promise<void>,
  ): Promise<SlowDrain> {
    const { mosquitto, dropped } = await scope.broker();
    const proxy: TcpProxy = await startTcpProxy(mosquitto.port);
    scope.onClose(proxy, () => proxy.close());
    const prefix = uniquePrefix(label);

    const deliveries = new Map<number, number>();
    const subscriber = scope.track(await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: uniquePrefix('counter') }));
    subscriber.on('message', (_topic, payload) => {
      const n = Number(payload.subarray(0, 32).toString().split(':')[1]);
      deliveries.set(n, (deliveries.get(n) ?? 0) + 1);
    });
    await subscriber.subscribeAsync(`${prefix}/#`, { qos: 1 });

    const { db } = openDatabase({ path: join(scope.tempDir(label), 'forecastd.db'), synchronous: 'NORMAL' });
    scope.onClose(db, () => db.open && db.close());
    const store = new OutboxStore(db, { maxPending: 100_000 });
    db.transaction(() => {
      for (let n = 1; n <= FORECASTS; n++) {
        const payload = `${prefix}:${n}:`.padEnd(PAYLOAD_BYTES, '0');
        store.enqueue({ topic: `${prefix}/f${n % 10}/forecast`, payload, retain: true, expiresAt: Date.now() + 3_600_000 });
      }
    })();

    const stats = new BrokerStats();
    const config = parseConfig({
      mqtt: {
        url: proxy.url,
        clientId: `forecastd-${prefix}`,
        keepaliveSeconds: 5,
        reconnectSeconds: 0.5,
        reconnectMaxSeconds: 2,
        watchBrokerDrops: false,
      },
    });
    const client = scope.track(createBrokerLink(config.mqtt, createLogger('silent'), { stats }).connect());
    await waitFor(() => client.connected, 10_000, 'the publisher to connect through the proxy');
    proxy.shape(link);
    const drain = new OutboxDrain({ client, store, qos: 1, maxInFlight: MAX_IN_FLIGHT, keepSettledMs: 3_600_000, log: createLogger('silent') });
    scope.onClose(drain, () => drain.stop());
    const startedAt = performance.now();
    drain.start();
    await duringDrain?.(proxy, () => drain.counters.published);
    await waitFor(() => store.pending === 0, LONG ? 600_000 : 120_000, 'the outbox to drain over the slow link');
    const drainMs = performance.now() - startedAt;
    await waitFor(() => deliveries.size >= FORECASTS, 20_000, `${FORECASTS} distinct deliveries`);
    await sleep(300); // a late duplicate, if any, is counted before the figures are read
    const brokerDropped = dropped.updates ? await dropped.fresh() : 'unknown';
    drain.stop();
    const duplicates = [...deliveries.values()].reduce((sum, count) => sum + count - 1, 0);
    return {
      forecasts: FORECASTS,
      drainMs,
      acked: drain.counters.published,
      delivered: deliveries.size,
      duplicates,
      connects: stats.connects,
      lost: FORECASTS - deliveries.size,
      proxy,
      brokerDropped,
    };
  }

  it(
    `500 ms latency each way: ${FORECASTS} forecasts all delivered once, on one connection, one in-flight window per round trip`,
    { timeout: LONG ? 600_000 : 90_000 },
    async () => {
      const latencyMs = 500;
      const result = await drainOverSlowLink('latency', { latencyMs });
      // Each window of 20 publishes waits a round trip for its PUBACKs before the next can go.
      const leastMs = Math.ceil(FORECASTS / MAX_IN_FLIGHT) * 2 * latencyMs;
      recordFault({
        fault: 'F3c slow link: 500 ms latency',
        mechanism: `TCP proxy delays every chunk 500 ms each way; ${FORECASTS} × 1 KB forecasts in the outbox, 20 in flight, keepalive 5 s`,
        ...deliveryFigures(result),
        recovery: `drained in ${secondsText(result.drainMs)} (least the link allows ${secondsText(leastMs)})`,
        note: `connections: ${result.connects}; no keepalive timeout at a 1 s round trip`,
      });
      assert.equal(result.delivered, FORECASTS, 'every forecast delivered');
      assert.equal(result.duplicates, 0, 'none twice: the connection held');
      assert.equal(result.connects, 1, 'one connection from start to end');
      assert.equal(result.proxy.accepted, 1);
      assert.ok(result.drainMs >= leastMs * 0.9, `drained in ${Math.round(result.drainMs)} ms; the link allows no less than ${leastMs} ms`);
    },
  );

  it(
    `10 kB/s each way: ${FORECASTS} forecasts all delivered once, on one connection, no faster than the bandwidth`,
    { timeout: LONG ? 600_000 : 90_000 },
    async () => {
      const bytesPerSecond = 10_000;
      const result = await drainOverSlowLink('throttle', { bytesPerSecond });
      const toBroker = result.proxy.forwardedBytes.toBroker;
      const leastMs = ((toBroker - 2_000) / bytesPerSecond) * 1000; // the CONNECT went before the throttle
      recordFault({
        fault: 'F3c slow link: 10 kB/s',
        mechanism: `TCP proxy sends at most 10 kB/s each way; ${FORECASTS} × 1 KB forecasts in the outbox, 20 in flight, keepalive 5 s`,
        ...deliveryFigures(result),
        recovery: `drained in ${secondsText(result.drainMs)}: ${Math.round(toBroker / (result.drainMs / 1000))} B/s to the broker`,
        note: `connections: ${result.connects}; ${toBroker} bytes to the broker`,
      });
      assert.equal(result.delivered, FORECASTS, 'every forecast delivered');
      assert.equal(result.duplicates, 0, 'none twice: the connection held');
      assert.equal(result.connects, 1, 'one connection from start to end');
      assert.ok(toBroker >= FORECASTS * PAYLOAD_BYTES, `${toBroker} bytes carried`);
      assert.ok(
        result.drainMs >= leastMs * 0.9,
        `drained in ${Math.round(result.drainMs)} ms; 10 kB/s allows no less than ${Math.round(leastMs)} ms`,
      );
    },
  );

  it(
    'a slow link dropped mid-drain: all delivered after the reconnect, duplicates within the in-flight window',
    { skip: LONG ? false : 'long run only (FORECASTD_FAULTS_LONG=1)', timeout: 600_000 },
    async () => {
      const result = await drainOverSlowLink('slowdrop', { latencyMs: 200, bytesPerSecond: 20_000 }, async (proxy, published) => {
        await waitFor(() => published() >= FORECASTS / 2, 300_000, 'half the forecasts acknowledged');
        proxy.drop();
      });
      recordFault({
        fault: 'F3c slow link dropped mid-drain',
        mechanism: `TCP proxy at 200 ms and 20 kB/s, drop() after ${FORECASTS / 2} PUBACKs; ${FORECASTS} × 1 KB forecasts`,
        ...deliveryFigures(result),
        recovery: `drained in ${secondsText(result.drainMs)}`,
        note: `duplicates are QoS 1 re-sends of what was in flight at the drop (at most ${MAX_IN_FLIGHT}); connections: ${result.connects}`,
      });
      assert.equal(result.delivered, FORECASTS, 'every forecast delivered');
      assert.ok(result.duplicates <= MAX_IN_FLIGHT, `duplicates (${result.duplicates}) at most the ${MAX_IN_FLIGHT} in flight`);
      assert.ok(result.connects >= 2, 'the publisher reconnected after the drop');
    },
  );
});
