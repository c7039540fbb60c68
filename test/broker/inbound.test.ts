/**
 * The inbound router and its PUBACK sequencer (src/broker/inbound.ts), on their own: which route takes a message,
 * what waits while no route claims it, and when (and in which order) a PUBACK may leave.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AckSequencer, InboundRouter, type Delivery, type Route } from '../../src/broker/inbound.js';
import { topicMatches } from '../../src/broker/topicFilter.js';
import { createLogger } from '../../src/log.js';

/** A route that keeps what it receives, for the test to settle. */
function keeping(name: string, filters: string[]): Route & { received: Delivery[] } {
  const received: Delivery[] = [];
  return { name, filters, qos: 1, received, receive: (delivery) => void received.push(delivery) };
}

function harness(options: { maxParked?: number } = {}) {
  const acked: number[] = [];
  const sequencer = new AckSequencer((messageId) => acked.push(messageId));
  let redeliveries = 0;
  const router = new InboundRouter({ maxParked: options.maxParked, requestRedelivery: () => redeliveries++, log: createLogger('silent') });
  let nextId = 1;
  const deliver = (topic: string) => {
    const messageId = nextId++;
    router.dispatch({ topic, payload: Buffer.from(String(messageId)), qos: 1, redelivered: false, settle: sequencer.open(messageId) });
    return messageId;
  };
  const close = () => {
    sequencer.reset();
    router.connectionClosed();
  };
  return { acked, sequencer, router, deliver, close, redeliveries: () => redeliveries };
}

