/**
 * What forecastd says about itself on the wire besides forecasts: the status document (retained on <baseTopic>/status
 * and served at /api/status) and the JSON API's responses, which the dashboard reads. The types the API builds and the
 * dashboard reads are these schemas' types, and test/http/apiContract.test.ts validates live responses against them.
 *
 *   API_CONTRACT_VERSION 1: the shape of forecastd 0.1.x (fields are only ever added within a version)
 */
import { z } from 'zod';
import { forecastMessageSchema, forecastPointSchema, READINESS as MESSAGE_READINESS } from './forecastMessage.js';

export const API_CONTRACT_VERSION = 1;

const isoTime = () => z.string().refine((text) => Number.isFinite(Date.parse(text)), { message: 'expected an ISO 8601 time' });

/** A forecast's readiness in the status document: the message's states, plus `stale` and `training`. */
export const STATUS_READINESS = ['ready', 'degraded', 'stale', 'training', 'warming_up'] as const;

const validationSchema = forecastMessageSchema.shape.model.shape.validation.unwrap();

export const forecastStatusSchema = z.object({
  readiness: z.enum(STATUS_READINESS),
  /** Why, in words, when not `ready`. */
  detail: z.string().nullable(),
  /** What makes the forecasts: `model` (the LSTM) or a baseline (persistence, seasonal_naive, linear). */
  servedBy: z.string().nullable(),
  target: z.string(),
  unit: z.string().nullable(),
  interval: z.string(),
  intervalSeconds: z.number(),
  horizon: z.number().int(),
  /** The LSTM version that serves; null while a baseline serves or before the first model. */
  servingVersion: z.string().nullable(),
  lastForecastAt: isoTime().nullable(),
  training: z
    .object({
      reason: z.string(),
      epoch: z.number(),
      epochs: z.number(),
      loss: z.number().nullable(),
      valLoss: z.number().nullable(),
      etaSeconds: z.number().nullable(),
    })
    .nullable(),
  lastTrainedAt: isoTime().nullable(),
  nextTrainingAt: isoTime().nullable(),
  validation: validationSchema.nullable(),
});

/** `storing: false` while commits fail (a full disk): readings then wait, unacknowledged, at the broker. */
export const ingestStatusSchema = z.object({
  storing: z.boolean(),
  failingSince: isoTime().nullable(),
  error: z.string().nullable(),
  heldMessages: z.number().int(),
});

export const statusDocumentSchema = z.object({
  version: z.string(),
  startedAt: isoTime(),
  updatedAt: isoTime(),
  uptimeSeconds: z.number(),
  backend: z.enum(['native', 'wasm', 'cpu']),
  brokerConnected: z.boolean(),
  ingest: ingestStatusSchema.optional(),
  /** Set when this run started with an empty database after moving a corrupt one here (an alert: history was lost). */
  databaseQuarantinedAs: z.string().optional(),
  forecasts: z.record(z.string(), forecastStatusSchema),
});

/** GET /api/series */
export const seriesListSchema = z.array(
  z.object({ name: z.string(), firstTs: isoTime().nullable(), lastTs: isoTime().nullable(), lastValue: z.number().nullable() }),
);

/** GET /api/forecasts: each configured forecast's status, with its next value. */
export const forecastListSchema = z.array(
  forecastStatusSchema.extend({ name: z.string(), next: forecastPointSchema.nullable(), issuedAt: isoTime().nullable() }),
);

/** GET /api/forecasts/<name>: the latest forecast message. */
export const latestForecastSchema = forecastMessageSchema;

/** GET /api/forecasts/<name>/history: actuals of the target on the forecast's grid. */
export const historySchema = z.object({
  forecast: z.string(),
  series: z.string(),
  unit: z.string().nullable(),
  from: isoTime(),
  to: isoTime(),
  bucketSeconds: z.number().positive(),
  readings: z.number().int(),
  points: z.array(z.object({ ts: isoTime(), value: z.number().nullable() })),
});

/** Display-friendly scores of one method on the held-out windows. */
export const methodScoreSchema = z.object({
  mae: z.number(),
  rmse: z.number(),
  mase: z.number().nullable(),
  maeByStep: z.array(z.number()),
  /** Per interval level, the share of actuals inside the interval. */
  coverage: z.array(z.number()).nullable(),
});

export const modelVersionSchema = z.object({
  version: z.string(),
  serving: z.boolean(),
  trainedAt: isoTime(),
  backend: z.string(),
  status: z.enum(['finished', 'aborted']),
  durationSeconds: z.number(),
  epochs: z.number().int(),
  bestEpoch: z.number().int().nullable(),
  trainWindows: z.number().int(),
  validationWindows: z.number().int(),
  samplesPerSecond: z.number(),
  loss: z.array(z.number()),
  valLoss: z.array(z.number()),
  levels: z.array(z.number()),
  scores: z.record(z.string(), methodScoreSchema).nullable(),
  decision: z.object({ promoted: z.boolean(), servedBy: z.string(), reason: z.string() }).nullable(),
  dataRange: z.object({ from: isoTime(), to: isoTime() }),
});

/** GET /api/models/<forecast> */
export const modelsSchema = z.object({
  forecast: z.string(),
  serving: z.string().nullable(),
  pinned: z.string().nullable(),
  versions: z.array(modelVersionSchema),
});

/** Every 4xx answer. */
export const apiErrorSchema = z.object({ error: z.string() });

export type ForecastStatus = z.output<typeof forecastStatusSchema>;
export type IngestStatus = z.output<typeof ingestStatusSchema>;
export type StatusDocument = z.output<typeof statusDocumentSchema>;
export type SeriesList = z.output<typeof seriesListSchema>;
export type ForecastList = z.output<typeof forecastListSchema>;
export type HistoryResponse = z.output<typeof historySchema>;
export type MethodScore = z.output<typeof methodScoreSchema>;
export type ModelVersionResponse = z.output<typeof modelVersionSchema>;
export type ModelsResponse = z.output<typeof modelsSchema>;

// The message's readiness states are a subset of the status document's.
const messageStatesAreStatusStates: (typeof MESSAGE_READINESS)[number] extends (typeof STATUS_READINESS)[number] ? true : never = true;
void messageStatesAreStatusStates;
