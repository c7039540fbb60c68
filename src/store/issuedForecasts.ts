import type { ForecastMessage } from '../publish/forecastMessage.js';
import type { IssuedForecast } from '../model/evaluation/liveAccuracy.js';
import type { Db } from './database.js';

/**
 * Every issued forecast's points, kept for a few days so that the live accuracy job can score them against
 * the readings that came after (published_forecasts keeps only the latest forecast per forecast).
 */
export class IssuedForecastStore {
  private readonly insert;
  private readonly selectSince;
  private readonly deleteBefore;

  constructor(db: Db) {
    this.insert = db.prepare('INSERT OR REPLACE INTO issued_forecasts(forecast, issued_at, origin, points) VALUES (?, ?, ?, ?)');
    this.selectSince = db
      .prepare('SELECT issued_at, origin, points FROM issued_forecasts WHERE forecast = ? AND issued_at >= ? ORDER BY issued_at')
      .raw();
    this.deleteBefore = db.prepare('DELETE FROM issued_forecasts WHERE issued_at < ?');
  }

  record(message: ForecastMessage): void {
    const points = message.points.map((point) => ({ ts: Date.parse(point.ts), value: point.value, lower: point.lower, upper: point.upper }));
    this.insert.run(message.forecast, Date.parse(message.issuedAt), Date.parse(message.origin), JSON.stringify(points));
  }

  since(forecast: string, fromMs: number): IssuedForecast[] {
    return (this.selectSince.all(forecast, Math.floor(fromMs)) as Array<[number, number, string]>).map(([issuedAtMs, originMs, points]) => ({
      issuedAtMs,
      originMs,
      points: JSON.parse(points) as IssuedForecast['points'],
    }));
  }

  /** Removes the forecasts issued before `beforeMs`; returns how many. */
  prune(beforeMs: number): number {
    return this.deleteBefore.run(Math.floor(beforeMs)).changes;
  }
}
