#!/usr/bin/env node
/**
 * The `forecastd` command: dispatches to one module per command, loaded on demand so that quick
 * commands (config check) do not pay for TensorFlow.js.
 */
import { ConfigError } from '../config/load.js';
import { EXIT_CODES } from '../daemon/lifecycle.js';
import { commandHelp, USAGE, UsageError } from './usage.js';

const COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  train: async () => (await import('./commands/train.js')).trainCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  config: async () => (await import('./commands/config.js')).configCommand,
  import: async () => (await import('./commands/import.js')).importCommand,
  export: async () => (await import('./commands/export.js')).exportCommand,
  backtest: async () => (await import('./commands/backtest.js')).backtestCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
  forecast: async () => (await import('./commands/forecast.js')).forecastCommand,
  models: async () => (await import('./commands/models.js')).modelsCommand,
};

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? EXIT_CODES.usage : EXIT_CODES.ok;
  }
  const load = COMMANDS[command];
  if (!load) throw new UsageError(`unknown command "${command}"`);
  // Every command answers --help (exit 0) without loading its module.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(command));
    return EXIT_CODES.ok;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(EXIT_CODES.usage);
    }
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`forecastd: ${error.message}\n\n${USAGE}`);
      process.exit(EXIT_CODES.usage);
    }
    process.stderr.write(`forecastd: ${error.stack ?? error.message}\n`);
    process.exit(EXIT_CODES.failure);
  },
);
