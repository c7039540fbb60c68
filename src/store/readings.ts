import type Database from 'better-sqlite3';
import type { Db } from './database.js';

/** Readings of one series as parallel arrays; only the first `length` entries count. */
export interface SeriesColumn {
  series: string;
  timestampsMs: Float64Array;
  values: Float64Array;
  length: number;
}

/**
 * Rows per multi-row INSERT in `insertColumns`. better-sqlite3 costs about a microsecond per call on a small board,
 * so a backfill binds many rows per call; 128 × 3 parameters stays far below SQLite's variable limit.
 */
const BULK_ROWS = 128;

export interface SeriesData {
  name: string;
  timestampsMs: Float64Array;
  values: Float64Array;
}

/** Readings storage: one owner of the readings and series tables. All statements are prepared once. */
export class ReadingStore {
  private readonly seriesIds = new Map<string, number>();
  private readonly insertSeries;
  private readonly selectSeriesId;
  private readonly insertReading;
  private readonly selectRange;
  private readonly selectLatest;
  private readonly countAll;
  private readonly insertTransaction: (readings: ReadonlyArray<{ series: string; ts: number; value: number }>) => number;

  constructor(private readonly db: Db) {
    this.insertSeries = db.prepare('INSERT INTO series(name) VALUES (?) ON CONFLICT(name) DO NOTHING');
    this.selectSeriesId = db.prepare('SELECT id FROM series WHERE name = ?').pluck();
    this.insertReading = db.prepare('INSERT INTO readings(series_id, ts, v) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.selectRange = db.prepare('SELECT ts, v FROM readings WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts').raw();
    this.selectLatest = db.prepare('SELECT ts, v FROM readings WHERE series_id = ? ORDER BY ts DESC LIMIT 1');
    this.countAll = db.prepare('SELECT count(*) FROM readings').pluck();
    // Built once: better-sqlite3 builds four wrapper functions per db.transaction() call.
    // Called inside an open group it runs as a savepoint.
    this.insertTransaction = db.transaction((readings: ReadonlyArray<{ series: string; ts: number; value: number }>) => {
      let inserted = 0;
      for (const reading of readings) {
        const id = this.seriesId(reading.series, true)!;
        inserted += this.insertReading.run(id, reading.ts, reading.value).changes;
      }
      return inserted;
    });
  }

  seriesId(name: string, create: boolean): number | undefined {
    let id = this.seriesIds.get(name);
    if (id !== undefined) return id;
    if (create) this.insertSeries.run(name);
    id = this.selectSeriesId.get(name) as number | undefined;
    if (id !== undefined) this.seriesIds.set(name, id);
    return id;
  }

  /**
   * Stores readings in one transaction and returns how many were new (duplicates are no-ops).
   * Synchronous on purpose: the MQTT acknowledgement is sent only after this returns.
   */
  insertMany(readings: ReadonlyArray<{ series: string; ts: number; value: number }>): number {
    return this.insertTransaction(readings);
  }

  /**
   * Group commit: readings of many messages in one transaction, so that one commit (and one WAL write)
   * serves many acknowledgements. Each insertMany inside the group is a savepoint of its own.
   */
  beginGroup(): void {
    if (!this.db.inTransaction) this.db.exec('BEGIN');
  }

  get inGroup(): boolean {
    return this.db.inTransaction;
  }

  commitGroup(): void {
    if (this.db.inTransaction) this.db.exec('COMMIT');
  }

  rollbackGroup(): void {
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
    // Series created inside the rolled-back group no longer exist.
    this.seriesIds.clear();
  }

  read(name: string, fromMs: number, toMs: number): SeriesData {
    const id = this.seriesId(name, false);
    const rows = id === undefined ? [] : (this.selectRange.all(id, Math.floor(fromMs), Math.ceil(toMs)) as Array<[number, number]>);
    const timestampsMs = new Float64Array(rows.length);
    const values = new Float64Array(rows.length);
    rows.forEach(([ts, v], index) => {
      timestampsMs[index] = ts;
      values[index] = v;
    });
    return { name, timestampsMs, values };
  }

  latest(name: string): { ts: number; value: number } | null {
    const id = this.seriesId(name, false);
    if (id === undefined) return null;
    const row = this.selectLatest.get(id) as { ts: number; v: number } | undefined;
    return row ? { ts: row.ts, value: row.v } : null;
  }

  count(): number {
    return this.countAll.get() as number;
  }

  // Statements for backfill and export, prepared on first use: the daemon never needs them.
  private bulkInsert?: (columns: readonly SeriesColumn[]) => number;
  private selectRows?: Database.Statement;

  /**
   * Stores backfilled readings, one column of parallel arrays per series, in one transaction (creating the series
   * that are new); returns how many readings were new (duplicates are no-ops).
   */
  insertColumns(columns: readonly SeriesColumn[]): number {
    if (!this.bulkInsert) {
      const many = this.db.prepare(
        `INSERT INTO readings(series_id, ts, v) VALUES ${Array(BULK_ROWS).fill('(?, ?, ?)').join(', ')} ON CONFLICT DO NOTHING`,
      );
      const one = this.insertReading;
      const params = new Array<number>(BULK_ROWS * 3);
      this.bulkInsert = this.db.transaction((batch: readonly SeriesColumn[]) => {
        let inserted = 0;
        for (const { series, timestampsMs, values, length } of batch) {
          if (length === 0) continue;
          const id = this.seriesId(series, true)!;
          let row = 0;
          for (; row + BULK_ROWS <= length; row += BULK_ROWS) {
            for (let k = 0; k < BULK_ROWS; k++) {
              params[3 * k] = id;
              params[3 * k + 1] = timestampsMs[row + k];
              params[3 * k + 2] = values[row + k];
            }
            inserted += many.run(params).changes;
          }
          for (; row < length; row++) inserted += one.run(id, timestampsMs[row], values[row]).changes;
        }
        return inserted;
      });
    }
    return this.bulkInsert(columns);
  }

  /**
   * The readings of several series in [fromMs, toMs), ordered by time and then by the series' position in `names`:
   * yields [ts, position, value]. Series that do not exist yield nothing. Do not write through this connection
   * while iterating.
   */
  *iterateRows(names: readonly string[], fromMs: number, toMs: number): IterableIterator<[ts: number, position: number, value: number]> {
    this.selectRows ??= this.db
      .prepare(
        `SELECT r.ts, j.key, r.v FROM json_each(?) AS j JOIN series AS s ON s.name = j.value
         JOIN readings AS r ON r.series_id = s.id AND r.ts >= ? AND r.ts < ? ORDER BY r.ts, j.key`,
      )
      .raw();
    yield* this.selectRows.iterate(JSON.stringify(names), Math.floor(fromMs), Math.ceil(toMs)) as IterableIterator<[number, number, number]>;
  }
}
