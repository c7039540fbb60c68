/**
 * Hostile MQTT payloads for the ingest path (docs/reliability.md, "Security", F9): one fast-check arbitrary that mixes random
 * bytes and text with JSON built to sit on every edge the decoder has. JSON is assembled as text, not through
 * JSON.stringify, so that it can carry what a device (or an attacker) can send and a JS value cannot hold: duplicate
 * keys, `1e400`, `-0`, `__proto__` as an own key, lone surrogates, nesting beyond any sane depth.
 *
 * Timestamps are drawn far from the acceptance bounds (at least a minute inside the past limit, at least an hour
 * beyond the future one), so whether a payload is accepted does not depend on the milliseconds between its
 * generation and its decoding: an end-to-end test can use the decoder as its oracle.
 */
import fc from 'fast-check';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** The past limit the fuzz tests configure (ingest.maxAgeDays default); plausible timestamps stay well inside it. */
export const FUZZ_MAX_AGE_MS = 3650 * DAY_MS;
export const FUZZ_MAX_FUTURE_MS = 300_000;

/** `String(-0)` is "0": keep the sign, which is the point of sending it. */
const doubleText = (value: number) => (Object.is(value, -0) ? '-0' : String(value));

/** UTF-16 code units, lone surrogates included (what a JS string may hold and UTF-8 cannot). */
const codeUnitString = (maxLength: number) =>
  fc
    .array(fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xd800, max: 0xdfff })), { maxLength })
    .map((units) => String.fromCharCode(...units));

/** Number literals a sensor or a fuzzer may send, valid JSON or not. */
const numberText = fc.oneof(
  fc.double().map(doubleText), // NaN, ±Infinity, -0, subnormals, ±MAX_VALUE
  fc.integer().map(String),
  fc.double({ min: -1e15, max: 1e15, noNaN: true }).map(doubleText),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '-0',
    '0',
    '4.9e-324',
    '5e-324',
    '2.2250738585072014e-308',
    '1e-400',
    '1e15',
    '-1e15',
    '1.000001e15',
    '1e16',
    '9007199254740993',
    '0.1',
    '1E+2',
    '00',
    '01',
    '.5',
    '5.',
    '+1',
    '- 1',
    '0x10',
    '1_000',
    '١٢',
    'NaN',
    'Infinity',
    '-Infinity',
    '1e',
    '--1',
    '1..2',
    '\u00a01\u00a0',
    '\ufeff1',
  ),
);

/** Timestamps at and past every edge: Date's range (±8.64e15 ms), 0, negatives, floats, strings, wrong types. */
const timestampText = (nowMs: number) =>
  fc.oneof(
    fc.constantFrom(
      '8.64e15',
      '-8.64e15',
      '8640000000000001',
      '-8640000000000001',
      '0',
      '-1',
      '-0',
      '1e308',
      '-1e308',
      '1e400',
      '0.5',
      '1e-300',
      'null',
      'true',
      'false',
      '"0"',
      '"-1"',
      '"8.64e15"',
      '""',
      '"2026-01-01T00:00:00"',
      '"2026-13-45T99:99:99Z"',
      '"+275760-09-13T00:00:00Z"',
      '"0000-01-01T00:00:00Z"',
      '"9999-12-31T23:59:59.999999999Z"',
      '"1970-01-01T00:00:00+25:99"',
      '[]',
      '{}',
      '[1700000000]',
      '{"ts":1}',
    ),
    // Plausible past times, as epoch ms, epoch seconds (float too) and ISO 8601 with and without a zone.
    fc.integer({ min: 60_000, max: FUZZ_MAX_AGE_MS - DAY_MS }).chain((ago) => {
      const ts = nowMs - ago;
      const iso = new Date(ts).toISOString();
      return fc.constantFrom(
        String(ts),
        String(Math.floor(ts / 1000)),
        String(ts / 1000),
        JSON.stringify(iso),
        JSON.stringify(iso.replace('Z', '+02:00')),
        JSON.stringify(iso.slice(0, -1)),
      );
    }),
    // Clearly in the future, and clearly too old.
    fc.integer({ min: HOUR_MS, max: 1000 * 365 * DAY_MS }).map((ahead) => String(nowMs + ahead)),
    fc.integer({ min: DAY_MS, max: 1000 * 365 * DAY_MS }).map((before) => String(nowMs - FUZZ_MAX_AGE_MS - before)),
    fc.double().map(doubleText),
    fc.string({ maxLength: 30 }).map((text) => JSON.stringify(text)),
  );

