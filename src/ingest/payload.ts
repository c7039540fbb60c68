/**
 * Payload decoding: bytes in, readings or a rejection reason out. Pure: the clock is a parameter.
 *
 * Shapes (format `auto` tries them in this order; a topic rule may name one):
 *   number  `21.5`: one reading at the receive time.
 *   json    `{"value": 21.5, "ts": 1700000000}` (also v/val, time/timestamp): one reading.
 *           `{"temperature": 21.5, "humidity": 40, "battery_low": false, "ts": "2026-01-01T10:00:00Z"}`: one
 *           reading per numeric field (`field` = its key); fields that are not numbers are skipped, as are all the
 *           timestamp keys. `[{"value": 1, "ts": ...}, {"value": 2, "ts": ...}]`: an array of such objects, a
 *           batch (a gateway flushing its backlog).
 *           With `valuePath` (`data.temp`) only that value is read from each object, as the rule's series; with
 *           `timestampPath` (`meta.time`) the time comes from there (and a top-level key it names is no field).
 *           A bare number is still read as the value when paths are set.
 *   senml   RFC 8428 SenML JSON: `[{"bn": "urn:dev:ow:10e2073a01080063:", "bt": 1.32e9, "n": "voltage", "v": 120.1}]`.
 *           Each numeric record is a reading whose `field` is its name bn + n, kept to the SenML alphabet, `/` as
 *           `.` (see `senmlSeriesSuffix`); times per `decodeSenml`. In `auto`, an array is SenML when its first
 *           record carries a SenML label other than `v` (bn, bt, n, t, u...); `[{"value": ..}]` and
 *           `[{"v": .., "ts": ..}]` are batches.
 *
 * JSON is parsed only after two cheap checks on the text: size (`maxPayloadBytes`) and bracket depth (`too_deep`),
 * so that neither a huge nor a deeply nested document reaches JSON.parse or any code that walks the result.
 */
import type { PAYLOAD_FORMATS } from '../config/schema.js';
import { epochToMs, parseInstant } from '../time/timestamps.js';

