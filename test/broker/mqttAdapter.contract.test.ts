/**
 * The contract between forecastd and mqtt.js, checked against the real mqtt.js and a real Mosquitto (a private one on a
 * free loopback port), so that a dependency bump that changes any of it fails CI (src/broker/mqttAdapter.ts lists the
 * assumptions):
 *
 * - no connection before connect() (manualConnect), and the router is the handler from the first message on;
 * - a QoS 1 message's PUBACK is withheld until its route acknowledges it, and then sent once, on that connection;
 * - a message never acknowledged is redelivered by the broker on the next connection;
 * - what the broker queued in the persistent session while forecastd was down waits, unacknowledged, until a route
 *   takes it;
 * - publishes in flight when a connection drops are replayed by mqtt.js in order, each callback called, before
 *   `connect` is emitted (src/publish/outboxDrain.ts relies on it).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { createMqttLink, type MqttLink } from '../../src/broker/mqttAdapter.js';
import type { Delivery, Route } from '../../src/broker/inbound.js';
import { createLogger } from '../../src/log.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { FaultScope } from '../helpers/faultScope.js';
import { MOSQUITTO_BIN, mosquittoAvailable } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

/** A route that keeps its deliveries for the test to settle. */
function keeping(filters: string[]): Route & { received: Delivery[] } {
  const received: Delivery[] = [];
  return { name: 'ingest', filters, qos: 1, received, receive: (delivery) => void received.push(delivery) };
}

/** Resolves at the client's next SUBACK (set it up before connect()). */
function nextSuback(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd !== 'suback') return;
      client.off('packetreceive', onPacket);
      resolve();
    };
    client.on('packetreceive', onPacket);
  });
}

/** PUBACKs the link's client wrote, by message id, in order. */
function pubacksOf(client: MqttClient): number[] {
  const sent: number[] = [];
  client.on('packetsend', (packet) => {
    if (packet.cmd === 'puback' && packet.messageId !== undefined) sent.push(packet.messageId);
  });
  return sent;
}

