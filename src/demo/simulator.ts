/**
 * A simulated room sensor for `forecastd demo`: a temperature with a daily cycle and a slow drift,
 * and a humidity that falls as the room warms, with occasional outages.
 *
 * Every value (and every gap) is a pure function of (seed, ts): noise comes from a hash, not from a
 * stateful random generator, so a backfill of last week and a live stream of today produce the same
 * reading for the same timestamp, however the time ranges were split when asked for.
 */

export interface SimulatedReading {
  series: 'temperature' | 'humidity';
  /** Epoch milliseconds, always a multiple of `intervalMs`. */
  ts: number;
  value: number;
}

export interface SensorSimulatorOptions {
  seed: number;
  /** Time between readings; readings fall on multiples of it since the Unix epoch. */
  intervalMs: number;
  /** °C around which the room settles. Default 21. */
  baseTemperature?: number;
  /** °C above (mid-afternoon) and below (early morning) the base. Default 3. */
  dailyAmplitude?: number;
  /**
   * Average °C per day of the slow drift. The drift is a sine with a 20-day period rather than a
   * line, so that a demo left running for months stays at room temperature. Default 0.2.
   */
  trendPerDay?: number;
  /** Standard deviation, °C, of the temperature noise (humidity gets proportionally more). Default 0.15. */
  noise?: number;
  /** Chance, per reading, that an outage of 3..20 readings starts there. Default 0.002. */
  gapProbability?: number;
}

const MS_PER_MINUTE = 60_000;
const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;

const DEFAULT_BASE_TEMPERATURE = 21;
const DEFAULT_DAILY_AMPLITUDE = 3;
const DEFAULT_TREND_PER_DAY = 0.2;
const DEFAULT_NOISE = 0.15;
const DEFAULT_GAP_PROBABILITY = 0.002;

/** The warmest hour of the day, local time: the daily sine crosses zero at 09:00 and peaks at 15:00. */
const DAILY_ZERO_CROSSING_HOUR = 9;
const TREND_PERIOD_DAYS = 20;

/** Relative humidity (%) at the base temperature, and how many points it drops per °C warmer. */
const BASE_HUMIDITY = 45;
const HUMIDITY_PER_DEGREE = -2.5;

const MIN_GAP_READINGS = 3;
const MAX_GAP_READINGS = 20;

/** Independent hash streams, so temperature noise, humidity noise and gaps do not correlate. */
const Stream = {
  TemperatureNoiseA: 1,
  TemperatureNoiseB: 2,
  HumidityNoiseA: 3,
  HumidityNoiseB: 4,
  GapStart: 5,
  GapLength: 6,
} as const;
type Stream = (typeof Stream)[keyof typeof Stream];

export class SensorSimulator {
  readonly intervalMs: number;
  private readonly seed: number;
  private readonly baseTemperature: number;
  private readonly dailyAmplitude: number;
  /** Half the swing of the 20-day drift; chosen so its average slope is `trendPerDay`. */
  private readonly trendAmplitude: number;
  private readonly noise: number;
  private readonly gapProbability: number;

