/**
 * Process lifecycle around a running daemon, the way systemd expects it:
 * - start-up, then READY=1 and the watchdog keep-alive (Type=notify; see systemdNotify.ts);
 * - SIGTERM / SIGINT stop cleanly within a deadline (STOPPING=1 first; a second signal exits at once),
 *   also when the signal arrives while the daemon is still starting;
 * - SIGHUP reloads the config file: validated first, and a bad new file keeps the old config running.
 *   A valid file the daemon cannot start with (say, a state directory it may not write) falls back
 *   to the previous config.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Daemon } from './daemon.js';
import { systemdNotifier, type ServiceNotifier } from './systemdNotify.js';

/** What the lifecycle needs from a daemon: that it stops. */
export type StoppableDaemon = Pick<Daemon, 'stop'>;

export interface LifecycleOptions {
  start: (config: Config) => Promise<StoppableDaemon>;
  /** Reads and validates the config file again (throws a ConfigError when it is bad). */
  reloadConfig: () => Config;
  initialConfig: Config;
  log: Logger;
  /** Tests pass their own process-like emitter and exit. */
  signals?: NodeJS.EventEmitter;
  exit?: (code: number) => void;
  /** Default: sd_notify through systemd-notify when $NOTIFY_SOCKET is set, else nothing. */
  notifier?: ServiceNotifier;
}

export const EXIT_CODES = { ok: 0, failure: 1, usage: 2 } as const;

type StopReason = { kind: 'signal'; signal: string } | { kind: 'fatal'; error: Error };

/** Resolves with the exit code once the daemon has stopped. */
export async function runWithLifecycle(options: LifecycleOptions): Promise<number> {
  const signals = options.signals ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const { log } = options;
  const notifier = options.notifier ?? systemdNotifier({ log });
  let config = options.initialConfig;

  // Signal handlers go in before start-up: a SIGTERM while the database opens must not kill the
  // process half-way (Node's default), it must wait for start-up and then stop cleanly.
  let requestStop!: (reason: StopReason) => void;
  const stopRequested = new Promise<StopReason>((resolve) => (requestStop = resolve));
  let stopSignalAt: number | null = null;
  const onStopSignal = (signal: string) => {
    if (stopSignalAt !== null) {
      // A second signal means "now": the operator has stopped waiting.
      log.warn({ signal }, 'second signal: exiting at once');
      exit(EXIT_CODES.failure);
      return;
    }
    stopSignalAt = Date.now();
    notifier.stopping('stopping');
    requestStop({ kind: 'signal', signal });
  };
  const onTerm = () => onStopSignal('SIGTERM');
  const onInt = () => onStopSignal('SIGINT');
  signals.on('SIGTERM', onTerm);
  signals.on('SIGINT', onInt);

  let daemon: StoppableDaemon | null = null;
  let reloading: Promise<void> = Promise.resolve();
  const onHangup = () => {
    reloading = reloading.then(() => reload()).catch((error: Error) => requestStop({ kind: 'fatal', error }));
  };
  const reload = async () => {
    if (stopSignalAt !== null) return;
    if (!daemon) {
      log.warn('SIGHUP during start-up: ignored; send it again once forecastd runs');
      return;
    }
    let next: Config;
    try {
      next = options.reloadConfig();
    } catch (error) {
      log.error({ err: (error as Error).message }, 'SIGHUP: the new config is invalid; keeping the running one');
      notifier.status('running; the last config reload failed, see the log');
      return;
    }
    log.info('SIGHUP: config valid, restarting the pipeline with it');
    notifier.reloading('reloading the config');
    await daemon.stop();
    daemon = null;
    try {
      daemon = await options.start(next);
      config = next;
    } catch (error) {
      log.error({ err: (error as Error).message }, 'SIGHUP: the daemon could not start with the new config; going back to the previous one');
      // If the previous config does not start either, this throws, and the lifecycle ends with a failure.
      daemon = await options.start(config);
    }
    notifier.ready('running');
    log.info('config reloaded');
  };
  signals.on('SIGHUP', onHangup);

  const removeListeners = () => {
    signals.off('SIGTERM', onTerm);
    signals.off('SIGINT', onInt);
    signals.off('SIGHUP', onHangup);
    notifier.close();
  };

  const starting = options.start(config).then((started) => {
    daemon = started;
  });
  try {
    const first = await Promise.race([starting.then(() => 'started' as const), stopRequested.then(() => 'stop' as const)]);
    if (first === 'started') {
      notifier.ready('running');
      notifier.startWatchdog();
    }
  } catch (error) {
    // Start-up failed before any signal: the caller reports it and exits with a failure.
    removeListeners();
    throw error;
  }

  const reason = await stopRequested;
  signals.off('SIGHUP', onHangup);
  const timeoutMs = config.lifecycle.shutdownTimeoutSeconds * 1000;
  if (reason.kind === 'fatal') {
    log.error({ err: reason.error.message }, 'the daemon could not be restarted after a config reload; exiting');
    removeListeners();
    return EXIT_CODES.failure;
  }
  // Counted from the signal: time spent finishing start-up is part of the budget systemd gives us.
  const remainingMs = Math.max(0, timeoutMs - (Date.now() - (stopSignalAt ?? Date.now())));
  log.info({ signal: reason.signal, timeoutMs }, 'shutting down');

  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), remainingMs);
  });
  const stopped = reloading
    .catch(() => undefined)
    .then(() => starting)
    .then(() => daemon?.stop())
    .then(
      () => 'stopped' as const,
      (error: Error) => {
        log.error({ err: error.message }, 'error while stopping');
        return 'failed' as const;
      },
    );
  const outcome = await Promise.race([stopped, deadline]);
  clearTimeout(timer);
  removeListeners();
  if (outcome === 'timeout') {
    log.error({ timeoutMs }, 'shutdown did not finish in time; exiting anyway');
    return EXIT_CODES.failure;
  }
  return outcome === 'stopped' ? EXIT_CODES.ok : EXIT_CODES.failure;
}
