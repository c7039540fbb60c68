/**
 * Process-side measurements that have no other owner: event-loop delay (a blocked loop delays MQTT keepalives and
 * acknowledgements), the ingest rate over the last minute, and training durations.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { TrainingSummary } from '../model/training.js';
import { Histogram } from './prometheus.js';

/** Training durations from seconds (a tiny model on a fast machine) to an hour (a big one on a Pi). */
export const TRAINING_DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600];

const RATE_SAMPLE_MS = 5_000;
const RATE_WINDOW_MS = 60_000;
/** The event-loop percentiles cover this long a window (the histogram is reset at its end). */
const LOOP_WINDOW_MS = 60_000;
/** monitorEventLoopDelay's sampling period; it records whole periods, so this much of every sample is not delay. */
const LOOP_RESOLUTION_MS = 20;

export interface EventLoopDelay {
  minSeconds: number;
  maxSeconds: number;
  meanSeconds: number;
  p50Seconds: number;
  p90Seconds: number;
  p99Seconds: number;
}

export class Telemetry {
  readonly trainingDurations = new Map<string, Histogram>();
  private readonly loop: IntervalHistogram;
  private lastLoop: EventLoopDelay | null = null;
  private readonly rateSamples: Array<{ atMs: number; count: number }> = [];
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly deps: { readingsStored: () => number; now?: () => number }) {
    this.loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  }

  start(): void {
    this.loop.enable();
    this.sampleRate();
    const rate = setInterval(() => this.sampleRate(), RATE_SAMPLE_MS);
    const loop = setInterval(() => {
      this.lastLoop = this.readLoop();
      this.loop.reset();
    }, LOOP_WINDOW_MS);
    for (const timer of [rate, loop]) {
      timer.unref();
      this.timers.push(timer);
    }
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
    this.loop.disable();
  }

  recordTraining(summary: TrainingSummary): void {
    let histogram = this.trainingDurations.get(summary.forecast);
    if (!histogram) this.trainingDurations.set(summary.forecast, (histogram = new Histogram(TRAINING_DURATION_BUCKETS)));
    histogram.observe(summary.durationMs / 1000);
  }

  /** Readings stored per second over the last minute (or since start, when younger). */
  readingsPerSecond(): number {
    this.sampleRate();
    const first = this.rateSamples[0];
    const last = this.rateSamples[this.rateSamples.length - 1];
    const elapsedMs = last.atMs - first.atMs;
    return elapsedMs > 0 ? ((last.count - first.count) * 1000) / elapsedMs : 0;
  }

  /** The current window's delays, or the last full window's when the current one has too few samples. */
  eventLoopDelay(): EventLoopDelay {
    const current = this.readLoop();
    return this.loop.count < 10 && this.lastLoop ? this.lastLoop : current;
  }

  private readLoop(): EventLoopDelay {
    const seconds = (nanoseconds: number) => (Number.isFinite(nanoseconds) ? Math.max(0, nanoseconds / 1e9 - LOOP_RESOLUTION_MS / 1000) : 0);
    const empty = this.loop.count === 0;
    return {
      minSeconds: empty ? 0 : seconds(this.loop.min),
      maxSeconds: empty ? 0 : seconds(this.loop.max),
      meanSeconds: empty ? 0 : seconds(this.loop.mean),
      p50Seconds: empty ? 0 : seconds(this.loop.percentile(50)),
      p90Seconds: empty ? 0 : seconds(this.loop.percentile(90)),
      p99Seconds: empty ? 0 : seconds(this.loop.percentile(99)),
    };
  }

  private sampleRate(): void {
    const atMs = (this.deps.now ?? Date.now)();
    this.rateSamples.push({ atMs, count: this.deps.readingsStored() });
    while (this.rateSamples.length > 2 && atMs - this.rateSamples[1].atMs >= RATE_WINDOW_MS) this.rateSamples.shift();
  }
}
