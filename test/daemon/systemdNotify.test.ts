/**
 * sd_notify through systemd-notify. No systemd runs here, so the manager's side of $NOTIFY_SOCKET is
 * played by a stand-in: a recorder of spawned commands, or (when python3 exists) a real AF_UNIX datagram
 * socket, which also checks that systemd-notify's barrier completes.
 */
import assert from 'node:assert/strict';
import type { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { describe, it, type TestContext } from 'node:test';
import { systemdNotifier, watchdogIntervalMs } from '../../src/daemon/systemdNotify.js';
import { sleep, startNotifyReceiver } from './support.js';

/** A spawn that records each call and pretends the tool succeeded. */
function recordingSpawn() {
  const calls: Array<{ command: string; args: string[]; env: NodeJS.ProcessEnv | undefined; at: number }> = [];
  const fake = (command: string, args: string[], options: { env?: NodeJS.ProcessEnv }) => {
    calls.push({ command, args, env: options.env, at: Date.now() });
    const child = new EventEmitter() as unknown as ChildProcess;
    Object.assign(child, { stderr: new EventEmitter(), unref: () => child, kill: () => true });
    setImmediate(() => child.emit('exit', 0, null));
    return child;
  };
  return { calls, spawn: fake as unknown as typeof spawn };
}

describe('systemdNotifier', () => {
  it('does nothing outside systemd (no NOTIFY_SOCKET)', () => {
    const { calls, spawn } = recordingSpawn();
    const notifier = systemdNotifier({ env: {}, spawn });
    notifier.ready();
    notifier.startWatchdog();
    notifier.stopping();
    notifier.close();
    assert.equal(notifier.enabled, false);
    assert.deepEqual(calls, []);
  });

  it('reads the watchdog period as sd_watchdog_enabled does: half of WATCHDOG_USEC, only for WATCHDOG_PID', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42), 15_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42), null, 'meant for another process');
    assert.equal(watchdogIntervalMs({}, 42), null);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42), null);
  });

  it('sends READY=1 / RELOADING=1 / STOPPING=1 (with STATUS) through systemd-notify, passing on only NOTIFY_SOCKET and PATH', async () => {
    const { calls, spawn } = recordingSpawn();
    const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin', SECRET: 'x' }, spawn });
    notifier.ready('running');
    notifier.reloading();
    notifier.stopping('stopping');
    await sleep(10);
    assert.deepEqual(
      calls.map((call) => [call.command, ...call.args]),
      [
        ['systemd-notify', 'READY=1', 'STATUS=running'],
        ['systemd-notify', 'RELOADING=1'],
        ['systemd-notify', 'STOPPING=1', 'STATUS=stopping'],
      ],
    );
    assert.deepEqual(calls[0].env, { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' });
    assert.equal(notifier.counters.sent, 3);
  });

  it('the keep-alive comes from a main-thread timer, so it stops while the event loop is blocked (F13)', async () => {
    const { calls, spawn } = recordingSpawn();
    const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '60000' }, spawn });
    assert.equal(notifier.watchdogIntervalMs, 30);
    notifier.startWatchdog();
    await sleep(200);
    const blockedFrom = Date.now();
    while (Date.now() - blockedFrom < 400) {
      // a wedged event loop: a synchronous VACUUM on a slow card, an endless loop
    }
    const blockedUntil = Date.now();
    await sleep(200);
    notifier.close();
    const pings = calls.filter((call) => call.args[0] === 'WATCHDOG=1').map((call) => call.at);
    assert.ok(pings.length >= 6, `${pings.length} keep-alives`);
    assert.ok(!pings.some((at) => at > blockedFrom && at < blockedUntil), 'no keep-alive while blocked');
    const longestGap = Math.max(...pings.slice(1).map((at, index) => at - pings[index]));
    assert.ok(longestGap >= 400, `the gap (${longestGap} ms) is what systemd's watchdog sees`);
    const count = pings.length;
    await sleep(100);
    assert.equal(calls.filter((call) => call.args[0] === 'WATCHDOG=1').length, count, 'close() stops the keep-alive');
  });

  it('logs a failing tool once, and counts every failure', async () => {
    const lines: string[] = [];
    const log = { error: (fields: unknown, msg: string) => void lines.push(msg) } as unknown as import('../../src/log.js').Logger;
    const notifier = systemdNotifier({
      env: { NOTIFY_SOCKET: '/run/systemd/notify', PATH: process.env.PATH },
      command: 'forecastd-no-such-notify-tool',
      log,
    });
    notifier.ready();
    notifier.status('x');
    await sleep(300);
    assert.equal(notifier.counters.failed, 2);
    assert.equal(lines.length, 1);
  });

  it('with the real systemd-notify: the message arrives, and the barrier returns once it was read', async (t: TestContext) => {
    const manager = await startNotifyReceiver();
    if (!manager) return t.skip('needs systemd-notify and python3 (to play the service manager)');
    try {
      const notifier = systemdNotifier({ env: { NOTIFY_SOCKET: manager.socketPath, PATH: process.env.PATH } });
      notifier.ready('running');
      const deadline = Date.now() + 5_000;
      while (notifier.counters.sent + notifier.counters.failed === 0 && Date.now() < deadline) await sleep(20);
      assert.equal(notifier.counters.sent, 1, `systemd-notify failed; the manager got: ${manager.messages.join(' / ')}`);
      assert.deepEqual(manager.messages, ['READY=1|STATUS=running', 'BARRIER=1']);
    } finally {
      manager.close();
    }
  });
});
