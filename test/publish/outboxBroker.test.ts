/**
 * The outbox drain against a real broker (the local Mosquitto, or an embedded aedes where there is none): what a
 * subscriber receives, and a fresh drain on the same database file finishing what a "crashed" one started.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger } from '../../src/log.js';
import { OutboxDrain } from '../../src/publish/outboxDrain.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { testBroker, uniquePrefix, waitFor, type TestBroker } from '../helpers/broker.js';

describe('outbox drain with a broker', { timeout: 60_000 }, () => {
  let broker: TestBroker;
  let dir: string;
  const clients: MqttClient[] = [];
  const databases: Db[] = [];

  before(async () => {
    broker = await testBroker();
    dir = mkdtempSync(join(tmpdir(), 'forecastd-outbox-'));
  });

  after(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    for (const db of databases) if (db.open) db.close();
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const connect = async (clientId: string) => {
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: broker.protocolVersion,
      clientId,
      clean: false,
      properties: broker.protocolVersion === 5 ? { sessionExpiryInterval: 60 } : undefined,
      reconnectPeriod: 200,
    });
    clients.push(client);
    return client;
  };
  const open = (file: string) => {
    const { db } = openDatabase({ path: join(dir, file), synchronous: 'NORMAL' });
    databases.push(db);
    return { db, store: new OutboxStore(db, { maxPending: 100_000 }) };
  };
  const drainOf = (client: MqttClient, store: OutboxStore) =>
    new OutboxDrain({ client, store, qos: 1, maxInFlight: 20, keepSettledMs: 3_600_000, log: createLogger('silent') });

  /** A subscriber counting deliveries per payload, with the properties of the last one. */
  const subscriber = async (filter: string) => {
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: broker.protocolVersion,
      clientId: uniquePrefix('sub'),
      reconnectPeriod: 200,
    });
    clients.push(client);
    const deliveries = new Map<string, number>();
    const expiry = new Map<string, number | undefined>();
    client.on('message', (_topic, payload, packet) => {
      const text = payload.toString();
      deliveries.set(text, (deliveries.get(text) ?? 0) + 1);
      expiry.set(text, packet.properties?.messageExpiryInterval);
    });
    await client.subscribeAsync(filter, { qos: 1 });
    return { client, deliveries, expiry };
  };

  it('delivers every row once, marks it published, and passes the message expiry on (MQTT 5)', async () => {
    const prefix = uniquePrefix('outbox');
    const { deliveries, expiry } = await subscriber(`${prefix}/#`);
    const { store } = open('a.db');
    const client = await connect(`forecastd-${prefix}`);
    const drain = drainOf(client, store);
    drain.start();
    const N = 300;
    for (let n = 1; n <= N; n++)
      drain.enqueue({ topic: `${prefix}/t${n % 7}`, payload: `${prefix}:${n}`, retain: true, expiresAt: Date.now() + 3_600_000 });
    await waitFor(() => deliveries.size === N && store.pending === 0, 20_000, `${N} deliveries`);
    assert.equal(drain.counters.published, N);
    assert.equal(drain.counters.republished, 0);
    assert.deepEqual(
      [...deliveries.values()].filter((count) => count > 1),
      [],
      'no duplicates on a steady connection',
    );
    assert.deepEqual(store.countsByState(), { pending: 0, published: N, refused: 0, expired: 0, dropped: 0 });
    if (broker.protocolVersion === 5) {
      const seconds = expiry.get(`${prefix}:1`);
      assert.ok(seconds !== undefined && seconds > 3500 && seconds <= 3600, `message expiry ${seconds} s, about an hour`);
    }
    // The retained value of each topic is its newest row.
    const late = await subscriber(`${prefix}/t3`);
    await waitFor(() => late.deliveries.size > 0, 5000, 'the retained forecast');
    const newestOnT3 = Math.max(...Array.from({ length: N }, (_, index) => index + 1).filter((n) => n % 7 === 3));
    assert.deepEqual([...late.deliveries.keys()], [`${prefix}:${newestOnT3}`]);
    drain.stop();
  });

  it('a fresh drain on the same database sends what a crashed one handed over without a recorded PUBACK', async () => {
    const prefix = uniquePrefix('outbox-crash');
    const { deliveries } = await subscriber(`${prefix}/#`);
    let { db, store } = open('b.db');
    const clientId = `forecastd-${prefix}`;
    const first = await connect(clientId);
    const crashed = drainOf(first, store);
    crashed.start();
    const N = 100;
    for (let n = 1; n <= N; n++) crashed.enqueue({ topic: `${prefix}/t`, payload: `${prefix}:${n}`, retain: false });
    await new Promise((resolve) => setImmediate(resolve));
    // The first batch is handed over; in the same turn (before any PUBACK can be read) the process "dies".
    const handedOver = crashed.inFlightCount;
    assert.equal(handedOver, 20);
    crashed.stop();
    first.end(true);
    db.close();

    ({ db, store } = open('b.db'));
    assert.equal(store.pending, N, 'nothing was recorded as published');
    const second = await connect(clientId);
    const resumed = drainOf(second, store);
    resumed.start();
    await waitFor(() => store.pending === 0, 20_000, 'the outbox to drain after the restart');
    await waitFor(() => deliveries.size === N, 10_000, `${N} distinct deliveries`);
    const duplicates = [...deliveries.values()].reduce((sum, count) => sum + count - 1, 0);
    assert.equal(resumed.counters.republished, handedOver, 'the rows handed over before the crash are the ones sent again');
    assert.ok(duplicates <= handedOver, `duplicates (${duplicates}) at most the rows in flight at the crash (${handedOver})`);
    resumed.stop();
  });
});
