/**
 * The shipped systemd unit: static checks only. Sandboxing takes effect only under a real systemd
 * as PID 1, which development machines and CI lack; runtime checks happen on a Pi (systemd/README.md).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchdogIntervalMs } from '../../src/daemon/systemdNotify.js';

/** This file runs as dist/test/systemd/unit.test.js, three levels below the repository root. */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const unitPath = join(repoRoot, 'systemd', 'forecastd.service');
const unitText = readFileSync(unitPath, 'utf8');

/** Where the install guide puts the package, and the entry point inside it. */
const INSTALL_ROOT = '/opt/forecastd';
const ENTRY_POINT = 'dist/src/cli/main.js';
/** The daemon's own shutdown deadline; systemd must wait longer before it sends SIGKILL. */
const DAEMON_SHUTDOWN_SECONDS = 10;
/** systemd-analyze security score, 0 (locked down) to 10 (unsafe). */
const MAX_EXPOSURE = 2.0;

type Unit = Map<string, string[]>;

/** `Section.Key` → every value assigned, in order. Enough of systemd.syntax(7) for this unit. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `not a Key=value line: ${line}`);
    const key = `${section}.${line.slice(0, eq).trim()}`;
    unit.set(key, [...(unit.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

/** The value in force: for these single-valued settings, the last assignment wins. */
function setting(unit: Unit, key: string): string | undefined {
  return unit.get(key)?.at(-1);
}

const isTrue = (value: string | undefined) => value !== undefined && /^(yes|true|on|1)$/i.test(value);

function seconds(timespan: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min)?$/.exec(timespan);
  assert.ok(match, `timespan this test understands: ${timespan}`);
  const factor = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60 }[match[2] ?? 's'] ?? 1;
  return Number(match[1]) * factor;
}

/** Runs systemd-analyze, or returns null when it is not installed. */
function systemdAnalyze(args: string[]): { status: number | null; output: string } | null {
  const result = spawnSync('systemd-analyze', ['--no-pager', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '', LC_ALL: 'C.UTF-8' },
  });
  const error: NodeJS.ErrnoException | undefined = result.error;
  if (error?.code === 'ENOENT') return null;
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

const NOT_INSTALLED = 'systemd-analyze is not installed here (Debian: apt-get install systemd); the unit is not checked';

