#!/usr/bin/env node
/**
 * The `forecastd` command. Exit codes scripts can rely on: 0 ok, 1 runtime failure, 2 usage or config error.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { startDaemon } from '../daemon/daemon.js';
import { runDemo } from '../demo/demo.js';
import { createLogger } from '../log.js';

const USAGE = `forecastd — edge forecasting daemon: MQTT sensor readings in, LSTM forecasts out.

Usage:
  forecastd run --config <file.yaml>      run the daemon
  forecastd demo [--duration <seconds>]   everything on an embedded broker with a simulated sensor
  forecastd config check <file.yaml>      validate a config file and exit
  forecastd help                          this text

Environment: FORECASTD_MQTT_PASSWORD, FORECASTD_MQTT_USERNAME override the config's broker credentials.
`;

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } } });
      if (!values.config) throw new UsageError('run needs --config <file.yaml> (see config/forecastd.example.yaml)');
      const config = loadConfigFile(values.config);
      const log = createLogger(config.log.level);
      const daemon = await startDaemon({ config, log });
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          log.info({ signal }, 'shutting down');
          // A second signal means "now".
          process.once(signal, () => process.exit(EXIT.failure));
          resolve();
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
      await daemon.stop();
      return EXIT.ok;
    }
    case 'demo': {
      const { values } = parseArgs({ args: rest, options: { duration: { type: 'string', short: 'd' } } });
      const durationSeconds = values.duration === undefined ? undefined : Number(values.duration);
      if (durationSeconds !== undefined && !(durationSeconds > 0)) throw new UsageError('--duration takes a number of seconds');
      await runDemo({ durationSeconds });
      return EXIT.ok;
    }
    case 'config': {
      const [sub, file] = rest;
      if (sub !== 'check' || !file) throw new UsageError('usage: forecastd config check <file.yaml>');
      const config = loadConfigFile(file);
      process.stdout.write(`${file}: ok (${config.forecasts.length} forecast(s): ${config.forecasts.map((f) => f.name).join(', ') || 'none'})\n`);
      return EXIT.ok;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? EXIT.usage : EXIT.ok;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

class UsageError extends Error {}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT.usage);
    }
    if (error instanceof UsageError) {
      process.stderr.write(`forecastd: ${error.message}\n\n${USAGE}`);
      process.exit(EXIT.usage);
    }
    process.stderr.write(`forecastd: ${error.stack ?? error.message}\n`);
    process.exit(EXIT.failure);
  },
);
