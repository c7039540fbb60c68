/**
 * BrokerDropWatch: the broker's `$SYS/broker/publish/messages/dropped` becomes forecastd's own figure and a warning,
 * and those messages never reach ingest (the watch is a route of its own). The end-to-end check against a Mosquitto
 * that really drops is in test/faults/queueOverflow.test.ts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { BROKER_DROPPED_MESSAGE, BrokerDropWatch } from '../../src/broker/brokerDrops.js';
import { InboundRouter } from '../../src/broker/inbound.js';
import { BROKER_DROPPED_TOPIC } from '../../src/broker/topics.js';
import { createLogger } from '../../src/log.js';

/** A router with the watch as a route and a stand-in ingest as the fallback; settled PUBACK outcomes are recorded. */
class RoutedWatch {
  readonly ingested: string[] = [];
  readonly settled: string[] = [];
  readonly router: InboundRouter;

  constructor(readonly watch: BrokerDropWatch) {
    this.router = new InboundRouter({ requestRedelivery: () => undefined, log: createLogger('silent') });
    this.router.add(watch);
    this.router.setFallback({
      name: 'ingest',
      filters: ['sensors/#'],
      qos: 1,
      receive: (delivery) => {
        this.ingested.push(delivery.topic);
        delivery.ack();
      },
    });
  }

  /** Delivers a message the way the adapter does (QoS 0, as the watch subscribes); resolves once it is settled. */
  deliver(topic: string, payload: string): void {
    this.router.dispatch({ topic, payload: Buffer.from(payload), qos: 0, redelivered: false, settle: (outcome) => void this.settled.push(outcome) });
  }
}

function capturedLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString().split('\n')) if (text.trim()) lines.push(JSON.parse(text) as Record<string, unknown>);
      callback();
    },
  });
  return { log: createLogger('info', sink), lines, warnings: () => lines.filter((line) => line.msg === BROKER_DROPPED_MESSAGE) };
}

function started() {
  const { log, warnings } = capturedLog();
  const watch = new BrokerDropWatch({ log });
  const client = new RoutedWatch(watch);
  return { client, watch, warnings };
}

describe('BrokerDropWatch', () => {
  it('asks for the $SYS drop counter at QoS 0', () => {
    const { watch } = started();
    assert.deepEqual(watch.filters, [BROKER_DROPPED_TOPIC]);
    assert.equal(watch.qos, 0);
  });

  it('a subscription the broker refuses (ACL) is explained once and not asked for again on reconnects', () => {
    const { log, lines } = capturedLog();
    const watch = new BrokerDropWatch({ log });
    watch.subscribed({ granted: [], refused: [{ filter: BROKER_DROPPED_TOPIC, reasonCode: 0x87 }], error: null });
    assert.deepEqual(watch.filters, [], 'no filter to subscribe on the next connect');
    const explained = lines.filter((line) => line.reasonCode === 0x87);
    assert.equal(explained.length, 1);
    assert.equal(explained[0].level, 30, 'info: a broker may keep $SYS private, forecastd works on without the figure');
    assert.match(String(explained[0].msg), /grant read/);
  });

  it('takes the $SYS messages away from ingest and leaves every other topic to it', () => {
    const { client, watch } = started();
    client.deliver(BROKER_DROPPED_TOPIC, '7');
    client.deliver('sensors/kitchen/temperature', '21.5');
    assert.deepEqual(client.ingested, ['sensors/kitchen/temperature']);
    assert.deepEqual(client.settled, ['ack', 'ack']);
    assert.equal(watch.dropped, 7);
  });

  it('is unknown (null) until the broker publishes the counter', () => {
    const { watch, warnings } = started();
    assert.equal(watch.dropped, null);
    assert.deepEqual(warnings(), []);
  });

  it('warns when the count grows, with the increase and the advice, and stays quiet while it does not', () => {
    const { client, watch, warnings } = started();
    client.deliver(BROKER_DROPPED_TOPIC, '0');
    assert.equal(watch.dropped, 0);
    assert.equal(warnings().length, 0, 'zero drops is no news');
    client.deliver(BROKER_DROPPED_TOPIC, '2000');
    client.deliver(BROKER_DROPPED_TOPIC, '2000');
    client.deliver(BROKER_DROPPED_TOPIC, '2150');
    assert.equal(watch.dropped, 2150);
    const seen = warnings();
    assert.deepEqual(
      seen.map((line) => [line.dropped, line.increase, line.countedSince]),
      [
        [2000, 2000, 'previous value'],
        [2150, 150, 'previous value'],
      ],
    );
    assert.match(String(seen[0].advice), /max_queued_messages/);
    assert.match(String(seen[0].advice), /max_queued_bytes/);
    assert.equal(seen[0].level, 40, 'a warning (pino level 40)');
  });

  it('warns on the first value it sees when the broker has already dropped messages (e.g. while forecastd was down)', () => {
    const { client, warnings } = started();
    client.deliver(BROKER_DROPPED_TOPIC, '350');
    assert.deepEqual(
      warnings().map((line) => [line.dropped, line.increase]),
      [[350, 350]],
    );
    assert.match(String(warnings()[0].countedSince), /broker start/);
  });

  it('treats a lower value as a broker restart: the new count is all new drops', () => {
    const { client, watch, warnings } = started();
    client.deliver(BROKER_DROPPED_TOPIC, '500');
    client.deliver(BROKER_DROPPED_TOPIC, '40');
    assert.equal(watch.dropped, 40);
    assert.deepEqual(
      warnings()
        .map((line) => [line.dropped, line.increase, line.countedSince])
        .at(-1),
      [40, 40, 'broker restart'],
    );
    client.deliver(BROKER_DROPPED_TOPIC, '0');
    assert.equal(warnings().length, 2, 'a restart that reset the count to zero is no warning');
  });

  it('ignores payloads that are not a count, keeping the last good value', () => {
    const { client, watch, warnings } = started();
    client.deliver(BROKER_DROPPED_TOPIC, '12');
    for (const payload of ['', ' ', 'lots', '-1', '1.5', '1e400', 'NaN', '0x10']) client.deliver(BROKER_DROPPED_TOPIC, payload);
    assert.equal(watch.dropped, 12);
    assert.equal(warnings().length, 1);
    assert.deepEqual(client.ingested, [], 'not even a malformed $SYS payload reaches ingest');
  });
});