describe('systemd/forecastd.service', () => {
  const unit = parseUnit(unitText);

  describe('what the daemon needs from its unit', () => {
    it('is Type=notify with a watchdog, fed by systemd-notify children of the daemon (so NotifyAccess=all)', () => {
      assert.equal(setting(unit, 'Service.Type'), 'notify');
      // The messages come from systemd-notify, a child of the main process (src/daemon/systemdNotify.ts).
      assert.equal(setting(unit, 'Service.NotifyAccess'), 'all');
      const watchdog = seconds(setting(unit, 'Service.WatchdogSec') ?? '0');
      // The daemon pings every WatchdogSec / 2; a period shorter than a slow SD-card write would restart a healthy daemon.
      assert.ok(watchdog >= 20, `WatchdogSec ${watchdog} s`);
      assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: String(watchdog * 1e6) }, 1), (watchdog * 1000) / 2);
    });

    it('reloads with SIGHUP (systemctl reload)', () => {
      assert.equal(setting(unit, 'Service.ExecReload'), '/bin/kill -HUP $MAINPID');
    });

    it('never sets MemoryDenyWriteExecute, which makes V8 abort at start', () => {
      assert.ok(!isTrue(setting(unit, 'Service.MemoryDenyWriteExecute')), 'MemoryDenyWriteExecute must not be enabled');
    });

    it('restarts on failure and runs as a dynamic user with its own state and config directories', () => {
      assert.equal(setting(unit, 'Service.Restart'), 'on-failure');
      assert.ok(isTrue(setting(unit, 'Service.DynamicUser')), 'DynamicUser=yes');
      assert.equal(setting(unit, 'Service.StateDirectory'), 'forecastd');
      assert.equal(setting(unit, 'Service.ConfigurationDirectory'), 'forecastd');
      assert.equal(setting(unit, 'Service.ProtectSystem'), 'strict');
    });

    it('starts the compiled CLI that this repository builds, with the config from /etc/forecastd', () => {
      const execStart = setting(unit, 'Service.ExecStart') ?? '';
      const args = execStart.split(/\s+/);
      assert.equal(args[0], '/usr/bin/node');
      assert.ok(args.includes(`${INSTALL_ROOT}/${ENTRY_POINT}`), `ExecStart runs ${INSTALL_ROOT}/${ENTRY_POINT}: ${execStart}`);
      assert.ok(existsSync(join(repoRoot, ENTRY_POINT)), `the build produces ${ENTRY_POINT}`);
      assert.match(execStart, / run --config \/etc\/forecastd\/forecastd\.yaml$/);
      assert.equal(setting(unit, 'Service.EnvironmentFile'), '-/etc/forecastd/forecastd.env');
    });

    it('gives the daemon longer to stop than its own shutdown deadline', () => {
      const timeout = seconds(setting(unit, 'Service.TimeoutStopSec') ?? '90s');
      assert.ok(timeout > DAEMON_SHUTDOWN_SECONDS, `TimeoutStopSec ${timeout} s > ${DAEMON_SHUTDOWN_SECONDS} s`);
    });

    it('yields CPU to the broker (whose CPUWeight is the default 100)', () => {
      assert.ok(Number(setting(unit, 'Service.CPUWeight')) < 100);
    });

    it('has no comment at the end of a setting line, which systemd would read as part of the value', () => {
      for (const [key, values] of unit) {
        for (const value of values) assert.ok(!/\s#/.test(value), `${key}=${value}`);
      }
    });
  });

  describe('systemd-analyze', () => {
    it('verify prints nothing', (t: TestContext) => {
      if (!systemdAnalyze(['--version'])) return t.skip(NOT_INSTALLED);
      // verify checks that ExecStart's program exists, and neither /opt/forecastd nor (on some test
      // machines) /usr/bin/node does. So it checks a temporary copy whose ExecStart names this node
      // (process.execPath) and this repository's build; every other line is the shipped unit's.
      // The copy must keep the name forecastd.service: systemd derives the unit type from it.
      const execStart = setting(unit, 'Service.ExecStart') ?? '';
      const localExecStart = execStart
        .replace(/^\/usr\/bin\/node(?=\s)/, process.execPath)
        .replace(`${INSTALL_ROOT}/${ENTRY_POINT}`, join(repoRoot, ENTRY_POINT));
      assert.notEqual(localExecStart, execStart);
      const dir = mkdtempSync(join(tmpdir(), 'forecastd-unit-'));
      try {
        const copy = join(dir, 'forecastd.service');
        writeFileSync(copy, unitText.replace(`ExecStart=${execStart}`, `ExecStart=${localExecStart}`));
        const result = systemdAnalyze(['verify', copy]);
        assert.ok(result);
        // Lines about other unit files on this host (e.g. a broken unit that is pulled in) are not ours.
        const relevant = result.output.split('\n').filter((line) => line.trim() !== '' && !(line.startsWith('/') && !line.startsWith(`${copy}:`)));
        assert.deepEqual(relevant, [], `systemd-analyze verify said:\n${result.output}`);
        assert.equal(result.status, 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`security scores the unit at most ${MAX_EXPOSURE.toFixed(1)} (OK)`, (t: TestContext) => {
      if (!systemdAnalyze(['--version'])) return t.skip(NOT_INSTALLED);
      // --threshold is in tenths of the score; the command exits non-zero above it.
      const threshold = Math.round(MAX_EXPOSURE * 10);
      const result = systemdAnalyze(['security', '--offline=yes', `--threshold=${threshold}`, unitPath]);
      assert.ok(result);
      const score = /Overall exposure level for forecastd\.service: (\d+(?:\.\d+)?)/.exec(result.output);
      assert.ok(score, `no overall exposure level in:\n${result.output}`);
      const exposure = Number(score[1]);
      t.diagnostic(`overall exposure ${exposure}`);
      assert.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} > ${MAX_EXPOSURE}:\n${result.output}`);
      assert.equal(result.status, 0, `exit status with --threshold=${threshold}`);
    });
  });
});
