/**
 * The group commit when storage fails (docs/reliability.md, F5), through the real router and PUBACK sequencer with a stand-in
 * connection: nothing of a failed group is
 * acknowledged, one error line says so, later messages wait without being processed, and a retry on the same connection
 * stores and acknowledges them all, in arrival order, once the disk has room again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckSequencer, InboundRouter } from '../../src/broker/inbound.js';
import { Ingestor } from '../../src/ingest/ingestor.js';
import { IngestRoute } from '../../src/ingest/ingestRoute.js';
import { createTopicMapper } from '../../src/ingest/topics.js';
import { createLogger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { waitFor } from '../helpers/broker.js';

const NOW = Date.UTC(2026, 0, 1, 12);
const RETRY_MS = 20;

/** What SQLite throws when a commit finds no room; it has rolled the transaction back by then. */
const diskFull = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

type LogLine = { level: number; msg: string } & Record<string, unknown>;

/** The broker side of the adapter: PUBACKs land in `acked`; `close()` is a lost connection. */
class StandInConnection {
  readonly acked: number[] = [];
  reconnects = 0;
  readonly sequencer = new AckSequencer((messageId) => this.acked.push(messageId));
  router!: InboundRouter;

  close(): void {
    this.sequencer.reset();
    this.router.connectionClosed();
  }
}