export const REJECTION_REASONS = [
  'too_large',
  'not_text',
  'not_a_number',
  'non_finite',
  'out_of_range',
  'bad_json_shape',
  'bad_timestamp',
  'too_old',
  'in_future',
  'unknown_topic',
  'bad_series_name',
  'too_deep',
  'too_many_readings',
  // Set by the ingestor, not the decoder: the system clock is not set yet (src/clock.ts), so nothing can be stamped or dated.
  'clock_unsynced',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** The `format` of a topic rule (config/schema.ts, PAYLOAD_FORMATS); unset means auto. */
export type PayloadFormatName = (typeof PAYLOAD_FORMATS)[number];

/** How a topic rule's payloads are read. Paths are dot paths into a JSON object (`data.temp`). */
export interface PayloadFormat {
  format: PayloadFormatName;
  valuePath?: string;
  timestampPath?: string;
}

export interface DecodedReading {
  /**
   * Suffix of the series name: the JSON field or the SenML name the value came from; undefined when the value is
   * the rule's series itself (plain numbers, value objects, `valuePath`).
   */
  field?: string;
  ts: number;
  value: number;
  /** SenML unit (`u`, else `bu`), when the record has one. Not stored. */
  unit?: string;
}

export type DecodeResult = { ok: true; readings: DecodedReading[] } | { ok: false; reason: RejectionReason; detail: string };

export interface DecodeLimits {
  maxPayloadBytes: number;
  maxFutureMs: number;
  maxAgeMs: number;
  /** Readings (fields, array entries, SenML records) one message may carry; default DEFAULT_MAX_READINGS. */
  maxReadings?: number;
}

export const DEFAULT_MAX_READINGS = 1000;
/** Deeper JSON is rejected before it is parsed; no real sensor payload comes close. */
export const MAX_JSON_DEPTH = 32;
export const AUTO_FORMAT: PayloadFormat = { format: 'auto' };

/** Matches the storage CHECK constraint: anything larger is a broken sensor, not a measurement. */
const MAX_ABS_VALUE = 1e15;
// Every part is unambiguous (digits, then an optional `.digits`): `\d+\.?\d*` let the engine split a run of digits
// between two quantifiers in n ways, so a 4 KB run of digits ending in a letter took 36 ms and 64 KB took 9 s.
const PLAIN_NUMBER = /^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$/;
const TIMESTAMP_KEYS = ['ts', 'time', 'timestamp'];
const VALUE_KEYS = ['value', 'v', 'val'];
const FIELD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;

/** RFC 8428 §4.5.1: the concatenated name is made of these characters (the RFC also wants it to start with A-Za-z0-9). */
const SENML_NAME = /^[A-Za-z0-9\-:./_]*$/;
/** SenML labels that mark an array as SenML in `auto`; `v` is left out because batches use it too. */
const SENML_LABELS = new Set(['bn', 'bt', 'bu', 'bv', 'bs', 'bver', 'n', 'u', 't', 's', 'ut', 'vs', 'vb', 'vd']);
/** RFC 8428 §4.5.3: smaller SenML times are relative to now. */
const SENML_RELATIVE_LIMIT_S = 2 ** 28;
/** The SenML version this decoder implements (RFC 8428); a newer pack may mean things it cannot know. */
const SENML_VERSION = 10;

type Json = unknown;
type JsonObject = Record<string, Json>;
type Rejection = Extract<DecodeResult, { ok: false }>;

const reject = (reason: RejectionReason, detail: string): Rejection => ({ ok: false, reason, detail });

const isObject = (value: Json): value is JsonObject => value !== null && typeof value === 'object' && !Array.isArray(value);

function checkValue(value: unknown): RejectionReason | null {
  if (typeof value !== 'number') return 'not_a_number';
  if (!Number.isFinite(value)) return 'non_finite';
  if (Math.abs(value) > MAX_ABS_VALUE) return 'out_of_range';
  return null;
}

/** Epoch seconds, epoch milliseconds or a date and time with its zone (src/time/timestamps.ts); returns ms or null. */
export function parseTimestamp(raw: unknown): number | null {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw > 0 ? epochToMs(raw) : null;
  if (typeof raw !== 'string') return null;
  // In JSON an epoch is a number: a quoted one is more likely a counter or a device's bug than a time.
  const ms = parseInstant(raw, { epochDigits: false });
  return Number.isFinite(ms) ? ms : null;
}

/** `new Date(ts).toISOString()` throws beyond ±8.64e15 ms, and a rejection must never throw. */
const MAX_DATE_MS = 8.64e15;
const describeTime = (ts: number) => (Math.abs(ts) <= MAX_DATE_MS ? new Date(ts).toISOString() : `${ts} ms`);

function checkTime(ts: number, nowMs: number, limits: DecodeLimits): Rejection | null {
  if (ts > nowMs + limits.maxFutureMs) return reject('in_future', `timestamp ${describeTime(ts)} is ahead of the clock`);
  if (ts < nowMs - limits.maxAgeMs) return reject('too_old', `timestamp ${describeTime(ts)} is older than allowed`);
  return null;
}

/**
 * Whether the JSON text nests containers deeper than `maxDepth`. A linear scan with no recursion, that skips
 * strings (and their escapes); it stops at the first bracket too many, so `'['.repeat(1e6)` costs 33 steps.
 * Malformed text is left for JSON.parse to refuse.
 */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c /* \ */) index++;
      else if (code === 0x22 /* " */) inString = false;
    } else if (code === 0x22) {
      inString = true;
    } else if (code === 0x5b /* [ */ || code === 0x7b /* { */) {
      if (++depth > maxDepth) return true;
    } else if (code === 0x5d /* ] */ || code === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}

/**
 * The value at a dot path (`data.temp`, `readings.0.v`), following own properties only: `constructor` or
 * `__proto__` never reach a prototype. Undefined when any step is missing.
 */
