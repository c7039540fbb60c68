/**
 * forecastd as a child process (`node dist/src/cli/main.js run --config <file.yaml>`), for faults that an
 * in-process daemon cannot take: kill -9, SIGTERM. Its JSON log lines (pino, stdout) are parsed and kept.
 * Only the PID spawned here is ever signalled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The compiled CLI, found from this compiled file's own location (dist/test/helpers → dist/src/cli). */
export const DAEMON_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; time?: number };

export interface DaemonProcess {
  readonly pid: number;
  /** Every JSON log line so far, in order (non-JSON stdout lines are kept as `{ msg: <text>, raw: true }`). */
  readonly lines: LogLine[];
  stderr(): string;
  /** Resolves with the first line (already seen or future) matching `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
  kill(signal: 'SIGKILL' | 'SIGTERM'): void;
  /** SIGTERM, then SIGKILL after timeoutMs; resolves with how it ended. */
  stop(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

export function writeYaml(path: string, value: unknown): void {
  writeFileSync(path, stringify(value));
}

export function spawnDaemon(configPath: string, env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const proc = spawn(process.execPath, [DAEMON_MAIN, 'run', '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  if (proc.pid === undefined) throw new Error('could not spawn forecastd');
  live.add(proc);
  const lines: LogLine[] = [];
  const watchers: Array<{ predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  let stderr = '';
  let pending = '';
  const take = (line: LogLine) => {
    lines.push(line);
    for (let index = watchers.length - 1; index >= 0; index--) {
      if (watchers[index].predicate(line)) watchers.splice(index, 1)[0].resolve(line);
    }
  };
  proc.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!text.trim()) continue;
      try {
        take(JSON.parse(text) as LogLine);
      } catch {
        take({ msg: text, raw: true });
      }
    }
  });
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      running = false;
      live.delete(proc);
      resolve({ code, signal });
    }),
  );

  return {
    pid: proc.pid,
    lines,
    stderr: () => stderr,
    exited,
    get running() {
      return running;
    },
    waitForLog(predicate, timeoutMs, what) {
      const seen = lines.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const watcher = {
          predicate,
          resolve: (line: LogLine) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          watchers.splice(watchers.indexOf(watcher), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for the daemon to log ${what}; stderr: ${stderr.slice(-2000)}`));
        }, timeoutMs);
        watchers.push(watcher);
        void exited.then(({ code, signal }) => {
          if (!watchers.includes(watcher)) return;
          watchers.splice(watchers.indexOf(watcher), 1);
          clearTimeout(timer);
          reject(new Error(`the daemon exited (code ${code}, signal ${signal}) before logging ${what}; stderr: ${stderr.slice(-2000)}`));
        });
      });
    },
    kill(signal) {
      if (running) proc.kill(signal);
    },
    async stop(timeoutMs = 15_000) {
      if (!running) return exited;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}
