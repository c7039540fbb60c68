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

/**
 * `pinnedVersion`, when given, is asked at each prune of the serving store: a checkpoint of the version it returns
 * (the operator's pin, `forecastd models --promote`) is never pruned.
 */
export function forecastCheckpoints(
  root: string,
  forecast: { name: string; training: { keepCheckpoints: number } },
  options: { pinnedVersion?: () => string | null } = {},
): ForecastCheckpoints {
  const pinned = options.pinnedVersion;
  return {
    serving: new CheckpointStore(root, forecast.name, {
      keep: forecast.training.keepCheckpoints,
      protect: pinned ? (info) => typeof info.meta.version === 'string' && info.meta.version === pinned() : undefined,
    }),
    // Two: the newest, and the one before it in case the newest is damaged.
    latest: new CheckpointStore(root, `${forecast.name}#latest`, { keep: 2 }),
    best: new CheckpointStore(root, `${forecast.name}#best`, { keep: 2 }),
  };
}
