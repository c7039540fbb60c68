import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import type { TopicRule } from '../../src/config/schema.js';
import { Ingestor } from '../../src/ingest/ingestor.js';
import { REJECTION_REASONS, type DecodeLimits, type RejectionReason } from '../../src/ingest/payload.js';
import { createTopicMapper } from '../../src/ingest/topics.js';
import type { Logger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { DeadLetterStore, type DeadLetterOptions } from '../../src/store/deadLetters.js';
import { ReadingStore } from '../../src/store/readings.js';

/** 2026-01-01T12:00:00Z. */
const NOW = 1_767_268_800_000;
const NOW_S = NOW / 1000;
const HOUR_MS = 3_600_000;

const bytes = (text: string) => new TextEncoder().encode(text);

interface LogCall {
  fields: Record<string, unknown>;
  message: string;
}

const sha256 = (payload: Uint8Array) => createHash('sha256').update(payload).digest('hex');

const RULES: TopicRule[] = [
  { filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' },
  { filter: 'zigbee2mqtt/+', pattern: 'zigbee2mqtt/{device}', series: '{device}' },
  { filter: 'senml/+', pattern: 'senml/{device}', series: '{device}', format: 'senml' },
  { filter: 'shelly/+', pattern: 'shelly/{device}', series: '{device}.power', valuePath: 'data.apower', timestampPath: 'meta.ts' },
];

/** A real store on an in-memory database, a settable clock and a logger that records its warnings. */
function setup(options: { limits?: Partial<DecodeLimits>; deadLetters?: Omit<DeadLetterOptions, 'pruneEvery'> & { pruneEvery?: number } } = {}) {
  const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
  const store = new ReadingStore(db);
  const warnings: LogCall[] = [];
  const log = { warn: (fields: Record<string, unknown>, message: string) => warnings.push({ fields, message }) } as unknown as Logger;
  const clock = { now: NOW, elapsed: 0 };
  const deadLetters = options.deadLetters ? new DeadLetterStore(db, options.deadLetters, NOW) : undefined;
  const ingestor = new Ingestor({
    store,
    mapper: createTopicMapper(RULES),
    limits: { maxPayloadBytes: 64, maxFutureMs: 300_000, maxAgeMs: 24 * HOUR_MS, maxReadings: 3, ...options.limits },
    clock: () => clock.now,
    // Moves with the wall clock unless a test steps the wall clock alone.
    elapsed: () => clock.elapsed + clock.now,
    log,
    deadLetters,
  });
  const stored = (series: string) => {
    const data = store.read(series, NOW - 48 * HOUR_MS, NOW + HOUR_MS);
    return { timestampsMs: [...data.timestampsMs], values: [...data.values] };
  };
  return { db, store, ingestor, warnings, clock, stored, deadLetters };
}

function rejectedOnly(counts: Partial<Record<RejectionReason, number>>): Record<RejectionReason, number> {
  return Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, counts[reason] ?? 0])) as Record<RejectionReason, number>;
}

