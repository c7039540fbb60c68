/**
 * Every timestamp forecastd reads, in one place: CSV cells, MQTT payloads (`epochToMs`, `parseInstant`), CLI options
 * and API queries; and the time zone that gives meaning to those written without one.
 *
 * Accepted (per cell):
 *   2004-03-10T18:00:00   2004-03-10 18:00   2004-03-10T18:00:00.250+01:00   2004-03-10T17:00:00Z
 *   2004-03-10 (midnight)   2004-03 (the first of the month, midnight)
 *   10/03/2004 18.00.00 (day first, as in the raw UCI file; `:` or `.` between the time's parts)
 *   1078941600 (epoch seconds)   1078941600000 (epoch milliseconds): digits only, at least 9 of them,
 *   below 1e11 read as seconds (`epochToMs`, the rule of the MQTT payloads too)
 * A time with a zone (`Z`, `+01:00`, `+0100`, `+01`) is exact. A time without one is a wall-clock time in the
 * import's time zone (see `timeZone`); `parseInstant` refuses it. Fractions of a second beyond milliseconds are
 * truncated in a time of day; an epoch number is rounded to the millisecond (seconds × 1000 is not exact in binary:
 * 1764327600.123 × 1000 is 1764327600122.9998).
 */

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/**
 * Turns wall-clock times (written as ms since the epoch, as if the wall clock were UTC) into instants.
 * Counts the two cases a zone with daylight saving time cannot answer exactly.
 */
export interface TimeZone {
  /** `UTC`, a fixed offset such as `+01:00`, or an IANA name such as `Europe/Rome`. */
  readonly name: string;
  wallToUtc(wallMs: number): number;
  /** Wall-clock times that fell in a spring-forward gap (they do not exist): moved forward by the gap. */
  nonexistent: number;
  /** Wall-clock times that occur twice (fall back): the first occurrence, the one with the larger offset, is used. */
  ambiguous: number;
}

/** Date.UTC maps years 0-99 to 1900-1999; this does not. */
function utcMs(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number {
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, ms));
  if (year !== 2000) date.setUTCFullYear(year, month - 1, day);
  return date.getTime();
}

const FIXED_OFFSET = /^([+-])(\d{2}):?(\d{2})$/;

function fixedZone(name: string, offsetMs: number): TimeZone {
  return { name, nonexistent: 0, ambiguous: 0, wallToUtc: (wallMs) => wallMs - offsetMs };
}

/** An IANA zone, through Intl. Offsets are cached per UTC day: Intl costs microseconds, a Map lookup does not. */
function ianaZone(name: string): TimeZone {
  const formatter = new Intl.DateTimeFormat('en-US', {
    timeZone: name,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
    era: 'short',
  });
  const exactOffset = (utc: number): number => {
    const wholeSecond = Math.floor(utc / 1000) * 1000;
    const parts: Record<string, string> = {};
    for (const part of formatter.formatToParts(wholeSecond)) parts[part.type] = part.value;
    const year = parts.era === 'BC' || parts.era === 'B' ? 1 - Number(parts.year) : Number(parts.year);
    const wall = utcMs(year, Number(parts.month), Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second), 0);
    return wall - wholeSecond;
  };
  // Per UTC day: the offset when it is the same at both ends of the day, NaN when the day has a transition.
  const dayOffsets = new Map<number, number>();
  const offsetAt = (utc: number): number => {
    const day = Math.floor(utc / DAY_MS);
    let offset = dayOffsets.get(day);
    if (offset === undefined) {
      const first = exactOffset(day * DAY_MS);
      offset = first === exactOffset((day + 1) * DAY_MS - 1000) ? first : Number.NaN;
      dayOffsets.set(day, offset);
    }
    return Number.isNaN(offset) ? exactOffset(utc) : offset;
  };
  const zone: TimeZone = {
    name,
    nonexistent: 0,
    ambiguous: 0,
    wallToUtc(wallMs) {
      // The offsets a day before and a day after bracket any transition near this wall time.
      const before = offsetAt(wallMs - DAY_MS);
      const after = offsetAt(wallMs + DAY_MS);
      if (before === after) return wallMs - before;
      const beforeFits = offsetAt(wallMs - before) === before;
      const afterFits = offsetAt(wallMs - after) === after;
      if (beforeFits && afterFits) {
        zone.ambiguous++;
        return wallMs - Math.max(before, after);
      }
      if (beforeFits) return wallMs - before;
      if (afterFits) return wallMs - after;
      zone.nonexistent++;
      return wallMs - before;
    },
  };
  return zone;
}