function setup(options: { deadLetterFails?: () => boolean; maxHeld?: number } = {}) {
  const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
  const store = new ReadingStore(db);
  const disk = { full: false };
  const commit = store.commitGroup.bind(store);
  store.commitGroup = () => {
    if (disk.full && store.inGroup) {
      db.exec('ROLLBACK');
      throw diskFull();
    }
    commit();
  };
  const lines: LogLine[] = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  // A dead-letter table that cannot grow either: SQLite may answer that by rolling back the whole open transaction.
  const deadLetters = {
    record: () => {
      if (!options.deadLetterFails?.()) return;
      if (db.inTransaction) db.exec('ROLLBACK');
      throw diskFull();
    },
  };
  const ingestor = new Ingestor({
    store,
    mapper: createTopicMapper([{ filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' }]),
    limits: { maxPayloadBytes: 1024, maxFutureMs: 300_000, maxAgeMs: 86_400_000, maxReadings: 10 },
    clock: () => NOW,
    log,
    deadLetters,
  });
  const client = new StandInConnection();
  const subscription = new IngestRoute(
    { ingestor, store, filters: ['sensors/#'], requestRedelivery: () => void client.reconnects++, log },
    { retryAfterFailureMs: RETRY_MS, maxHeld: options.maxHeld },
  );
  client.router = new InboundRouter({ requestRedelivery: () => undefined, log });
  client.router.setFallback(subscription);
  let nextId = 1;
  /** Delivers readings the way the adapter does: one dispatch after the other, within one event-loop turn. */
  const deliver = (payloads: string[]) => {
    for (const payload of payloads) {
      const messageId = nextId++;
      client.router.dispatch({
        topic: 'sensors/room/temp',
        payload: Buffer.from(payload),
        qos: 1,
        redelivered: false,
        settle: client.sequencer.open(messageId),
      });
    }
  };
  const reading = (second: number) => JSON.stringify({ value: second, ts: NOW - 60_000 + second * 1000 });
  const errors = () => lines.filter((line) => line.level >= 50);
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return { db, store, disk, client, ingestor, subscription, deliver, reading, lines, errors, turn };
}

describe('group commit on a full disk', () => {
  it('acknowledges nothing of a failed group, logs it once, and stores and acknowledges everything in order once there is room', async () => {
    const { store, disk, client, ingestor, subscription, deliver, reading, lines, errors, turn } = setup();
    deliver([reading(1), reading(2)]);
    await turn();
    assert.deepEqual(client.acked, [1, 2], 'a healthy group is acknowledged after its commit');

    disk.full = true;
    deliver([reading(3), reading(4), reading(5)]);
    await turn();
    assert.deepEqual(client.acked, [1, 2], 'nothing of the failed group is acknowledged');
    assert.equal(store.count(), 2);
    assert.equal(ingestor.counters.stored, 2, 'the failed group does not count as stored');
    assert.equal(ingestor.counters.received, 2, 'nor as received: it will be received again');
    assert.deepEqual(subscription.health(), {
      storing: false,
      failingSince: subscription.health().failingSince,
      lastError: 'database or disk is full',
      held: 3,
    });
    assert.equal(errors().length, 1);
    assert.match(errors()[0].msg, /cannot store readings \(is the disk full\?\)/);
    assert.equal(errors()[0].code, 'SQLITE_FULL');

    // While full, later messages wait for the retry instead of failing one by one.
    deliver([reading(6), reading(7)]);
    assert.equal(subscription.health().held, 5);
    assert.equal(ingestor.counters.received, 2, 'held messages are not processed on arrival');
    const failedBefore = subscription.counters.failedGroups;
    await waitFor(() => subscription.counters.failedGroups >= failedBefore + 3, 5_000, 'three failed retries');
    assert.equal(errors().length, 1, 'failed retries add no error line');
    assert.ok(
      lines.some((line) => line.msg === 'retry failed: still cannot store readings'),
      'each failed retry is a debug line',
    );
    assert.deepEqual(client.acked, [1, 2]);
    assert.equal(client.reconnects, 0, 'retries stay on the same connection');

    disk.full = false;
    await waitFor(() => subscription.health().storing, 5_000, 'a retry to commit');
    assert.deepEqual(client.acked, [1, 2, 3, 4, 5, 6, 7], 'acknowledged after the commit, in arrival order');
    assert.equal(store.count(), 7);
    assert.deepEqual(
      { received: ingestor.counters.received, stored: ingestor.counters.stored, duplicates: ingestor.counters.duplicates },
      { received: 7, stored: 7, duplicates: 0 },
    );
    assert.equal(subscription.health().held, 0);
    assert.equal(subscription.counters.recoveries, 1);
    assert.equal(lines.filter((line) => line.msg === 'storing readings again').length, 1);

    deliver([reading(8)]);
    await turn();
    assert.deepEqual(client.acked.at(-1), 8, 'the group commit is back to normal');
    assert.equal(errors().length, 1);
  });

  it('fails the whole group when SQLite rolled its transaction back under a caught error, instead of acknowledging rows that are gone', async () => {
    let deadLetterFails = true;
    const { store, client, ingestor, subscription, deliver, reading, turn } = setup({ deadLetterFails: () => deadLetterFails });
    // A valid reading, then a malformed one whose dead letter cannot be written (the ingestor catches that error).
    deliver([reading(1), 'not a number']);
    await turn();
    assert.deepEqual(client.acked, [], 'the valid reading was rolled back with the transaction: it must not be acknowledged');
    assert.equal(store.count(), 0);
    assert.equal(subscription.health().storing, false);
    assert.equal(subscription.health().held, 2);
    assert.equal(ingestor.rejectedTotal(), 0, 'the rejection of a group that did not commit does not count');

    deadLetterFails = false;
    await waitFor(() => subscription.health().storing, 5_000, 'a retry to commit');
    assert.deepEqual(client.acked, [1, 2]);
    assert.equal(store.count(), 1);
    assert.equal(ingestor.counters.received, 2);
    assert.equal(
      ingestor.counters.stored + ingestor.counters.duplicates + ingestor.rejectedTotal(),
      ingestor.counters.received,
      'received = stored + duplicates + rejected',
    );
  });

  it('holds at most maxHeld messages; after the recovery it reconnects once, so that the broker resends the others', async () => {
    const { disk, client, subscription, deliver, reading, turn, store } = setup({ maxHeld: 3 });
    disk.full = true;
    deliver([reading(1), reading(2)]);
    await turn();
    deliver([reading(3), reading(4), reading(5)]);
    assert.equal(subscription.health().held, 3, 'the cap holds');
    disk.full = false;
    await waitFor(() => subscription.health().storing, 5_000, 'a retry to commit');
    assert.deepEqual(client.acked, [1, 2, 3], 'the held ones are stored and acknowledged');
    assert.equal(store.count(), 3);
    assert.equal(client.reconnects, 1, 'one reconnect brings the others back');
  });

  it('lets go of held messages when the connection closes: the broker sends them again on the next one', async () => {
    const { disk, client, subscription, deliver, reading, turn, store } = setup();
    disk.full = true;
    deliver([reading(1), reading(2)]);
    await turn();
    assert.equal(subscription.health().held, 2);
    client.close();
    assert.equal(subscription.health().held, 0);
    assert.equal(subscription.health().storing, false, 'still failing until a commit succeeds');

    disk.full = false;
    deliver([reading(1), reading(2)]);
    await waitFor(() => subscription.health().storing, 5_000, 'the redelivered messages to be stored');
    assert.deepEqual(client.acked, [3, 4], 'the redeliveries are acknowledged');
    assert.equal(store.count(), 2);
  });
});
