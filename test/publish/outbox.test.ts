/**
 * The forecast outbox: what the table promises (store/outbox.ts), and how the drain (publish/outboxDrain.ts)
 * shares the work with mqtt.js across connections, against a stand-in client whose callbacks the test calls
 * the way mqtt.js 5.16 does: an in-flight publish keeps its callback across a lost connection and is settled
 * by the replay before `connect` is emitted; publishes queued during the replay fail with "Connection closed".
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ErrorWithReasonCode, type IClientPublishOptions, type MqttClient, type PacketCallback } from 'mqtt';
import { createLogger } from '../../src/log.js';
import { OutboxDrain } from '../../src/publish/outboxDrain.js';
import { horizonEnd } from '../../src/publish/publisher.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { capturedLogger } from '../daemon/support.js';

const T0 = Date.parse('2026-11-28T12:00:00Z');

function memoryStore(maxPending = 1000, clock = () => T0): { db: Db; store: OutboxStore } {
  const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
  return { db, store: new OutboxStore(db, { maxPending, clock }) };
}

const stateOf = (db: Db, id: number) => db.prepare('SELECT state FROM outbox WHERE id = ?').pluck().get(id) as string;

interface Sent {
  topic: string;
  payload: string;
  options: IClientPublishOptions;
  callback: PacketCallback;
}

/** The part of MqttClient the drain uses; `sent` records every publish with its callback, for the test to answer. */
class StandInClient extends EventEmitter {
  connected = false;
  readonly options = { protocolVersion: 5 as 4 | 5 };
  readonly sent: Sent[] = [];
  publish(topic: string, payload: string, options: IClientPublishOptions, callback: PacketCallback): this {
    this.sent.push({ topic, payload, options, callback });
    return this;
  }
  connect(): void {
    this.connected = true;
    this.emit('connect', { sessionPresent: true });
  }
  drop(): void {
    this.connected = false;
    this.emit('close');
  }
  /** The sends of the row with this payload. */
  sendsOf(payload: string): Sent[] {
    return this.sent.filter((sent) => sent.payload === payload);
  }
}

function drainFor(store: OutboxStore, options: { maxInFlight?: number; clock?: () => number; log?: ReturnType<typeof createLogger> } = {}) {
  const client = new StandInClient();
  const drain = new OutboxDrain({
    client: client as unknown as MqttClient,
    store,
    qos: 1,
    maxInFlight: options.maxInFlight ?? 5,
    keepSettledMs: 3_600_000,
    clock: options.clock ?? (() => T0),
    log: options.log ?? createLogger('silent'),
  });
  return { client, drain };
}

/** Lets the drain's setImmediate-scheduled pump run. */
const turn = () => new Promise((resolve) => setImmediate(resolve));
const message = (n: number, topic = `t/${n}`) => ({ topic, payload: `m${n}`, retain: true });

