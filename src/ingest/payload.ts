/**
 * Payload decoding: bytes in, readings or a rejection reason out. Pure: the clock is a parameter.
 *
 * Accepted shapes:  `21.5`   `{"value": 21.5, "ts": 1700000000}`   `{"temperature": 21.5, "humidity": 40, "ts": "2026-01-01T10:00:00Z"}`
 */

export const REJECTION_REASONS = [
  'too_large', 'not_text', 'not_a_number', 'non_finite', 'out_of_range', 'bad_json_shape',
  'bad_timestamp', 'too_old', 'in_future', 'unknown_topic', 'bad_series_name',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export interface DecodedReading {
  /** JSON object field the value came from; undefined for single-value payloads. */
  field?: string;
  ts: number;
  value: number;
}

export type DecodeResult = { ok: true; readings: DecodedReading[] } | { ok: false; reason: RejectionReason; detail: string };

export interface DecodeLimits {
  maxPayloadBytes: number;
  maxFutureMs: number;
  maxAgeMs: number;
}

/** Matches the storage CHECK constraint: anything larger is a broken sensor, not a measurement. */
const MAX_ABS_VALUE = 1e15;
const PLAIN_NUMBER = /^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$/;
const TIMESTAMP_KEYS = ['ts', 'time', 'timestamp'];
const VALUE_KEYS = ['value', 'v', 'val'];
const FIELD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
/** Below this an epoch number is seconds (1e11 s is the year 5138; 1e11 ms is 1973). */
const SECONDS_LIMIT = 1e11;

const reject = (reason: RejectionReason, detail: string): DecodeResult => ({ ok: false, reason, detail });

function checkValue(value: unknown): RejectionReason | null {
  if (typeof value !== 'number') return 'not_a_number';
  if (!Number.isFinite(value)) return 'non_finite';
  if (Math.abs(value) > MAX_ABS_VALUE) return 'out_of_range';
  return null;
}

/** Epoch seconds, epoch milliseconds or an ISO 8601 string with a zone; returns ms or null. */
export function parseTimestamp(raw: unknown): number | null {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw) || raw <= 0) return null;
    return Math.round(raw < SECONDS_LIMIT ? raw * 1000 : raw);
  }
  if (typeof raw === 'string') {
    // A time without a zone is ambiguous on a gateway whose zone may differ from the device's: refuse it.
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(raw)) return null;
    const ms = Date.parse(raw);
    return Number.isFinite(ms) ? ms : null;
  }
  return null;
}

function checkTime(ts: number, nowMs: number, limits: DecodeLimits): DecodeResult | null {
  if (ts > nowMs + limits.maxFutureMs) return reject('in_future', `timestamp ${new Date(ts).toISOString()} is ahead of the clock`);
  if (ts < nowMs - limits.maxAgeMs) return reject('too_old', `timestamp ${new Date(ts).toISOString()} is older than allowed`);
  return null;
}

function decodeObject(object: Record<string, unknown>, nowMs: number, limits: DecodeLimits): DecodeResult {
  const tsKey = TIMESTAMP_KEYS.find((key) => Object.hasOwn(object, key));
  let ts = nowMs;
  if (tsKey !== undefined) {
    const parsed = parseTimestamp(object[tsKey]);
    if (parsed === null) return reject('bad_timestamp', `"${tsKey}" is not epoch seconds, epoch ms or ISO 8601 with a zone`);
    ts = parsed;
  }
  const timeProblem = checkTime(ts, nowMs, limits);
  if (timeProblem) return timeProblem;

  const valueKey = VALUE_KEYS.find((key) => Object.hasOwn(object, key));
  if (valueKey !== undefined) {
    const problem = checkValue(object[valueKey]);
    return problem ? reject(problem, `"${valueKey}" is not a finite number`) : { ok: true, readings: [{ ts, value: object[valueKey] as number }] };
  }
  const readings: DecodedReading[] = [];
  for (const [field, value] of Object.entries(object)) {
    if (tsKey === field) continue;
    if (!FIELD_NAME.test(field)) return reject('bad_series_name', 'a field name is not a safe series suffix');
    const problem = checkValue(value);
    if (problem) return reject(problem, `field "${field}" is not a finite number`);
    readings.push({ field, ts, value: value as number });
  }
  return readings.length ? { ok: true, readings } : reject('bad_json_shape', 'object without numeric fields');
}

export function decodePayload(payload: Uint8Array, nowMs: number, limits: DecodeLimits): DecodeResult {
  if (payload.byteLength > limits.maxPayloadBytes) return reject('too_large', `${payload.byteLength} bytes > ${limits.maxPayloadBytes}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return reject('not_text', 'payload is not UTF-8 text');
  }
  if (PLAIN_NUMBER.test(text)) {
    const value = Number(text);
    const problem = checkValue(value);
    return problem ? reject(problem, 'plain number out of range') : { ok: true, readings: [{ ts: nowMs, value }] };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return reject('not_a_number', 'neither a number nor JSON');
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
    return decodeObject(parsed as Record<string, unknown>, nowMs, limits);
  }
  return reject('bad_json_shape', `JSON ${Array.isArray(parsed) ? 'array' : typeof parsed} is not a reading`);
}
