import type { Db } from './database.js';

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

  constructor(private readonly db: Db) {
    this.insertSeries = db.prepare('INSERT INTO series(name) VALUES (?) ON CONFLICT(name) DO NOTHING');
    this.selectSeriesId = db.prepare('SELECT id FROM series WHERE name = ?').pluck();
    this.insertReading = db.prepare('INSERT INTO readings(series_id, ts, v) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.selectRange = db.prepare('SELECT ts, v FROM readings WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts').raw();
    this.selectLatest = db.prepare('SELECT ts, v FROM readings WHERE series_id = ? ORDER BY ts DESC LIMIT 1');
    this.countAll = db.prepare('SELECT count(*) FROM readings').pluck();
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
    let inserted = 0;
    this.db.transaction(() => {
      for (const reading of readings) {
        const id = this.seriesId(reading.series, true)!;
        inserted += this.insertReading.run(id, reading.ts, reading.value).changes;
      }
    })();
    return inserted;
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
}