describe('Ingestor', () => {
  it('stores a plain reading under the series its topic names, at the receive time', () => {
    const { ingestor, stored } = setup();
    ingestor.handle('sensors/kitchen/temperature', bytes('21.5'));
    assert.deepEqual(stored('kitchen.temperature'), { timestampsMs: [NOW], values: [21.5] });
    assert.deepEqual(
      { ...ingestor.counters, rejected: undefined },
      { received: 1, stored: 1, duplicates: 0, rejected: undefined, deadLettered: 0, deadLetterFailures: 0 },
    );
  });

  it('stores the five numeric fields of a zigbee2mqtt message and skips its state fields', () => {
    const { ingestor, store, stored } = setup({ limits: { maxPayloadBytes: 4096, maxReadings: 1000 } });
    const message =
      '{"battery":97,"humidity":41.5,"linkquality":120,"temperature":21.3,"voltage":2985,"battery_low":false,"update":{"state":"idle"},"last_seen":"2026-11-28T10:00:00.000Z"}';
    ingestor.handle('zigbee2mqtt/living_room_sensor', bytes(message));
    assert.equal(store.count(), 5);
    assert.equal(ingestor.counters.stored, 5);
    assert.equal(ingestor.rejectedTotal(), 0);
    assert.deepEqual(stored('living_room_sensor.temperature'), { timestampsMs: [NOW], values: [21.3] });
    assert.deepEqual(stored('living_room_sensor.voltage'), { timestampsMs: [NOW], values: [2985] });
    for (const skipped of ['battery_low', 'update', 'last_seen']) assert.equal(store.seriesId(`living_room_sensor.${skipped}`, false), undefined);
  });

  it('stores a SenML pack under <rule series>.<bn + n>', () => {
    const { ingestor, stored } = setup({ limits: { maxPayloadBytes: 4096 } });
    ingestor.handle(
      'senml/meter',
      bytes('[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","t":-60,"v":120.1},{"n":"current","u":"A","v":1.2}]'),
    );
    assert.deepEqual(stored('meter.urn:dev:ow:10e2073a01080063:voltage'), { timestampsMs: [NOW - 60_000], values: [120.1] });
    assert.deepEqual(stored('meter.urn:dev:ow:10e2073a01080063:current'), { timestampsMs: [NOW], values: [1.2] });
  });

  it('reads the value and time at the paths of the rule, as the series of the rule', () => {
    const { ingestor, stored, store } = setup({ limits: { maxPayloadBytes: 4096 } });
    ingestor.handle('shelly/plug', bytes(`{"data":{"apower":41.7,"voltage":231},"meta":{"ts":${NOW_S - 30}}}`));
    assert.deepEqual(stored('plug.power'), { timestampsMs: [NOW - 30_000], values: [41.7] });
    assert.equal(store.count(), 1);
  });

  it('stores a batch of readings of one series', () => {
    const { ingestor, stored } = setup({ limits: { maxPayloadBytes: 4096 } });
    ingestor.handle('sensors/a/b', bytes(`[{"value":1,"ts":${NOW_S - 120}},{"value":2,"ts":${NOW_S - 60}}]`));
    assert.deepEqual(stored('a.b'), { timestampsMs: [NOW - 120_000, NOW - 60_000], values: [1, 2] });
  });

  it('stores each field of a JSON object as <series>.<field>, at the payload time', () => {
    const { ingestor, stored, store } = setup();
    ingestor.handle('sensors/kitchen/climate', bytes(`{"temperature":21.5,"humidity":48,"ts":${NOW_S - 60}}`));
    assert.deepEqual(stored('kitchen.climate.temperature'), { timestampsMs: [NOW - 60_000], values: [21.5] });
    assert.deepEqual(stored('kitchen.climate.humidity'), { timestampsMs: [NOW - 60_000], values: [48] });
    assert.equal(store.count(), 2);
    assert.equal(ingestor.counters.stored, 2);
  });

  it('counts a redelivered reading as a duplicate and stores it once', () => {
    const { ingestor, stored, store, clock } = setup();
    const message = bytes(`{"value":7,"ts":${NOW_S - 10}}`);
    ingestor.handle('sensors/a/b', message);
    clock.now += 5_000; // the redelivery arrives later; the payload's own time makes it the same reading
    ingestor.handle('sensors/a/b', message);
    assert.equal(store.count(), 1);
    assert.deepEqual(stored('a.b'), { timestampsMs: [NOW - 10_000], values: [7] });
    assert.equal(ingestor.counters.received, 2);
    assert.equal(ingestor.counters.stored, 1);
    assert.equal(ingestor.counters.duplicates, 1);
  });

  it('keeps the first value when a duplicate carries another', () => {
    const { ingestor, stored } = setup();
    ingestor.handle('sensors/a/b', bytes('1'));
    ingestor.handle('sensors/a/b', bytes('2'));
    assert.deepEqual(stored('a.b').values, [1]);
    assert.equal(ingestor.counters.duplicates, 1);
  });

  it('counts each bad message under its reason and stores none of them', () => {
    const { ingestor, store } = setup();
    const bad: Array<[string, Uint8Array]> = [
      ['other/kitchen/temperature', bytes('21.5')], // unknown_topic
      ['sensors/a/b/c', bytes('21.5')], // unknown_topic: one level too many
      ['sensors/../x', bytes('21.5')], // bad_series_name: a rule matches, its name is unsafe
      ['sensors/a/b', bytes('warm')], // not_a_number
      ['sensors/a/b', bytes('1e400')], // non_finite
      ['sensors/a/b', bytes('1e16')], // out_of_range
      ['sensors/a/b', Uint8Array.from([0xff, 0xfe])], // not_text
      ['sensors/a/b', bytes(' '.repeat(64) + '1')], // too_large: 65 bytes > 64
      ['sensors/a/b', bytes('[1]')], // bad_json_shape
      ['sensors/a/b', bytes('{"value":1,"ts":"noon"}')], // bad_timestamp
      ['sensors/a/b', bytes(`{"value":1,"ts":${NOW_S - 86_401}}`)], // too_old
      ['sensors/a/b', bytes(`{"value":1,"ts":${NOW_S + 301}}`)], // in_future
      ['sensors/a/b', bytes('{"bad field":1}')], // bad_series_name
      ['sensors/a/b', bytes('['.repeat(40))], // too_deep
      ['sensors/a/b', bytes('[{"v":1},{"v":2},{"v":3},{"v":4}]')], // too_many_readings: 4 > 3
    ];
    for (const [topic, payload] of bad) ingestor.handle(topic, payload);
    assert.deepEqual(
      ingestor.counters.rejected,
      rejectedOnly({
        unknown_topic: 2,
        not_a_number: 1,
        non_finite: 1,
        out_of_range: 1,
        not_text: 1,
        too_large: 1,
        bad_json_shape: 1,
        bad_timestamp: 1,
        too_old: 1,
        in_future: 1,
        bad_series_name: 2,
        too_deep: 1,
        too_many_readings: 1,
      }),
    );
    assert.equal(ingestor.rejectedTotal(), 15);
    assert.equal(ingestor.counters.received, 15);
    assert.equal(ingestor.counters.stored, 0);
    assert.equal(store.count(), 0);
  });

  it('rejects a field that would make the series name longer than 128 characters', () => {
    const { ingestor, store, stored } = setup();
    const device = 'd'.repeat(100); // series "ddd…d.m": 102 characters
    ingestor.handle(`sensors/${device}/m`, bytes(`{"${'f'.repeat(25)}":1}`)); // 102 + 1 + 25 = 128: fits
    ingestor.handle(`sensors/${device}/m`, bytes(`{"${'g'.repeat(26)}":2}`)); // 129: too long
    assert.deepEqual(stored(`${device}.m.${'f'.repeat(25)}`).values, [1]);
    assert.equal(store.count(), 1);
    assert.equal(ingestor.counters.rejected.bad_series_name, 1);
  });

  it('logs the first rejection of a reason, then at most one per 10 s with the count it stands for', () => {
    const { ingestor, warnings, clock } = setup();
    ingestor.handle('sensors/a/b', bytes('warm'));
    clock.now = NOW + 1_000;
    ingestor.handle('sensors/a/b', bytes('hot'));
    clock.now = NOW + 9_999;
    ingestor.handle('sensors/a/b', bytes('cold'));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].message, 'reading rejected');
    assert.deepEqual(warnings[0].fields, {
      reason: 'not_a_number',
      topic: 'sensors/a/b',
      detail: 'neither a number nor JSON',
      payloadBytes: 4,
      payloadSha256: sha256(bytes('warm')),
      suppressedSinceLast: 0,
    });

    clock.now = NOW + 10_000;
    ingestor.handle('sensors/a/b', bytes('tepid'));
    assert.equal(warnings.length, 2);
    assert.equal(warnings[1].fields.suppressedSinceLast, 2);

    clock.now = NOW + 10_001;
    ingestor.handle('sensors/a/b', bytes('lukewarm'));
    assert.equal(warnings.length, 2);
    assert.equal(ingestor.counters.rejected.not_a_number, 5);
  });

  it('keeps logging rejections after the wall clock steps back: the rate limit counts elapsed time', () => {
    const { ingestor, warnings, clock } = setup();
    ingestor.handle('sensors/a/b', bytes('warm'));
    // NTP steps the wall clock back an hour; 10 s really pass.
    clock.now -= HOUR_MS;
    clock.elapsed += HOUR_MS + 10_000;
    ingestor.handle('sensors/a/b', bytes('hot'));
    assert.equal(warnings.length, 2, 'the second rejection is logged 10 s later, not an hour later');
  });

  it('rate-limits each reason on its own', () => {
    const { ingestor, warnings } = setup();
    ingestor.handle('sensors/a/b', bytes('warm'));
    ingestor.handle('other/topic', bytes('1'));
    ingestor.handle('sensors/a/b', bytes('1e400'));
    ingestor.handle('other/topic', bytes('1'));
    assert.deepEqual(
      warnings.map((call) => call.fields.reason),
      ['not_a_number', 'unknown_topic', 'non_finite'],
    );
  });

  it('never logs the payload, and caps the topic at 200 characters', () => {
    const { ingestor, warnings } = setup({ limits: { maxPayloadBytes: 4096 } });
    ingestor.handle('sensors/a/b', bytes('hunter2'));
    ingestor.handle(`x/${'t'.repeat(500)}`, bytes('1'));
    ingestor.handle('sensors/a/b', bytes('[{"n":"hunter3 x","v":1}]')); // bad_series_name: the name is not echoed
    ingestor.handle('sensors/a/b', bytes('{"hunter4":1e400}')); // non_finite
    assert.equal(warnings.length, 4);
    assert.ok(!JSON.stringify(warnings).includes('hunter2'));
    assert.ok(!JSON.stringify(warnings).includes('hunter3'));
    assert.equal(warnings[1].fields.topic, `x/${'t'.repeat(198)}`);
    assert.equal(warnings[2].fields.reason, 'bad_series_name');
  });

  it('throws when storage fails, so that the message is not acknowledged', () => {
    const { db, ingestor } = setup();
    db.close();
    assert.throws(() => ingestor.handle('sensors/a/b', bytes('21.5')), /database connection is not open/);
    assert.equal(ingestor.counters.stored, 0);
    assert.equal(ingestor.counters.duplicates, 0);
  });

  it('still rejects (without throwing) a bad message while storage is down: it never reaches storage', () => {
    const { db, ingestor } = setup();
    db.close();
    assert.doesNotThrow(() => ingestor.handle('sensors/a/b', bytes('warm')));
    assert.equal(ingestor.counters.rejected.not_a_number, 1);
  });

  it('keeps no dead letters unless they are enabled', () => {
    const { db, ingestor } = setup();
    ingestor.handle('sensors/a/b', bytes('warm'));
    assert.equal(db.prepare('SELECT count(*) FROM dead_letters').pluck().get(), 0);
    assert.equal(ingestor.counters.deadLettered, 0);
  });
});

