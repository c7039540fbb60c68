/**
 * The record of one training, as stored with its model version (model_versions.summary) and shown by the CLI, the
 * API and the dashboard.
 *
 *   version 1   forecastd 0.1.0 and earlier: no `recordVersion`; the fields from `status` on may be missing
 *               (records written before evaluation, resuming and warm starts existed)
 *   version 2   `recordVersion: 2`; every field present (null where it does not apply)
 *
 * A version-1 record is upgraded by filling what an old training could not have had: it finished (aborted runs were
 * never recorded), started at epoch 0, from scratch, with no evaluation.
 *
 * JSON has no NaN: a loss or score that was NaN when written comes back as null and is read as NaN again.
 */
import { z } from 'zod';
import { ContractError, parseWith, versionOf } from './contract.js';

export const TRAINING_RECORD_VERSION = 2;

/** A number that JSON may have turned into null (NaN, ±Infinity when written). */
const score = () =>
  z
    .number()
    .nullable()
    .transform((value) => value ?? Number.NaN);
const scores = () => z.array(score());

const errorSummary = z.object({ mae: score(), rmse: score(), maeByStep: scores() });

const methodEvaluation = z.object({
  windows: z.number().int().min(0),
  mae: score(),
  rmse: score(),
  maeByStep: scores(),
  rmseByStep: scores(),
  mase: z.number().nullable(),
  maseByStep: scores().nullable(),
  mseScaled: z.number().nullable(),
  intervalWidths: z.array(scores()),
  coverage: scores(),
});

const linearModel = z.object({
  lags: z.number().int().min(1),
  horizon: z.number().int().min(1),
  weights: scores(),
  bias: scores(),
  scale: z.number(),
  lambda: z.number(),
  trainWindows: z.number().int().min(0),
});

const baselineMethod = z.enum(['persistence', 'seasonal_naive', 'linear']);

export const evaluationSchema = z.object({
  windows: z.number().int().min(0),
  fromMs: z.number(),
  toMs: z.number(),
  horizon: z.number().int().min(1),
  levels: z.array(z.number()),
  season: z.object({ length: z.number().int().nullable(), source: z.enum(['config', 'detected', 'default', 'none']), acf: z.number().optional() }),
  maseScale: z.object({ lag: z.number().int(), mae: z.number() }).nullable(),
  targetStd: z.number(),
  methods: z.record(z.string(), methodEvaluation),
  linear: linearModel.nullable(),
  championVersion: z.string().nullable(),
});

export const decisionSchema = z.object({
  promoted: z.boolean(),
  servingVersion: z.string().nullable(),
  servedBy: z.enum(['model', 'persistence', 'seasonal_naive', 'linear']),
  modelBeatsPersistence: z.boolean(),
  bestBaseline: z.object({ method: baselineMethod, mae: score() }).nullable(),
  reason: z.string(),
  pinned: z.string().nullable().optional(),
});

/** What every version has. */
const coreFields = {
  forecast: z.string().min(1),
  version: z.string().min(1),
  backend: z.enum(['native', 'wasm', 'cpu']),
  startedAt: z.number(),
  durationMs: z.number().min(0),
  epochsCompleted: z.number().int().min(0),
  trainWindows: z.number().int().min(0),
  validationWindows: z.number().int().min(0),
  samplesPerSecond: score(),
  loss: scores(),
  valLoss: scores(),
  metrics: z.object({ model: errorSummary, persistence: errorSummary }).nullable(),
  dataRange: z.object({ fromMs: z.number(), toMs: z.number() }),
  checkpointId: z.string().nullable(),
};

/** Added after the first records were written; required from version 2 on. */
const laterFields = {
  status: z.enum(['finished', 'aborted']),
  initialEpoch: z.number().int().min(0),
  learningRate: scores(),
  bestEpoch: z.number().int().nullable(),
  stoppedEarly: z.boolean(),
  resumedFrom: z.object({ version: z.string(), epoch: z.number().int(), checkpoint: z.string() }).nullable(),
  warmStartedFrom: z.string().nullable(),
  configHash: z.string().nullable(),
  shapeKey: z.string().nullable(),
  featureNames: z.array(z.string()).nullable(),
  scaler: z.object({ mean: scores(), std: scores() }).nullable(),
  evaluation: evaluationSchema.nullable(),
  decision: decisionSchema.nullable(),
  servingCheckpointId: z.string().nullable(),
};

const optionalLater = Object.fromEntries(Object.entries(laterFields).map(([key, schema]) => [key, schema.optional()])) as {
  [K in keyof typeof laterFields]: z.ZodOptional<(typeof laterFields)[K]>;
};

const recordV1Schema = z.object({ ...coreFields, ...optionalLater });

export const trainingRecordSchema = z.object({ recordVersion: z.literal(TRAINING_RECORD_VERSION), ...coreFields, ...laterFields });

export type TrainingRecord = z.output<typeof trainingRecordSchema>;

/** What an old record could not have had (see the module comment). */
function upgradeV1(record: z.output<typeof recordV1Schema>): TrainingRecord {
  return {
    recordVersion: TRAINING_RECORD_VERSION,
    ...record,
    status: record.status ?? 'finished',
    initialEpoch: record.initialEpoch ?? 0,
    learningRate: record.learningRate ?? [],
    bestEpoch: record.bestEpoch ?? null,
    stoppedEarly: record.stoppedEarly ?? false,
    resumedFrom: record.resumedFrom ?? null,
    warmStartedFrom: record.warmStartedFrom ?? null,
    configHash: record.configHash ?? null,
    shapeKey: record.shapeKey ?? null,
    featureNames: record.featureNames ?? null,
    scaler: record.scaler ?? null,
    evaluation: record.evaluation ?? null,
    decision: record.decision ?? null,
    servingCheckpointId: record.servingCheckpointId ?? null,
  };
}

/** Validates a stored training record, upgrading version 1; throws a ContractError naming the field. */
export function parseTrainingRecord(raw: unknown, where: string): TrainingRecord {
  const what = `training record ${where}`;
  const version = versionOf(raw, 'recordVersion');
  if (version === undefined) return upgradeV1(parseWith(recordV1Schema, raw, what));
  if (version === TRAINING_RECORD_VERSION) return parseWith(trainingRecordSchema, raw, what);
  throw new ContractError(
    what,
    `recordVersion: ${JSON.stringify(version)} is not a version this forecastd reads (it reads 1 and ${TRAINING_RECORD_VERSION}; a newer forecastd wrote it?)`,
  );
}

/**
 * The record to store for a training that just ended: the summary as the training produced it, checked against the
 * schema (a field that does not fit fails here, at write time, not at the next read), with every field present.
 */
export function trainingRecordOf(summary: object): TrainingRecord {
  return upgradeV1(
    parseWith(recordV1Schema, JSON.parse(JSON.stringify(summary)), `training record of ${String((summary as { version?: unknown }).version)}`),
  );
}
