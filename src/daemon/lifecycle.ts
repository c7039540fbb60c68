/**
 * Process lifecycle around a running daemon, the way systemd expects it:
 * SIGTERM / SIGINT stop cleanly within a deadline (a second signal exits at once), SIGHUP reloads the
 * config file: validated first, and a bad new file keeps the old config running.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Daemon } from './daemon.js';

export interface LifecycleOptions {
  start: (config: Config) => Promise<Daemon>;
  /** Reads and validates the config file again (throws a ConfigError when it is bad). */
  reloadConfig: () => Config;
  initialConfig: Config;
  log: Logger;
  /** Tests pass their own process-like emitter and exit. */
  signals?: NodeJS.EventEmitter;
  exit?: (code: number) => void;
}

export const EXIT_CODES = { ok: 0, failure: 1, usage: 2 } as const;

/** Resolves with the exit code once the daemon has stopped. */
export async function runWithLifecycle(options: LifecycleOptions): Promise<number> {
  const signals = options.signals ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const { log } = options;
  let config = options.initialConfig;
  let daemon = await options.start(config);
  let reloading: Promise<void> = Promise.resolve();

  const onHangup = () => {
    reloading = reloading.then(async () => {
      let next: Config;
      try {
        next = options.reloadConfig();
      } catch (error) {
        log.error({ err: (error as Error).message }, 'SIGHUP: the new config is invalid; keeping the running one');
        return;
      }
      log.info('SIGHUP: config valid, restarting the pipeline with it');
      await daemon.stop();
      config = next;
      daemon = await options.start(config);
    });
  };
  signals.on('SIGHUP', onHangup);

  const signal = await new Promise<string>((resolve) => {
    signals.once('SIGTERM', () => resolve('SIGTERM'));
    signals.once('SIGINT', () => resolve('SIGINT'));
  });
  signals.off('SIGHUP', onHangup);
  const timeoutMs = config.lifecycle.shutdownTimeoutSeconds * 1000;
  log.info({ signal, timeoutMs }, 'shutting down');
  // A second signal means "now": the operator has stopped waiting.
  const again = () => {
    log.warn('second signal: exiting at once');
    exit(EXIT_CODES.failure);
  };
  signals.once('SIGTERM', again);
  signals.once('SIGINT', again);

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([reloading.then(() => daemon.stop()).then(() => 'stopped' as const), deadline]);
  clearTimeout(timer);
  signals.off('SIGTERM', again);
  signals.off('SIGINT', again);
  if (outcome === 'timeout') {
    log.error({ timeoutMs }, 'shutdown did not finish in time; exiting anyway');
    return EXIT_CODES.failure;
  }
  return EXIT_CODES.ok;
}
