import cron, { type ScheduledTask } from 'node-cron';
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
 */
export class Scheduler {
  private readonly cronTasks: ScheduledTask[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  readonly counters = { trainingTicks: 0, forecastTicks: 0, forecastErrors: 0 };

  constructor(
    private readonly deps: {
      clock: () => number;
      log: Logger;
      train: (forecast: string, reason: string) => void;
      issue: (forecast: string) => void;
    },
  ) {}

  start(forecasts: ReadonlyArray<ForecastConfig>): void {
    for (const forecast of forecasts) {
      const task = cron.schedule(forecast.training.schedule, () => this.trainingTick(forecast.name), {
        name: `train:${forecast.name}`,
        timezone: forecast.training.timezone,
      });
      this.cronTasks.push(task);
      this.deps.log.info({ forecast: forecast.name, schedule: forecast.training.schedule, nextTraining: task.getNextRun()?.toISOString() }, 'training scheduled');
      this.armForecastTimer(forecast);
    }
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
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.counters.forecastTicks++;
      try {
        this.deps.issue(forecast.name);
      } catch (error) {
        this.counters.forecastErrors++;
        this.deps.log.error({ forecast: forecast.name, err: (error as Error).message }, 'forecast failed');
      }
      this.armForecastTimer(forecast);
    }, msUntilNextBoundary(this.deps.clock(), forecast.interval * 1000));
    this.timers.add(timer);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await Promise.all(this.cronTasks.map((task) => task.destroy()));
    this.cronTasks.length = 0;
  }
}
