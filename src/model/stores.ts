import { CheckpointStore } from './checkpoint.js';

/**
 * The three checkpoint stores of a forecast, under one root:
 * - serving: the model that forecasts (the champion); written only when a new model is promoted.
 *   Its key is the forecast name, so the checkpoints of earlier forecastd versions serve on upgrade.
 * - latest: every epoch end of the current run; an unfinished run found here is resumed.
 * - best: the run's best epoch by val_loss.
 */
export interface ForecastCheckpoints {
  serving: CheckpointStore;
  latest: CheckpointStore;
  best: CheckpointStore;
}

export function forecastCheckpoints(root: string, forecast: { name: string; training: { keepCheckpoints: number } }): ForecastCheckpoints {
  return {
    serving: new CheckpointStore(root, forecast.name, { keep: forecast.training.keepCheckpoints }),
    // Two: the newest, and the one before it in case the newest is damaged.
    latest: new CheckpointStore(root, `${forecast.name}#latest`, { keep: 2 }),
    best: new CheckpointStore(root, `${forecast.name}#best`, { keep: 2 }),
  };
}
