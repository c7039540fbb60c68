/**
 * BrokerDropWatch: the broker's `$SYS/broker/publish/messages/dropped` becomes forecastd's own figure and a warning,
 * and those messages never reach the ingest handler. The end-to-end check against a Mosquitto that really drops
 * is in test/faults/queueOverflow.test.ts.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { IPublishPacket, MqttClient } from 'mqtt';
import { BROKER_DROPPED_MESSAGE, BROKER_DROPPED_TOPIC, BrokerDropWatch } from '../../src/broker/brokerDrops.js';
import { createLogger } from '../../src/log.js';

type Handler = (packet: IPublishPacket, done: (error?: Error) => void) => void;

/** The part of an mqtt.js client the watch uses: connect events, subscribe, and the message handler chain. */
class FakeClient extends EventEmitter {
  connected = false;
  /** The SUBACK code the fake broker answers with (≥ 0x80: refused, as by an ACL). */
  subackCode = 0;
  readonly subscriptions: Array<{ topic: string; qos: number }> = [];
  readonly ingested: string[] = [];
  handleMessage: Handler = (packet, done) => {
    this.ingested.push(packet.topic);
    done();
  };

  subscribe(topic: string, options: { qos: number }, callback?: (error: Error | null) => void): this {
    this.subscriptions.push({ topic, qos: options.qos });
    // mqtt.js reports a refused filter as an error carrying the SUBACK reason code.
    callback?.(this.subackCode >= 0x80 ? Object.assign(new Error('Subscribe error: Not authorized'), { code: this.subackCode }) : null);
    return this;
  }

  connect(): void {
    this.connected = true;
    this.emit('connect', { sessionPresent: true });
  }

  /** Delivers a message the way mqtt.js does; resolves when the handler called done. */
  deliver(topic: string, payload: string): Promise<Error | undefined> {
    const packet = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, dup: false, retain: true } as IPublishPacket;
    return new Promise((resolve) => this.handleMessage(packet, resolve));
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
  const client = new FakeClient();
  const { log, warnings } = capturedLog();
  const watch = new BrokerDropWatch({ client: client as unknown as MqttClient, log });
  watch.start();
  return { client, watch, warnings };
}

describe('BrokerDropWatch', () => {
  it('subscribes to the $SYS drop counter at QoS 0 on every connect, and stops doing so after stop()', () => {
    const { client, watch } = started();
    assert.deepEqual(client.subscriptions, [], 'nothing to subscribe before the first connect');
    client.connect();
    client.connect();
    assert.deepEqual(client.subscriptions, [
      { topic: BROKER_DROPPED_TOPIC, qos: 0 },
      { topic: BROKER_DROPPED_TOPIC, qos: 0 },
    ]);
    watch.stop();
    client.connect();
    assert.equal(client.subscriptions.length, 2);
  });

  it('a subscription the broker refuses (ACL) is explained once and not asked for again on reconnects', () => {
    const client = new FakeClient();
    client.subackCode = 0x87;
    const { log, lines } = capturedLog();
    new BrokerDropWatch({ client: client as unknown as MqttClient, log }).start();
    client.connect();
    client.connect();
    client.connect();
    assert.equal(client.subscriptions.length, 1, 'one refused SUBSCRIBE, not one per connect');
    const explained = lines.filter((line) => line.reasonCode === 0x87);
    assert.equal(explained.length, 1);
    assert.equal(explained[0].level, 30, 'info: a broker may keep $SYS private, forecastd works on without the figure');
    assert.match(String(explained[0].msg), /grant read/);
  });

  it('subscribes at once when started on a client that is already connected', () => {
    const client = new FakeClient();
    client.connected = true;
    new BrokerDropWatch({ client: client as unknown as MqttClient, log: capturedLog().log }).start();
    assert.deepEqual(client.subscriptions, [{ topic: BROKER_DROPPED_TOPIC, qos: 0 }]);
  });

  it('takes the $SYS messages away from the ingest handler and passes every other topic on to it', async () => {
    const { client, watch } = started();
    assert.equal(await client.deliver(BROKER_DROPPED_TOPIC, '7'), undefined, 'acknowledged without an error');
    assert.equal(await client.deliver('sensors/kitchen/temperature', '21.5'), undefined);
    assert.deepEqual(client.ingested, ['sensors/kitchen/temperature']);
    assert.equal(watch.dropped, 7);
  });

  it('is unknown (null) until the broker publishes the counter', () => {
    const { watch, warnings } = started();
    assert.equal(watch.dropped, null);
    assert.deepEqual(warnings(), []);
  });

  it('warns when the count grows, with the increase and the advice, and stays quiet while it does not', async () => {
    const { client, watch, warnings } = started();
    await client.deliver(BROKER_DROPPED_TOPIC, '0');
    assert.equal(watch.dropped, 0);
    assert.equal(warnings().length, 0, 'zero drops is no news');
    await client.deliver(BROKER_DROPPED_TOPIC, '2000');
    await client.deliver(BROKER_DROPPED_TOPIC, '2000');
    await client.deliver(BROKER_DROPPED_TOPIC, '2150');
    assert.equal(watch.dropped, 2150);
    const seen = warnings();
    assert.deepEqual(seen.map((line) => [line.dropped, line.increase, line.countedSince]), [
      [2000, 2000, 'previous value'],
      [2150, 150, 'previous value'],
    ]);
    assert.match(String(seen[0].advice), /max_queued_messages/);
    assert.match(String(seen[0].advice), /max_queued_bytes/);
    assert.equal(seen[0].level, 40, 'a warning (pino level 40)');
  });

  it('warns on the first value it sees when the broker has already dropped messages (e.g. while forecastd was down)', async () => {
    const { client, warnings } = started();
    await client.deliver(BROKER_DROPPED_TOPIC, '350');
    assert.deepEqual(warnings().map((line) => [line.dropped, line.increase]), [[350, 350]]);
    assert.match(String(warnings()[0].countedSince), /broker start/);
  });

  it('treats a lower value as a broker restart: the new count is all new drops', async () => {
    const { client, watch, warnings } = started();
    await client.deliver(BROKER_DROPPED_TOPIC, '500');
    await client.deliver(BROKER_DROPPED_TOPIC, '40');
    assert.equal(watch.dropped, 40);
    assert.deepEqual(warnings().map((line) => [line.dropped, line.increase, line.countedSince]).at(-1), [40, 40, 'broker restart']);
    await client.deliver(BROKER_DROPPED_TOPIC, '0');
    assert.equal(warnings().length, 2, 'a restart that reset the count to zero is no warning');
  });

  it('ignores payloads that are not a count, keeping the last good value', async () => {
    const { client, watch, warnings } = started();
    await client.deliver(BROKER_DROPPED_TOPIC, '12');
    for (const payload of ['', ' ', 'lots', '-1', '1.5', '1e400', 'NaN', '0x10']) await client.deliver(BROKER_DROPPED_TOPIC, payload);
    assert.equal(watch.dropped, 12);
    assert.equal(warnings().length, 1);
    assert.deepEqual(client.ingested, [], 'not even a malformed $SYS payload reaches ingest');
  });
});