  constructor(options: SensorSimulatorOptions) {
    const { seed, intervalMs } = options;
    if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
      throw new RangeError(`intervalMs must be a positive whole number of milliseconds, got ${intervalMs}`);
    }
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    this.seed = seed;
    this.intervalMs = intervalMs;
    this.baseTemperature = finiteOption('baseTemperature', options.baseTemperature, DEFAULT_BASE_TEMPERATURE);
    this.dailyAmplitude = finiteOption('dailyAmplitude', options.dailyAmplitude, DEFAULT_DAILY_AMPLITUDE);
    // A sine of amplitude A rises 2A in half a period, so A = slope * period / 4 gives that average slope.
    this.trendAmplitude = (finiteOption('trendPerDay', options.trendPerDay, DEFAULT_TREND_PER_DAY) * TREND_PERIOD_DAYS) / 4;
    this.noise = finiteOption('noise', options.noise, DEFAULT_NOISE);
    if (this.noise < 0) throw new RangeError(`noise must be zero or more, got ${this.noise}`);
    this.gapProbability = finiteOption('gapProbability', options.gapProbability, DEFAULT_GAP_PROBABILITY);
    if (this.gapProbability < 0 || this.gapProbability > 1) {
      throw new RangeError(`gapProbability must be between 0 and 1, got ${this.gapProbability}`);
    }
  }

  /**
   * Both series at every multiple of `intervalMs` in [fromMs, toMs), oldest first, temperature
   * before humidity at the same ts, leaving out readings that fall in an outage.
   */
  readingsBetween(fromMs: number, toMs: number): SimulatedReading[] {
    if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) {
      throw new RangeError(`readingsBetween needs finite times, got ${fromMs} and ${toMs}`);
    }
    const readings: SimulatedReading[] = [];
    const firstIndex = Math.ceil(fromMs / this.intervalMs);
    const endIndex = Math.ceil(toMs / this.intervalMs);
    for (let index = firstIndex; index < endIndex; index++) {
      const ts = index * this.intervalMs;
      if (this.isInGap(index)) continue;
      readings.push({ series: 'temperature', ts, value: this.valueAt('temperature', ts) });
      readings.push({ series: 'humidity', ts, value: this.valueAt('humidity', ts) });
    }
    return readings;
  }

  /** The reading a working sensor would report at `ts` (whether or not `ts` falls in an outage). */
  valueAt(series: SimulatedReading['series'], ts: number): number {
    const temperature =
      this.baseTemperature +
      this.dailyAmplitude * Math.sin((2 * Math.PI * (localHourOfDay(ts) - DAILY_ZERO_CROSSING_HOUR)) / 24) +
      this.trendAmplitude * Math.sin((2 * Math.PI * ts) / (TREND_PERIOD_DAYS * MS_PER_DAY)) +
      this.noise * this.gaussian(ts, Stream.TemperatureNoiseA, Stream.TemperatureNoiseB);
    if (series === 'temperature') return temperature;
    const humidity =
      BASE_HUMIDITY +
      HUMIDITY_PER_DEGREE * (temperature - this.baseTemperature) +
      this.noise * Math.abs(HUMIDITY_PER_DEGREE) * this.gaussian(ts, Stream.HumidityNoiseA, Stream.HumidityNoiseB);
    return Math.min(100, Math.max(0, humidity));
  }

  /**
   * An outage may start at any reading; the reading at `index` is missing when one started within
   * the previous MAX_GAP_READINGS readings and is still running. Looking back instead of carrying
   * state forward keeps gaps identical however the time range is split.
   */
  private isInGap(index: number): boolean {
    if (this.gapProbability === 0) return false;
    for (let back = 0; back < MAX_GAP_READINGS; back++) {
      const startTs = (index - back) * this.intervalMs;
      if (hashUnit(this.seed, startTs, Stream.GapStart) >= this.gapProbability) continue;
      const span = MAX_GAP_READINGS - MIN_GAP_READINGS + 1;
      const length = MIN_GAP_READINGS + Math.floor(hashUnit(this.seed, startTs, Stream.GapLength) * span);
      if (back < length) return true;
    }
    return false;
  }

  /** A standard normal draw for `ts` (Box–Muller on two hashed uniforms). */
  private gaussian(ts: number, streamA: Stream, streamB: Stream): number {
    const u1 = 1 - hashUnit(this.seed, ts, streamA); // in (0, 1], so the log is finite
    const u2 = hashUnit(this.seed, ts, streamB);
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
}

/** Payloads a buggy or half-broken device might publish; the ingest path must drop each one cleanly. */
export function malformedPayloads(): Array<{ label: string; payload: Buffer | string }> {
  return [
    { label: 'not a number', payload: 'abc' },
    { label: 'NaN', payload: 'NaN' },
    { label: 'overflows to Infinity', payload: '1e400' },
    { label: 'value is a string', payload: '{"value":"x"}' },
    { label: 'value is null', payload: '{"temperature":null}' },
    { label: 'truncated JSON', payload: '[' },
    { label: 'binary bytes', payload: Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x1b, 0xc3, 0x28, 0x7f]) },
    { label: '10 KB string', payload: 'x'.repeat(10 * 1024) },
    { label: 'empty', payload: '' },
  ];
}

function finiteOption(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number, got ${value}`);
  return value;
}

/** Fractional hour of the day in the host's local time zone (the room follows the clock on the wall). */
function localHourOfDay(ts: number): number {
  const localMs = ts - new Date(ts).getTimezoneOffset() * MS_PER_MINUTE;
  return (((localMs % MS_PER_DAY) + MS_PER_DAY) % MS_PER_DAY) / MS_PER_HOUR;
}

const TWO_POW_32 = 4_294_967_296;

/** A uniform number in [0, 1) determined by (seed, ts, stream); works for any finite seed and ts. */
function hashUnit(seed: number, ts: number, stream: number): number {
  const seedHigh = Math.floor(seed / TWO_POW_32);
  const tsHigh = Math.floor(ts / TWO_POW_32);
  let hash = mix32((seed - seedHigh * TWO_POW_32) ^ mix32(seedHigh + 0x9e3779b9));
  hash = mix32(hash ^ (ts - tsHigh * TWO_POW_32));
  hash = mix32(hash ^ tsHigh ^ Math.imul(stream, 0x85ebca6b));
  return hash / TWO_POW_32;
}

/** The finaliser of a 32-bit integer hash (lowbias32): every input bit affects every output bit. */
function mix32(input: number): number {
  let h = input | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}