function valueAt(root: Json, path: string): Json {
  let node: Json = root;
  for (const key of path.split('.')) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9]\d{0,5})$/.test(key)) return undefined;
      node = node[Number(key)];
    } else if (isObject(node) && Object.hasOwn(node, key)) {
      node = node[key];
    } else {
      return undefined;
    }
  }
  return node;
}

interface Context {
  nowMs: number;
  limits: DecodeLimits;
  maxReadings: number;
  format: PayloadFormat;
}

/** The time of one JSON object (a message, or an entry of a batch), in ms; the receive time when it has none. */
function timeOf(object: JsonObject, context: Context): number | Rejection {
  const { timestampPath } = context.format;
  let raw: Json;
  let where: string;
  if (timestampPath !== undefined) {
    raw = valueAt(object, timestampPath);
    where = timestampPath;
    if (raw === undefined) return reject('bad_timestamp', `no timestamp at "${timestampPath}"`);
  } else {
    const key = TIMESTAMP_KEYS.find((candidate) => Object.hasOwn(object, candidate));
    if (key === undefined) return context.nowMs;
    raw = object[key];
    where = key;
  }
  const ts = parseTimestamp(raw);
  if (ts === null) return reject('bad_timestamp', `"${where}" is not epoch seconds, epoch ms or ISO 8601 with a zone`);
  return checkTime(ts, context.nowMs, context.limits) ?? ts;
}

/** One JSON object: a value object, a `valuePath` object, or an object of several numeric fields. */
function decodeObject(object: JsonObject, context: Context, readings: DecodedReading[]): Rejection | null {
  const ts = timeOf(object, context);
  if (typeof ts !== 'number') return ts;

  const { valuePath, timestampPath } = context.format;
  if (valuePath !== undefined) {
    const value = valueAt(object, valuePath);
    if (value === undefined) return reject('bad_json_shape', `no value at "${valuePath}"`);
    const problem = checkValue(value);
    if (problem) return reject(problem, `"${valuePath}" is not a finite number`);
    readings.push({ ts, value: value as number });
    return null;
  }

  const valueKey = VALUE_KEYS.find((key) => Object.hasOwn(object, key));
  if (valueKey !== undefined) {
    const problem = checkValue(object[valueKey]);
    if (problem) return reject(problem, `"${valueKey}" is not a finite number`);
    readings.push({ ts, value: object[valueKey] as number });
    return null;
  }

  // Several fields: zigbee2mqtt and friends mix measurements with state (`battery_low: false`, an `update` object,
  // `last_seen` as text). Those are not readings and are skipped; a number that cannot be stored still fails the
  // message, since it means the device (or its converter) is broken.
  const before = readings.length;
  for (const [field, value] of Object.entries(object)) {
    if (typeof value !== 'number' || TIMESTAMP_KEYS.includes(field) || field === timestampPath) continue;
    if (!FIELD_NAME.test(field)) return reject('bad_series_name', 'a numeric field name is not a safe series suffix');
    const problem = checkValue(value);
    if (problem) return reject(problem, `field "${field}" is not a finite number`);
    if (readings.length >= context.maxReadings) return reject('too_many_readings', `more than ${context.maxReadings} readings in one message`);
    readings.push({ field, ts, value });
  }
  return readings.length > before ? null : reject('bad_json_shape', 'object without numeric fields');
}

function decodeBatch(entries: Json[], context: Context): DecodeResult {
  if (entries.length === 0) return reject('bad_json_shape', 'empty array');
  if (entries.length > context.maxReadings) return reject('too_many_readings', `${entries.length} entries > ${context.maxReadings}`);
  const readings: DecodedReading[] = [];
  for (const [index, entry] of entries.entries()) {
    if (!isObject(entry)) return reject('bad_json_shape', `array entry ${index} is not an object`);
    const problem = decodeObject(entry, context, readings);
    if (problem) return { ...problem, detail: `array entry ${index}: ${problem.detail}` };
  }
  return { ok: true, readings };
}

