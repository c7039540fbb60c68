import type { ForecastMessage } from '../publish/forecastMessage.js';
import type { Db } from './database.js';

/**
 * The last forecast published for each forecast: one row per forecast, replaced at every publish, so that
 * `forecastd forecast`, the JSON API and the dashboard have the current forecast after a restart too.
 */
export class PublishedForecastStore {
  private readonly upsert;
  private readonly selectOne;
  private readonly selectAll;

  constructor(db: Db) {
    this.upsert = db.prepare(
      `INSERT INTO published_forecasts(forecast, issued_at, message) VALUES (?, ?, ?)
       ON CONFLICT(forecast) DO UPDATE SET issued_at = excluded.issued_at, message = excluded.message`,
    );
    this.selectOne = db.prepare('SELECT message FROM published_forecasts WHERE forecast = ?').pluck();
    this.selectAll = db.prepare('SELECT message FROM published_forecasts ORDER BY forecast').pluck();
  }

  record(message: ForecastMessage): void {
    this.upsert.run(message.forecast, Date.parse(message.issuedAt), JSON.stringify(message));
  }

  latest(forecast: string): ForecastMessage | null {
    const text = this.selectOne.get(forecast) as string | undefined;
    return text === undefined ? null : (JSON.parse(text) as ForecastMessage);
  }

  all(): ForecastMessage[] {
    return (this.selectAll.all() as string[]).map((text) => JSON.parse(text) as ForecastMessage);
  }
}
