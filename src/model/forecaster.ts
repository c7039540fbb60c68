/**
 * Inference for one forecast: the newest good checkpoint, loaded once, asked for a forecast whenever
 * the scheduler says so. Every call runs inside tf.tidy so that months of forecasts leave no tensors.
 */
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { alignDown, buildFeatureMatrix, lastWindow, scaleMatrix, TARGET_FEATURE, type SeriesReadings } from '../windowing/index.js';
import type { Tf } from './backend.js';
import type { CheckpointStore, LoadedCheckpoint } from './checkpoint.js';
import { modelFromContent } from './serialize.js';
import { parseCheckpointMeta } from '../contracts/checkpointMeta.js';
import type { ModelMeta } from './training.js';

export interface ForecastPoint {
  /** Start of the grid bucket the value is the mean of (epoch ms), as the resampler labels buckets. */
  ts: number;
  value: number;
}

export interface ForecastResult {
  /** End of the last closed bucket the forecast was made from. */
  originMs: number;
  lastObserved: number;
  points: ForecastPoint[];
}

export class Forecaster {
  private constructor(
    private readonly tf: Tf,
    private readonly model: LayersModel,
    readonly meta: ModelMeta,
    readonly checkpointId: string,
  ) {}

  /**
   * Loads the newest checkpoint that passes verification and was built for the current model shape.
   * Returns null (with the reasons) when there is none: the caller then serves no model until a training.
   */
  static async load(
    tf: Tf,
    store: CheckpointStore,
    shapeKey: string,
    options: { fusedLstm?: boolean } = {},
  ): Promise<{ forecaster: Forecaster | null; rejected: Array<{ id: string; reason: string }> }> {
    return Forecaster.fromLoaded(tf, await store.loadLatest(), shapeKey, options);
  }

  /**
   * Loads the pinned `version`: the newest verified checkpoint of it in the first of `stores` that holds one
   * (serving, then best, then latest). `forecaster` is null when no store holds a good checkpoint of it.
   */
  static async loadVersion(
    tf: Tf,
    stores: CheckpointStore[],
    version: string,
    shapeKey: string,
    options: { fusedLstm?: boolean } = {},
  ): Promise<{ forecaster: Forecaster | null; rejected: Array<{ id: string; reason: string }> }> {
    const rejected: Array<{ id: string; reason: string }> = [];
    for (const store of stores) {
      const loaded = await store.loadVersion(version);
      if (loaded) {
        const result = await Forecaster.fromLoaded(tf, loaded, shapeKey, options);
        return { forecaster: result.forecaster, rejected: [...rejected, ...result.rejected] };
      }
    }
    return { forecaster: null, rejected };
  }

  private static async fromLoaded(
    tf: Tf,
    loaded: LoadedCheckpoint | null,
    shapeKey: string,
    options: { fusedLstm?: boolean },
  ): Promise<{ forecaster: Forecaster | null; rejected: Array<{ id: string; reason: string }> }> {
    if (!loaded) return { forecaster: null, rejected: [] };
    let meta: ModelMeta;
    try {
      meta = parseCheckpointMeta(loaded.content.meta, `checkpoint ${loaded.info.id}`);
    } catch (error) {
      // Metadata that does not validate (edited by hand, written by a newer forecastd) is refused, never guessed at.
      return { forecaster: null, rejected: [...loaded.rejected, { id: loaded.info.id, reason: (error as Error).message }] };
    }
    if (meta.shapeKey !== shapeKey) {
      return { forecaster: null, rejected: [...loaded.rejected, { id: loaded.info.id, reason: 'built for another model configuration' }] };
    }
    const model = await modelFromContent(tf, loaded.content, options);
    return { forecaster: new Forecaster(tf, model, meta, loaded.info.id), rejected: loaded.rejected };
  }

  private get intervalMs(): number {
    return this.meta.intervalSeconds * 1000;
  }

  /** The readings needed for a forecast at `nowMs`: the input window plus room to fill short gaps at its start. */
  inputRange(nowMs: number): { fromMs: number; toMs: number } {
    const originMs = alignDown(nowMs, this.intervalMs);
    return { fromMs: originMs - (this.meta.steps + this.meta.maxGapSteps + 1) * this.intervalMs, toMs: originMs };
  }

  /** A forecast from the window that ends at the last closed bucket, or null when that window has a long gap. */
  predict(series: SeriesReadings[], nowMs: number): ForecastResult | null {
    const { steps, horizon, scaler, relativeToLast, calendar, maxGapSteps } = this.meta;
    const range = this.inputRange(nowMs);
    const rows = Math.round((range.toMs - range.fromMs) / this.intervalMs);
    const features = buildFeatureMatrix({ gridStartMs: range.fromMs, intervalMs: this.intervalMs, rows, series, calendar, maxGapSteps });
    const scaled = scaleMatrix(features.matrix, rows, features.features, scaler);
    const window = lastWindow(scaled, rows, features.features, steps, TARGET_FEATURE, relativeToLast);
    if (!window) return null;
    const prediction = this.tf.tidy(() => this.model.predict(this.tf.tensor3d(window.input, [1, steps, features.features])) as Tensor);
    const output = prediction.dataSync() as Float32Array;
    prediction.dispose();
    const mean = scaler.mean[TARGET_FEATURE];
    const std = scaler.std[TARGET_FEATURE];
    const lastScaled = scaled[(rows - 1) * features.features + TARGET_FEATURE];
    const points = Array.from({ length: horizon }, (_, step) => ({
      ts: range.toMs + step * this.intervalMs,
      value: (output[step] + window.anchor) * std + mean,
    }));
    return { originMs: range.toMs, lastObserved: lastScaled * std + mean, points };
  }

  dispose(): void {
    this.model.dispose();
  }
}
