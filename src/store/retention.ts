/**
 * Retention: readings older than their series' retention period are deleted, and, when a size cap is set, the
 * oldest readings of all series until the data fits under it.
 *
 * better-sqlite3 is synchronous, so a single `DELETE` of a year of readings would hold the event loop (MQTT
 * keepalives, ingest acks, the watchdog) for seconds. Deletion therefore runs in transactions of at most
 * `batchSize` rows, with a `setImmediate` between them so that queued MQTT messages are ingested in between.
 * Each batch is timed; the run report says how long the longest one held the loop.
 *
 * The reference time. "Older than N days" needs a "now", and the wall clock of a Raspberry Pi is the least
 * trustworthy thing on it (no RTC; NTP steps it, sometimes by years). A forward jump must not wipe data
 * (docs/reliability.md, "Clock jumps (F8)"). So for each series the cutoff is
 *
 *     min(trusted now, newest reading of the series + referenceSlackMs) − retention period
 *
 * - `newest + slack` bounds the damage of a clock that is far ahead of the data: whatever the clock says, the last
 *   `retention period` of a series' own readings is kept. Readings stamped by the sensors keep their true time.
 *   The price: a series that stops reporting keeps its last N days until it reports again (or the size cap takes
 *   them); the job cannot tell "the sensor went quiet" from "the clock leapt ahead".
 * - `trusted now` covers readings stamped by forecastd's own clock (plain-number payloads): after a jump they carry
 *   the jumped time, so `newest` jumps too. Within one process the trusted clock follows the wall clock only while
 *   the wall clock advances no faster than the monotonic clock (plus the slack per run); after a forward jump it
 *   keeps advancing at the monotonic rate, so retention counts real elapsed time. It re-anchors when the wall clock
 *   is behind it again, and at the next start. The price: after a legitimate NTP step forward, retention runs late
 *   by the size of the step until forecastd restarts; it keeps data longer, never shorter.
 * A clock that jumps backwards only moves the cutoffs back: less is deleted, never more.
 * One forward jump is trusted at once: from a clock that was never set (before EARLIEST_PLAUSIBLE_CLOCK_MS, a Pi
 * booted without RTC at 1970) to a plausible time. That is NTP setting the clock, not a leap; anchored at 1970,
 * retention would otherwise count from 1970 and delete nothing until forecastd restarted.
 *
 * File size. With the default `auto_vacuum = NONE` deleted pages go to the freelist and the file does not shrink;
 * new readings reuse those pages before the file grows again, so in steady state the file stops growing, and
 * shrinking it (a VACUUM rewrites the whole file) would only cost SD-card writes and a long lock. The size cap
 * therefore measures live pages (page_count − freelist_count), not the file. A database created with
 * `auto_vacuum = INCREMENTAL` gets its free pages returned with `PRAGMA incremental_vacuum`, in small steps, after a
 * run that freed many pages: that moves pages (more writes) but gives the space back to the file system.
 */
import { performance } from 'node:perf_hooks';
import { clockIsPlausible } from '../clock.js';
import type { Db } from './database.js';

const DAY_MS = 86_400_000;
const MB = 1_000_000;

export interface RetentionPolicy {
  defaultDays: number;
  perSeries: Readonly<Record<string, number>>;
  /** 0: no cap. */
  maxDatabaseMb: number;
}

export interface RetentionOptions {
  /** Rows deleted per transaction. */
  batchSize?: number;
  /** How far past a series' newest reading the reference time may go (see the file comment). */
  referenceSlackMs?: number;
  /** The size cap deletes the oldest readings first, to within this span: all rows older than the oldest reading + span, series by series. */
  sizeCapSliceMs?: number;
  /** Free pages returned per `incremental_vacuum` step, and how many free pages make a run worth vacuuming. */
  vacuumStepPages?: number;
  vacuumThresholdPages?: number;
  /** Wall clock (injectable, as in the rest of the daemon) and monotonic clock, both in ms. */
  clock?: () => number;
  monotonic?: () => number;
  /** Called after each batch; tests and metrics. */
  onBatch?: (batch: { rows: number; durationMs: number; reason: 'age' | 'size' }) => void;
}

export interface RetentionReport {
  /** Wall-clock start, and the reference time the job trusted (lower than startedAt after a forward jump). */
  startedAt: number;
  trustedNow: number;
  durationMs: number;
  rowsDeleted: number;
  rowsDeletedByAge: number;
  rowsDeletedForSize: number;
  batches: number;
  /** The longest time one batch held the event loop, and the most rows one batch deleted. */
  longestBatchMs: number;
  largestBatchRows: number;
  /** Live bytes (page_count − freelist_count, times page_size) before and after. */
  databaseBytesBefore: number;
  databaseBytesAfter: number;
  /** Whether the size cap is met at the end (true without a cap). */
  underSizeCap: boolean;
  /** Series whose cutoff was held back because their newest reading is older than the reference time minus the slack. */
  heldBackSeries: string[];
  vacuumedPages: number;
  /** Stopped early by stop(). */
  aborted: boolean;
}

