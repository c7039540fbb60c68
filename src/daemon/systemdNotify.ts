/**
 * sd_notify without a native addon: readiness (READY=1), stop (STOPPING=1), reload (RELOADING=1) and the
 * watchdog keep-alive (WATCHDOG=1), sent by running systemd's own `systemd-notify` tool.
 *
 * Why a child process: the protocol is one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET, and
 * Node's dgram module has no AF_UNIX datagram sockets; the npm packages that add them (sd-notify,
 * unix-dgram) are native builds that fail on Pis.
 *
 * Why this is not racy: systemd attributes a message to a unit by the sender's cgroup, which it can read
 * only while the sender is alive, so a helper that sends and exits at once may have its message dropped
 * (systemd-notify(1), systemd/systemd#5239). But since systemd 246, `systemd-notify` follows each message
 * with a barrier (BARRIER=1 carrying a pipe, sd_notify_barrier(3)) and does not exit until the service
 * manager has processed everything before it, unless given --no-block. The sender is therefore alive
 * when its message is attributed. As the helper is not the main process, the unit needs
 * NotifyAccess=all (a dynamic user cannot pass the main PID as the sender's credentials).
 *
 * The keep-alive is sent from a timer on the main thread, every WATCHDOG_USEC / 2, so that a blocked
 * event loop stops it and systemd restarts the daemon; never from a training thread.
 */
import { spawn as spawnProcess, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Logger } from '../log.js';

export interface ServiceNotifier {
  /** True when a service manager asked for notifications ($NOTIFY_SOCKET is set). */
  readonly enabled: boolean;
  /** Keep-alive period, when the manager expects keep-alives. */
  readonly watchdogIntervalMs: number | null;
  ready(status?: string): void;
  reloading(status?: string): void;
  stopping(status?: string): void;
  status(text: string): void;
  /** Starts the keep-alive timer (a no-op when no watchdog is configured). */
  startWatchdog(): void;
  /** Stops the keep-alive timer. */
  close(): void;
  readonly counters: { sent: number; failed: number; watchdogPings: number };
}

export interface SystemdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  pid?: number;
  log?: Logger;
  /** The notify tool; tests point it at a fake. */
  command?: string;
  spawn?: (command: string, args: string[], options: SpawnOptions) => ChildProcess;
}

/** systemd-notify waits up to 5 s for its barrier; a send still running after this is counted as failed. */
const SEND_TIMEOUT_MS = 10_000;
/** Keep-alives are skipped, not queued, while this many sends are still running (a stalled manager). */
const MAX_SENDS_IN_FLIGHT = 2;

/** Watchdog period from the environment, as sd_watchdog_enabled(3) reads it; null when not enabled for this process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== String(pid)) return null;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}

/** A notifier for this process: the real one under systemd, a no-op elsewhere. */
export function systemdNotifier(options: SystemdNotifierOptions = {}): ServiceNotifier {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const counters = { sent: 0, failed: 0, watchdogPings: 0 };
  if (!socket) {
    return {
      enabled: false,
      watchdogIntervalMs: null,
      ready: () => undefined,
      reloading: () => undefined,
      stopping: () => undefined,
      status: () => undefined,
      startWatchdog: () => undefined,
      close: () => undefined,
      counters,
    };
  }
  const command = options.command ?? 'systemd-notify';
  const spawn = options.spawn ?? spawnProcess;
  const log = options.log;
  const interval = watchdogIntervalMs(env, options.pid ?? process.pid);
  let inFlight = 0;
  let failureLogged = false;
  let timer: NodeJS.Timeout | null = null;

  const fail = (fields: string[], reason: string) => {
    counters.failed++;
    // Once: a missing tool would otherwise log every keep-alive period.
    if (failureLogged) return;
    failureLogged = true;
    log?.error(
      { command, fields, reason },
      `could not notify systemd; ${interval ? 'the watchdog will restart forecastd' : 'the unit may time out at start'} (is ${command} installed?)`,
    );
  };

  const send = (fields: string[]) => {
    inFlight++;
    let child: ChildProcess;
    try {
      // Only what the tool needs: the socket, and nothing that could make it speak for another unit.
      child = spawn(command, fields, { stdio: ['ignore', 'ignore', 'pipe'], env: { NOTIFY_SOCKET: socket, PATH: env.PATH ?? '/usr/bin:/bin' } });
    } catch (error) {
      inFlight--;
      fail(fields, (error as Error).message);
      return;
    }
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-500)));
    const timeout = setTimeout(() => child.kill('SIGKILL'), SEND_TIMEOUT_MS);
    timeout.unref();
    let settled = false;
    const settle = (error: string | null) => {
      if (settled) return;
      settled = true;
      inFlight--;
      clearTimeout(timeout);
      if (error === null) {
        counters.sent++;
        failureLogged = false;
      } else fail(fields, error);
    };
    child.once('error', (error) => settle(error.message));
    child.once('exit', (code, signal) => settle(code === 0 ? null : `exit ${code ?? signal}: ${stderr.trim()}`));
    // A keep-alive in flight must not hold the process open at exit.
    child.unref();
  };

  const statusField = (status?: string) => (status ? [`STATUS=${status.replace(/\n/g, ' ')}`] : []);
  return {
    enabled: true,
    watchdogIntervalMs: interval,
    ready: (status) => send(['READY=1', ...statusField(status)]),
    reloading: (status) => send(['RELOADING=1', ...statusField(status)]),
    stopping: (status) => send(['STOPPING=1', ...statusField(status)]),
    status: (text) => send(statusField(text)),
    startWatchdog() {
      if (interval === null || timer) return;
      timer = setInterval(() => {
        if (inFlight >= MAX_SENDS_IN_FLIGHT) return;
        counters.watchdogPings++;
        send(['WATCHDOG=1']);
      }, interval);
      // The keep-alive alone does not keep the daemon running.
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
      timer = null;
    },
    counters,
  };
}
