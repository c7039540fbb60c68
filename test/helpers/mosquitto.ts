/**
 * A private Mosquitto for fault-injection tests and benchmarks: its own generated config, a free loopback
 * port, its own persistence directory, and stop/restart on the same port with the same persistence file.
 *
 * Only the PID this helper spawned is ever signalled (never a broad kill by name): the system Mosquitto on
 * 127.0.0.1:1883 is left alone. When started as root, Mosquitto drops privileges to user `mosquitto` unless
 * the config says `user root`; that user could not write the temp persistence directory, so the generated
 * config keeps root (the option has no effect when the helper itself does not run as root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';

export const MOSQUITTO_BIN = process.env.FORECASTD_MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

/** True when the Mosquitto binary exists and is executable (tests skip with a reason otherwise). */
export function mosquittoAvailable(): boolean {
  try {
    accessSync(MOSQUITTO_BIN, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface MosquittoOptions {
  /** Seconds between persistence snapshots (Mosquitto default 1800). */
  autosaveInterval?: number;
  /** Extra config lines appended to the generated file. */
  extraConfig?: string[];
  /** Lines placed right after the `listener` line (e.g. `cafile`/`certfile`/`keyfile` to make it a TLS listener). */
  listenerConfig?: string[];
  /** `allow_anonymous` (default true); false with a `password_file` line in extraConfig requires a login. */
  allowAnonymous?: boolean;
  /**
   * Per-client queue limit. The default, a count too large to reach, is docs/reliability.md's recommendation: 0 also
   * means "no limit", but then Mosquitto 2.0.11 drops any client whose publish its ACL denies.
   */
  maxQueuedMessages?: number;
  maxQueuedBytes?: number;
}

export interface PrivateMosquitto {
  readonly port: number;
  readonly url: string;
  /** Temp directory holding the config, the log and mosquitto.db. */
  readonly dir: string;
  /** PID of the broker process this helper runs now (undefined while stopped). */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Sends SIGTERM (Mosquitto saves its database) or SIGKILL (it does not) and waits for the exit. */
  stop(signal?: 'TERM' | 'KILL'): Promise<void>;
  /** Starts again on the same port with the same config and persistence (stopping first with SIGTERM if running). */
  restart(): Promise<void>;
  /** The broker log so far (all starts). */
  log(): string;
  /** Lines of the log that report dropped outgoing messages (Mosquitto logs them per client). */
  droppedLogLines(): string[];
  /** Stops the broker (SIGKILL if SIGTERM is not honoured in time) and deletes the temp directory. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function tcpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Brokers still running if the test process exits without its `after` hooks (a crash, a timeout): killed by PID. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function renderConfig(port: number, dir: string, options: MosquittoOptions): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    ...(options.listenerConfig ?? []),
    `allow_anonymous ${options.allowAnonymous ?? true}`,
    'persistence true',
    `persistence_location ${dir}/`,
    `autosave_interval ${options.autosaveInterval ?? 1800}`,
    `max_queued_messages ${options.maxQueuedMessages ?? 1_000_000}`,
    `max_queued_bytes ${options.maxQueuedBytes ?? 67_108_864}`,
    'sys_interval 1',
    `log_dest file ${join(dir, 'mosquitto.log')}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'connection_messages true',
    'log_timestamp true',
    'user root',
    ...(options.extraConfig ?? []),
  ];
  return `${lines.join('\n')}\n`;
}

/** Starts a private Mosquitto on a free 127.0.0.1 port. Throws when the binary is missing or it does not come up. */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<PrivateMosquitto> {
  if (!mosquittoAvailable()) throw new Error(`no Mosquitto binary at ${MOSQUITTO_BIN}`);
  const dir = mkdtempSync(join(tmpdir(), 'forecastd-mosquitto-'));
  const configPath = join(dir, 'mosquitto.conf');
  const logPath = join(dir, 'mosquitto.log');
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  let port = 0;

  const launch = async (): Promise<boolean> => {
    stderr = '';
    const proc = spawn(MOSQUITTO_BIN, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    live.add(proc);
    let gone = false;
    exited = new Promise((resolve) =>
      proc.once('exit', () => {
        gone = true;
        live.delete(proc);
        resolve();
      }),
    );
    proc.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (gone) {
        child = null;
        return false;
      }
      if (await tcpAnswers(port)) {
        // Someone else may own the port (taken between freePort() and the bind): then ours exits at once.
        await sleep(50);
        if (!gone) return true;
        child = null;
        return false;
      }
      await sleep(20);
    }
    proc.kill('SIGKILL');
    await exited;
    child = null;
    throw new Error(`Mosquitto did not listen on 127.0.0.1:${port} within 10 s\n${stderr}`);
  };

  // A port that was free a moment ago can be taken before Mosquitto binds it: retry with another one.
  let started = false;
  for (let attempt = 0; attempt < 5 && !started; attempt++) {
    port = await freePort();
    writeFileSync(configPath, renderConfig(port, dir, options));
    started = await launch();
  }
  if (!started) {
    const log = safeRead(logPath);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`Mosquitto would not start:\n${stderr}\n${log}`);
  }

  const stop = async (signal: 'TERM' | 'KILL' = 'TERM') => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      child = null;
      return;
    }
    proc.kill(`SIG${signal}`);
    const timedOut = await Promise.race([exited.then(() => false), sleep(10_000).then(() => true)]);
    if (timedOut) {
      proc.kill('SIGKILL');
      await exited;
    }
    child = null;
  };

  const restart = async () => {
    await stop('TERM');
    // Same port: Mosquitto sets SO_REUSEADDR, so a TIME_WAIT socket does not block it. Retry briefly anyway.
    for (let attempt = 0; attempt < 20; attempt++) {
      if (await launch()) return;
      await sleep(100);
    }
    throw new Error(`Mosquitto would not restart on port ${port}:\n${stderr}\n${safeRead(logPath)}`);
  };

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid;
    },
    get running() {
      const proc = child;
      return proc !== null && proc.exitCode === null && proc.signalCode === null;
    },
    stop,
    restart,
    log: () => safeRead(logPath),
    droppedLogLines: () =>
      safeRead(logPath)
        .split('\n')
        .filter((line) => /being dropped/i.test(line)),
    async close() {
      await stop('TERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export const DROPPED_TOPIC = '$SYS/broker/publish/messages/dropped';

export interface SysCounter {
  /** Sum over broker lifetimes: a value lower than the previous one means the broker restarted and reset it. */
  total(): number;
  /** Updates received so far (0 means the topic never arrived: the figure is unknown, not zero). */
  readonly updates: number;
  /** Waits for the next update (so that the figure covers everything until now), up to timeoutMs. */
  fresh(timeoutMs?: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Follows a `$SYS` counter (e.g. messages dropped by the broker) across broker restarts. Needs `sys_interval 1`.
 * Counts published while this watcher was disconnected from a broker that then restarted are missed.
 */
export async function watchSysCounter(url: string, topic: string = DROPPED_TOPIC): Promise<SysCounter> {
  const client: MqttClient = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `sys-watch-${randomBytes(4).toString('hex')}`,
    reconnectPeriod: 200,
    connectTimeout: 5000,
  });
  let base = 0;
  let last = 0;
  let updates = 0;
  const waiters: Array<() => void> = [];
  client.on('message', (_topic, payload) => {
    const value = Number(payload.toString());
    if (!Number.isFinite(value)) return;
    if (value < last) base += last;
    last = value;
    updates++;
    waiters.splice(0).forEach((wake) => wake());
  });
  // Subscriptions are not kept by the broker for this clean client: renew on every connect.
  const subscribe = () => client.subscribe(topic, { qos: 0 });
  client.on('connect', subscribe);
  subscribe();
  return {
    total: () => base + last,
    get updates() {
      return updates;
    },
    async fresh(timeoutMs = 3000) {
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(timeoutMs)]);
      return base + last;
    },
    async close() {
      await client.endAsync(true).catch(() => undefined);
    },
  };
}
