import { join } from 'node:path';
import type { Config } from '../config/schema.js';

/** Where forecastd keeps its state under `storage.stateDir`: one place for these names. */
export const statePaths = (config: Config) => ({
  databasePath: join(config.storage.stateDir, 'forecastd.db'),
  checkpointRoot: join(config.storage.stateDir, 'checkpoints'),
});
