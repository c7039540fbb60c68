/**
 * runWithLifecycle with a fake process (signals, exit), a fake systemd notifier and stand-in daemons:
 * the order of events and the deadlines, without starting anything real.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { EXIT_CODES, runWithLifecycle, type StoppableDaemon } from '../../src/daemon/lifecycle.js';
import type { ServiceNotifier } from '../../src/daemon/systemdNotify.js';
import { createLogger } from '../../src/log.js';

const configWith = (shutdownTimeoutSeconds: number, level: 'info' | 'debug' = 'info'): Config =>
  parseConfig({ lifecycle: { shutdownTimeoutSeconds }, log: { level } });

function fakeNotifier() {
  const sent: string[] = [];
  const notifier: ServiceNotifier = {
    enabled: true,
    watchdogIntervalMs: 1000,
    ready: () => void sent.push('READY'),
    reloading: () => void sent.push('RELOADING'),
    stopping: () => void sent.push('STOPPING'),
    status: (text) => void sent.push(`STATUS ${text}`),
    startWatchdog: () => void sent.push('WATCHDOG ON'),
    close: () => void sent.push('WATCHDOG OFF'),
    counters: { sent: 0, failed: 0, watchdogPings: 0 },
  };
  return { notifier, sent };
}

function harness(
  options: { stop?: () => Promise<void>; startDelayMs?: number; reloadConfig?: () => Config; failStartFor?: (config: Config) => boolean } = {},
) {
  const signals = new EventEmitter();
  const events: string[] = [];
  const exits: number[] = [];
  const started: Config[] = [];
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const { notifier, sent } = fakeNotifier();
  const start = async (config: Config): Promise<StoppableDaemon> => {
    if (options.startDelayMs) await new Promise((resolve) => setTimeout(resolve, options.startDelayMs));
    if (options.failStartFor?.(config)) {
      events.push('start failed');
      throw new Error('cannot open the state directory');
    }
    started.push(config);
    events.push(`start #${started.length}`);
    return {
      stop: async () => {
        events.push(`stop #${started.indexOf(config) + 1}`);
        await (options.stop?.() ?? Promise.resolve());
      },
    };
  };
  return { signals, events, exits, started, lines, sent, notifier, log, start, reloadConfig: options.reloadConfig ?? (() => configWith(10)) };
}

const tick = (ms = 10) => new Promise((resolve) => setTimeout(resolve, ms));

describe('runWithLifecycle', () => {
  it('SIGTERM: READY at start, STOPPING at the signal, the daemon stopped, exit code 0', async () => {
    const h = harness();
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(10),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    assert.deepEqual(h.sent, ['READY', 'WATCHDOG ON']);
    h.signals.emit('SIGTERM');
    assert.equal(await result, EXIT_CODES.ok);
    assert.deepEqual(h.events, ['start #1', 'stop #1']);
    assert.deepEqual(h.sent, ['READY', 'WATCHDOG ON', 'STOPPING', 'WATCHDOG OFF']);
    assert.equal(
      h.signals.listenerCount('SIGTERM') + h.signals.listenerCount('SIGINT') + h.signals.listenerCount('SIGHUP'),
      0,
      'no listeners left behind',
    );
  });

  it('a stop that hangs ends with exit code 1 after lifecycle.shutdownTimeoutSeconds', async () => {
    const h = harness({ stop: () => new Promise(() => undefined) });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(0.3),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    const signalledAt = Date.now();
    h.signals.emit('SIGINT');
    assert.equal(await result, EXIT_CODES.failure);
    const waited = Date.now() - signalledAt;
    assert.ok(waited >= 280 && waited < 2_000, `gave up after ${waited} ms`);
    assert.ok(h.lines.some((line) => line.msg === 'shutdown did not finish in time; exiting anyway'));
  });

  it('a second signal during the shutdown exits at once with code 1', async () => {
    const h = harness({ stop: () => new Promise(() => undefined) });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(0.5),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    h.signals.emit('SIGTERM');
    await tick();
    h.signals.emit('SIGTERM');
    assert.deepEqual(h.exits, [EXIT_CODES.failure], 'exit(1) at the second signal, without waiting for the deadline');
    // (The real exit would end the process here; this fake one lets the deadline run out.)
    assert.equal(await result, EXIT_CODES.failure);
  });

  it('SIGHUP with an invalid config keeps the running daemon and says why', async () => {
    const h = harness({
      reloadConfig: () => {
        throw new ConfigError('forecastd.yaml', ['mqtt.prot: unknown key']);
      },
    });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(10),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    h.signals.emit('SIGHUP');
    await tick(50);
    assert.deepEqual(h.events, ['start #1'], 'not stopped, not restarted');
    const complaint = h.lines.find((line) => line.msg === 'SIGHUP: the new config is invalid; keeping the running one');
    assert.match(String(complaint?.err), /mqtt\.prot: unknown key/);
    h.signals.emit('SIGTERM');
    assert.equal(await result, EXIT_CODES.ok);
  });

  it('SIGHUP with a valid config restarts the daemon with it, and the shutdown uses the new deadline', async () => {
    const reloaded = configWith(0.2, 'debug');
    const h = harness({ reloadConfig: () => reloaded });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(10),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    h.signals.emit('SIGHUP');
    await tick(50);
    assert.deepEqual(h.events, ['start #1', 'stop #1', 'start #2']);
    assert.equal(h.started[1], reloaded);
    assert.deepEqual(h.sent.slice(2), ['RELOADING', 'READY']);
    h.signals.emit('SIGTERM');
    assert.equal(await result, EXIT_CODES.ok);
    assert.deepEqual(h.events.at(-1), 'stop #2');
    assert.equal(h.lines.find((line) => line.msg === 'shutting down')?.timeoutMs, 200);
  });

  it('SIGHUP with a valid config the daemon cannot start with goes back to the previous config', async () => {
    const broken = configWith(7);
    const h = harness({ reloadConfig: () => broken, failStartFor: (config) => config === broken });
    const initial = configWith(10);
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: initial,
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    h.signals.emit('SIGHUP');
    await tick(50);
    assert.deepEqual(h.events, ['start #1', 'stop #1', 'start failed', 'start #2']);
    assert.equal(h.started[1], initial);
    h.signals.emit('SIGTERM');
    assert.equal(await result, EXIT_CODES.ok);
  });

  it('when neither the new nor the previous config starts after a SIGHUP, it ends with exit code 1 (systemd restarts it)', async () => {
    let starts = 0;
    const h = harness({ reloadConfig: () => configWith(10), failStartFor: () => ++starts > 1 });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(10),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick();
    h.signals.emit('SIGHUP');
    assert.equal(await result, EXIT_CODES.failure);
    assert.deepEqual(h.events, ['start #1', 'stop #1', 'start failed', 'start failed']);
    assert.equal(h.signals.listenerCount('SIGTERM'), 0);
  });

  it('a SIGTERM during start-up waits for start-up, then stops cleanly (and never reports READY)', async () => {
    const h = harness({ startDelayMs: 150 });
    const result = runWithLifecycle({
      start: h.start,
      reloadConfig: h.reloadConfig,
      initialConfig: configWith(10),
      log: h.log,
      signals: h.signals,
      exit: (code) => h.exits.push(code),
      notifier: h.notifier,
    });
    await tick(20);
    h.signals.emit('SIGTERM');
    assert.equal(await result, EXIT_CODES.ok);
    assert.deepEqual(h.events, ['start #1', 'stop #1']);
    assert.ok(!h.sent.includes('READY'));
    assert.deepEqual(h.exits, []);
  });

  it('a start-up failure is thrown to the caller (exit code 1 from main), with no listeners left behind', async () => {
    const h = harness({ failStartFor: () => true });
    await assert.rejects(
      runWithLifecycle({
        start: h.start,
        reloadConfig: h.reloadConfig,
        initialConfig: configWith(10),
        log: h.log,
        signals: h.signals,
        exit: (code) => h.exits.push(code),
        notifier: h.notifier,
      }),
      /cannot open the state directory/,
    );
    assert.equal(h.signals.listenerCount('SIGTERM'), 0);
  });
});
