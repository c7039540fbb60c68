import { ContractError } from '../contracts/contract.js';
import { parseForecastMessage, type ForecastMessage } from '../contracts/forecastMessage.js';
import type { Db } from './database.js';

/**
 * The last forecast published for each forecast: one row per forecast, replaced at every publish, so that
 * `forecastd forecast`, the JSON API and the dashboard have the current forecast after a restart too.
 */
export class PublishedForecastStore {
  private readonly upsert;
  private readonly selectOne;
  private readonly selectAll;

  constructor(
    db: Db,
    /** Told about each stored message that does not validate (it is left out, never cast). */
    private readonly onRefused: (error: ContractError) => void = () => undefined,
  ) {
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

  /** The last forecast of `forecast`; null when none was published, or the stored one does not validate (reported). */
  latest(forecast: string): ForecastMessage | null {
    const text = this.selectOne.get(forecast) as string | undefined;
    return text === undefined ? null : this.parse(text, forecast);
  }

  all(): ForecastMessage[] {
    return (this.selectAll.all() as string[]).flatMap((text) => this.parse(text, 'of published_forecasts') ?? []);
  }

  private parse(text: string, where: string): ForecastMessage | null {
    try {
      return parseForecastMessage(JSON.parse(text), where);
    } catch (error) {
      this.onRefused(
        error instanceof ContractError ? error : new ContractError(`forecast message ${where}`, `not JSON (${(error as Error).message})`),
      );
      return null;
    }
  }
}
