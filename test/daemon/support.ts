/** Shared by the daemon tests: history written straight into a database, a forecast of it, captured logs, free ports. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../../src/config/schema.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger, type Logger } from '../../src/log.js';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';

export const HOUR = 3_600_000;

/** A daily cycle around 20 with a slower harmonic: an LSTM learns it in a few epochs. */
export const roomSignal = (ts: number) => 20 + 5 * Math.sin((2 * Math.PI * ts) / (24 * HOUR)) + 1.5 * Math.sin((2 * Math.PI * ts) / (8 * HOUR));

/** The forecast the daemon tests train on room.temp: a small LSTM, 6 hours of 10-minute buckets in, 1 hour out. */
export const roomForecast = (training: Record<string, unknown>) => ({
  name: 'room',
  target: 'room.temp',
  interval: '10m',
  steps: 36,
  horizon: 6,
  layers: [{ type: 'lstm', units: 16 }, { type: 'dense' }],
  training,
});

/** Writes `days` of readings every `stepMs` up to now into `<stateDir>/forecastd.db` (the daemon's database). */
export function writeHistory(stateDir: string, series: string, days: number, stepMs = 5 * 60_000, now = Date.now()): number {
  const { db } = openDatabase({ path: join(stateDir, 'forecastd.db'), synchronous: 'NORMAL' });
  try {
    const rows: Array<{ series: string; ts: number; value: number }> = [];
    for (let ts = Math.ceil((now - days * 24 * HOUR) / stepMs) * stepMs; ts < now; ts += stepMs) rows.push({ series, ts, value: roomSignal(ts) });
    return new ReadingStore(db).insertMany(rows);
  } finally {
    db.close();
  }
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A debug-level logger whose lines land in an array. */
export function capturedLogger(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }), lines };
}

/**
 * startDaemon in this process with a captured log, resolved once the broker has acknowledged its ingest subscription.
 * A reading published between the CONNACK and that SUBACK reaches nobody, and a loaded machine widens the gap.
 */
export async function startSubscribedDaemon(config: Config, timeoutMs = 10_000): Promise<{ daemon: Daemon; lines: LogLine[] }> {
  const { log, lines } = capturedLogger();
  const daemon = await startDaemon({ config, log });
  const deadline = Date.now() + timeoutMs;
  while (!lines.some((line) => line.msg === 'subscribed')) {
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`the daemon did not subscribe within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { daemon, lines };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Plays systemd's side of $NOTIFY_SOCKET: an AF_UNIX datagram socket (Node has none, so python3 binds it)
 * that records every message. Reading a BARRIER=1 datagram without taking its file descriptor closes it,
 * which is what releases systemd-notify's barrier. Null when python3 or systemd-notify is missing.
 */
export async function startNotifyReceiver(): Promise<{ socketPath: string; messages: string[]; close: () => void } | null> {
  const tool = ['/usr/bin/systemd-notify', '/bin/systemd-notify'].find((path) => existsSync(path));
  if (!tool || spawnSync('python3', ['--version']).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'forecastd-notify-'));
  const socketPath = join(dir, 'notify.sock');
  const receiver = spawn(
    'python3',
    [
      '-c',
      [
        'import socket, sys',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        's.bind(sys.argv[1])',
        'print("bound", flush=True)',
        'while True: print(s.recv(4096).decode().replace("\\n", "|"), flush=True)',
      ].join('\n'),
      socketPath,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const messages: string[] = [];
  let pending = '';
  let bound = false;
  receiver.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line === 'bound') bound = true;
      else messages.push(line);
    }
  });
  const deadline = Date.now() + 5_000;
  while (!bound && Date.now() < deadline) await sleep(20);
  if (!bound) {
    receiver.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return {
    socketPath,
    messages,
    close: () => {
      receiver.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
