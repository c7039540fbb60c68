import type { Db } from './database.js';

export interface SeriesInfo {
  name: string;
  firstTs: number | null;
  lastTs: number | null;
  lastValue: number | null;
}

/**
 * Read-only questions about what the database holds: which series, and how far back each goes. Every query walks
 * the (series_id, ts) primary key from one end, so it costs the same on a year of readings as on a day.
 */
export class SeriesCatalog {
  private readonly selectSeries;
  private readonly selectFirst;
  private readonly selectLast;
  private readonly selectCount;
  private readonly selectPageCount;
  private readonly selectFreePages;
  private readonly selectPageSize;

  constructor(db: Db) {
    this.selectSeries = db.prepare('SELECT id, name FROM series ORDER BY name');
    this.selectFirst = db.prepare('SELECT ts FROM readings WHERE series_id = ? ORDER BY ts ASC LIMIT 1').pluck();
    this.selectLast = db.prepare('SELECT ts, v FROM readings WHERE series_id = ? ORDER BY ts DESC LIMIT 1');
    this.selectCount = db.prepare('SELECT count(*) FROM readings WHERE series_id = (SELECT id FROM series WHERE name = ?)').pluck();
    this.selectPageCount = db.prepare('PRAGMA page_count').pluck();
    this.selectFreePages = db.prepare('PRAGMA freelist_count').pluck();
    this.selectPageSize = db.prepare('PRAGMA page_size').pluck();
  }

  list(): SeriesInfo[] {
    return (this.selectSeries.all() as Array<{ id: number; name: string }>).map(({ id, name }) => this.infoOf(id, name));
  }

  get(name: string): SeriesInfo | null {
    const row = (this.selectSeries.all() as Array<{ id: number; name: string }>).find((candidate) => candidate.name === name);
    return row ? this.infoOf(row.id, row.name) : null;
  }

  /** How many readings a series has (a range scan of its part of the primary key). */
  readingCount(name: string): number {
    return this.selectCount.get(name) as number;
  }

  /** Bytes in use (live pages) and the file's pages in bytes, free ones included. */
  size(): { usedBytes: number; fileBytes: number } {
    const pageSize = this.selectPageSize.get() as number;
    const pages = this.selectPageCount.get() as number;
    const free = this.selectFreePages.get() as number;
    return { usedBytes: (pages - free) * pageSize, fileBytes: pages * pageSize };
  }

  private infoOf(id: number, name: string): SeriesInfo {
    const first = this.selectFirst.get(id) as number | undefined;
    const last = this.selectLast.get(id) as { ts: number; v: number } | undefined;
    return { name, firstTs: first ?? null, lastTs: last?.ts ?? null, lastValue: last?.v ?? null };
  }
}
