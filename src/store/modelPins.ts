import type { Db } from './database.js';

export interface ModelPin {
  forecast: string;
  version: string;
  pinnedAt: number;
  /** 'promote' or 'rollback', as the operator asked. */
  reason: string;
}

/**
 * A model version pinned by hand (`forecastd models <forecast> --promote <version> | --rollback`). The pin is the
 * operator's word on which version should serve; clearing it returns the forecast to "newest good checkpoint".
 */
export class ModelPinStore {
  private readonly upsert;
  private readonly selectOne;
  private readonly remove;

  constructor(db: Db) {
    this.upsert = db.prepare(
      `INSERT INTO model_pins(forecast, version, pinned_at, reason) VALUES (@forecast, @version, @pinnedAt, @reason)
       ON CONFLICT(forecast) DO UPDATE SET version = excluded.version, pinned_at = excluded.pinned_at, reason = excluded.reason`,
    );
    this.selectOne = db.prepare('SELECT forecast, version, pinned_at AS pinnedAt, reason FROM model_pins WHERE forecast = ?');
    this.remove = db.prepare('DELETE FROM model_pins WHERE forecast = ?');
  }

  pin(pin: ModelPin): void {
    this.upsert.run(pin);
  }

  get(forecast: string): ModelPin | null {
    return (this.selectOne.get(forecast) as ModelPin | undefined) ?? null;
  }

  clear(forecast: string): boolean {
    return this.remove.run(forecast).changes > 0;
  }
}