interface SeriesCutoff {
  id: number;
  name: string;
  cutoff: number;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Enforces a RetentionPolicy on the readings table. One run at a time; `run()` is what the schedule calls. */
export class RetentionJob {
  private readonly batchSize: number;
  private readonly slackMs: number;
  private readonly sliceMs: number;
  private readonly vacuumStepPages: number;
  private readonly vacuumThresholdPages: number;
  private readonly clock: () => number;
  private readonly monotonic: () => number;
  private readonly onBatch: RetentionOptions['onBatch'];

  private readonly listSeries;
  private readonly selectNewest;
  private readonly selectOldestPerSeries;
  private readonly selectNthOlder;
  private readonly deleteOlder;
  private readonly deleteUpTo;
  private readonly ageBatch;
  private readonly sizeBatch;

  private anchor: { wallMs: number; monoMs: number } | null = null;
  private running: Promise<RetentionReport> | null = null;
  private stopped = false;
  private last: RetentionReport | null = null;

  constructor(
    private readonly db: Db,
    private readonly policy: RetentionPolicy,
    options: RetentionOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 1000;
    this.slackMs = options.referenceSlackMs ?? 3_600_000;
    this.sliceMs = options.sizeCapSliceMs ?? 3_600_000;
    this.vacuumStepPages = options.vacuumStepPages ?? 256;
    this.vacuumThresholdPages = options.vacuumThresholdPages ?? 256;
    this.clock = options.clock ?? Date.now;
    this.monotonic = options.monotonic ?? (() => performance.now());
    this.onBatch = options.onBatch;
    if (!(this.batchSize >= 1)) throw new RangeError('batchSize must be at least 1');

    this.listSeries = db.prepare('SELECT id, name FROM series ORDER BY id');
    this.selectNewest = db.prepare('SELECT max(ts) FROM readings WHERE series_id = ?').pluck();
    this.selectOldestPerSeries = db.prepare(
      `SELECT id, oldest FROM (SELECT id, (SELECT min(ts) FROM readings WHERE series_id = series.id) AS oldest FROM series)
       WHERE oldest IS NOT NULL ORDER BY oldest`,
    );
    // The primary key (series_id, ts) makes both a range scan: the n-th oldest row below the cutoff, then a range delete.
    this.selectNthOlder = db.prepare('SELECT ts FROM readings WHERE series_id = ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?').pluck();
    this.deleteOlder = db.prepare('DELETE FROM readings WHERE series_id = ? AND ts < ?');
    this.deleteUpTo = db.prepare('DELETE FROM readings WHERE series_id = ? AND ts <= ?');

    this.ageBatch = db.transaction((cutoffs: SeriesCutoff[], start: number): { rows: number; next: number } => {
      let rows = 0;
      let index = start;
      while (index < cutoffs.length && rows < this.batchSize) {
        const budget = this.batchSize - rows;
        const deleted = this.deleteOldest(cutoffs[index].id, cutoffs[index].cutoff, budget);
        rows += deleted;
        // Fewer than asked for: nothing older is left in this series. Exactly as many: there may be more.
        if (deleted < budget) index++;
      }
      return { rows, next: index };
    });

    this.sizeBatch = db.transaction((capBytes: number): { rows: number; exhausted: boolean } => {
      let rows = 0;
      while (rows < this.batchSize && this.liveBytes() > capBytes) {
        const oldest = this.selectOldestPerSeries.all() as Array<{ id: number; oldest: number }>;
        if (oldest.length === 0) return { rows, exhausted: true };
        const cutoff = oldest[0].oldest + this.sliceMs;
        for (const series of oldest) {
          if (series.oldest >= cutoff || rows >= this.batchSize) break;
          rows += this.deleteOldest(series.id, cutoff, this.batchSize - rows);
        }
      }
      return { rows, exhausted: false };
    });
  }

  /** The report of the last completed run. */
  get lastRun(): RetentionReport | null {
    return this.last;
  }

  /** Runs retention now; a call while a run is going on joins that run. Refused after stop(). */
  run(): Promise<RetentionReport> {
    if (this.stopped) return Promise.reject(new Error('the retention job is stopped'));
    this.running ??= this.execute().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Ends a run in progress at its next batch boundary and waits for it, so that the database can be closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    try {
      await this.running;
    } catch {
      // The run's own caller reports its failure.
    }
  }

  /** Live bytes of the database: allocated pages minus free ones. The -wal is not counted. */
  liveBytes(): number {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pageCount = this.db.pragma('page_count', { simple: true }) as number;
    const freePages = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pageCount - freePages) * pageSize;
  }