/** Keys the decoder looks for, keys that reach for a prototype, and arbitrary text (lone surrogates too). */
const keyText = fc
  .oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom('value', 'v', 'val', 'ts', 'time', 'timestamp', 'temperature', 'humidity', 'battery_low', 'data', 'meta'),
    },
    { weight: 2, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__') },
    { weight: 2, arbitrary: fc.constantFrom('bn', 'bt', 'bu', 'bv', 'bver', 'n', 't', 'u', 's', 'vs', 'vb', 'vd', 'x_', 'bn_') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '0',
        'a.b',
        'a/b',
        '../x',
        "'; DROP TABLE readings; --",
        'a"b',
        '\u202ertl',
        '😀',
        'x'.repeat(64),
        'x'.repeat(65),
      ),
    },
    { weight: 2, arbitrary: fc.string({ maxLength: 70 }) },
    { weight: 1, arbitrary: codeUnitString(8) },
  )
  .map((key) => JSON.stringify(key));

/** Any JSON value as text, nested a few levels, with the edge cases above at the leaves. */
const jsonText = (nowMs: number): fc.Arbitrary<string> =>
  fc.letrec<{ value: string; object: string; array: string }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      numberText,
      timestampText(nowMs),
      fc.constantFrom('null', 'true', 'false', '""'),
      codeUnitString(20).map((text) => JSON.stringify(text)),
      tie('object'),
      tie('array'),
    ),
    object: fc
      .array(fc.tuple(keyText, tie('value')), { maxLength: 10 })
      .map((entries) => `{${entries.map(([key, value]) => `${key}:${value}`).join(',')}}`),
    array: fc.array(tie('value'), { maxLength: 10 }).map((items) => `[${items.join(',')}]`),
  })).value;

/** Something close to a reading: a value key and a timestamp key, with edge values and stray extra keys. */
const readingText = (nowMs: number) =>
  fc
    .record({
      valueKey: fc.constantFrom('value', 'v', 'val', 'temperature', 'battery'),
      value: numberText,
      timeKey: fc.constantFrom('ts', 'time', 'timestamp', 'meta'),
      time: timestampText(nowMs),
      extra: fc.array(fc.tuple(keyText, fc.oneof(numberText, timestampText(nowMs))), { maxLength: 4 }),
      duplicateValue: fc.option(numberText, { nil: undefined }),
    })
    .map(({ valueKey, value, timeKey, time, extra, duplicateValue }) => {
      const entries = [`"${valueKey}":${value}`, `"${timeKey}":${time}`, ...extra.map(([key, text]) => `${key}:${text}`)];
      if (duplicateValue !== undefined) entries.push(`"${valueKey}":${duplicateValue}`); // JSON.parse keeps the last
      return `{${entries.join(',')}}`;
    });

/** Arrays of readings: gateways flushing a backlog; past maxReadings (1000) when big. */
const batchText = (nowMs: number) =>
  fc.oneof(
    fc.array(readingText(nowMs), { maxLength: 40 }).map((items) => `[${items.join(',')}]`),
    fc.integer({ min: 990, max: 1010 }).map((count) => `[${Array.from({ length: count }, (_, index) => `{"v":${index}}`).join(',')}]`),
  );

/** RFC 8428 packs with base fields, relative and absolute times, names outside the SenML alphabet. */
const senmlText = (nowMs: number) => {
  const name = fc.oneof(
    fc.constantFrom(
      'urn:dev:ow:10e2073a01080063:',
      '/3303/0/5700',
      'temp',
      '',
      '..',
      '../../etc/passwd',
      'a b',
      '__proto__',
      '\u202e',
      'x'.repeat(200),
    ),
    fc.string({ maxLength: 20 }),
  );
  const seconds = fc.oneof(
    numberText,
    fc.integer({ min: -86_400, max: 86_400 }).map(String), // relative to now
    fc.integer({ min: 60, max: 3000 * 86_400 }).map((ago) => String(Math.floor(nowMs / 1000) - ago)),
    fc.constantFrom(String(2 ** 28 - 1), String(2 ** 28), '1.7976931348623157e308', '-1.7976931348623157e308'),
  );
  const record = fc
    .record(
      {
        bn: name.map((text) => JSON.stringify(text)),
        bt: seconds,
        bu: fc.constantFrom('"Cel"', '"%RH"', '1'),
        bv: numberText,
        bver: fc.constantFrom('10', '11', '"10"', '-1'),
        n: name.map((text) => JSON.stringify(text)),
        u: fc.constantFrom('"W"', 'null'),
        v: numberText,
        t: seconds,
        vs: fc.constantFrom('"on"', '1'),
        x_: fc.constant('1'),
      },
      { requiredKeys: [] },
    )
    .map(
      (fields) =>
        `{${Object.entries(fields)
          .map(([label, text]) => `"${label}":${text}`)
          .join(',')}}`,
    );
  return fc.array(record, { maxLength: 12 }).map((records) => `[${records.join(',')}]`);
};

