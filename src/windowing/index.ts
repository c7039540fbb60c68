export { alignDown, alignUp, resampleMean } from './resample.js';
export { fillShortGaps } from './gaps.js';
export { calendarFeatures, type CalendarFeatureKind, type CalendarFeatures } from './calendar.js';
export { fitScaler, scaleMatrix, unscale, unscaleArray, type ScalerStats } from './scale.js';
export { cutWindows, lastWindow, type CutWindowsOptions, type WindowSet } from './windows.js';
export { splitRowFor, splitWindows, subsetWindows, windowsAtOrigins, windowsInRange } from './split.js';
export {
  TARGET_FEATURE,
  buildFeatureMatrix,
  fitFeatureScaler,
  matrixColumn,
  prepareTrainingData,
  type FeatureMatrix,
  type FeatureMatrixInput,
  type SeriesReadings,
  type TrainingData,
  type TrainingDataInput,
} from './dataset.js';
