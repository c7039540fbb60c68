/**
 * The forecast message: what consumers (Home Assistant, Node-RED, dashboards) receive on the forecast topic, and what
 * forecastd keeps of it (published_forecasts, the outbox, the API). The README's example is checked against this
 * schema (test/contracts/forecastMessage.test.ts).
 *
 *   version 1   forecastd 0.1.0 had the same shape without `messageVersion`; reading one adds the field
 */
import { z } from 'zod';
import { ContractError, parseWith, versionOf } from './contract.js';

export const FORECAST_MESSAGE_VERSION = 1 as const;

const isoTime = () => z.string().refine((text) => Number.isFinite(Date.parse(text)), { message: 'expected an ISO 8601 time' });

export const READINESS = ['warming_up', 'ready', 'degraded'] as const;
export const SERVED_BY = ['model', 'persistence', 'seasonal_naive', 'linear'] as const;

export const forecastPointSchema = z.object({
  ts: isoTime(),
  value: z.number(),
  /** Per interval level, keyed by percent ("80", "95"): the conformal bounds; absent without a calibration. */
  lower: z.record(z.string(), z.number()).optional(),
  upper: z.record(z.string(), z.number()).optional(),
});

export const forecastMessageSchema = z.object({
  messageVersion: z.literal(FORECAST_MESSAGE_VERSION),
  forecast: z.string().min(1),
  target: z.string().min(1),
  issuedAt: isoTime(),
  interval: z.string(),
  intervalSeconds: z.number().positive(),
  origin: isoTime(),
  lastObserved: z.number(),
  /**
   * ready: a model that beats persistence on the newest held-out windows made this forecast; degraded: no model beats
   * persistence, or the last training failed (see `readinessReason`), and `servedBy` says what made it instead.
   */
  readiness: z.enum(READINESS),
  readinessReason: z.string(),
  servedBy: z.enum(SERVED_BY),
  points: z.array(forecastPointSchema),
  /** How `lower` / `upper` were made, or null when there is no calibration yet. */
  intervals: z.object({ levels: z.array(z.number()), method: z.literal('conformal'), calibrationWindows: z.number().int() }).nullable(),
  model: z.object({
    /**
     * With servedBy `model`: the serving model's version. With a baseline: the version of the training whose
     * evaluation chose that baseline ("" when there is none yet, e.g. the first training failed).
     */
    version: z.string(),
    trainedAt: isoTime().nullable(),
    /** Scores on the newest held-out windows of the last evaluation, original units. */
    validation: z
      .object({
        mae: z.number(),
        rmse: z.number(),
        persistenceMae: z.number(),
        mase: z.number().nullable(),
        seasonalNaiveMae: z.number().nullable(),
        linearMae: z.number().nullable(),
        windows: z.number().int(),
      })
      .nullable(),
  }),
  backend: z.enum(['native', 'wasm', 'cpu']),
});

export type ForecastMessage = z.output<typeof forecastMessageSchema>;
export type ForecastPointMessage = z.output<typeof forecastPointSchema>;

/** Validates a forecast message read back from storage, upgrading one without a version; throws a ContractError naming the field. */
export function parseForecastMessage(raw: unknown, where: string): ForecastMessage {
  const what = `forecast message ${where}`;
  const version = versionOf(raw, 'messageVersion');
  if (version === undefined) return parseWith(forecastMessageSchema, { ...(raw as object), messageVersion: FORECAST_MESSAGE_VERSION }, what);
  if (version === FORECAST_MESSAGE_VERSION) return parseWith(forecastMessageSchema, raw, what);
  throw new ContractError(
    what,
    `messageVersion: ${JSON.stringify(version)} is not a version this forecastd reads (it reads ${FORECAST_MESSAGE_VERSION})`,
  );
}
