/**
 * Store housekeeping: the retention run on its cron schedule, and the SD-card write meter, sampled every minute
 * and logged once an hour together with what retention did in that hour.
 */
import cron, { type ScheduledTask } from 'node-cron';
import { watchWallClock, type WallClockWatch } from '../clock.js';
import type { Logger } from '../log.js';
import type { RetentionJob, RetentionReport } from './retention.js';
import type { WriteMeter } from './writeMeter.js';

/** A run that needed this many batches is worth an info line of its own (a backlog, a lowered retention, the size cap). */
const BIG_RUN_BATCHES = 10;

export class Housekeeping {
  private task: ScheduledTask | null = null;
  private wallClockWatch: WallClockWatch | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private firstRun: NodeJS.Immediate | null = null;
  private stopped = false;
  private samplesSinceLog = 0;
  private hour = { runs: 0, rowsDeleted: 0, longestBatchMs: 0 };
  private heldBackLogged = false;

  constructor(
    private readonly deps: {
      retention: RetentionJob;
      writeMeter: WriteMeter;
      schedule: string;
      log: Logger;
      sampleEveryMs?: number;
      logEverySamples?: number;
    },
  ) {}

  start(): void {
    const { writeMeter, schedule, log } = this.deps;
    this.task = this.scheduleRetention();
    log.info({ schedule, nextRun: this.task.getNextRun()?.toISOString() }, 'retention scheduled');
    // node-cron walks every slot a clock step skipped (a Pi's 1970 → NTP step: millions, each with a warning)
    // and stops firing after a step back until the clock catches up: plan the job again from the new time.
    this.wallClockWatch = watchWallClock((jumpMs) => {
      if (this.stopped) return;
      void this.task?.destroy();
      this.task = this.scheduleRetention();
      log.info(
        { jumpSeconds: Math.round(jumpMs / 1000), nextRun: this.task.getNextRun()?.toISOString() },
        'the wall clock jumped: retention planned again from the new time',
      );
    });
    // One run at start, so that a lowered retention or size cap takes effect without waiting for the schedule.
    this.firstRun = setImmediate(() => void this.runRetention());

    if (writeMeter.sample() === null) log.info('write meter unavailable: /proc/self/io cannot be read on this system');
    const sampleEveryMs = this.deps.sampleEveryMs ?? 60_000;
    const logEverySamples = this.deps.logEverySamples ?? 60;
    this.sampler = setInterval(() => {
      const metrics = writeMeter.sample();
      if (++this.samplesSinceLog < logEverySamples) return;
      this.samplesSinceLog = 0;
      log.info({ writes: metrics, retention: this.hour }, 'storage writes and retention in the last hour');
      this.hour = { runs: 0, rowsDeleted: 0, longestBatchMs: 0 };
    }, sampleEveryMs);
    this.sampler.unref();
  }

  private scheduleRetention(): ScheduledTask {
    return cron.schedule(this.deps.schedule, () => void this.runRetention(), { name: 'retention' });
  }

  async runRetention(): Promise<RetentionReport | null> {
    const { log } = this.deps;
    if (this.stopped) return null;
    try {
      const report = await this.deps.retention.run();
      this.hour.runs++;
      this.hour.rowsDeleted += report.rowsDeleted;
      this.hour.longestBatchMs = Math.max(this.hour.longestBatchMs, Math.round(report.longestBatchMs * 10) / 10);
      const summary = {
        rowsDeleted: report.rowsDeleted,
        rowsDeletedForSize: report.rowsDeletedForSize,
        batches: report.batches,
        longestBatchMs: Math.round(report.longestBatchMs * 10) / 10,
        durationMs: Math.round(report.durationMs),
        databaseBytes: report.databaseBytesAfter,
        vacuumedPages: report.vacuumedPages,
      };
      if (report.batches >= BIG_RUN_BATCHES || report.rowsDeletedForSize > 0) log.info(summary, 'retention run');
      else log.debug(summary, 'retention run');
      if (!report.underSizeCap && !report.aborted)
        log.warn(
          { databaseBytes: report.databaseBytesAfter },
          'retention: no readings left to delete but the database is still above storage.retention.maxDatabaseMb; raise the cap',
        );
      const clockAheadMs = report.startedAt - report.trustedNow;
      if (clockAheadMs > 0 && !this.heldBackLogged) {
        log.warn(
          { clockAheadMs },
          'retention: the wall clock jumped ahead; retention keeps counting real elapsed time until forecastd restarts, so no data is deleted early',
        );
      }
      this.heldBackLogged = clockAheadMs > 0;
      return report;
    } catch (error) {
      if (this.stopped) return null;
      log.error({ err: (error as Error).message }, 'retention run failed; it is retried at the next scheduled time');
      return null;
    }
  }

  /** Stops the schedule and the meter, and waits for a retention run in progress to end at its next batch. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wallClockWatch?.stop();
    if (this.firstRun) clearImmediate(this.firstRun);
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    await this.task?.destroy();
    this.task = null;
    await this.deps.retention.stop();
  }
}
