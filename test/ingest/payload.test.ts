import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import {
  decodePayload,
  parseTimestamp,
  type DecodeLimits,
  type DecodeResult,
  type PayloadFormat,
  type RejectionReason,
} from '../../src/ingest/payload.js';

/** 2026-01-01T12:00:00Z: 1767225600 s is 2026-01-01T00:00Z (1735689600 for 2025-01-01 plus 365 × 86400), plus 12 h. */
const NOW = 1_767_268_800_000;
const NOW_S = 1_767_268_800;
const DAY_MS = 86_400_000;
const LIMITS: DecodeLimits = { maxPayloadBytes: 4096, maxFutureMs: 300_000, maxAgeMs: DAY_MS };

const bytes = (text: string) => new TextEncoder().encode(text);
const decode = (text: string, limits = LIMITS, format?: PayloadFormat) => decodePayload(bytes(text), NOW, limits, format);

function readingsOf(result: DecodeResult) {
  assert.ok(result.ok, `expected readings, got ${result.ok ? '' : `${result.reason}: ${result.detail}`}`);
  return result.readings;
}

function reasonOf(result: DecodeResult): RejectionReason {
  assert.ok(!result.ok, `expected a rejection, got ${JSON.stringify(result)}`);
  return result.reason;
}

describe('decodePayload: plain numbers', () => {
  it('reads a number, stamped with the receive time', () => {
    assert.deepEqual(readingsOf(decode('21.5')), [{ ts: NOW, value: 21.5 }]);
  });

  it('accepts surrounding whitespace, a sign and an exponent', () => {
    assert.deepEqual(readingsOf(decode(' -3e2 ')), [{ ts: NOW, value: -300 }]);
    assert.deepEqual(readingsOf(decode('+5\n')), [{ ts: NOW, value: 5 }]);
    assert.deepEqual(readingsOf(decode('.5')), [{ ts: NOW, value: 0.5 }]);
  });

  it('rejects text that is not a number', () => {
    assert.equal(reasonOf(decode('NaN')), 'not_a_number');
    assert.equal(reasonOf(decode('0x10')), 'not_a_number');
    assert.equal(reasonOf(decode('21,5')), 'not_a_number');
    assert.equal(reasonOf(decode('')), 'not_a_number');
  });

  it('rejects a number that overflows to Infinity', () => {
    assert.equal(reasonOf(decode('1e400')), 'non_finite');
    assert.equal(reasonOf(decode('-1e400')), 'non_finite');
  });

  it('accepts magnitudes up to 1e15, the storage limit, and no further', () => {
    assert.deepEqual(readingsOf(decode('-1e15')), [{ ts: NOW, value: -1e15 }]);
    assert.equal(reasonOf(decode('1.000001e15')), 'out_of_range');
  });
});

