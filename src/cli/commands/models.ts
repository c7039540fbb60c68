/**
 * `forecastd models <forecast> --config <file.yaml> [--json] [--promote <version> | --rollback | --unpin]`: the model
 * versions of a forecast, newest first: when each was trained, how it scored against persistence, whether it was
 * promoted, which one serves, and whether its weights are still kept.
 *
 * --promote and --rollback record a pin (table model_pins): the operator's choice of the version that should serve.
 * Only a version with a checkpoint that still verifies (serving store first: training.keepCheckpoints promoted
 * models are kept) can be pinned. The running daemon applies a pin change at the forecast's next forecast tick
 * (or on SIGHUP / restart); while pinned, a training's promotion is kept but does not serve until --unpin.
 */
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import type { ForecastConfig } from '../../config/schema.js';
import { forecastCheckpoints } from '../../model/stores.js';
import type { TrainingSummary } from '../../model/training.js';
import { fmt, findForecast, localTime, openState, StateError, type StateReader } from '../stateReader.js';
import { UsageError } from '../usage.js';

const USAGE = 'usage: forecastd models <forecast> --config <file.yaml> [--json] [--limit <n>] [--promote <version> | --rollback | --unpin]';
export const PIN_APPLIED_NOTE = 'the running daemon serves it from its next forecast tick (or on SIGHUP); trainings do not replace it until --unpin';

export interface ModelRow {
  version: string;
  trainedAt: string;
  epochs: number;
  durationSeconds: number;
  backend: string;
  mae: number | null;
  persistenceMae: number | null;
  bestBaseline: { method: string; mae: number } | null;
  promoted: boolean | null;
  serving: boolean;
  pinned: boolean;
  weightsKept: boolean;
}

export async function modelsCommand(args: string[], write: (text: string) => void = (text) => process.stdout.write(text)): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      limit: { type: 'string' },
      promote: { type: 'string' },
      rollback: { type: 'boolean' },
      unpin: { type: 'boolean' },
    },
  });
  if (!values.config) throw new UsageError(`models needs --config <file.yaml>\n${USAGE}`);
  if (positionals.length > 1) throw new UsageError(USAGE);
  const actions = [values.promote !== undefined, values.rollback, values.unpin].filter(Boolean).length;
  if (actions > 1) throw new UsageError(`--promote, --rollback and --unpin exclude each other\n${USAGE}`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit takes a whole number from 1 to 1000');
  const config = loadConfigFile(values.config);
  const forecast = findForecast(config, positionals[0], values.config, USAGE);

  let state: StateReader;
  try {
    state = openState(config, { write: actions > 0 });
  } catch (error) {
    if (!(error instanceof StateError)) throw error;
    process.stderr.write(`forecastd: ${error.message}\n`);
    return 1;
  }
  try {
    const rows = await modelRows(forecast, state, limit);
    if (actions === 0) {
      write(values.json ? `${JSON.stringify({ forecast: forecast.name, versions: rows }, null, 2)}\n` : renderModels(forecast, rows));
      return 0;
    }
    return await changePin(
      forecast,
      state,
      rows,
      { promote: values.promote, rollback: values.rollback === true, unpin: values.unpin === true },
      write,
    );
  } finally {
    state.close();
  }
}

export async function modelRows(forecast: ForecastConfig, state: StateReader, limit: number): Promise<ModelRow[]> {
  const summaries: TrainingSummary[] = state.versions.latest(forecast.name, limit);
  const newest = await state.servingCheckpointVersion(forecast).catch(() => null);
  const kept = new Set(await state.keptVersions(forecast).catch(() => [] as string[]));
  const pinned = state.pins?.get(forecast.name)?.version ?? null;
  // A pin whose weights are kept serves (the daemon applies it); otherwise the newest promoted checkpoint does.
  const serving = pinned !== null && kept.has(pinned) ? pinned : newest;
  return summaries.map((summary) => {
    const methods = summary.evaluation?.methods;
    const mae = methods?.model?.mae ?? summary.metrics?.model.mae ?? null;
    const persistenceMae = methods?.persistence?.mae ?? summary.metrics?.persistence.mae ?? null;
    return {
      version: summary.version,
      trainedAt: new Date(summary.startedAt).toISOString(),
      epochs: summary.epochsCompleted,
      durationSeconds: Math.round(summary.durationMs / 100) / 10,
      backend: summary.backend,
      mae,
      persistenceMae,
      bestBaseline: summary.decision?.bestBaseline ?? null,
      promoted: summary.decision ? summary.decision.promoted : null,
      serving: summary.version === serving,
      pinned: summary.version === pinned,
      weightsKept: kept.has(summary.version),
    };
  });
}

