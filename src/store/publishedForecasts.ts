import { ContractError } from '../contracts/contract.js';
import { parseForecastMessage, type ForecastMessage } from '../contracts/forecastMessage.js';
import type { Db } from './database.js';

/**
 * The last forecast published for each forecast: one row per forecast, replaced at every publish, so that
 * `forecastd forecast`, the JSON API and the dashboard have the current forecast after a restart too.
 */
interface StoredRow {
  forecast: string;
  issuedAt: number;
  message: string;
}

export class PublishedForecastStore {
  private readonly upsert;
  private readonly selectOne;
  private readonly selectAll;
  /** The last row read of each forecast, validated (null: refused): read again only when a newer one replaced it. */
  private readonly validated = new Map<string, { issuedAt: number; message: ForecastMessage | null }>();

  constructor(
    db: Db,
    /** Told about each stored message that does not validate (it is left out, never cast). */
    private readonly onRefused: (error: ContractError) => void = () => undefined,
  ) {
    this.upsert = db.prepare(
      `INSERT INTO published_forecasts(forecast, issued_at, message) VALUES (?, ?, ?)
       ON CONFLICT(forecast) DO UPDATE SET issued_at = excluded.issued_at, message = excluded.message`,
    );
    this.selectOne = db.prepare('SELECT forecast, issued_at AS issuedAt, message FROM published_forecasts WHERE forecast = ?');
    this.selectAll = db.prepare('SELECT forecast, issued_at AS issuedAt, message FROM published_forecasts ORDER BY forecast');
  }

  record(message: ForecastMessage): void {
    this.upsert.run(message.forecast, Date.parse(message.issuedAt), JSON.stringify(message));
    this.validated.delete(message.forecast);
  }

  /** The last forecast of `forecast`; null when none was published, or the stored one does not validate (reported). */
  latest(forecast: string): ForecastMessage | null {
    const row = this.selectOne.get(forecast) as StoredRow | undefined;
    return row === undefined ? null : this.parsed(row);
  }

  all(): ForecastMessage[] {
    return (this.selectAll.all() as StoredRow[]).flatMap((row) => this.parsed(row) ?? []);
  }

  /** Validated once per stored row (status and Home Assistant read it every second until a forecast is issued). */
  private parsed(row: StoredRow): ForecastMessage | null {
    const cached = this.validated.get(row.forecast);
    if (cached?.issuedAt === row.issuedAt) return cached.message;
    let message: ForecastMessage | null;
    try {
      message = parseForecastMessage(JSON.parse(row.message), row.forecast);
    } catch (error) {
      this.onRefused(
        error instanceof ContractError ? error : new ContractError(`forecast message ${row.forecast}`, `not JSON (${(error as Error).message})`),
      );
      message = null;
    }
    this.validated.set(row.forecast, { issuedAt: row.issuedAt, message });
    return message;
  }
}
