import cron, { type ScheduledTask } from 'node-cron';
import { watchWallClock, type WallClockWatch } from '../clock.js';
import type { ForecastConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

/** Forecasts are issued this long after a bucket closes, so that readings stamped at its end are in. */
export const FORECAST_SETTLE_MS = 2_000;

export function msUntilNextBoundary(nowMs: number, intervalMs: number, settleMs = FORECAST_SETTLE_MS): number {
  const next = Math.floor((nowMs - settleMs) / intervalMs) * intervalMs + intervalMs + settleMs;
  return next - nowMs;
}

/**
 * The daemon's clockwork: a node-cron job per forecast for retraining, and a timer per forecast that
 * fires just after each interval boundary to issue a forecast.
 *
 * node-cron plans by the wall clock (docs/reliability.md, "Clock jumps (F8)"). After a step back it waits until the wall clock is where
 * it was before (a year, for a clock that had been a year ahead); after a step forward it walks and logs every slot
 * it skipped (a Pi whose clock NTP sets from 1970 or from systemd's build date: a warning per skipped slot, and
 * seconds of blocked event loop). So when the wall clock jumps, the cron jobs are made anew from the new time.
 * The forecast timers need no such care: each is a monotonic delay of at most one interval.
 */
export class Scheduler {
  private readonly cronTasks: ScheduledTask[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private forecasts: ReadonlyArray<ForecastConfig> = [];
  private wallClockWatch: WallClockWatch | null = null;
  private stopped = false;
  readonly counters = { trainingTicks: 0, forecastTicks: 0, forecastErrors: 0, cronRearms: 0 };

  constructor(
    private readonly deps: {
      clock: () => number;
      log: Logger;
      train: (forecast: string, reason: string) => void;
      issue: (forecast: string) => void;
      /** The wall clock node-cron reads (tests move it); default Date.now. */
      wallClock?: () => number;
      /** How often the wall clock is compared with the monotonic clock; default 1 s. */
      wallClockCheckMs?: number;
    },
  ) {}

  start(forecasts: ReadonlyArray<ForecastConfig>): void {
    this.forecasts = forecasts;
    for (const forecast of forecasts) {
      const task = this.scheduleTraining(forecast);
      this.deps.log.info(
        { forecast: forecast.name, schedule: forecast.training.schedule, nextTraining: task.getNextRun()?.toISOString() },
        'training scheduled',
      );
      this.armForecastTimer(forecast);
    }
    this.wallClockWatch = watchWallClock((jumpMs) => this.rearmTraining(jumpMs), { wall: this.deps.wallClock, everyMs: this.deps.wallClockCheckMs });
  }

  private scheduleTraining(forecast: ForecastConfig): ScheduledTask {
    const task = cron.schedule(forecast.training.schedule, () => this.trainingTick(forecast.name), {
      name: `train:${forecast.name}`,
      timezone: forecast.training.timezone,
    });
    this.cronTasks.push(task);
    return task;
  }

  /** Replaces every cron job by one planned from the current wall clock. */
  private rearmTraining(jumpMs: number): void {
    if (this.stopped) return;
    for (const task of this.cronTasks.splice(0)) void task.destroy();
    const next = this.forecasts.map((forecast) => this.scheduleTraining(forecast).getNextRun()?.toISOString());
    this.counters.cronRearms++;
    this.deps.log.warn(
      { jumpSeconds: Math.round(jumpMs / 1000), nextTraining: next[0] },
      'the wall clock jumped: training schedules planned again from the new time',
    );
  }

  private trainingTick(name: string): void {
    this.counters.trainingTicks++;
    try {
      this.deps.train(name, 'schedule');
    } catch (error) {
      // A throwing tick must not end the cron job (nor, through an unhandled error, the daemon).
      this.deps.log.error({ forecast: name, err: (error as Error).message }, 'training could not be requested');
    }
  }

  private armForecastTimer(forecast: ForecastConfig): void {
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        this.counters.forecastTicks++;
        try {
          this.deps.issue(forecast.name);
        } catch (error) {
          this.counters.forecastErrors++;
          this.deps.log.error({ forecast: forecast.name, err: (error as Error).message }, 'forecast failed');
        }
        this.armForecastTimer(forecast);
      },
      msUntilNextBoundary(this.deps.clock(), forecast.interval * 1000),
    );
    this.timers.add(timer);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wallClockWatch?.stop();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    // node-cron's destroy() returns a promise in some versions and nothing in others.
    await Promise.all(this.cronTasks.map((task) => Promise.resolve(task.destroy())));
    this.cronTasks.length = 0;
  }
}
