import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ingestor } from '../../src/ingest/ingestor.js';
import { REJECTION_REASONS, type RejectionReason } from '../../src/ingest/payload.js';
import { createTopicMapper } from '../../src/ingest/topics.js';
import type { Logger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
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

/** A real store on an in-memory database, a settable clock and a logger that records its warnings. */
function setup() {
  const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
  const store = new ReadingStore(db);
  const warnings: LogCall[] = [];
  const log = { warn: (fields: Record<string, unknown>, message: string) => warnings.push({ fields, message }) } as unknown as Logger;
  const clock = { now: NOW };
  const ingestor = new Ingestor({
    store,
    mapper: createTopicMapper([{ filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' }]),
    limits: { maxPayloadBytes: 64, maxFutureMs: 300_000, maxAgeMs: 24 * HOUR_MS },
    clock: () => clock.now,
    log,
  });
  const stored = (series: string) => {
    const data = store.read(series, NOW - 48 * HOUR_MS, NOW + HOUR_MS);
    return { timestampsMs: [...data.timestampsMs], values: [...data.values] };
  };
  return { db, store, ingestor, warnings, clock, stored };
}

function rejectedOnly(counts: Partial<Record<RejectionReason, number>>): Record<RejectionReason, number> {
  return Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, counts[reason] ?? 0])) as Record<RejectionReason, number>;
}

describe('Ingestor', () => {
  it('stores a plain reading under the series its topic names, at the receive time', () => {
    const { ingestor, stored } = setup();
    ingestor.handle('sensors/kitchen/temperature', bytes('21.5'));
    assert.deepEqual(stored('kitchen.temperature'), { timestampsMs: [NOW], values: [21.5] });
    assert.deepEqual({ ...ingestor.counters, rejected: undefined }, { received: 1, stored: 1, duplicates: 0, rejected: undefined });
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
      ['sensors/../x', bytes('21.5')], // unknown_topic: no valid series
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
    ];
    for (const [topic, payload] of bad) ingestor.handle(topic, payload);
    assert.deepEqual(
      ingestor.counters.rejected,
      rejectedOnly({
        unknown_topic: 2, not_a_number: 1, non_finite: 1, out_of_range: 1, not_text: 1, too_large: 1,
        bad_json_shape: 1, bad_timestamp: 1, too_old: 1, in_future: 1, bad_series_name: 1,
      }),
    );
    assert.equal(ingestor.rejectedTotal(), 12);
    assert.equal(ingestor.counters.received, 12);
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
    assert.deepEqual(warnings[0].fields, { reason: 'not_a_number', topic: 'sensors/a/b', detail: 'neither a number nor JSON', suppressedSinceLast: 0 });

    clock.now = NOW + 10_000;
    ingestor.handle('sensors/a/b', bytes('tepid'));
    assert.equal(warnings.length, 2);
    assert.equal(warnings[1].fields.suppressedSinceLast, 2);

    clock.now = NOW + 10_001;
    ingestor.handle('sensors/a/b', bytes('lukewarm'));
    assert.equal(warnings.length, 2);
    assert.equal(ingestor.counters.rejected.not_a_number, 5);
  });

  it('rate-limits each reason on its own', () => {
    const { ingestor, warnings } = setup();
    ingestor.handle('sensors/a/b', bytes('warm'));
    ingestor.handle('other/topic', bytes('1'));
    ingestor.handle('sensors/a/b', bytes('1e400'));
    ingestor.handle('other/topic', bytes('1'));
    assert.deepEqual(warnings.map((call) => call.fields.reason), ['not_a_number', 'unknown_topic', 'non_finite']);
  });

  it('never logs the payload, and caps the topic at 200 characters', () => {
    const { ingestor, warnings } = setup();
    ingestor.handle('sensors/a/b', bytes('hunter2'));
    ingestor.handle(`x/${'t'.repeat(500)}`, bytes('1'));
    assert.equal(warnings.length, 2);
    assert.ok(!JSON.stringify(warnings).includes('hunter2'));
    assert.equal(warnings[1].fields.topic, `x/${'t'.repeat(198)}`);
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
});