const senmlString = (record: JsonObject, label: string): string | undefined | null => {
  if (!Object.hasOwn(record, label)) return undefined;
  return typeof record[label] === 'string' ? record[label] : null;
};
const senmlNumber = (record: JsonObject, label: string): number | undefined | null => {
  if (!Object.hasOwn(record, label)) return undefined;
  const value = record[label];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
};

/**
 * The series suffix of a SenML name (`bn` + `n`, RFC 8428 §4.5.1): the name must keep to the SenML alphabet
 * (A-Z a-z 0-9 - : . / _); `/` becomes `.` and leading separators go, so a path-like name (LwM2M's `/3303/0/5700`)
 * reads like forecastd's other dotted series names. Undefined: an empty name, i.e. the rule's series itself.
 */
export function senmlSeriesSuffix(name: string): string | undefined | null {
  if (!SENML_NAME.test(name)) return null;
  const suffix = name.replaceAll('/', '.').replace(/^\.+/, '');
  return suffix === '' ? undefined : suffix;
}

/**
 * RFC 8428 SenML JSON. Base fields (bn, bt, bu, bv, bver) apply to their record and the ones after it until
 * changed. Only numeric records (`v`) are readings; string, boolean and data records (vs, vb, vd) and sum-only
 * records are skipped. Times are seconds: bt + t below 2^28 is relative to the receive time (0 or absent: "now",
 * negative: in the past), from 2^28 on it is epoch seconds. A label ending in `_` ("must understand", §4.4) or a
 * version above 10 rejects the pack.
 */
function decodeSenml(pack: Json[], context: Context): DecodeResult {
  if (pack.length === 0) return reject('bad_json_shape', 'empty SenML pack');
  if (pack.length > context.maxReadings) return reject('too_many_readings', `${pack.length} SenML records > ${context.maxReadings}`);
  const readings: DecodedReading[] = [];
  let baseName = '';
  let baseTime = 0;
  let baseUnit: string | undefined;
  let baseValue = 0;
  for (const [index, record] of pack.entries()) {
    if (!isObject(record)) return reject('bad_json_shape', `SenML record ${index} is not an object`);
    if (Object.keys(record).some((label) => label.endsWith('_')))
      return reject('bad_json_shape', `SenML record ${index} has a must-understand label`);
    const version = senmlNumber(record, 'bver');
    if (version === null || (version !== undefined && version > SENML_VERSION))
      return reject('bad_json_shape', `SenML record ${index}: unsupported bver`);

    const bn = senmlString(record, 'bn');
    const n = senmlString(record, 'n');
    const bu = senmlString(record, 'bu');
    const u = senmlString(record, 'u');
    const bv = senmlNumber(record, 'bv');
    if (bn === null || n === null || bu === null || u === null || bv === null) {
      return reject('bad_json_shape', `SenML record ${index}: a name, unit or base value of the wrong type`);
    }
    const bt = senmlNumber(record, 'bt');
    const t = senmlNumber(record, 't');
    if (bt === null || t === null) return reject('bad_timestamp', `SenML record ${index}: bt or t is not a finite number`);
    if (bn !== undefined) baseName = bn;
    if (bt !== undefined) baseTime = bt;
    if (bu !== undefined) baseUnit = bu;
    if (bv !== undefined) baseValue = bv;

    if (!Object.hasOwn(record, 'v')) continue; // vs, vb, vd, s: not a reading
    const value = record.v;
    if (typeof value !== 'number') return reject('not_a_number', `SenML record ${index}: "v" is not a number`);
    const resolved = baseValue + value;
    const problem = checkValue(resolved);
    if (problem) return reject(problem, `SenML record ${index}: the value is not a finite number`);

    const field = senmlSeriesSuffix(baseName + (n ?? ''));
    if (field === null) return reject('bad_series_name', `SenML record ${index}: the name has characters outside the SenML alphabet`);

    const seconds = baseTime + (t ?? 0);
    const ts = Math.round(seconds < SENML_RELATIVE_LIMIT_S ? context.nowMs + seconds * 1000 : seconds * 1000);
    if (!Number.isFinite(ts)) return reject('bad_timestamp', `SenML record ${index}: the time is not finite`);
    const timeProblem = checkTime(ts, context.nowMs, context.limits);
    if (timeProblem) return timeProblem;

    const unit = u ?? baseUnit;
    readings.push({ ...(field === undefined ? {} : { field }), ts, value: resolved, ...(unit === undefined ? {} : { unit }) });
  }
  return readings.length ? { ok: true, readings } : reject('bad_json_shape', 'SenML pack without numeric records');
}

