/**
 * The metadata stored with every model checkpoint (inside its manifest): what inference needs to rebuild exactly the
 * features and windows the model was trained on.
 *
 *   version 1   forecastd 0.1.0: no `metaVersion` field; calendar features in the training process's local zone
 *   version 2   `metaVersion: 2`, and `timeZone`: the IANA zone the calendar features were computed in
 *
 * A version-1 record is upgraded with `timeZone: null` ("the zone of the process that trained it", which was not
 * recorded).
 */
import { z } from 'zod';
import { ContractError, parseWith, versionOf } from './contract.js';

export const CHECKPOINT_META_VERSION = 2 as const;

const finite = () => z.number().refine(Number.isFinite, { message: 'expected a finite number' });

const runSchema = z.object({
  finished: z.boolean(),
  totalEpochs: z.number().int().min(0),
  learningRate: finite(),
});

/** The fields both versions share. */
const commonFields = {
  version: z.string().min(1),
  forecast: z.string().min(1),
  shapeKey: z.string().min(1),
  epoch: z.number().int().min(0),
  featureNames: z.array(z.string()).min(1),
  scaler: z.object({ mean: z.array(finite()), std: z.array(finite()) }),
  steps: z.number().int().min(1),
  horizon: z.number().int().min(1),
  intervalSeconds: z.number().positive(),
  relativeToLast: z.boolean(),
  maxGapSteps: z.number().int().min(0),
  calendar: z.array(z.enum(['hourOfDay', 'dayOfWeek'])),
  loss: z.number().nullable(),
  valLoss: z.number().nullable(),
  backend: z.enum(['native', 'wasm', 'cpu']),
  dataRange: z.object({ fromMs: z.number(), toMs: z.number() }),
  run: runSchema.optional(),
};

const scalerMatchesFeatures = (meta: { featureNames: string[]; scaler: { mean: number[]; std: number[] } }) =>
  meta.scaler.mean.length === meta.featureNames.length && meta.scaler.std.length === meta.featureNames.length;
const SCALER_MESSAGE = { message: 'the scaler needs one mean and one std per feature', path: ['scaler'] };

const metaV1Schema = z.object(commonFields).refine(scalerMatchesFeatures, SCALER_MESSAGE);

export const checkpointMetaSchema = z
  .object({
    metaVersion: z.literal(CHECKPOINT_META_VERSION),
    ...commonFields,
    /** IANA zone of the calendar features; null: the zone of the process that trained it (version-1 checkpoints). */
    timeZone: z.string().min(1).nullable(),
  })
  .refine(scalerMatchesFeatures, SCALER_MESSAGE);

export type CheckpointMeta = z.output<typeof checkpointMetaSchema>;

/** Validates checkpoint metadata as read from disk, upgrading version 1; throws a ContractError naming the field. */
export function parseCheckpointMeta(raw: unknown, where: string): CheckpointMeta {
  const what = `checkpoint meta of ${where}`;
  const version = versionOf(raw, 'metaVersion');
  if (version === undefined) return { metaVersion: CHECKPOINT_META_VERSION, ...parseWith(metaV1Schema, raw, what), timeZone: null };
  if (version === CHECKPOINT_META_VERSION) return parseWith(checkpointMetaSchema, raw, what);
  throw new ContractError(
    what,
    `metaVersion: ${JSON.stringify(version)} is not a version this forecastd reads (it reads 1 and ${CHECKPOINT_META_VERSION}; a newer forecastd wrote it?)`,
  );
}

/** The zone a process computes local calendar features in now (what Date#getHours uses). */
export function processTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
