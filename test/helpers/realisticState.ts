/**
 * The configuration users run, for the fault tests: a gateway that has been up for days, with several forecasts
 * whose trained models are on disk (so a start spends time loading them), Home Assistant discovery and HTTP on,
 * and (the caller's part) a persistent session that already holds queued readings when forecastd starts.
 *
 * A fault test on a config with no forecasts proves little: the start-up loss of issue 12 hid exactly there.
 *
 * The trained state is built once per test process (three real trainings with `forecastd train`, a few seconds) and
 * copied into each test's state directory.
 */
import { EventEmitter } from 'node:events';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { trainCommand } from '../../src/cli/commands/train.js';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';

const HOUR = 3_600_000;
const STEP_MS = 10 * 60_000;

/** The gateway's own sensors (their history is in the template database; the fault tests publish on other topics). */
export const HOME_SERIES = ['livingroom.temperature', 'livingroom.humidity', 'office.temperature'] as const;

const homeSignal = (series: string, ts: number) => {
  const phase = HOME_SERIES.indexOf(series as (typeof HOME_SERIES)[number]);
  return 20 + 4 * Math.sin((2 * Math.PI * ts) / (24 * HOUR) + phase) + Math.sin((2 * Math.PI * ts) / (6 * HOUR)) + phase * 10;
};

/** Three forecasts shaped like the README's (an LSTM stack, covariates, calendar features), small enough to train in seconds. */
export const REALISTIC_FORECASTS = [
  {
    name: 'living_room',
    target: 'livingroom.temperature',
    unit: '°C',
    covariates: ['livingroom.humidity'],
    interval: '10m',
    steps: 24,
    horizon: 6,
    layers: [{ type: 'lstm', units: 16, returnSequences: true }, { type: 'lstm', units: 8 }, { type: 'dense' }],
    training: { epochs: 2, seed: 1, historyDays: 3, schedule: '17 3 * * *' },
  },
  {
    name: 'living_room_humidity',
    target: 'livingroom.humidity',
    unit: '%',
    interval: '10m',
    steps: 24,
    horizon: 6,
    layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
    training: { epochs: 2, seed: 2, historyDays: 3, schedule: '17 3 * * *' },
  },
  {
    name: 'office',
    target: 'office.temperature',
    unit: '°C',
    interval: '10m',
    steps: 24,
    horizon: 6,
    layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
    training: { epochs: 2, seed: 3, historyDays: 3, schedule: '17 3 * * *' },
  },
];

export interface RealisticOptions {
  url: string;
  clientId: string;
  stateDir: string;
  /** The test's own topic rules (readings it publishes and counts), besides the gateway's `home/{device}/{metric}`. */
  topics: Array<{ filter: string; pattern: string }>;
  mqtt?: Record<string, unknown>;
}

/** The config a user runs: forecasts with models, Home Assistant discovery and HTTP on. Plain data, for YAML or parseConfig. */
export function realisticDaemonConfig(options: RealisticOptions) {
  return {
    mqtt: { url: options.url, clientId: options.clientId, baseTopic: `forecastd-${options.clientId}`, ...options.mqtt },
    ingest: {
      topics: [
        ...options.topics.map((rule) => ({ ...rule, series: '{device}.{metric}' })),
        { filter: `home-${options.clientId}/+/+`, pattern: `home-${options.clientId}/{device}/{metric}`, series: '{device}.{metric}' },
      ],
    },
    storage: { stateDir: options.stateDir },
    model: { backend: 'wasm' },
    scheduler: { poolThreads: 1 },
    http: { enabled: true, port: 0 },
    homeAssistant: { enabled: true },
    log: { level: 'info' },
    forecasts: REALISTIC_FORECASTS,
  };
}

let template: Promise<string> | null = null;

/**
 * Trains the realistic forecasts once (per test process) into a template state directory, the way a user would:
 * history in the database, then `forecastd train <forecast>` for each (the CLI's own runner and thread pool).
 */
function trainedTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'forecastd-trained-state-'));
    const configPath = join(dir, 'forecastd.yaml');
    writeFileSync(configPath, stringify(realisticDaemonConfig({ url: 'mqtt://127.0.0.1:1', clientId: 'template', stateDir: dir, topics: [] })));
    const { db } = openDatabase({ path: join(dir, 'forecastd.db'), synchronous: 'NORMAL' });
    try {
      const now = Date.now();
      const rows: Array<{ series: string; ts: number; value: number }> = [];
      for (const series of HOME_SERIES) {
        for (let ts = Math.ceil((now - 3 * 24 * HOUR) / STEP_MS) * STEP_MS; ts < now; ts += STEP_MS)
          rows.push({ series, ts, value: homeSignal(series, ts) });
      }
      new ReadingStore(db).insertMany(rows);
    } finally {
      db.close();
    }
    let output = '';
    const io = { write: (text: string) => void (output += text), isTTY: false, signals: new EventEmitter() };
    for (const forecast of REALISTIC_FORECASTS) {
      const code = await trainCommand([forecast.name, '--config', configPath, '--verbose', '0'], io);
      if (code !== 0) throw new Error(`the realistic fixture could not train ${forecast.name}: ${output}`);
    }
    return dir;
  })();
  return template;
}

/** Fills `stateDir` with the trained state: history of the gateway's sensors, three model versions and their checkpoints. */
export async function copyTrainedState(stateDir: string): Promise<void> {
  cpSync(await trainedTemplate(), stateDir, { recursive: true });
}