describe('mqtt.js contract of the broker adapter (real mqtt.js, real Mosquitto)', { skip, timeout: 60_000 }, () => {
  const scope = new FaultScope('contract');
  after(() => scope.close(), { timeout: 30_000 });

  const link = (url: string, clientId: string): MqttLink => {
    const created = createMqttLink(
      url,
      { protocolVersion: 5, clientId, clean: false, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 100 },
      { log: createLogger('silent') },
    );
    scope.onClose(created, () => created.client.endAsync(true));
    return created;
  };
  const publisher = async (url: string) => scope.track(await mqtt.connectAsync(url, { protocolVersion: 5, clientId: uniquePrefix('pub') }));

  it('opens no connection before connect(); withholds each PUBACK until the route acknowledges, then sends it once', async () => {
    const { mosquitto } = await scope.broker();
    const prefix = uniquePrefix('withhold');
    const subscriber = link(mosquitto.url, `sub-${prefix}`);
    const pubacks = pubacksOf(subscriber.client);
    const route = keeping([`${prefix}/#`]);
    subscriber.setFallbackRoute(route);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(subscriber.client.connected, false, 'manualConnect: nothing happens before connect()');
    assert.ok(!mosquitto.log().includes(`sub-${prefix}`), 'the broker has not seen the client');

    const subscribed = nextSuback(subscriber.client);
    subscriber.connect();
    await subscribed;
    const sender = await publisher(mosquitto.url);
    for (let index = 1; index <= 3; index++) await sender.publishAsync(`${prefix}/t`, String(index), { qos: 1 });
    await waitFor(() => route.received.length === 3, 5000, 'three deliveries');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(pubacks, [], 'no PUBACK before the route acknowledges (mqtt.js skipped its own)');

    route.received[0].ack();
    route.received[1].ack();
    assert.equal(pubacks.length, 2, 'sent at once, on acknowledgement');
    assert.equal(subscriber.counters.acksBeforeCommit, 0);
    assert.equal(subscriber.counters.acksSent, 2);

    // The third is never acknowledged: the broker sends it again on the next connection (after a moment for the two
    // PUBACKs to cross the socket: a forced close would discard what is still buffered).
    await new Promise((resolve) => setTimeout(resolve, 200));
    subscriber.client.end(true);
    const again = link(mosquitto.url, `sub-${prefix}`);
    const routeAgain = keeping([`${prefix}/#`]);
    again.setFallbackRoute(routeAgain);
    again.connect();
    await waitFor(() => routeAgain.received.length >= 1, 5000, 'the redelivery');
    assert.deepEqual(
      routeAgain.received.map((delivery) => delivery.payload.toString()),
      ['3'],
      'only the unacknowledged message comes again',
    );
    assert.equal(routeAgain.received[0].redelivered, true, 'with DUP set');
  });

  it('holds what the session queued while down, unacknowledged, until a route takes it; mqtt.js acknowledges nothing by itself', async () => {
    const { mosquitto } = await scope.broker();
    const prefix = uniquePrefix('backlog');
    // The session and its subscription, then offline.
    const first = link(mosquitto.url, `sub-${prefix}`);
    first.setFallbackRoute(keeping([`${prefix}/#`]));
    const subscribed = nextSuback(first.client);
    first.connect();
    await subscribed;
    await first.client.endAsync();
    const sender = await publisher(mosquitto.url);
    for (let index = 1; index <= 50; index++) await sender.publishAsync(`${prefix}/t`, String(index), { qos: 1 });

    // Connected with no route at all: the broker delivers its in-flight window, and all of it waits.
    const second = link(mosquitto.url, `sub-${prefix}`);
    const pubacks = pubacksOf(second.client);
    const arrived: IPublishPacket[] = [];
    second.client.on('packetreceive', (packet) => packet.cmd === 'publish' && arrived.push(packet));
    second.connect();
    await waitFor(() => arrived.length >= 10, 5000, 'the broker to deliver the queued messages');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(pubacks, [], 'nothing acknowledged while no route exists');
    assert.ok(second.router.parkedNow >= 10, `parked: ${second.router.parkedNow}`);

    const taken: string[] = [];
    second.setFallbackRoute({
      name: 'ingest',
      filters: [`${prefix}/#`],
      qos: 1,
      receive: (delivery) => {
        taken.push(delivery.payload.toString());
        delivery.ack();
      },
    });
    await waitFor(() => taken.length === 50, 10_000, 'all 50 queued messages');
    assert.deepEqual(
      taken,
      Array.from({ length: 50 }, (_, index) => String(index + 1)),
      'in publish order',
    );
    assert.equal(second.counters.acksSent, 50);
    assert.equal(second.counters.acksBeforeCommit, 0);
  });

  it('counts a PUBACK that left without its route releasing it (the invariant /metrics reports)', async () => {
    const { mosquitto } = await scope.broker();
    const prefix = uniquePrefix('unsafe');
    const subscriber = link(mosquitto.url, `sub-${prefix}`);
    const route = keeping([`${prefix}/#`]);
    subscriber.setFallbackRoute(route);
    const subscribed = nextSuback(subscriber.client);
    subscriber.connect();
    await subscribed;
    // What the code before issue 12's fix did during start-up: mqtt.js's default handler, which acknowledges at once.
    subscriber.client.handleMessage = (_packet, done) => done();
    const sender = await publisher(mosquitto.url);
    await sender.publishAsync(`${prefix}/t`, '1', { qos: 1 });
    await waitFor(() => subscriber.counters.acksBeforeCommit === 1, 5000, 'the unsafe PUBACK to be counted');
    assert.equal(route.received.length, 0, 'the reading never reached ingest');
  });

  it('replays publishes that were in flight when the connection dropped, in order, before emitting connect', async () => {
    const { mosquitto } = await scope.broker();
    const proxy = await startTcpProxy(mosquitto.port);
    scope.onClose(proxy, () => proxy.close());
    const prefix = uniquePrefix('replay');
    const received: string[] = [];
    const watcher = await publisher(mosquitto.url);
    await watcher.subscribeAsync(`${prefix}/#`, { qos: 1 });
    watcher.on('message', (_topic, payload) => received.push(payload.toString()));

    const sender = link(proxy.url, `sender-${prefix}`);
    sender.connect();
    await waitFor(() => sender.client.connected, 5000, 'the sender to connect');
    proxy.blackhole();
    const settled: string[] = [];
    for (let index = 1; index <= 5; index++) {
      sender.client.publish(`${prefix}/t`, String(index), { qos: 1 }, (error) => settled.push(error ? `error ${index}` : String(index)));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(settled, [], 'in the black hole, nothing is confirmed');
    const settledAtConnect: string[][] = [];
    sender.client.on('connect', () => settledAtConnect.push([...settled]));
    proxy.drop();
    proxy.heal();
    await waitFor(() => settledAtConnect.length > 0, 10_000, 'the reconnect');
    assert.deepEqual(settledAtConnect[0], ['1', '2', '3', '4', '5'], 'every replayed publish confirmed, in order, before connect');
    await waitFor(() => received.length >= 5, 5000, 'the watcher to receive them');
    assert.deepEqual([...new Set(received)], ['1', '2', '3', '4', '5']);
  });
});
