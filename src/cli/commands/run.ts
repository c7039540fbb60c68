import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { startDaemon } from '../../daemon/daemon.js';
import { runWithLifecycle } from '../../daemon/lifecycle.js';
import { createLogger } from '../../log.js';
import { UsageError } from '../usage.js';

export async function runCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  if (!values.config) throw new UsageError('run needs --config <file.yaml> (see config/forecastd.example.yaml)');
  const path = values.config;
  const config = loadConfigFile(path);
  const log = createLogger(config.log.level);
  return runWithLifecycle({
    initialConfig: config,
    reloadConfig: () => loadConfigFile(path),
    start: (current) => startDaemon({ config: current, log }),
    log,
  });
}
