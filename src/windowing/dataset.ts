import { calendarFeatures, type CalendarFeatureKind } from './calendar.js';
import { fillShortGaps } from './gaps.js';
import { resampleMean } from './resample.js';
import { fitScaler, scaleMatrix, type ScalerStats } from './scale.js';
import { splitRowFor, splitWindows } from './split.js';
import { cutWindows, type WindowSet } from './windows.js';

export interface SeriesReadings {
  name: string;
  timestampsMs: Float64Array;
  values: Float64Array;
}

export interface FeatureMatrixInput {
  gridStartMs: number;
  intervalMs: number;
  rows: number;
  /** series[0] is the target; the others are covariates. */
  series: Array<SeriesReadings>;
  calendar: ReadonlyArray<CalendarFeatureKind>;
  maxGapSteps: number;
}

export interface FeatureMatrix {
  /** One per column: the series names, then the calendar column names. */
  names: string[];
  /** Row-major [rows, features]; the target is feature 0. */
  matrix: Float64Array;
  rows: number;
  features: number;
}

export interface TrainingDataInput extends FeatureMatrixInput {
  steps: number;
  horizon: number;
  validationFraction: number;
  relativeToLast: boolean;
  /** Reuse these statistics instead of fitting new ones (a resumed training must see its inputs scaled as before). */
  scaler?: ScalerStats;
}

export interface TrainingData {
  names: string[];
  scaler: ScalerStats;
  train: WindowSet;
  validation: WindowSet;
  splitRow: number;
  rows: number;
  /** The unscaled feature matrix, row-major [rows, features]: baselines and metrics work in original units. */
  matrix: Float64Array;
  features: number;
}

/** The index of the target in every feature matrix, scaler and window set. */
export const TARGET_FEATURE = 0;

/**
 * Each series resampled to the grid and short gaps filled, then the calendar columns. The same
 * function serves training and inference, so both see identically built features.
 */
export function buildFeatureMatrix(input: FeatureMatrixInput): FeatureMatrix {
  const { gridStartMs, intervalMs, rows, series, calendar, maxGapSteps } = input;
  if (series.length === 0) {
    throw new RangeError('buildFeatureMatrix: at least one series (the target) is required');
  }
  const names: string[] = [];
  const columns: Float64Array[] = [];
  for (const { name, timestampsMs, values } of series) {
    names.push(name);
    columns.push(fillShortGaps(resampleMean(timestampsMs, values, gridStartMs, intervalMs, rows), maxGapSteps));
  }
  const calendarColumns = calendarFeatures(gridStartMs, intervalMs, rows, calendar);
  names.push(...calendarColumns.names);
  columns.push(...calendarColumns.columns);

  const features = columns.length;
  const matrix = new Float64Array(rows * features);
  for (let f = 0; f < features; f++) {
    const column = columns[f];
    for (let r = 0; r < rows; r++) matrix[r * features + f] = column[r];
  }
  return { names, matrix, rows, features };
}

/**
 * Feature matrix → scaler fitted on the training rows [0, splitRow) only → scaled matrix → windows
 * → chronological split.
 *
 * Calendar columns are left unscaled (their stats are mean 0, std 1): they are already in [-1, 1],
 * and when the training span covers only part of a cycle (two days of a week, say) a z-score fitted
 * on it would blow a small variance up into large values at inference.
 */
export function prepareTrainingData(input: TrainingDataInput): TrainingData {
  const { steps, horizon, validationFraction, relativeToLast } = input;
  const { names, matrix, rows, features } = buildFeatureMatrix(input);
  const splitRow = splitRowFor(rows, validationFraction);

  const scaler = input.scaler ?? fitFeatureScaler(matrix, rows, features, splitRow, input.series.length);

  const scaled = scaleMatrix(matrix, rows, features, scaler);
  const windows = cutWindows(scaled, rows, features, {
    steps,
    horizon,
    targetFeature: TARGET_FEATURE,
    relativeToLast,
  });
  const { train, validation } = splitWindows(windows, splitRow);
  return { names, scaler, train, validation, splitRow, rows, matrix, features };
}

/** The scaler of a feature matrix fitted on rows [0, fitRows): z-scores for the series, identity for calendar columns. */
export function fitFeatureScaler(matrix: Float64Array, rows: number, features: number, fitRows: number, seriesCount: number): ScalerStats {
  const scaler = fitScaler(matrix, rows, features, fitRows);
  for (let f = seriesCount; f < features; f++) {
    scaler.mean[f] = 0;
    scaler.std[f] = 1;
  }
  return scaler;
}

/** Column `feature` of a row-major [rows, features] matrix. */
export function matrixColumn(matrix: Float64Array, rows: number, features: number, feature: number): Float64Array {
  const column = new Float64Array(rows);
  for (let row = 0; row < rows; row++) column[row] = matrix[row * features + feature];
  return column;
}