describe('Ingestor with dead letters', () => {
  const OPTIONS = { maxPayloadBytes: 8, keepDays: 7, maxRows: 100 };

  it('writes each rejected message: time, capped topic, reason, payload prefix, size and sha256 of the whole payload', () => {
    const { ingestor, deadLetters } = setup({ deadLetters: OPTIONS });
    const warm = bytes('warm and sunny'); // 14 bytes, 8 kept
    const longTopic = `x/${'t'.repeat(1000)}`;
    const notText = Uint8Array.from([0xff, 0xfe, 0x00]);
    ingestor.handle('sensors/a/b', warm);
    ingestor.handle(longTopic, bytes('1'));
    ingestor.handle('sensors/a/b', notText);
    ingestor.handle('sensors/a/b', bytes('21.5')); // stored, not a dead letter
    const rows = deadLetters!.recent(10);
    assert.deepEqual(
      rows.map(({ id: _id, payload, ...row }) => ({ ...row, payload: [...payload] })),
      [
        { receivedAt: NOW, topic: 'sensors/a/b', reason: 'not_text', payload: [0xff, 0xfe, 0x00], payloadBytes: 3, sha256: sha256(notText) },
        { receivedAt: NOW, topic: longTopic.slice(0, 512), reason: 'unknown_topic', payload: [0x31], payloadBytes: 1, sha256: sha256(bytes('1')) },
        { receivedAt: NOW, topic: 'sensors/a/b', reason: 'not_a_number', payload: [...bytes('warm and')], payloadBytes: 14, sha256: sha256(warm) },
      ],
    );
    assert.equal(ingestor.counters.deadLettered, 3);
    assert.equal(ingestor.counters.stored, 1);
  });

  it('keeps at most maxRows plus one prune interval, dropping the oldest', () => {
    const { ingestor, deadLetters } = setup({ deadLetters: { ...OPTIONS, maxRows: 10, pruneEvery: 5 } });
    for (let index = 0; index < 23; index++) ingestor.handle('sensors/a/b', bytes(`bad ${index}`));
    // Pruned after the 5th, 10th, 15th and 20th insert: 20 → the newest 10, then 3 more.
    assert.equal(deadLetters!.count(), 13);
    assert.equal(deadLetters!.prune(NOW), 3);
    assert.deepEqual(
      deadLetters!.recent(100).map((row) => row.payload.toString()),
      Array.from({ length: 10 }, (_, index) => `bad ${22 - index}`.slice(0, 8)),
    );
    assert.equal(ingestor.counters.rejected.not_a_number, 23);
  });

  it('defaults to pruning every tenth of maxRows, so the table stays within 10% of it', () => {
    const { ingestor, deadLetters } = setup({ deadLetters: { ...OPTIONS, maxRows: 50 } });
    for (let index = 0; index < 200; index++) {
      ingestor.handle('sensors/a/b', bytes('warm'));
      assert.ok(deadLetters!.count() <= 55);
    }
  });

  it('deletes dead letters older than keepDays', () => {
    const { ingestor, deadLetters, clock } = setup({ deadLetters: { ...OPTIONS, keepDays: 1, pruneEvery: 1 } });
    ingestor.handle('sensors/a/b', bytes('old'));
    clock.now = NOW + 12 * HOUR_MS;
    ingestor.handle('sensors/a/b', bytes('middle'));
    assert.equal(deadLetters!.count(), 2);
    clock.now = NOW + 24 * HOUR_MS + 1;
    ingestor.handle('sensors/a/b', bytes('new'));
    assert.deepEqual(
      deadLetters!.recent(10).map((row) => row.payload.toString()),
      ['new', 'middle'],
    );
  });

  it('keeps dead letters stamped before the clock was set past the first prune after it is, leaving them to maxRows', () => {
    const { ingestor, deadLetters, clock } = setup({ deadLetters: { ...OPTIONS, keepDays: 1, maxRows: 3, pruneEvery: 1 } });
    clock.now = 90_000; // a Pi at boot, before NTP: 1970-01-01T00:01:30Z
    ingestor.handle('sensors/a/b', bytes('at boot'));
    clock.now = NOW;
    ingestor.handle('sensors/a/b', bytes('synced'));
    assert.deepEqual(
      deadLetters!.recent(10).map((row) => row.payload.toString()),
      ['synced', 'at boot'],
    );
    for (const payload of ['later 1', 'later 2']) ingestor.handle('sensors/a/b', bytes(payload));
    assert.deepEqual(
      deadLetters!.recent(10).map((row) => row.payload.toString()),
      ['later 2', 'later 1', 'synced'],
      'the row cap still applies',
    );
  });

  it('prunes at start, so that a lowered maxRows applies at once', () => {
    const { db, ingestor } = setup({ deadLetters: OPTIONS });
    for (let index = 0; index < 30; index++) ingestor.handle('sensors/a/b', bytes('warm'));
    const reopened = new DeadLetterStore(db, { ...OPTIONS, maxRows: 5 }, NOW);
    assert.equal(reopened.count(), 5);
  });

  it('rejects and acknowledges the message even when its dead letter cannot be written', () => {
    const { ingestor, db, warnings } = setup({ deadLetters: OPTIONS });
    db.exec('DROP TABLE dead_letters'); // stands in for a full disk; the prepared statement now fails
    assert.doesNotThrow(() => ingestor.handle('sensors/a/b', bytes('warm')));
    assert.doesNotThrow(() => ingestor.handle('sensors/a/b', bytes('cold')));
    assert.equal(ingestor.counters.rejected.not_a_number, 2);
    assert.equal(ingestor.counters.deadLettered, 0);
    assert.equal(ingestor.counters.deadLetterFailures, 2);
    assert.deepEqual(
      warnings.map((call) => call.message),
      ['could not write a dead letter; the message is rejected all the same', 'reading rejected'],
    );
  });
});