/** The zone of this machine, as Node sees it (the TZ environment variable, else the system's). */
export function localTimeZoneName(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}

/**
 * `UTC`, `local`, `+01:00` / `-0330`, or an IANA name. Throws a RangeError naming the problem for anything else.
 */
export function timeZone(spec: string): TimeZone {
  const name = spec === 'local' ? localTimeZoneName() : spec;
  if (/^(UTC|Etc\/UTC|GMT|Etc\/GMT|Z)$/i.test(name)) return fixedZone('UTC', 0);
  const fixed = FIXED_OFFSET.exec(name);
  if (fixed) {
    const minutes = Number(fixed[2]) * 60 + Number(fixed[3]);
    if (Number(fixed[2]) > 23 || Number(fixed[3]) > 59) throw new RangeError(`time zone offset ${name} is out of range`);
    return fixedZone(name, (fixed[1] === '-' ? -1 : 1) * minutes * MINUTE_MS);
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
  } catch {
    throw new RangeError(`unknown time zone "${spec}": use UTC, local, a fixed offset such as +01:00, or an IANA name such as Europe/Rome`);
  }
  return ianaZone(name);
}

const ZERO = 48;

/** The number written by `count` digits at `start`, or NaN. */
function digitsAt(text: string, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (!(digit >= 0 && digit <= 9)) return Number.NaN;
    value = value * 10 + digit;
  }
  return value;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Parses `HH:MM[:SS[.fff]]` (`.` also accepted between the parts) from `start` to the end of `text`, and an optional
 * zone after it. Returns ms into the day plus the zone offset, or null.
 */
function parseTime(text: string, start: number): { ms: number; offsetMs: number | null } | null {
  const hour = digitsAt(text, start, 2);
  const separator = text[start + 2];
  if (separator !== ':' && separator !== '.') return null;
  const minute = digitsAt(text, start + 3, 2);
  let i = start + 5;
  let second = 0;
  let ms = 0;
  if (text[i] === separator) {
    second = digitsAt(text, i + 1, 2);
    i += 3;
    if (text[i] === '.' || text[i] === ',') {
      i++;
      let scale = 100;
      const fractionStart = i;
      for (; i < text.length; i++) {
        const digit = text.charCodeAt(i) - ZERO;
        if (!(digit >= 0 && digit <= 9)) break;
        ms += digit * scale;
        scale /= 10;
      }
      if (i === fractionStart) return null;
      ms = Math.floor(ms);
    }
  }
  if (!(hour <= 23 && minute <= 59 && second <= 59)) return null; // NaN fails too
  let offsetMs: number | null = null;
  if (i < text.length) {
    const sign = text[i];
    const rest = text.length - i - 1;
    if ((sign === 'Z' || sign === 'z') && rest === 0) offsetMs = 0;
    else if (sign === '+' || sign === '-') {
      const offsetHours = digitsAt(text, i + 1, 2);
      let offsetMinutes = 0;
      if (rest === 5 && text[i + 3] === ':') offsetMinutes = digitsAt(text, i + 4, 2);
      else if (rest === 4) offsetMinutes = digitsAt(text, i + 3, 2);
      else if (rest !== 2) return null;
      if (!(offsetHours <= 23 && offsetMinutes <= 59)) return null;
      offsetMs = (sign === '-' ? -1 : 1) * (offsetHours * HOUR_MS + offsetMinutes * MINUTE_MS);
    } else return null;
  }
  return { ms: ((hour * 60 + minute) * 60 + second) * 1000 + ms, offsetMs };
}

