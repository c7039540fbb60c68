import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePayload, parseTimestamp, type DecodeLimits, type DecodeResult, type RejectionReason } from '../../src/ingest/payload.js';

/** 2026-01-01T12:00:00Z: 1767225600 s is 2026-01-01T00:00Z (1735689600 for 2025-01-01 plus 365 × 86400), plus 12 h. */
const NOW = 1_767_268_800_000;
const NOW_S = 1_767_268_800;
const DAY_MS = 86_400_000;
const LIMITS: DecodeLimits = { maxPayloadBytes: 4096, maxFutureMs: 300_000, maxAgeMs: DAY_MS };

const bytes = (text: string) => new TextEncoder().encode(text);
const decode = (text: string, limits = LIMITS) => decodePayload(bytes(text), NOW, limits);

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

  it('rejects the whole object when one field is not a finite number', () => {
    assert.equal(reasonOf(decode('{"temperature":21.5,"battery_low":false}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"temperature":21.5,"humidity":1e400}')), 'non_finite');
  });

  it('rejects a value that is not a finite number', () => {
    assert.equal(reasonOf(decode('{"value":1e400}')), 'non_finite');
    assert.equal(reasonOf(decode('{"value":"x"}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":"21.5"}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":null}')), 'not_a_number');
    assert.equal(reasonOf(decode('{"value":1e16}')), 'out_of_range');
  });

  it('rejects JSON that is not an object of readings', () => {
    assert.equal(reasonOf(decode('[1,2]')), 'bad_json_shape');
    assert.equal(reasonOf(decode('"str"')), 'bad_json_shape');
    assert.equal(reasonOf(decode('true')), 'bad_json_shape');
    assert.equal(reasonOf(decode('null')), 'bad_json_shape');
    assert.equal(reasonOf(decode('{}')), 'bad_json_shape');
    assert.equal(reasonOf(decode(`{"ts":${NOW_S}}`)), 'bad_json_shape');
  });

  it('rejects a field name that is not a safe series suffix', () => {
    assert.equal(reasonOf(decode('{"temp erature":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode('{"a.b":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode('{"":1}')), 'bad_series_name');
    assert.equal(reasonOf(decode(`{"${'f'.repeat(65)}":1}`)), 'bad_series_name');
    assert.deepEqual(readingsOf(decode(`{"${'f'.repeat(64)}":1}`)), [{ field: 'f'.repeat(64), ts: NOW, value: 1 }]);
  });

  it('does not let a __proto__ key reach Object.prototype or stand in for the value', () => {
    assert.deepEqual(readingsOf(decode('{"__proto__":{"polluted":1,"value":9},"value":2}')), [{ ts: NOW, value: 2 }]);
    assert.equal(reasonOf(decode('{"__proto__":{"value":9}}')), 'not_a_number');
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).value, undefined);
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