/** Nesting past MAX_JSON_DEPTH (32) and right at it, unbalanced, and brackets hidden inside strings. */
const depthBombText = fc.oneof(
  fc.integer({ min: 1, max: 100_000 }).map((depth) => '['.repeat(depth)),
  fc.integer({ min: 28, max: 36 }).map((depth) => `${'['.repeat(depth)}1${']'.repeat(depth)}`),
  fc.integer({ min: 28, max: 36 }).map((depth) => `${'{"value":'.repeat(depth)}1${'}'.repeat(depth)}`),
  fc.integer({ min: 1, max: 5000 }).map((depth) => `{"value":1,"x":${'['.repeat(depth)}${']'.repeat(depth)}}`),
  fc.integer({ min: 1, max: 5000 }).map((depth) => `${']'.repeat(depth)}${'['.repeat(depth)}`),
  fc.integer({ min: 1, max: 2000 }).map((depth) => `{"value":1,"s":"${'['.repeat(depth)}"}`),
  fc.integer({ min: 1, max: 2000 }).map((depth) => `{"value":1,"s":"\\"${'{'.repeat(depth)}"}`),
);

/** Objects whose keys reach for Object.prototype, as a payload or the path a rule reads. */
const prototypeText = fc.constantFrom(
  '{"__proto__":{"polluted":"yes"},"value":1}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":"yes"}},"v":2}',
  '{"__proto__":5,"constructor":3,"prototype":1,"toString":2,"hasOwnProperty":1,"valueOf":4}',
  '[{"__proto__":{"polluted":1},"value":1}]',
  '[{"bn":"__proto__","n":"polluted","v":1}]',
  '{"__proto__":{"polluted":7},"constructor":{"prototype":1700000000}}',
  '{"data":{"__proto__":{"temp":1}},"meta":{"time":1}}',
);

/** Runs of digits or spaces that a backtracking number pattern would chew on for seconds (see PLAIN_NUMBER). */
const longNumericText = fc
  .tuple(fc.integer({ min: 1, max: 70_000 }), fc.constantFrom('x', 'e', 'e+', ' x', '.', '..', '', 'e1x', '.1x'))
  .chain(([length, tail]) =>
    fc.constantFrom(
      `${'1'.repeat(length)}${tail}`,
      `1e${'1'.repeat(length)}${tail}`,
      `${' '.repeat(length)}1${' '.repeat(length)}${tail}`,
      `-${'9'.repeat(length)}.${'9'.repeat(length)}${tail}`,
    ),
  );

/** UTF-8, as most devices send; WTF-8 (lone surrogates as ED xx xx), UTF-16 and Latin-1 as broken ones might. */
function encodeWtf8(text: string): Uint8Array {
  const bytes: number[] = [];
  for (let index = 0; index < text.length; index++) {
    const code = text.codePointAt(index)!;
    if (code > 0xffff) index++;
    if (code < 0x80) bytes.push(code);
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63));
    else if (code < 0x10000) bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
    else bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
  }
  return Uint8Array.from(bytes);
}

const encodings: Array<{ weight: number; arbitrary: fc.Arbitrary<(text: string) => Uint8Array> }> = [
  { weight: 20, arbitrary: fc.constant((text: string) => new TextEncoder().encode(text)) },
  { weight: 1, arbitrary: fc.constant(encodeWtf8) },
  { weight: 1, arbitrary: fc.constant((text: string) => new Uint8Array(Buffer.from(text, 'utf16le'))) },
  { weight: 1, arbitrary: fc.constant((text: string) => new Uint8Array(Buffer.from(text, 'latin1'))) },
  { weight: 1, arbitrary: fc.constant((text: string) => new TextEncoder().encode(`\ufeff${text}`)) },
];

const encoded = (text: fc.Arbitrary<string>) => fc.tuple(text, fc.oneof(...encodings)).map(([value, encode]) => encode(value));

/**
 * The F9 payload mix. Large payloads are rare (a 70 KB array costs more to generate than to reject), so that 10⁵
 * runs finish in seconds; they are still drawn often enough that every size class is seen in each run.
 */
export function payloadArb(nowMs: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 10, arbitrary: encoded(readingText(nowMs)) },
    { weight: 6, arbitrary: encoded(jsonText(nowMs)) },
    { weight: 4, arbitrary: encoded(fc.json()) },
    { weight: 3, arbitrary: encoded(fc.jsonValue().map((value) => JSON.stringify(value) ?? 'null')) },
    { weight: 4, arbitrary: encoded(numberText) },
    { weight: 3, arbitrary: encoded(batchText(nowMs)) },
    { weight: 4, arbitrary: encoded(senmlText(nowMs)) },
    { weight: 3, arbitrary: encoded(fc.string({ unit: 'binary', maxLength: 200 })) },
    { weight: 2, arbitrary: encoded(codeUnitString(200)) },
    { weight: 2, arbitrary: encoded(depthBombText) },
    { weight: 2, arbitrary: encoded(prototypeText) },
    { weight: 1, arbitrary: encoded(longNumericText) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 70_000 }) },
  );
}