function dateMs(year: number, month: number, day: number): number {
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month))) return Number.NaN;
  return utcMs(year, month, day, 0, 0, 0, 0);
}

/** Ms since the epoch for the timestamp `text`, or NaN when it is none of the accepted forms. */
export function parseTimestamp(raw: string, zone: TimeZone): number {
  const text = raw.charCodeAt(0) === 32 || raw.charCodeAt(raw.length - 1) === 32 ? raw.trim() : raw;
  const length = text.length;
  if (length >= 7 && text[4] === '-') {
    const year = digitsAt(text, 0, 4);
    const month = digitsAt(text, 5, 2);
    if (length === 7) {
      const month0 = dateMs(year, month, 1);
      return Number.isNaN(month0) ? month0 : zone.wallToUtc(month0);
    }
    if (text[7] !== '-') return Number.NaN;
    const day0 = dateMs(year, month, digitsAt(text, 8, 2));
    if (length === 10) return Number.isNaN(day0) ? day0 : zone.wallToUtc(day0);
    const separator = text[10];
    if (separator !== 'T' && separator !== ' ' && separator !== 't') return Number.NaN;
    return withTime(day0, text, 11, zone);
  }
  if (length >= 10 && text[2] === '/' && text[5] === '/') {
    const day0 = dateMs(digitsAt(text, 6, 4), digitsAt(text, 3, 2), digitsAt(text, 0, 2));
    if (length === 10) return Number.isNaN(day0) ? day0 : zone.wallToUtc(day0);
    if (text[10] !== ' ' && text[10] !== 'T') return Number.NaN;
    return withTime(day0, text, 11, zone);
  }
  return parseEpoch(text);
}

function withTime(day0: number, text: string, start: number, zone: TimeZone): number {
  if (Number.isNaN(day0)) return day0;
  const time = parseTime(text, start);
  if (time === null) return Number.NaN;
  return time.offsetMs === null ? zone.wallToUtc(day0 + time.ms) : day0 + time.ms - time.offsetMs;
}

/** Below this an epoch number is seconds (1e11 s is the year 5138; 1e11 ms is 1973). */
const SECONDS_LIMIT = 1e11;

/** Epoch seconds or milliseconds (below 1e11: seconds) as milliseconds, rounded to the millisecond. */
export function epochToMs(value: number): number {
  return Math.round(value < SECONDS_LIMIT ? value * 1000 : value);
}

/** A zone for times that must carry their own: a wall-clock time without a zone has no instant (NaN). */
const ZONE_REQUIRED: TimeZone = { name: 'required', nonexistent: 0, ambiguous: 0, wallToUtc: () => Number.NaN };

/**
 * An instant that says which one it is: a date and time with its zone (`2026-11-28T10:00:00Z`, `…+01:00`), or epoch
 * seconds or milliseconds as digits. NaN for anything else, a time without a zone included (on a gateway whose zone
 * may differ from the device's, it is ambiguous).
 */
export function parseInstant(text: string, options: { epochDigits?: boolean } = {}): number {
  if (options.epochDigits === false && /^\s*\d+(\.\d+)?\s*$/.test(text)) return Number.NaN;
  return parseTimestamp(text, ZONE_REQUIRED);
}

function parseEpoch(text: string): number {
  let integerDigits = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const digit = text.charCodeAt(i) - ZERO;
    if (!(digit >= 0 && digit <= 9)) break;
    integerDigits++;
  }
  // Fewer than 9 digits is more likely a year, a count or a compact date than a time before 1973.
  if (integerDigits < 9) return Number.NaN;
  if (i < text.length) {
    if (text[i] !== '.' || i === text.length - 1) return Number.NaN;
    for (i++; i < text.length; i++) {
      const digit = text.charCodeAt(i) - ZERO;
      if (!(digit >= 0 && digit <= 9)) return Number.NaN;
    }
  }
  return epochToMs(Number(text));
}