describe('outbox store', () => {
  it('keeps a message pending until it is published, in id order, and counts what waits', () => {
    const { db, store } = memoryStore();
    const ids = [1, 2, 3].map((n) => store.enqueue(message(n)).id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    assert.equal(store.pending, 3);
    assert.deepEqual(
      store.pendingAfter(0, 10).map((row) => row.payload),
      ['m1', 'm2', 'm3'],
    );
    assert.deepEqual(
      store.pendingAfter(ids[0], 1).map((row) => row.payload),
      ['m2'],
    );

    assert.equal(store.markPublished(ids[1]), true);
    assert.equal(store.markPublished(ids[1]), false, 'a second PUBACK for the same row changes nothing');
    assert.equal(store.pending, 2);
    assert.equal(stateOf(db, ids[1]), 'published');
    assert.deepEqual(
      store.pendingAfter(0, 10).map((row) => row.payload),
      ['m1', 'm3'],
    );
    assert.equal(new OutboxStore(db, { maxPending: 10 }).pending, 2, 'a new store on the same database counts what still waits');
  });

  it('settles refused and expired rows once, and a late PUBACK still records that the broker has the message', () => {
    const { db, store } = memoryStore(1);
    const a = store.enqueue(message(1, 'x')).id;
    assert.equal(store.markRefused(a, 135), true);
    assert.equal(store.markExpired(a), false, 'only a pending row is settled');
    assert.equal(db.prepare('SELECT reason_code FROM outbox WHERE id = ?').pluck().get(a), 135);
    const b = store.enqueue(message(2, 'y')).id;
    const c = store.enqueue(message(3, 'z')); // over the cap of 1: b is dropped
    assert.deepEqual(c.dropped, [b]);
    assert.equal(store.markPublished(b), true, 'its PUBACK came after it was dropped: the broker has it');
    assert.equal(stateOf(db, b), 'published');
    assert.equal(store.pending, 1);
  });

  it('over the cap, gives up the oldest superseded row first, then the oldest; never a protected (in-flight) one', () => {
    const { db, store } = memoryStore(3);
    const a1 = store.enqueue(message(1, 'a')).id;
    const b1 = store.enqueue(message(2, 'b')).id;
    const c1 = store.enqueue(message(3, 'c')).id;
    const a2 = store.enqueue(message(4, 'a'));
    assert.deepEqual(a2.dropped, [a1], 'a1 is superseded by a2 (retained topic: a2 replaces it anyway)');
    // Nothing superseded now: the oldest goes, unless it is in flight.
    const d1 = store.enqueue(message(5, 'd'), new Set([b1]));
    assert.deepEqual(d1.dropped, [c1], 'b1 is in flight, so c1 (the next oldest) goes');
    assert.equal(store.pending, 3);
    assert.deepEqual(store.countsByState(), { pending: 3, published: 0, refused: 0, expired: 0, dropped: 2 });
    assert.equal(stateOf(db, b1), 'pending');
  });

  it('prunes settled rows after a while, never pending ones', () => {
    let now = T0;
    const { store } = memoryStore(100, () => now);
    const published = store.enqueue(message(1)).id;
    store.enqueue(message(2));
    store.markPublished(published);
    now += 3_600_000;
    assert.equal(store.prune(now - 7_200_000), 0, 'not old enough');
    assert.equal(store.prune(now), 1);
    assert.deepEqual(store.countsByState(), { pending: 1, published: 0, refused: 0, expired: 0, dropped: 0 });
  });

  it('knows when a newer message on the topic already reached the broker', () => {
    const { store } = memoryStore();
    const older = store.enqueue(message(1, 'room')).id;
    const newer = store.enqueue(message(2, 'room')).id;
    assert.equal(store.newerPublished('room', older), false);
    store.markPublished(newer);
    assert.equal(store.newerPublished('room', older), true);
    assert.equal(store.newerPublished('room', newer), false);
    assert.equal(store.newerPublished('other', older), false);
  });
});

describe('outbox drain', () => {
  it('sends nothing before `connect`, then keeps at most maxInFlight awaiting their PUBACK', async () => {
    const { store } = memoryStore();
    const { client, drain } = drainFor(store, { maxInFlight: 5 });
    drain.start();
    for (let n = 1; n <= 12; n++) drain.enqueue(message(n));
    await turn();
    assert.equal(client.sent.length, 0, 'offline: the rows wait in the table, not in mqtt.js memory');
    client.connect();
    assert.equal(client.sent.length, 5);
    assert.deepEqual(
      client.sent.map((sent) => sent.payload),
      ['m1', 'm2', 'm3', 'm4', 'm5'],
    );
    client.sent[0].callback(undefined);
    assert.equal(client.sent.length, 6, 'a PUBACK makes room for the next one');
    assert.equal(drain.inFlightCount, 5);
    for (const sent of client.sent.slice(1)) sent.callback(undefined);
    for (let index = 6; index < client.sent.length; index++) client.sent[index].callback(undefined);
    assert.equal(client.sent.length, 12);
    assert.equal(drain.counters.published, 12);
    assert.equal(store.pending, 0);
    assert.equal(drain.counters.republished, 0);
    drain.stop();
  });

  it('leaves in-flight rows to the MQTT client replay, and sends again only what the replay lost', async () => {
    const { store } = memoryStore();
    const { log, lines } = capturedLogger();
    const { client, drain } = drainFor(store, { maxInFlight: 4, log });
    drain.start();
    for (let n = 1; n <= 6; n++) drain.enqueue(message(n));
    client.connect();
    await turn();
    const first = client.sent.slice(0, 4);
    assert.deepEqual(
      first.map((sent) => sent.payload),
      ['m1', 'm2', 'm3', 'm4'],
    );

    client.drop();
    // mqtt.js reconnects and replays m1..m3 (PUBACKs come before it emits `connect`); m4's hand-over it lost.
    client.connected = true;
    for (const sent of first.slice(0, 3)) sent.callback(undefined);
    assert.equal(client.sent.length, 4, 'nothing is sent during the replay');
    client.emit('connect', { sessionPresent: true });
    assert.equal(drain.counters.lostByClient, 1);
    assert.equal(drain.counters.published, 3);
    assert.deepEqual(client.sendsOf('m1').length, 1, 'a replayed row is not sent a second time by the drain');
    assert.equal(client.sendsOf('m4').length, 2, 'the row the replay lost is sent again');
    assert.deepEqual(
      client.sent
        .slice(4)
        .map((sent) => sent.payload)
        .sort(),
      ['m4', 'm5', 'm6'],
    );
    assert.ok(
      lines.some((line) => /not replayed/.test(String(line.msg))),
      'the loss by the client is logged',
    );

    // The lost hand-over's PUBACK turns up after all: a duplicate the broker certainly got, counted once.
    first[3].callback(undefined);
    assert.equal(drain.counters.lateAcks, 1);
    const retry = client.sendsOf('m4')[1];
    retry.callback(undefined);
    assert.equal(drain.counters.published, 4, 'published once, however many PUBACKs');
    for (const sent of client.sent.slice(4)) if (sent !== retry) sent.callback(undefined);
    assert.equal(store.pending, 0);
    drain.stop();
  });

  it('a publish failed by the connection (mqttjs/MQTT.js#2015) stays pending and goes out after the next connect', async () => {
    const { store } = memoryStore();
    const { client, drain } = drainFor(store);
    drain.start();
    client.connect();
    drain.enqueue(message(1));
    await turn();
    client.drop();
    client.sent[0].callback(new Error('Connection closed'));
    assert.equal(drain.inFlightCount, 0);
    assert.equal(store.pending, 1);
    assert.equal(client.sent.length, 1, 'not retried while offline');
    client.connect();
    assert.equal(client.sent.length, 2);
    assert.equal(drain.counters.republished, 1);
    client.sent[1].callback(undefined);
    assert.equal(drain.counters.published, 1);
    drain.stop();
  });

  it('a refused publish (PUBACK reason 135) is counted, logged once per topic and never retried', async () => {
    const { db, store } = memoryStore();
    const { log, lines } = capturedLogger();
    const { client, drain } = drainFor(store, { log });
    drain.start();
    client.connect();
    for (let n = 1; n <= 3; n++) drain.enqueue(message(n, 'denied/forecast'));
    await turn();
    for (const sent of client.sent) sent.callback(new ErrorWithReasonCode('Publish error: Not authorized', 135));
    assert.equal(drain.counters.refused, 3);
    assert.equal(store.pending, 0);
    assert.deepEqual(store.countsByState(), { pending: 0, published: 0, refused: 3, expired: 0, dropped: 0 });
    assert.equal(db.prepare(`SELECT count(*) FROM outbox WHERE reason_code = 135`).pluck().get(), 3);
    assert.equal(lines.filter((line) => /refused a forecast/.test(String(line.msg))).length, 1, 'one log line for the topic, not one per forecast');
    client.drop();
    client.connect();
    assert.equal(client.sent.length, 3, 'nothing is retried after a reconnect');
    drain.stop();
  });

  it('does not send a forecast past its horizon, and gives the others an MQTT 5 expiry at their horizon', async () => {
    let now = T0;
    const { store } = memoryStore(100, () => now);
    const { client, drain } = drainFor(store, { clock: () => now });
    drain.start();
    drain.enqueue({ ...message(1), expiresAt: T0 + 60_000 });
    drain.enqueue({ ...message(2), expiresAt: T0 + 3_600_500 });
    drain.enqueue({ ...message(3), expiresAt: null });
    await turn();
    now += 120_000; // the broker came back two minutes later: m1's horizon is over
    client.connect();
    assert.deepEqual(
      client.sent.map((sent) => sent.payload),
      ['m2', 'm3'],
    );
    assert.equal(drain.counters.expired, 1);
    assert.equal(client.sent[0].options.properties?.messageExpiryInterval, Math.ceil((3_600_500 - 120_000) / 1000));
    assert.equal(client.sent[1].options.properties, undefined, 'no expiry: none set');
    drain.stop();
  });

  it('sends an older forecast late without retain when a newer one on its topic already reached the broker', () => {
    const { store } = memoryStore();
    const older = store.enqueue(message(1, 'room')).id;
    store.enqueue(message(2, 'room'));
    store.markPublished(store.enqueue(message(3, 'room')).id);
    const { client, drain } = drainFor(store);
    drain.start();
    client.connect();
    assert.deepEqual(
      client.sent.map((sent) => [sent.payload, sent.options.retain]),
      [
        ['m1', false],
        ['m2', false],
      ],
    );
    assert.ok(older > 0);
    drain.stop();
  });

  it('ignores callbacks after stop (the database may be closed by then)', async () => {
    const { db, store } = memoryStore();
    const { client, drain } = drainFor(store);
    drain.start();
    client.connect();
    drain.enqueue(message(1));
    await turn();
    drain.stop();
    db.close();
    assert.doesNotThrow(() => client.sent[0].callback(undefined));
    assert.equal(drain.counters.published, 0);
  });

  it('the horizon of a forecast message is its last point', () => {
    const points = [
      { ts: '2026-11-28T12:10:00.000Z', value: 1 },
      { ts: '2026-11-28T13:00:00.000Z', value: 2 },
    ];
    assert.equal(horizonEnd({ points } as ForecastMessage), Date.parse('2026-11-28T13:00:00.000Z'));
    assert.equal(horizonEnd({ points: [] } as unknown as ForecastMessage), null);
  });
});