/** `auto`: an array is SenML when its first record uses a SenML label other than `v`. */
function looksLikeSenml(array: Json[]): boolean {
  const first = array[0];
  return isObject(first) && Object.keys(first).some((label) => SENML_LABELS.has(label));
}

/** A plain number (`21.5`) as one reading at the receive time; null when the text is not one. */
function plainNumber(text: string, context: Context): DecodeResult | null {
  if (!PLAIN_NUMBER.test(text)) return null;
  const value = Number(text);
  const problem = checkValue(value);
  return problem ? reject(problem, 'plain number out of range') : { ok: true, readings: [{ ts: context.nowMs, value }] };
}

/** JSON text, parsed only after the depth check. */
function parseJson(text: string): { json: Json } | Rejection {
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) return reject('too_deep', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return { json: JSON.parse(text) as Json };
  } catch {
    return reject('not_a_number', 'neither a number nor JSON');
  }
}

/** A JSON document of readings: an object (one reading, or one per numeric field), or an array of them (or SenML). */
function decodeJson(text: string, context: Context, senml: 'detect' | 'never'): DecodeResult {
  const parsed = parseJson(text);
  if (!('json' in parsed)) return parsed;
  const { json } = parsed;
  if (Array.isArray(json)) {
    const { format } = context;
    const isSenml = senml === 'detect' && format.valuePath === undefined && format.timestampPath === undefined && looksLikeSenml(json);
    return isSenml ? decodeSenml(json, context) : decodeBatch(json, context);
  }
  if (isObject(json)) {
    const readings: DecodedReading[] = [];
    return decodeObject(json, context, readings) ?? { ok: true, readings };
  }
  return reject('bad_json_shape', `JSON ${json === null ? 'null' : typeof json} is not a reading`);
}

/**
 * The payload formats, by the name a topic rule's `format` gives (the names are config/schema.ts's PAYLOAD_FORMATS:
 * a new format is a name there and a decoder here). Each gets the payload as UTF-8 text, already size-checked.
 */
const DECODERS: Record<PayloadFormatName, (text: string, context: Context) => DecodeResult> = {
  number: (text, context) => plainNumber(text, context) ?? reject('not_a_number', 'not a plain number'),
  json: (text, context) => plainNumber(text, context) ?? decodeJson(text, context, 'never'),
  senml: (text, context) => {
    const parsed = parseJson(text);
    if (!('json' in parsed)) return parsed;
    return Array.isArray(parsed.json)
      ? decodeSenml(parsed.json, context)
      : reject('bad_json_shape', `JSON ${typeof parsed.json} is not a SenML pack`);
  },
  auto: (text, context) => plainNumber(text, context) ?? decodeJson(text, context, 'detect'),
};

export function decodePayload(payload: Uint8Array, nowMs: number, limits: DecodeLimits, format: PayloadFormat = AUTO_FORMAT): DecodeResult {
  if (payload.byteLength > limits.maxPayloadBytes) return reject('too_large', `${payload.byteLength} bytes > ${limits.maxPayloadBytes}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return reject('not_text', 'payload is not UTF-8 text');
  }
  return DECODERS[format.format](text, { nowMs, limits, maxReadings: limits.maxReadings ?? DEFAULT_MAX_READINGS, format });
}