  /**
   * The wall clock, unless it has run ahead of the monotonic clock since the last run by more than the slack;
   * then the anchor's time plus the monotonic time elapsed since (see the file comment).
   */
  private trustedNow(): { wallMs: number; trustedMs: number } {
    const wallMs = this.clock();
    const monoMs = this.monotonic();
    if (this.anchor && clockIsPlausible(this.anchor.wallMs)) {
      const sinceAnchorMs = this.anchor.wallMs + (monoMs - this.anchor.monoMs);
      if (wallMs > sinceAnchorMs + this.slackMs) return { wallMs, trustedMs: sinceAnchorMs };
    }
    this.anchor = { wallMs, monoMs };
    return { wallMs, trustedMs: wallMs };
  }

  /** Deletes up to `limit` of the oldest rows of one series below `cutoff`; returns how many. */
  private deleteOldest(seriesId: number, cutoff: number, limit: number): number {
    const last = this.selectNthOlder.get(seriesId, cutoff, limit - 1) as number | undefined;
    // (series_id, ts) is unique, so "up to the limit-th timestamp" is exactly `limit` rows.
    return last === undefined ? this.deleteOlder.run(seriesId, cutoff).changes : this.deleteUpTo.run(seriesId, last).changes;
  }

  private cutoffs(trustedNow: number, heldBack: string[]): SeriesCutoff[] {
    const cutoffs: SeriesCutoff[] = [];
    for (const { id, name } of this.listSeries.all() as Array<{ id: number; name: string }>) {
      const newest = this.selectNewest.get(id) as number | null;
      if (newest === null) continue;
      const reference = Math.min(trustedNow, newest + this.slackMs);
      if (reference < trustedNow) heldBack.push(name);
      const days = Object.hasOwn(this.policy.perSeries, name) ? this.policy.perSeries[name] : this.policy.defaultDays;
      cutoffs.push({ id, name, cutoff: reference - days * DAY_MS });
    }
    return cutoffs;
  }

  private async execute(): Promise<RetentionReport> {
    const startedMono = performance.now();
    const { wallMs, trustedMs: trustedNow } = this.trustedNow();
    const report: RetentionReport = {
      startedAt: wallMs,
      trustedNow,
      durationMs: 0,
      rowsDeleted: 0,
      rowsDeletedByAge: 0,
      rowsDeletedForSize: 0,
      batches: 0,
      longestBatchMs: 0,
      largestBatchRows: 0,
      databaseBytesBefore: this.liveBytes(),
      databaseBytesAfter: 0,
      underSizeCap: true,
      heldBackSeries: [],
      vacuumedPages: 0,
      aborted: false,
    };
    const freePagesBefore = this.db.pragma('freelist_count', { simple: true }) as number;
    const timed = <T extends { rows: number }>(reason: 'age' | 'size', batch: () => T): T => {
      const started = performance.now();
      const result = batch();
      const durationMs = performance.now() - started;
      report.batches++;
      report.rowsDeleted += result.rows;
      if (reason === 'age') report.rowsDeletedByAge += result.rows;
      else report.rowsDeletedForSize += result.rows;
      report.longestBatchMs = Math.max(report.longestBatchMs, durationMs);
      report.largestBatchRows = Math.max(report.largestBatchRows, result.rows);
      this.onBatch?.({ rows: result.rows, durationMs, reason });
      return result;
    };

    // 1. Age: the cutoffs are fixed at the start; readings that arrive meanwhile are newer than any of them.
    const cutoffs = this.cutoffs(trustedNow, report.heldBackSeries);
    let next = 0;
    while (next < cutoffs.length && !this.stopped) {
      next = timed('age', () => this.ageBatch(cutoffs, next)).next;
      await yieldToEventLoop();
    }

    // 2. Size: the oldest readings of all series, until the live data fits under the cap.
    if (this.policy.maxDatabaseMb > 0) {
      const capBytes = this.policy.maxDatabaseMb * MB;
      while (!this.stopped && this.liveBytes() > capBytes) {
        if (timed('size', () => this.sizeBatch(capBytes)).exhausted) break;
        await yieldToEventLoop();
      }
      report.underSizeCap = this.liveBytes() <= capBytes;
    }

    // 3. Give freed pages back to the file system, only where the database was created for it.
    const freedPages = (this.db.pragma('freelist_count', { simple: true }) as number) - freePagesBefore;
    if (this.db.pragma('auto_vacuum', { simple: true }) === 2 && freedPages >= this.vacuumThresholdPages) {
      while (!this.stopped) {
        const free = this.db.pragma('freelist_count', { simple: true }) as number;
        if (free === 0) break;
        const started = performance.now();
        this.db.pragma(`incremental_vacuum(${Math.min(free, this.vacuumStepPages)})`);
        report.longestBatchMs = Math.max(report.longestBatchMs, performance.now() - started);
        report.vacuumedPages += free - (this.db.pragma('freelist_count', { simple: true }) as number);
        await yieldToEventLoop();
      }
    }

    report.aborted = this.stopped;
    report.databaseBytesAfter = this.liveBytes();
    report.durationMs = performance.now() - startedMono;
    this.last = report;
    return report;
  }
}
