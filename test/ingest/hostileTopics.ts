/**
 * Hostile MQTT topic levels for the ingest path (docs/reliability.md, "Security", F9c): text that tries path traversal or
 * SQL injection once a topic rule turns it into a series name, and a fast-check arbitrary for more of the same.
 *
 * MQTT allows any UTF-8 in a topic except U+0000 (and wildcards in a PUBLISH), up to 65,535 bytes. Mosquitto
 * refuses more than the standard: it also treats control characters and non-characters as malformed UTF-8 and
 * disconnects the publisher, which mqtt.js then reconnects and re-sends the same publish to, forever. Those are
 * kept apart (`BROKER_REFUSED_TOPICS`) and sent once each from a throwaway client; everything else is deliverable.
 */
import fc from 'fast-check';

/** One topic level each (no `/`): traversal, encodings of it, SQL, quotes, bidi marks, names JS objects own. */
export const HOSTILE_LEVELS: readonly string[] = [
  '..',
  '.',
  '...',
  '%2e%2e',
  '%2E%2E%2F',
  '..%2f..%2fetc',
  '..\\..\\windows',
  '\\',
  'a\\b',
  '~',
  '~root',
  '$HOME',
  '`id`',
  "'; DROP TABLE readings; --",
  "' OR '1'='1",
  '"',
  '";--',
  'a"b',
  "a'b",
  'series; DELETE FROM series',
  'x) --',
  '\u202eevil',
  '\u200fx',
  'x\u200b',
  '😀',
  'é',
  'e\u0301',
  '\uff0e\uff0e',
  '\u2024\u2024',
  'a b',
  ' ',
  'a..b',
  '_..',
  '_.._',
  'x.-.y',
  'a:b',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'CON',
  'nul',
  'aux',
  'com1',
  '-rf',
  '.hidden',
  ':x',
  'null',
  'undefined',
  'NaN',
  '0',
  '%00',
  '\\0',
  '%',
];

/** Whole topics of path traversal and SQL injection; some match no rule (too many or empty levels). */
export const HOSTILE_TOPICS: readonly string[] = [
  'sensors/../../etc/passwd',
  'sensors/../etc/passwd',
  'sensors/%2e%2e/x',
  "sensors/'; DROP TABLE readings; --/t",
  'sensors/"/t',
  'sensors/x/"); DROP TABLE series; --',
  'sensors/..%2f..%2fetc/passwd',
  'sensors/..\\..\\windows/system32',
  'sensors//t',
  'sensors/a/',
  'sensors/a',
  'sensors/a/b/c/d/e',
  'sensors/\u202edrowssap/t',
  'sensors/😀/🔥',
  'raw/',
  'raw/../x',
  'raw/./.',
];

/** The longest topic MQTT can carry: its length is a 16-bit prefix. */
export const MAX_TOPIC_BYTES = 65_535;
/** Mosquitto 2.0 refuses a topic with more than 200 separators (201 levels), measured. */
export const MOSQUITTO_MAX_TOPIC_LEVELS = 201;

const levels = (count: number) => Array.from({ length: count }, (_, index) => (index === 0 ? 'sensors' : 'a')).join('/');

/** The longest and deepest topics that still reach a subscriber; they must match no rule or give a bad name. */
export const EXTREME_TOPICS: ReadonlyArray<{ label: string; topic: string }> = [
  { label: `${MAX_TOPIC_BYTES}-byte topic`, topic: `raw/${'a'.repeat(MAX_TOPIC_BYTES - 4)}` },
  { label: `${MAX_TOPIC_BYTES - 3}-byte topic of emoji`, topic: `raw/${'😀'.repeat((MAX_TOPIC_BYTES - 4) >> 2)}` },
  { label: `${MOSQUITTO_MAX_TOPIC_LEVELS} levels`, topic: levels(MOSQUITTO_MAX_TOPIC_LEVELS) },
];

/**
 * Topics that must never reach forecastd: NUL (MQTT forbids U+0000), wildcards in a PUBLISH, controls and
 * non-characters (Mosquitto's UTF-8 check), one byte past the 16-bit length, one level past Mosquitto's limit.
 */
export const BROKER_REFUSED_TOPICS: ReadonlyArray<{ label: string; topic: string }> = [
  { label: 'NUL in a level', topic: 'sensors/a\u0000b/t' },
  { label: 'NUL at the end', topic: 'raw/x\u0000' },
  { label: 'wildcard +', topic: 'sensors/+/t' },
  { label: 'wildcard #', topic: 'sensors/a/#' },
  { label: 'control U+0001', topic: 'raw/a\u0001b' },
  { label: 'tab', topic: 'raw/a\tb' },
  { label: 'DEL U+007F', topic: 'raw/a\u007fb' },
  { label: 'C1 control U+0085', topic: 'raw/a\u0085b' },
  { label: 'non-character U+FFFF', topic: 'raw/a\uffffb' },
  { label: 'non-character U+FDD0', topic: 'raw/a\ufdd0b' },
  { label: `${MAX_TOPIC_BYTES + 1}-byte topic`, topic: `raw/${'a'.repeat(MAX_TOPIC_BYTES - 3)}` },
  { label: `${MOSQUITTO_MAX_TOPIC_LEVELS + 1} levels`, topic: levels(MOSQUITTO_MAX_TOPIC_LEVELS + 1) },
];

/** Characters a deliverable level is drawn from: printable ASCII and a few hostile Unicode ones, no `/ + #`. */
const LEVEL_CHARACTERS = [
  ...Array.from({ length: 0x7f - 0x20 }, (_, index) => String.fromCharCode(0x20 + index)).filter((char) => !'/+#'.includes(char)),
  '\u202e',
  '\u200f',
  '\u200b',
  '\u00e9',
  '\u0301',
  '\uff0e',
  '\u2024',
  '😀',
  '中',
  '\u00a0',
  '\ud800',
  '\udfff',
];

/**
 * One deliverable topic level. Lone surrogates are in the mix: a JS string may hold one, and mqtt.js encodes it as
 * U+FFFD, so the name that arrives is `deliveredText(level)`, not the level itself.
 */
export const topicLevelArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...LEVEL_CHARACTERS), { minLength: 1, maxLength: 40 }).map((chars) => chars.join('')) },
  { weight: 2, arbitrary: fc.array(fc.constantFrom('a', '0', '_', '.', ':', '-'), { minLength: 1, maxLength: 140 }).map((chars) => chars.join('')) },
  { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_LEVELS) },
);

/** What a receiver decodes from a JS string sent as UTF-8 (lone surrogates become U+FFFD). */
export const deliveredText = (text: string) => Buffer.from(text, 'utf8').toString('utf8');