export function renderModels(forecast: ForecastConfig, rows: ModelRow[]): string {
  if (rows.length === 0) return `${forecast.name}: no trained versions yet (\`forecastd train ${forecast.name} --config <file>\` trains one now)\n`;
  const unit = forecast.unit ? ` (${forecast.unit})` : '';
  const header = ['', 'version', 'trained', 'epochs', 'took', `val MAE${unit}`, 'persistence', 'best baseline', 'promoted', 'weights'];
  const table = rows.map((row) => [
    row.serving ? '*' : row.pinned ? 'p' : ' ',
    row.version,
    localTime(row.trainedAt),
    String(row.epochs),
    `${row.durationSeconds} s`,
    fmt(row.mae),
    fmt(row.persistenceMae),
    row.bestBaseline ? `${row.bestBaseline.method.replace('_', ' ')} ${fmt(row.bestBaseline.mae)}` : '–',
    row.promoted === null ? '–' : row.promoted ? 'yes' : 'no',
    row.weightsKept ? 'kept' : 'gone',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...table.map((cells) => cells[column].length)));
  const numeric = new Set([3, 4, 5, 6]);
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (numeric.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd();
  return [
    `${forecast.name}: ${rows.length} version(s), newest first`,
    line(header),
    ...table.map(line),
    '',
    '* serves now (the serving checkpoint)   p pinned by hand   weights: kept when the serving store still holds the model',
    '',
  ].join('\n');
}

async function changePin(
  forecast: ForecastConfig,
  state: StateReader,
  rows: ModelRow[],
  action: { promote?: string; rollback: boolean; unpin: boolean },
  write: (text: string) => void,
): Promise<number> {
  if (!state.pins) {
    process.stderr.write('forecastd: this database has no model_pins table yet: start the daemon of this version once, then try again\n');
    return 1;
  }
  if (action.unpin) {
    write(
      state.pins.clear(forecast.name)
        ? `${forecast.name}: pin removed; the newest promoted model serves from the daemon's next forecast tick\n`
        : `${forecast.name}: no pin to remove\n`,
    );
    return 0;
  }
  let target: ModelRow | undefined;
  if (action.promote !== undefined) {
    target = rows.find((row) => row.version === action.promote);
    if (!target) {
      process.stderr.write(
        `forecastd: no version "${action.promote}" of ${forecast.name} (\`forecastd models ${forecast.name} --config <file>\` lists them)\n`,
      );
      return 1;
    }
  } else {
    // Roll back: the newest kept version before the one that serves now.
    const servingIndex = rows.findIndex((row) => row.serving);
    target = rows.slice(servingIndex + 1).find((row) => row.weightsKept && row.promoted !== false);
    if (servingIndex < 0 || !target) {
      process.stderr.write(
        `forecastd: nothing to roll back to: no earlier version of ${forecast.name} whose weights are still kept (training.keepCheckpoints)\n`,
      );
      return 1;
    }
  }
  // A pin the daemon cannot apply is refused: the version needs a checkpoint that verifies, as the daemon loads it.
  const stores = forecastCheckpoints(state.checkpointRoot, forecast);
  let loadable = false;
  for (const store of [stores.serving, stores.best, stores.latest]) {
    if (await store.loadVersion(target.version).catch(() => null)) {
      loadable = true;
      break;
    }
  }
  if (!loadable) {
    process.stderr.write(
      `forecastd: cannot pin ${target.version}: its weights are gone or damaged (the serving store keeps the last training.keepCheckpoints = ${forecast.training.keepCheckpoints} promoted models); nothing was pinned\n`,
    );
    return 1;
  }
  state.pins.pin({ forecast: forecast.name, version: target.version, pinnedAt: Date.now(), reason: action.rollback ? 'rollback' : 'promote' });
  write(`${forecast.name}: pinned ${target.version} (${action.rollback ? 'rollback' : 'promote'}); ${PIN_APPLIED_NOTE}\n`);
  return 0;
}