describe('InboundRouter', () => {
  it('holds every message unacknowledged while no route claims it, and hands them to ingest in arrival order once it is in place', () => {
    const { router, deliver, acked } = harness();
    for (let index = 0; index < 5; index++) deliver(`sensors/dev/t${index}`);
    assert.deepEqual(acked, [], 'nothing may be acknowledged before ingest exists');
    assert.equal(router.parkedNow, 5);
    const ingest = keeping('ingest', ['sensors/+/+']);
    router.setFallback(ingest);
    assert.deepEqual(
      ingest.received.map((delivery) => delivery.topic),
      ['sensors/dev/t0', 'sensors/dev/t1', 'sensors/dev/t2', 'sensors/dev/t3', 'sensors/dev/t4'],
    );
    assert.deepEqual(acked, [], 'handed over, not acknowledged: ingest acknowledges after its commit');
    for (const delivery of ingest.received) delivery.ack();
    assert.deepEqual(acked, [1, 2, 3, 4, 5]);
  });

  it('gives a parked message to the route added later for its topic, and the rest to the fallback', () => {
    const { router, deliver } = harness();
    deliver('homeassistant/status');
    deliver('sensors/a/b');
    const birth = keeping('homeassistant', ['homeassistant/status']);
    router.add(birth);
    assert.deepEqual(
      birth.received.map((delivery) => delivery.topic),
      ['homeassistant/status'],
    );
    assert.equal(router.parkedNow, 1);
    const ingest = keeping('ingest', ['sensors/#']);
    router.setFallback(ingest);
    assert.deepEqual(
      ingest.received.map((delivery) => delivery.topic),
      ['sensors/a/b'],
    );
  });

  it('routes a topic to its own route before the fallback, even when the fallback filter matches it too', () => {
    const { router, deliver } = harness();
    const ingest = keeping('ingest', ['#']);
    const train = keeping('train', ['forecastd/+/train']);
    router.setFallback(ingest);
    router.add(train);
    deliver('forecastd/room/train');
    deliver('forecastd/room/other');
    assert.deepEqual(
      train.received.map((delivery) => delivery.topic),
      ['forecastd/room/train'],
    );
    assert.deepEqual(
      ingest.received.map((delivery) => delivery.topic),
      ['forecastd/room/other'],
    );
  });

  it('sends PUBACKs in arrival order: a later message settled first waits for the earlier one', () => {
    const { router, deliver, acked } = harness();
    const ingest = keeping('ingest', ['#']);
    router.setFallback(ingest);
    deliver('a');
    deliver('b');
    deliver('c');
    ingest.received[2].ack();
    ingest.received[1].ack();
    assert.deepEqual(acked, []);
    ingest.received[0].ack();
    assert.deepEqual(acked, [1, 2, 3]);
  });

  it('skips a withheld message without a PUBACK and goes on with the next', () => {
    const { router, deliver, acked } = harness();
    const ingest = keeping('ingest', ['#']);
    router.setFallback(ingest);
    deliver('a');
    deliver('b');
    ingest.received[1].ack();
    ingest.received[0].withhold();
    assert.deepEqual(acked, [2]);
  });

  it('never acknowledges on a new connection what came in on the one before (the broker redelivers it)', () => {
    const { router, deliver, acked, close } = harness();
    const ingest = keeping('ingest', ['#']);
    router.setFallback(ingest);
    deliver('a');
    close();
    ingest.received[0].ack();
    assert.deepEqual(acked, [], 'a settlement of a closed connection sends nothing');
    deliver('a again');
    ingest.received[1].ack();
    assert.deepEqual(acked, [2]);
  });

  it('after intake closes, leaves parked and later messages unacknowledged', () => {
    const { router, deliver, acked } = harness();
    deliver('parked');
    router.closeIntake();
    const ingest = keeping('ingest', ['#']);
    router.setFallback(ingest);
    deliver('late');
    assert.deepEqual(ingest.received, []);
    assert.deepEqual(acked, []);
    assert.equal(router.counters.afterClose, 1);
  });

  it('beyond maxParked, leaves messages unacknowledged and asks for a redelivery once ingest is in place', () => {
    const { router, deliver, acked, redeliveries } = harness({ maxParked: 2 });
    deliver('a');
    deliver('b');
    deliver('c');
    assert.equal(router.counters.parkedOverflow, 1);
    const ingest = keeping('ingest', ['#']);
    router.setFallback(ingest);
    assert.equal(redeliveries(), 1);
    for (const delivery of ingest.received) delivery.ack();
    assert.deepEqual(acked, [1, 2], 'the overflowing message was not acknowledged');
  });

  it('whatever the interleaving of arrivals, route start-up and settlements, a PUBACK leaves only for a settled-ack message, each once, in arrival order', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.constant('arrive' as const),
            fc.constant('ready' as const),
            fc.constant('close' as const),
            fc.nat(40).map((index) => ({ ack: index })),
          ),
          { maxLength: 80 },
        ),
        (steps) => {
          const { router, deliver, acked, close } = harness({ maxParked: 1000 });
          const ingest = keeping('ingest', ['#']);
          const byMessage = new Map<number, { generation: number; acked: boolean }>();
          let generation = 0;
          const arrivals: number[] = [];
          for (const step of steps) {
            if (step === 'arrive') {
              const id = deliver('sensors/x');
              arrivals.push(id);
              byMessage.set(id, { generation, acked: false });
            } else if (step === 'ready') router.setFallback(ingest);
            else if (step === 'close') {
              close();
              generation++;
            } else {
              const delivery = ingest.received[step.ack];
              if (!delivery) continue;
              delivery.ack();
              byMessage.get(Number(delivery.payload.toString()))!.acked = true;
            }
          }
          // Every PUBACK names a message its route acknowledged, once, never across a reconnect, in increasing order.
          assert.equal(new Set(acked).size, acked.length);
          for (const id of acked) assert.ok(byMessage.get(id)?.acked, `PUBACK ${id} only after its ack()`);
          assert.deepEqual(
            [...acked].sort((a, b) => a - b),
            acked,
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('topicMatches (MQTT topic filters)', () => {
  for (const [filter, topic, expected] of [
    ['sensors/+/+', 'sensors/a/b', true],
    ['sensors/+/+', 'sensors/a', false],
    ['sensors/+/+', 'sensors/a/b/c', false],
    ['sensors/#', 'sensors', true],
    ['sensors/#', 'sensors/a/b/c', true],
    ['#', 'a/b', true],
    ['#', '$SYS/broker/publish/messages/dropped', false],
    ['+/broker/publish/messages/dropped', '$SYS/broker/publish/messages/dropped', false],
    ['$SYS/broker/publish/messages/dropped', '$SYS/broker/publish/messages/dropped', true],
    ['homeassistant/status', 'homeassistant/status', true],
    ['homeassistant/status', 'homeassistant/status/x', false],
    ['$share/fleet/sensors/+/+', 'sensors/a/b', true],
    ['a/+/c', 'a//c', true],
  ] as const) {
    it(`${filter} ${expected ? 'matches' : 'does not match'} ${topic}`, () => assert.equal(topicMatches(filter, topic), expected));
  }
});
