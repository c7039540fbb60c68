import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SensorSimulator, malformedPayloads, type SimulatedReading } from '../../src/demo/simulator.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** A fixed, non-round start so nothing depends on the day the tests run. */
const START = Date.UTC(2024, 2, 11, 7, 13);

function series(readings: SimulatedReading[], name: SimulatedReading['series']): SimulatedReading[] {
  return readings.filter((reading) => reading.series === name);
}

function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function pearson(xs: number[], ys: number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

describe('SensorSimulator', () => {
  describe('determinism', () => {
    it('gives the same readings for a range whether it is asked for whole or in pieces', () => {
      const simulator = new SensorSimulator({ seed: 7, intervalMs: MINUTE, gapProbability: 0.01 });
      const end = START + 2 * DAY;
      const whole = simulator.readingsBetween(START, end);
      // Split points off the interval grid and inside gaps must not matter either.
      for (const split of [START + 1, START + 37 * MINUTE + 123, START + DAY, end - MINUTE]) {
        const pieces = [...simulator.readingsBetween(START, split), ...simulator.readingsBetween(split, end)];
        assert.deepEqual(pieces, whole, `split at ${new Date(split).toISOString()}`);
      }
    });

    it('gives the same value for a timestamp regardless of what was asked before, or in which instance', () => {
      const ts = START + 5 * DAY + 42 * MINUTE;
      const fresh = new SensorSimulator({ seed: 99, intervalMs: MINUTE });
      const used = new SensorSimulator({ seed: 99, intervalMs: MINUTE });
      used.readingsBetween(START, START + 3 * DAY);
      assert.equal(used.valueAt('temperature', ts), fresh.valueAt('temperature', ts));
      assert.equal(used.valueAt('humidity', ts), fresh.valueAt('humidity', ts));
    });

    it('gives different noise for different seeds', () => {
      const a = new SensorSimulator({ seed: 1, intervalMs: MINUTE, gapProbability: 0 });
      const b = new SensorSimulator({ seed: 2, intervalMs: MINUTE, gapProbability: 0 });
      const fromB = b.readingsBetween(START, START + HOUR);
      const differing = a.readingsBetween(START, START + HOUR).filter((reading, index) => reading.value !== fromB[index].value);
      assert.ok(differing.length > 100, `only ${differing.length} of 120 readings differ between seeds`);
    });
  });

  describe('readingsBetween', () => {
    it('puts both series at every interval boundary in [from, to), oldest first', () => {
      const intervalMs = 5 * MINUTE;
      const simulator = new SensorSimulator({ seed: 3, intervalMs, gapProbability: 0 });
      const from = 1_700_000_100_000; // a multiple of 5 minutes, so included
      const readings = simulator.readingsBetween(from, from + HOUR);
      assert.equal(readings.length, 2 * 12);
      const timestamps = series(readings, 'temperature').map((reading) => reading.ts);
      assert.deepEqual(
        timestamps,
        Array.from({ length: 12 }, (_, i) => from + i * intervalMs),
      );
      assert.deepEqual(
        series(readings, 'humidity').map((reading) => reading.ts),
        timestamps,
      );
      assert.deepEqual(simulator.readingsBetween(from, from), []);
      assert.deepEqual(simulator.readingsBetween(from + 1, from + intervalMs), []);
    });

    it('has no gaps when gapProbability is 0', () => {
      const simulator = new SensorSimulator({ seed: 11, intervalMs: MINUTE, gapProbability: 0 });
      assert.equal(simulator.readingsBetween(START, START + 3 * DAY).length, 2 * 3 * 24 * 60);
    });

    it('has outages of at least 3 readings, dropping both series, when gapProbability > 0', () => {
      const simulator = new SensorSimulator({ seed: 11, intervalMs: MINUTE, gapProbability: 0.01 });
      const readings = simulator.readingsBetween(START, START + DAY);
      const temperatureTs = series(readings, 'temperature').map((reading) => reading.ts);
      assert.deepEqual(
        series(readings, 'humidity').map((reading) => reading.ts),
        temperatureTs,
      );
      const present = new Set(temperatureTs);
      const firstTs = Math.ceil(START / MINUTE) * MINUTE;
      const runs: number[] = [];
      let run = 0;
      for (let ts = firstTs; ts < START + DAY; ts += MINUTE) {
        if (!present.has(ts)) run++;
        else if (run > 0) {
          runs.push(run);
          run = 0;
        }
      }
      // About 14 expected at 1440 readings and p = 0.01.
      assert.ok(runs.length >= 3, `expected several outages, found ${runs.length}`);
      assert.ok(
        runs.every((length) => length >= 3),
        `outage lengths ${runs.join(',')}`,
      );
    });
  });

  describe('signal', () => {
    const amplitude = 3;
    const simulator = new SensorSimulator({ seed: 5, intervalMs: 5 * MINUTE, dailyAmplitude: amplitude, gapProbability: 0 });
    const readings = simulator.readingsBetween(START, START + 20 * DAY);
    const temperature = series(readings, 'temperature');
    const humidity = series(readings, 'humidity');

    it('is warmer in the afternoon than at night by about the daily amplitude', () => {
      const hour = (ts: number): number => new Date(ts).getHours();
      const afternoon = mean(temperature.filter((r) => hour(r.ts) >= 12 && hour(r.ts) < 18).map((r) => r.value));
      const night = mean(temperature.filter((r) => hour(r.ts) >= 0 && hour(r.ts) < 6).map((r) => r.value));
      // The mean of the sine over 12:00–18:00 is 2√2/π ≈ 0.9 of its peak, and -0.9 over 00:00–06:00.
      const expected = ((2 * 2 * Math.SQRT2) / Math.PI) * amplitude;
      assert.ok(Math.abs(afternoon - night - expected) < 0.5, `afternoon ${afternoon}, night ${night}, expected a difference near ${expected}`);
    });

    it('has humidity that falls as temperature rises', () => {
      const r = pearson(
        temperature.map((t) => t.value),
        humidity.map((h) => h.value),
      );
      assert.ok(r < -0.5, `Pearson r = ${r}`);
    });

    it('stays bounded over months (the slow drift oscillates instead of climbing)', () => {
      const longRun = new SensorSimulator({ seed: 5, intervalMs: HOUR, gapProbability: 0 }).readingsBetween(START, START + 365 * DAY);
      const values = series(longRun, 'temperature').map((r) => r.value);
      // base 21 ± daily 3 ± drift 0.2*20/4 = 1 ± noise (0.15 * at most 6.7 sigma)
      assert.ok(Math.max(...values) < 26 && Math.min(...values) > 16, `range ${Math.min(...values)}..${Math.max(...values)}`);
      for (const h of series(longRun, 'humidity')) assert.ok(h.value >= 0 && h.value <= 100);
    });

    it('clamps humidity to [0, 100] even for an extreme room', () => {
      const extreme = new SensorSimulator({ seed: 5, intervalMs: HOUR, dailyAmplitude: 40, gapProbability: 0 });
      const values = series(extreme.readingsBetween(START, START + 2 * DAY), 'humidity').map((r) => r.value);
      assert.equal(Math.max(...values), 100);
      assert.equal(Math.min(...values), 0);
    });
  });

  it('rejects options that cannot produce readings', () => {
    assert.throws(() => new SensorSimulator({ seed: 1, intervalMs: 0 }), RangeError);
    assert.throws(() => new SensorSimulator({ seed: 1, intervalMs: 1.5 }), RangeError);
    assert.throws(() => new SensorSimulator({ seed: 1, intervalMs: MINUTE, gapProbability: 2 }), RangeError);
    assert.throws(() => new SensorSimulator({ seed: Number.NaN, intervalMs: MINUTE }), RangeError);
  });
});

describe('malformedPayloads', () => {
  it('covers each kind of broken payload the brief lists, none of which is a usable number', () => {
    const payloads = malformedPayloads();
    const texts = payloads.map((p) => (typeof p.payload === 'string' ? p.payload : null));
    for (const expected of ['abc', 'NaN', '1e400', '{"value":"x"}', '{"temperature":null}', '[', '']) {
      assert.ok(texts.includes(expected), `missing ${JSON.stringify(expected)}`);
    }
    assert.ok(
      payloads.some((p) => Buffer.isBuffer(p.payload)),
      'a binary payload',
    );
    assert.ok(
      payloads.some((p) => p.payload.length >= 10 * 1024),
      'a 10 KB payload',
    );
    assert.equal(new Set(payloads.map((p) => p.label)).size, payloads.length, 'labels are unique');
    for (const { label, payload } of payloads) {
      assert.ok(!Number.isFinite(Number(payload.toString())) || payload.toString().trim() === '', `${label} parses as a finite number`);
    }
  });
});