describe('decodePayload: JSON objects', () => {
  it('reads value and ts in epoch seconds', () => {
    assert.deepEqual(readingsOf(decode(`{"value":21.5,"ts":${NOW_S - 800}}`)), [{ ts: NOW - 800_000, value: 21.5 }]);
  });

  it('reads ts in epoch milliseconds', () => {
    assert.deepEqual(readingsOf(decode(`{"value":1,"ts":${NOW - 800_000 + 123}}`)), [{ ts: NOW - 799_877, value: 1 }]);
  });

  it('keeps the milliseconds of fractional seconds', () => {
    assert.deepEqual(readingsOf(decode(`{"v":1,"time":${NOW_S - 1}.25}`)), [{ ts: NOW - 750, value: 1 }]);
  });

  it('reads an ISO 8601 time in UTC', () => {
    assert.deepEqual(readingsOf(decode('{"value":3,"timestamp":"2026-01-01T11:30:00Z"}')), [{ ts: NOW - 1_800_000, value: 3 }]);
  });

  it('reads an ISO 8601 time with an offset', () => {
    // 12:30 at +01:00 is 11:30Z.
    assert.deepEqual(readingsOf(decode('{"value":3,"ts":"2026-01-01T12:30:00+01:00"}')), [{ ts: NOW - 1_800_000, value: 3 }]);
  });

  it('rejects an ISO time without a zone', () => {
    const result = decode('{"value":3,"ts":"2026-01-01T11:30:00"}');
    assert.equal(reasonOf(result), 'bad_timestamp');
    assert.ok(!result.ok && result.detail.includes('"ts"'));
  });

  it('rejects timestamps that are not times', () => {
    assert.equal(reasonOf(decode('{"value":3,"ts":"yesterday"}')), 'bad_timestamp');
    assert.equal(reasonOf(decode('{"value":3,"ts":0}')), 'bad_timestamp');
    assert.equal(reasonOf(decode('{"value":3,"ts":-5}')), 'bad_timestamp');
    assert.equal(reasonOf(decode('{"value":3,"ts":true}')), 'bad_timestamp');
  });

  it('reads each numeric field of an object as its own reading', () => {
    assert.deepEqual(readingsOf(decode(`{"temperature":21.5,"humidity":48,"ts":${NOW_S - 60}}`)), [
      { field: 'temperature', ts: NOW - 60_000, value: 21.5 },
      { field: 'humidity', ts: NOW - 60_000, value: 48 },
    ]);
  });

  it('skips fields that are not numbers: booleans, strings, null, objects and arrays are state, not readings', () => {
    assert.deepEqual(readingsOf(decode('{"temperature":21.5,"battery_low":false}')), [{ field: 'temperature', ts: NOW, value: 21.5 }]);
    assert.deepEqual(
      readingsOf(
        decode('{"state":"ON","humidity":48,"note":null,"update":{"state":"idle","installed_version":1},"colors":[1,2],"numeric_text":"21.5"}'),
      ),
      [{ field: 'humidity', ts: NOW, value: 48 }],
    );
  });

  it('reads a zigbee2mqtt state message as its five numeric fields', () => {
    const zigbee2mqtt =
      '{"battery":97,"humidity":41.5,"linkquality":120,"temperature":21.3,"voltage":2985,"battery_low":false,"update":{"state":"idle"},"last_seen":"2026-11-28T10:00:00.000Z"}';
    assert.deepEqual(readingsOf(decode(zigbee2mqtt)), [
      { field: 'battery', ts: NOW, value: 97 },
      { field: 'humidity', ts: NOW, value: 41.5 },
      { field: 'linkquality', ts: NOW, value: 120 },
      { field: 'temperature', ts: NOW, value: 21.3 },
      { field: 'voltage', ts: NOW, value: 2985 },
    ]);
  });

  it('still rejects the whole object when a numeric field cannot be stored', () => {
    assert.equal(reasonOf(decode('{"temperature":21.5,"humidity":1e400}')), 'non_finite');
    assert.equal(reasonOf(decode('{"temperature":21.5,"pressure":-2e15,"battery_low":false}')), 'out_of_range');
  });

  it('leaves out every timestamp key, not only the one it reads the time from', () => {
    assert.deepEqual(readingsOf(decode(`{"temperature":21.5,"ts":${NOW_S - 60},"time":${NOW_S - 1},"timestamp":${NOW_S - 2}}`)), [
      { field: 'temperature', ts: NOW - 60_000, value: 21.5 },
    ]);
  });

  it('rejects a value that is not a finite number', () => {
    assert.equal(reasonOf(decode('{"value":1e400}')), 'non_finite');
    assert.equal(reasonOf(decode('{"value":"x"}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":"21.5"}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":null}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":1e16}')), 'out_of_range');
  });

  it('rejects JSON that is not an object of readings', () => {
    assert.equal(reasonOf(decode('"str"')), 'bad_json_shape');
    assert.equal(reasonOf(decode('true')), 'bad_json_shape');
    assert.equal(reasonOf(decode('null')), 'bad_json_shape');
    assert.equal(reasonOf(decode('{}')), 'bad_json_shape');
    assert.equal(reasonOf(decode(`{"ts":${NOW_S}}`)), 'bad_json_shape');
  });

  it('rejects an object whose fields are all something other than numbers', () => {
    const result = decode('{"state":"ON","battery_low":false,"update":{"state":"idle"},"last_seen":"2026-11-28T10:00:00.000Z"}');
    assert.equal(reasonOf(result), 'bad_json_shape');
    assert.ok(!result.ok && result.detail === 'object without numeric fields');
  });

  it('rejects a numeric field whose name is not a safe series suffix, and ignores such a name on a non-number', () => {
    assert.equal(reasonOf(decode('{"temp erature":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode('{"a.b":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode('{"":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode(`{"${'f'.repeat(65)}":1}`)), 'bad_series_name');
    assert.deepEqual(readingsOf(decode(`{"${'f'.repeat(64)}":1}`)), [{ field: 'f'.repeat(64), ts: NOW, value: 1 }]);
    assert.deepEqual(readingsOf(decode('{"last seen":"yesterday","temp":1}')), [{ field: 'temp', ts: NOW, value: 1 }]);
  });

  it('does not let a __proto__ key reach Object.prototype or stand in for the value', () => {
    assert.deepEqual(readingsOf(decode('{"__proto__":{"polluted":1,"value":9},"value":2}')), [{ ts: NOW, value: 2 }]);
    // The own "__proto__" property holds an object: skipped like any other non-number, which leaves no reading.
    assert.equal(reasonOf(decode('{"__proto__":{"value":9}}')), 'bad_json_shape');
    // A numeric "__proto__" is an own field like any other; its series is "<series>.__proto__", never a bare key.
    assert.deepEqual(readingsOf(decode('{"__proto__":5,"temp":1}')), [
      { field: '__proto__', ts: NOW, value: 5 },
      { field: 'temp', ts: NOW, value: 1 },
    ]);
    // Paths follow own properties only: "constructor" is not found on a parsed object.
    assert.equal(reasonOf(decode('{"value":1}', LIMITS, { format: 'json', valuePath: 'constructor' })), 'bad_json_shape');
    assert.equal(reasonOf(decode('{"value":1}', LIMITS, { format: 'json', valuePath: 'toString' })), 'bad_json_shape');
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).value, undefined);
  });

  it('never throws on a timestamp beyond what a Date can hold', () => {
    const result = decode('{"value":1,"ts":9e15}');
    assert.equal(reasonOf(result), 'in_future');
    assert.ok(!result.ok && result.detail.includes('9000000000000000 ms'));
    assert.equal(reasonOf(decode('{"value":1,"ts":1e300}')), 'in_future');
  });
});

describe('decodePayload: JSON arrays (batches)', () => {
  it('reads an array of value objects as several readings of the series', () => {
    assert.deepEqual(readingsOf(decode(`[{"value":1,"ts":${NOW_S - 120}},{"v":2,"time":${NOW_S - 60}},{"val":3}]`)), [
      { ts: NOW - 120_000, value: 1 },
      { ts: NOW - 60_000, value: 2 },
      { ts: NOW, value: 3 },
    ]);
  });

  it('reads an array of multi-field objects field by field', () => {
    assert.deepEqual(readingsOf(decode(`[{"temp":20,"ok":true,"ts":${NOW_S - 60}},{"temp":21,"hum":40}]`)), [
      { field: 'temp', ts: NOW - 60_000, value: 20 },
      { field: 'temp', ts: NOW, value: 21 },
      { field: 'hum', ts: NOW, value: 40 },
    ]);
  });

  it('rejects the whole batch when one entry is bad, saying which', () => {
    const result = decode(`[{"value":1,"ts":${NOW_S - 60}},{"value":2,"ts":"noon"}]`);
    assert.equal(reasonOf(result), 'bad_timestamp');
    assert.ok(!result.ok && result.detail.startsWith('array entry 1: '));
    assert.equal(reasonOf(decode(`[{"value":1},{"value":1,"ts":${NOW_S - 86_401}}]`)), 'too_old');
    assert.equal(reasonOf(decode('[{"value":1},{"value":1e400}]')), 'non_finite');
  });

  it('rejects arrays that are not arrays of objects', () => {
    assert.equal(reasonOf(decode('[1,2]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[21.5, 22]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[{"value":1},2]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[[{"value":1}]]')), 'bad_json_shape');
  });

  it('reads up to 1,000 readings from one message and rejects more (too_many_readings)', () => {
    const roomy = { ...LIMITS, maxPayloadBytes: 65_536 };
    const batch = (count: number) => `[${Array.from({ length: count }, (_, index) => `{"v":${index},"ts":${NOW - index}}`).join(',')}]`;
    assert.equal(readingsOf(decode(batch(1000), roomy)).length, 1000);
    const result = decode(batch(1001), roomy);
    assert.equal(reasonOf(result), 'too_many_readings');
    assert.ok(!result.ok && result.detail === '1001 entries > 1000');
  });

  it('counts the numeric fields of objects against maxReadings too', () => {
    const three = { ...LIMITS, maxReadings: 3 };
    assert.equal(readingsOf(decode('{"a":1,"b":2,"c":3,"state":"on"}', three)).length, 3);
    assert.equal(reasonOf(decode('{"a":1,"b":2,"c":3,"d":4}', three)), 'too_many_readings');
    assert.equal(reasonOf(decode('[{"a":1,"b":2},{"a":3,"b":4}]', three)), 'too_many_readings');
  });
});

describe('decodePayload: valuePath and timestampPath', () => {
  const nested = { format: 'json', valuePath: 'data.temp', timestampPath: 'meta.time' } as const;

  it('reads the value and the time at their dot paths, and nothing else', () => {
    const payload = '{"data":{"temp":21.5,"hum":40},"meta":{"time":"2026-01-01T11:59:00Z","seq":7}}';
    assert.deepEqual(readingsOf(decode(payload, LIMITS, nested)), [{ ts: NOW - 60_000, value: 21.5 }]);
    assert.deepEqual(readingsOf(decode(payload, LIMITS, { ...nested, format: 'auto' })), [{ ts: NOW - 60_000, value: 21.5 }]);
  });

  it('steps into arrays by index', () => {
    assert.deepEqual(readingsOf(decode('{"sensors":[{"t":1},{"t":2.5}]}', LIMITS, { format: 'json', valuePath: 'sensors.1.t' })), [
      { ts: NOW, value: 2.5 },
    ]);
  });

  it('applies the paths to each entry of a batch', () => {
    const batch = `[{"data":{"temp":20},"meta":{"time":${NOW_S - 60}}},{"data":{"temp":21},"meta":{"time":${NOW_S}}}]`;
    assert.deepEqual(readingsOf(decode(batch, LIMITS, nested)), [
      { ts: NOW - 60_000, value: 20 },
      { ts: NOW, value: 21 },
    ]);
  });

  it('rejects a message without a value or a time at the path, or with a value that is not a number', () => {
    assert.equal(reasonOf(decode('{"data":{"hum":40},"meta":{"time":1767268740}}', LIMITS, nested)), 'bad_json_shape');
    assert.equal(reasonOf(decode('{"data":{"temp":21.5},"meta":{}}', LIMITS, nested)), 'bad_timestamp');
    assert.equal(reasonOf(decode('{"data":{"temp":21.5},"meta":{"time":"noon"}}', LIMITS, nested)), 'bad_timestamp');
    assert.equal(reasonOf(decode('{"data":{"temp":"21.5"},"meta":{"time":1767268740}}', LIMITS, nested)), 'not_a_number');
    assert.equal(reasonOf(decode('{"data":{"temp":1e400},"meta":{"time":1767268740}}', LIMITS, nested)), 'non_finite');
    assert.equal(reasonOf(decode('{"data":21.5,"meta":{"time":1767268740}}', LIMITS, nested)), 'bad_json_shape'); // no "temp" in a number
  });

  it('takes the time from timestampPath for every numeric field, and leaves that field out', () => {
    assert.deepEqual(readingsOf(decode(`{"temp":21.5,"hum":40,"epoch":${NOW_S - 60}}`, LIMITS, { format: 'json', timestampPath: 'epoch' })), [
      { field: 'temp', ts: NOW - 60_000, value: 21.5 },
      { field: 'hum', ts: NOW - 60_000, value: 40 },
    ]);
  });

  it('still reads a bare number as the value', () => {
    assert.deepEqual(readingsOf(decode('21.5', LIMITS, nested)), [{ ts: NOW, value: 21.5 }]);
  });
});

describe('decodePayload: formats', () => {
  it('number: reads plain numbers only', () => {
    assert.deepEqual(readingsOf(decode(' 21.5\n', LIMITS, { format: 'number' })), [{ ts: NOW, value: 21.5 }]);
    assert.equal(reasonOf(decode('{"value":21.5}', LIMITS, { format: 'number' })), 'not_a_number');
    assert.equal(reasonOf(decode('[{"n":"a","v":1}]', LIMITS, { format: 'number' })), 'not_a_number');
    assert.equal(reasonOf(decode('1e400', LIMITS, { format: 'number' })), 'non_finite');
  });

  it('json: never reads an array as SenML', () => {
    // "t" is not a timestamp key of a batch entry, so the value is stamped with the receive time.
    assert.deepEqual(readingsOf(decode('[{"v":1,"t":-60}]', LIMITS, { format: 'json' })), [{ ts: NOW, value: 1 }]);
    assert.deepEqual(readingsOf(decode('[{"v":1,"t":-60}]')), [{ ts: NOW - 60_000, value: 1 }]);
  });

  it('senml: takes SenML packs only', () => {
    assert.equal(reasonOf(decode('21.5', LIMITS, { format: 'senml' })), 'bad_json_shape');
    assert.equal(reasonOf(decode('{"n":"a","v":1}', LIMITS, { format: 'senml' })), 'bad_json_shape');
    assert.equal(reasonOf(decode('warm', LIMITS, { format: 'senml' })), 'not_a_number');
    assert.deepEqual(readingsOf(decode('[{"value":1,"v":2}]', LIMITS, { format: 'senml' })), [{ ts: NOW, value: 2 }]);
  });
});

describe('decodePayload: SenML (RFC 8428)', () => {
  /** RFC 8428 §5.1.3's base time: 2010-06-08T18:01:16.001Z. */
  const BT_MS = 1_276_020_076_001;
  const AT_BT = { ...LIMITS };
  const decodeAt = (text: string, nowMs: number) => decodePayload(bytes(text), nowMs, AT_BT);

  it('reads RFC 8428 §5.1.2 (multiple data points): bn + n names each reading, no time means now', () => {
    const pack = `[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
      {"n":"current","u":"A","v":1.2}
    ]`;
    assert.deepEqual(readingsOf(decode(pack)), [
      { field: 'urn:dev:ow:10e2073a01080063:voltage', ts: NOW, value: 120.1, unit: 'V' },
      { field: 'urn:dev:ow:10e2073a01080063:current', ts: NOW, value: 1.2, unit: 'A' },
    ]);
  });

  it('reads RFC 8428 §5.1.3 (multiple measurements): bt plus relative t, and the base unit', () => {
    const pack = `[
      {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
       "bu":"A","bver":5,
       "n":"voltage","u":"V","v":120.1},
      {"n":"current","t":-5,"v":1.2},
      {"n":"current","t":-4,"v":1.3},
      {"n":"current","t":-3,"v":1.4},
      {"n":"current","t":-2,"v":1.5},
      {"n":"current","t":-1,"v":1.6},
      {"n":"current","v":1.7}
    ]`;
    const current = 'urn:dev:ow:10e2073a0108006:current';
    assert.deepEqual(readingsOf(decodeAt(pack, BT_MS + 1000)), [
      { field: 'urn:dev:ow:10e2073a0108006:voltage', ts: BT_MS, value: 120.1, unit: 'V' },
      { field: current, ts: BT_MS - 5000, value: 1.2, unit: 'A' },
      { field: current, ts: BT_MS - 4000, value: 1.3, unit: 'A' },
      { field: current, ts: BT_MS - 3000, value: 1.4, unit: 'A' },
      { field: current, ts: BT_MS - 2000, value: 1.5, unit: 'A' },
      { field: current, ts: BT_MS - 1000, value: 1.6, unit: 'A' },
      { field: current, ts: BT_MS, value: 1.7, unit: 'A' },
    ]);
  });

  it('reads times below 2^28 s as relative to the receive time, from 2^28 on as epoch seconds', () => {
    const pack =
      '[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","t":-60,"v":21.0},{"n":"temp","t":-0.5,"v":21.5},{"n":"temp","t":0,"v":22}]';
    assert.deepEqual(
      readingsOf(decode(pack)).map((reading) => [reading.ts, reading.value]),
      [
        [NOW - 60_000, 21],
        [NOW - 500, 21.5],
        [NOW, 22],
      ],
    );
    // 2^28 - 1 s ahead of now is in the future; 2^28 s is an absolute time in 1978.
    assert.equal(reasonOf(decode('[{"n":"x","t":268435455,"v":1}]')), 'in_future');
    assert.equal(reasonOf(decode('[{"n":"x","t":268435456,"v":1}]')), 'too_old');
    // A relative bt plus t: now - 120 s + 60 s.
    assert.deepEqual(readingsOf(decode('[{"bn":"x","bt":-120,"t":60,"v":1}]')), [{ field: 'x', ts: NOW - 60_000, value: 1 }]);
    assert.deepEqual(readingsOf(decode(`[{"n":"x","t":${NOW_S - 30},"v":1}]`)), [{ field: 'x', ts: NOW - 30_000, value: 1 }]);
  });

  it('adds the base value to each value', () => {
    assert.deepEqual(readingsOf(decode('[{"bn":"meter:","bv":1000,"n":"energy","v":0.5},{"n":"energy","t":-60,"v":0.25}]')), [
      { field: 'meter:energy', ts: NOW, value: 1000.5 },
      { field: 'meter:energy', ts: NOW - 60_000, value: 1000.25 },
    ]);
  });

  it('skips string, boolean, data and sum-only records', () => {
    const pack = `[
      {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":7.1},
      {"n":"label","vs":"Machine Room"},
      {"n":"open","vb":false},
      {"n":"nfc-reader","vd":"aGkgCg"},
      {"n":"flow","u":"l","s":12}
    ]`;
    assert.deepEqual(readingsOf(decode(pack)), [{ field: 'urn:dev:ow:10e2073a01080063:temp', ts: NOW, value: 7.1, unit: 'Cel' }]);
    assert.equal(reasonOf(decode('[{"n":"label","vs":"x"},{"n":"open","vb":true}]')), 'bad_json_shape');
  });

  it('turns the path-like names of LwM2M into dotted series suffixes', () => {
    assert.deepEqual(readingsOf(decode('[{"bn":"/3303/0/","n":"5700","v":21.5},{"n":"5601","v":18}]')), [
      { field: '3303.0.5700', ts: NOW, value: 21.5 },
      { field: '3303.0.5601', ts: NOW, value: 18 },
    ]);
  });

  it('reads a record without a name as the series of the topic itself', () => {
    assert.deepEqual(readingsOf(decode('[{"v":21.5,"t":-10}]', LIMITS, { format: 'senml' })), [{ ts: NOW - 10_000, value: 21.5 }]);
    assert.deepEqual(readingsOf(decode('[{"u":"Cel","v":21.5}]')), [{ ts: NOW, value: 21.5, unit: 'Cel' }]);
  });

  it('rejects a name with characters outside the SenML alphabet', () => {
    assert.equal(reasonOf(decode('[{"n":"temp erature","v":1}]')), 'bad_series_name');
    assert.equal(reasonOf(decode('[{"bn":"küche:","n":"temp","v":1}]')), 'bad_series_name');
    assert.equal(reasonOf(decode('[{"n":"a;DROP TABLE readings","v":1}]')), 'bad_series_name');
    const result = decode('[{"n":"secret name","v":1}]');
    assert.ok(!result.ok && !result.detail.includes('secret'), 'the detail does not echo the name');
  });

  it('rejects bad values, times and shapes', () => {
    assert.equal(reasonOf(decode('[{"n":"a","v":"1"}]')), 'not_a_number');
    assert.equal(reasonOf(decode('[{"n":"a","v":null}]')), 'not_a_number');
    assert.equal(reasonOf(decode('[{"n":"a","v":1e400}]')), 'non_finite');
    assert.equal(reasonOf(decode('[{"n":"a","v":1e16}]')), 'out_of_range');
    assert.equal(reasonOf(decode('[{"n":"a","bv":1e15,"v":1e15}]')), 'out_of_range');
    assert.equal(reasonOf(decode('[{"n":"a","v":1,"t":"now"}]')), 'bad_timestamp');
    assert.equal(reasonOf(decode('[{"bn":"a","bt":1e400,"v":1}]')), 'bad_timestamp');
    assert.equal(reasonOf(decode('[{"n":"a","bt":1e300,"v":1}]')), 'in_future');
    assert.equal(reasonOf(decode('[{"n":5,"v":1}]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[{"n":"a","u":1,"v":1}]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[{"n":"a","v":1},"x"]')), 'bad_json_shape');
  });

  it('rejects a pack with a must-understand label (ending in _) or a version newer than 10', () => {
    assert.equal(reasonOf(decode('[{"n":"a","v":1,"rt_":5}]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('[{"bver":11,"n":"a","v":1}]')), 'bad_json_shape');
    assert.equal(readingsOf(decode('[{"bver":10,"n":"a","v":1}]')).length, 1);
  });

  it('rejects more records than maxReadings', () => {
    const pack = (count: number) => `[${Array.from({ length: count }, (_, index) => `{"n":"x","t":${-index},"v":1}`).join(',')}]`;
    const three = { ...LIMITS, maxReadings: 3 };
    assert.equal(readingsOf(decode(pack(3), three)).length, 3);
    assert.equal(reasonOf(decode(pack(4), three)), 'too_many_readings');
  });

  it('tells SenML from a batch in auto by a SenML label other than v', () => {
    assert.deepEqual(readingsOf(decode(`[{"v":1,"ts":${NOW_S - 60}}]`)), [{ ts: NOW - 60_000, value: 1 }]);
    assert.deepEqual(readingsOf(decode('[{"v":1,"n":"a"}]')), [{ field: 'a', ts: NOW, value: 1 }]);
  });
});

describe('decodePayload: nesting depth', () => {
  const ROOMY: DecodeLimits = { ...LIMITS, maxPayloadBytes: 1_048_576 };

  it('rejects a depth bomb before parsing it, fast', () => {
    const bomb = bytes('['.repeat(100_000));
    const started = performance.now();
    const result = decodePayload(bomb, NOW, ROOMY);
    const elapsedMs = performance.now() - started;
    assert.equal(reasonOf(result), 'too_deep');
    // A linear scan takes about a millisecond; a parse or a quadratic scan of this bomb would take seconds.
    assert.ok(elapsedMs < 1000, `took ${elapsedMs.toFixed(1)} ms`);
    assert.equal(reasonOf(decode(`${'{"a":'.repeat(40_000)}1${'}'.repeat(40_000)}`, ROOMY)), 'too_deep');
  });

  it('allows 32 levels and rejects 33', () => {
    assert.equal(reasonOf(decode(`${'['.repeat(32)}${']'.repeat(32)}`)), 'bad_json_shape');
    assert.equal(reasonOf(decode(`${'['.repeat(33)}${']'.repeat(33)}`)), 'too_deep');
    const deepValue = (levels: number) => `${'{"a":'.repeat(levels - 1)}{"value":1}${'}'.repeat(levels - 1)}`;
    const path = (levels: number) => ({ format: 'json' as const, valuePath: [...Array(levels - 1).fill('a'), 'value'].join('.') });
    assert.deepEqual(readingsOf(decode(deepValue(32), LIMITS, path(32))), [{ ts: NOW, value: 1 }]);
    assert.equal(reasonOf(decode(deepValue(33), LIMITS, path(33))), 'too_deep');
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    assert.deepEqual(readingsOf(decode(`{"note":"${'['.repeat(40)}","value":1}`)), [{ ts: NOW, value: 1 }]);
    assert.deepEqual(readingsOf(decode(`{"note":"\\"${'{'.repeat(40)}\\\\","value":1}`)), [{ ts: NOW, value: 1 }]);
  });
});

describe('decodePayload: bytes and limits', () => {
  it('rejects bytes that are not UTF-8', () => {
    assert.equal(reasonOf(decodePayload(Uint8Array.from([0x32, 0x31, 0xff, 0xfe]), NOW, LIMITS)), 'not_text');
    assert.equal(reasonOf(decodePayload(Uint8Array.from([0xc3, 0x28]), NOW, LIMITS)), 'not_text');
  });

  it('reads a payload of exactly maxPayloadBytes and rejects one byte more', () => {
    const limits = { ...LIMITS, maxPayloadBytes: 16 };
    assert.deepEqual(readingsOf(decode(`${' '.repeat(12)}21.5`, limits)), [{ ts: NOW, value: 21.5 }]);
    const result = decode(`${' '.repeat(13)}21.5`, limits);
    assert.equal(reasonOf(result), 'too_large');
    assert.ok(!result.ok && result.detail === '17 bytes > 16');
  });

  it('rejects readings older than maxAgeMs', () => {
    assert.deepEqual(readingsOf(decode(`{"value":1,"ts":${NOW_S - 86_400}}`)), [{ ts: NOW - DAY_MS, value: 1 }]);
    assert.equal(reasonOf(decode(`{"value":1,"ts":${NOW_S - 86_401}}`)), 'too_old');
  });

  it('rejects readings stamped further ahead than maxFutureMs', () => {
    assert.deepEqual(readingsOf(decode(`{"value":1,"ts":${NOW_S + 300}}`)), [{ ts: NOW + 300_000, value: 1 }]);
    assert.equal(reasonOf(decode(`{"value":1,"ts":${NOW_S + 301}}`)), 'in_future');
  });
});

describe('parseTimestamp', () => {
  it('reads numbers below 1e11 as seconds and from 1e11 on as milliseconds', () => {
    assert.equal(parseTimestamp(99_999_999_999), 99_999_999_999_000);
    assert.equal(parseTimestamp(100_000_000_000), 100_000_000_000);
    assert.equal(parseTimestamp(NOW_S), NOW);
    assert.equal(parseTimestamp(NOW), NOW);
  });

  it('reads ISO 8601 with Z, ±hh:mm or ±hhmm', () => {
    assert.equal(parseTimestamp('2026-01-01T12:00:00Z'), NOW);
    assert.equal(parseTimestamp('2026-01-01T12:00:00.250Z'), NOW + 250);
    assert.equal(parseTimestamp('2026-01-01T13:00:00+01:00'), NOW);
    assert.equal(parseTimestamp('2026-01-01T07:00-0500'), NOW);
  });

  it('refuses what is not an unambiguous time', () => {
    assert.equal(parseTimestamp('2026-01-01T12:00:00'), null);
    assert.equal(parseTimestamp('2026-01-01'), null);
    assert.equal(parseTimestamp('2026-13-45T12:00:00Z'), null);
    assert.equal(parseTimestamp(String(NOW_S)), null);
    assert.equal(parseTimestamp(Infinity), null);
    assert.equal(parseTimestamp(NaN), null);
    assert.equal(parseTimestamp(0), null);
    assert.equal(parseTimestamp(null), null);
  });
});
