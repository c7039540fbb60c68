/**
 * F8 clock jumps (docs/reliability.md, "Clock jumps (F8)"), with an injected clock: one in-process daemon on a private Mosquitto whose
 * wall clock the test moves, phase by phase: set, +1 h, −1 h, +1 year, back to 1970 (a Pi booted without RTC or
 * NTP), and set again (NTP answers). node-cron (training and retention schedules) fires on the real clock; the
 * forecast ticks, the receive time of readings, the ingest window (maxAgeDays, maxFutureSeconds), retention's
 * reference time and the training window follow the injected one.
 *
 * In each phase a sensor publishes, at QoS 1:
 *   stamped  readings carrying their own true time (a device with a good clock)
 *   plain    plain numbers, stamped with the daemon's receive time, on the same series every phase (and one on the
 *            forecast's target, so the training window meets readings stamped by a jumped clock)
 *   old      (set-clock phases only) readings 8 days old, beyond the 7-day retention, on series that also report
 *            now: retention must delete exactly these, which proves it runs, while the jump phases delete nothing
 * and the test checks, per phase: acked = stored + rejected by the expected reason (nothing lost, I3); no reading
 * stored before the clock could be real; rows deleted by retention; cron training ticks and interval forecast ticks
 * fired against the real time elapsed (no burst, no stop); trainings only on windows of plausible, past readings.
 *
 * Then, without a daemon: the training cron under a stepped global Date (what NTP or libfaketime does to node-cron),
 * and the periodic status publish after the clock steps back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { EARLIEST_PLAUSIBLE_CLOCK_MS } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import type { RejectionReason } from '../../src/ingest/payload.js';
import { createLogger } from '../../src/log.js';
import type { TrainingSummary } from '../../src/model/training.js';
import { StatusReporter, type DaemonView } from '../../src/publish/status.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { capturedLogger, writeHistory, type LogLine } from '../daemon/support.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { NO_MESSAGE_FIGURES, recordFault, secondsText } from '../helpers/faultReport.js';
import { publishBurst, type BurstMessage } from '../helpers/load.js';
import { MOSQUITTO_BIN, mosquittoAvailable, startMosquitto, watchSysCounter, type PrivateMosquitto, type SysCounter } from '../helpers/mosquitto.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Sensors per kind and phase; the long run sends more. */
const SENSORS = process.env.FORECASTD_FAULTS_LONG === '1' ? 200 : 20;
const OLD_READINGS = 5;
const RETENTION_DAYS = 7;
const MAX_AGE_DAYS = 30;
const FORECAST_INTERVAL_MS = 2_000;
const TRAINING_EVERY_MS = 2_000;
const HISTORY_DAYS = 1;
/** Each phase lasts at least this long (real time), so that every schedule fires in it more than once. */
const PHASE_MIN_MS = 4_500;

type Kind = 'stamped' | 'plain' | 'old';

interface Phase {
  name: string;
  /** The fault-table name of the jump that starts the phase. */
  fault: string;
  /** Where the wall clock is put, given the real time. */
  wallAt: (realMs: number) => number;
  /** What must become of each kind of reading published in this phase. */
  expect: Record<Exclude<Kind, 'old'>, 'stored' | RejectionReason> & { old: 'stored' | RejectionReason | null };
  /** Rows retention must delete in this phase. */
  retentionDeletes: number;
}

const PHASES: Phase[] = [
  {
    name: 'set',
    fault: 'F8 clock set (baseline)',
    wallAt: (real) => real,
    expect: { stamped: 'stored', plain: 'stored', old: 'stored' },
    retentionDeletes: OLD_READINGS,
  },
  {
    name: '+1 h',
    fault: 'F8 clock jump +1 h',
    wallAt: (real) => real + HOUR_MS,
    expect: { stamped: 'stored', plain: 'stored', old: null },
    retentionDeletes: 0,
  },
  {
    name: '−1 h',
    fault: 'F8 clock jump −1 h',
    wallAt: (real) => real - HOUR_MS,
    expect: { stamped: 'in_future', plain: 'stored', old: null },
    retentionDeletes: 0,
  },
  {
    name: '+1 year',
    fault: 'F8 clock jump +1 year',
    wallAt: (real) => real + 365 * DAY_MS,
    expect: { stamped: 'too_old', plain: 'stored', old: null },
    retentionDeletes: 0,
  },
  // A Pi without RTC boots at the epoch, and its clock runs on from there.
  {
    name: '1970',
    fault: 'F8 clock back to 1970 (no RTC, no NTP)',
    wallAt: () => Date.UTC(1970, 0, 1, 0, 2),
    expect: { stamped: 'clock_unsynced', plain: 'clock_unsynced', old: null },
    retentionDeletes: 0,
  },
  {
    name: 'NTP',
    fault: 'F8 clock set by NTP after 1970',
    wallAt: (real) => real,
    expect: { stamped: 'stored', plain: 'stored', old: 'stored' },
    retentionDeletes: OLD_READINGS,
  },
];

/** A wall clock the test can move; between jumps it runs at the real rate. */
class MovableClock {
  private offsetMs = 0;
  readonly now = () => Date.now() + this.offsetMs;
  jumpTo(wallMs: number): void {
    this.offsetMs = wallMs - Date.now();
  }
}

const rejectedTotal = (rejected: Record<string, number>) => Object.values(rejected).reduce((sum, count) => sum + count, 0);
const diffReasons = (after: Record<string, number>, before: Record<string, number>) =>
  Object.fromEntries(
    Object.entries(after)
      .map(([reason, count]) => [reason, count - (before[reason] ?? 0)])
      .filter(([, count]) => (count as number) > 0),
  ) as Record<string, number>;

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

describe('F8: clock jumps under ingest, retention and the schedules', { skip, timeout: 170_000 }, () => {
  const prefix = uniquePrefix('clock');
  const clock = new MovableClock();
  const { log, lines } = capturedLogger();
  const trained: TrainingSummary[] = [];
  let mosquitto: PrivateMosquitto;
  let dropped: SysCounter;
  let stateDir: string;
  let daemon: Daemon;
  let sensor: MqttClient;
  let reader: Database.Database | null = null;

  before(async () => {
    mosquitto = await startMosquitto();
    dropped = await watchSysCounter(mosquitto.url);
    stateDir = mkdtempSync(join(tmpdir(), 'forecastd-fault-clock-'));
    // Half an hour of the target on the forecast's 2 s grid, up to now: enough windows for a training.
    writeHistory(stateDir, 'room.temp', 0.5 / 24, FORECAST_INTERVAL_MS);
    const config = parseConfig({
      mqtt: { url: mosquitto.url, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-${prefix}`, reconnectSeconds: 0.2, reconnectMaxSeconds: 1 },
      ingest: {
        topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}` }],
        maxAgeDays: MAX_AGE_DAYS,
        maxFutureSeconds: 300,
        deadLetter: { enabled: true },
      },
      // Retention every second (node-cron, real clock), against the injected wall clock.
      storage: { stateDir, retention: { defaultDays: RETENTION_DAYS, schedule: '* * * * * *' } },
      scheduler: { poolThreads: 1 },
      forecasts: [
        {
          name: 'room',
          target: 'room.temp',
          interval: `${FORECAST_INTERVAL_MS / 1000}s`,
          steps: 8,
          horizon: 2,
          calendar: [],
          layers: [{ type: 'lstm', units: 4 }, { type: 'dense' }],
          // The cron schedule fires on the real clock every 2 s; no training at start, so every training is a tick's.
          training: {
            onStart: false,
            schedule: `*/${TRAINING_EVERY_MS / 1000} * * * * *`,
            epochs: 1,
            batchSize: 128,
            seed: 1,
            historyDays: HISTORY_DAYS,
          },
        },
      ],
    });
    daemon = await startDaemon({ config, log, clock: clock.now, onTrained: (summary) => void trained.push(summary) });
    sensor = await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: `sensor-${prefix}`, reconnectPeriod: 200 });
    await waitFor(() => daemon.client.connected && lines.some((line) => line.msg === 'subscribed'), 20_000, 'the daemon to subscribe');
  });

  after(async () => {
    reader?.close();
    await sensor?.endAsync(true).catch(() => undefined);
    await daemon?.stop().catch(() => undefined);
    await dropped?.close();
    await mosquitto?.close();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  /** A read-only view of the daemon's database (WAL: it sees every committed row). */
  const query = (sql: string, ...params: unknown[]): number => {
    reader ??= new Database(daemon.databasePath, { readonly: true, fileMustExist: true });
    return reader
      .prepare(sql)
      .pluck()
      .get(...params) as number;
  };
  const retentionRuns = (from: number) => lines.slice(from).filter((line) => line.msg === 'retention run');
  const trainingTicks = (from: number) =>
    lines
      .slice(from)
      .filter(
        (line: LogLine) =>
          line.reason === 'schedule' && (line.msg === 'training started' || line.msg === 'training still running: this tick is skipped'),
      ).length;

  let seq = 0;
  function* phaseMessages(phase: Phase, kinds: Map<number, Kind>): Generator<BurstMessage> {
    const real = Date.now();
    const emit = (kind: Kind, topic: string, payload: string): BurstMessage => {
      seq++;
      kinds.set(seq, kind);
      return { seq, topic, payload };
    };
    for (let sensorIndex = 0; sensorIndex < SENSORS; sensorIndex++) {
      yield emit('stamped', `${prefix}/s${sensorIndex}/stamped`, JSON.stringify({ value: seq + 1, ts: real - sensorIndex }));
      // One series per sensor: two plain numbers on one series received in the same millisecond would be one reading.
      yield emit('plain', `${prefix}/s${sensorIndex}/plain`, String(seq + 1));
    }
    if (phase.expect.old) {
      for (let index = 0; index < OLD_READINGS; index++) {
        // On series that report now: retention keeps the last retention period of a series that went quiet.
        yield emit('old', `${prefix}/s${index}/stamped`, JSON.stringify({ value: seq + 1, ts: real - (RETENTION_DAYS + 1) * DAY_MS - index * 1000 }));
      }
    }
  }

  for (const phase of PHASES) {
    it(`${phase.name}: readings stored or rejected by reason, retention deletes ${phase.retentionDeletes}, schedules neither burst nor stop`, async () => {
      const logFrom = lines.length;
      const counters = structuredClone(daemon.ingestor.counters);
      const ticks = { ...daemon.schedulerCounters };
      const trainings = { ...daemon.trainings.counters };
      const trainedFrom = trained.length;
      const startedAt = performance.now();
      // Recovery: from the jump to the first reading stored again.
      let firstStoredMs: number | null = null;
      const watch = setInterval(() => {
        if (firstStoredMs === null && daemon.ingestor.counters.stored > counters.stored) firstStoredMs = performance.now() - startedAt;
      }, 5);
      watch.unref();
      clock.jumpTo(phase.wallAt(Date.now()));

      // Readings on the forecast's target too, one at a time (plain numbers: one reading per receive time).
      const kinds = new Map<number, Kind>();
      const burst = await publishBurst(sensor, phaseMessages(phase, kinds), { window: 32 });
      await sensor.publishAsync(`${prefix}/room/temp`, '21.5', { qos: 1 });
      const acked = burst.acked.size + 1;
      const handled = () => daemon.ingestor.counters.received - counters.received;
      await waitFor(() => handled() >= acked, 20_000, `the ${acked} acked messages of phase ${phase.name} to be handled`);

      // Let every schedule fire in this phase: retention twice, a training tick, the phase's minimum length.
      await waitFor(
        () =>
          retentionRuns(logFrom).length >= 2 &&
          retentionRuns(logFrom).reduce((sum, line) => sum + Number(line.rowsDeleted), 0) >= phase.retentionDeletes &&
          trainingTicks(logFrom) >= 1 &&
          performance.now() - startedAt >= PHASE_MIN_MS,
        30_000,
        `the schedules to fire in phase ${phase.name}`,
      );
      await waitFor(() => daemon.trainings.running.size === 0, 30_000, 'the running training to end');
      const elapsedMs = performance.now() - startedAt;
      clearInterval(watch);

      const now = daemon.ingestor.counters;
      const stored = now.stored - counters.stored;
      const duplicates = now.duplicates - counters.duplicates;
      const rejectedByReason = diffReasons(now.rejected, counters.rejected);
      const rejected = rejectedTotal(now.rejected) - rejectedTotal(counters.rejected);
      const deletedByRetention = retentionRuns(logFrom).reduce((sum, line) => sum + Number(line.rowsDeleted), 0);
      const forecastTicks = daemon.schedulerCounters.forecastTicks - ticks.forecastTicks;
      const cronTicks = trainingTicks(logFrom);
      const started = daemon.trainings.counters.started - trainings.started;
      const succeeded = daemon.trainings.counters.succeeded - trainings.succeeded;
      const notEnoughHistory = daemon.trainings.counters.notEnoughHistory - trainings.notEnoughHistory;
      const brokerDropped = dropped.total();
      const lost = acked - stored - rejected - duplicates - brokerDropped;
      const count = (kind: Kind) => [...kinds.values()].filter((candidate) => candidate === kind).length;
      const expectedStored =
        (['stamped', 'plain', 'old'] as const).reduce((sum, kind) => sum + (phase.expect[kind] === 'stored' ? count(kind) : 0), 0) +
        (phase.expect.plain === 'stored' ? 1 : 0);
      const expectedForecastTicks = elapsedMs / FORECAST_INTERVAL_MS;
      const expectedCronTicks = elapsedMs / TRAINING_EVERY_MS;

      recordFault({
        fault: phase.fault,
        mechanism: `injected wall clock moved to ${new Date(clock.now()).toISOString().slice(0, 16)} during ingest; ${count('stamped')} stamped + ${count('plain') + 1} plain + ${count('old')} old readings at QoS 1`,
        published: burst.attempted + 1,
        acked,
        stored,
        duplicates,
        rejected,
        brokerDropped,
        lost,
        recovery: firstStoredMs === null ? 'at clock fix' : secondsText(firstStoredMs),
        note:
          `rejected ${JSON.stringify(rejectedByReason)}; retention deleted ${deletedByRetention} (expected ${phase.retentionDeletes}) in ${retentionRuns(logFrom).length} runs; ` +
          `forecast ticks ${forecastTicks} (expected ~${expectedForecastTicks.toFixed(1)} in ${secondsText(elapsedMs)}), cron training ticks ${cronTicks} (expected ~${expectedCronTicks.toFixed(1)}); ` +
          `trainings started ${started}, succeeded ${succeeded}, not enough history ${notEnoughHistory}`,
      });

      // I3 and the fate of each kind: nothing acked goes unexplained, and every rejection has the expected reason.
      assert.equal(lost, 0, 'acked = stored + rejected + duplicates + dropped');
      assert.equal(duplicates, 0);
      assert.equal(stored, expectedStored, `stored in phase ${phase.name}`);
      const expectedRejections: Record<string, number> = {};
      for (const kind of ['stamped', 'plain', 'old'] as const) {
        const fate = phase.expect[kind];
        if (fate && fate !== 'stored') expectedRejections[fate] = (expectedRejections[fate] ?? 0) + count(kind) + (kind === 'plain' ? 1 : 0);
      }
      assert.deepEqual(rejectedByReason, expectedRejections, 'rejections by reason');
      assert.equal(
        query('SELECT count(*) FROM readings WHERE ts < ?', EARLIEST_PLAUSIBLE_CLOCK_MS),
        0,
        'no reading stored at a time before the clock could be real',
      );
      if (phase.expect.plain === 'clock_unsynced') {
        assert.equal(
          query("SELECT count(*) FROM dead_letters WHERE reason = 'clock_unsynced'"),
          count('stamped') + count('plain') + 1,
          'every message refused for the unset clock is kept as a dead letter',
        );
      }

      // Retention: exactly the readings past their retention, never the data a jumped clock makes look old.
      assert.equal(deletedByRetention, phase.retentionDeletes, 'rows deleted by retention');
      if (phase.name === '+1 year') {
        assert.ok(
          lines.slice(logFrom).some((line) => /wall clock jumped ahead/.test(String(line.msg))),
          'retention says it counts real time after the leap',
        );
      }

      // The schedules: no burst of missed runs, and no stop. Timers may run late on a loaded machine, never early.
      assert.ok(
        forecastTicks >= 1 && forecastTicks <= Math.ceil(expectedForecastTicks) + 2,
        `forecast ticks ${forecastTicks} in ${Math.round(elapsedMs)} ms`,
      );
      assert.ok(cronTicks >= 1 && cronTicks <= Math.ceil(expectedCronTicks) + 2, `cron training ticks ${cronTicks} in ${Math.round(elapsedMs)} ms`);

      // Training windows: only readings at plausible, past times of the clock the training started with.
      for (const summary of trained.slice(trainedFrom)) {
        assert.ok(
          summary.startedAt >= EARLIEST_PLAUSIBLE_CLOCK_MS,
          `a training succeeded with the clock at ${new Date(summary.startedAt).toISOString()}`,
        );
        assert.ok(
          summary.dataRange.fromMs >= summary.startedAt - HISTORY_DAYS * DAY_MS - FORECAST_INTERVAL_MS,
          'the window starts within historyDays',
        );
        assert.ok(summary.dataRange.toMs <= summary.startedAt + FORECAST_INTERVAL_MS, 'the window ends at the clock the training started with');
        assert.ok(summary.dataRange.toMs <= Date.now() + HOUR_MS + FORECAST_INTERVAL_MS, 'never on readings stamped by a clock a year ahead');
      }
      if (phase.name === '+1 year' || phase.name === '1970') {
        assert.equal(succeeded, 0, `no training succeeds with the clock at ${phase.name}: its window holds no real history`);
      }
      assert.ok(daemon.client.connected, 'still connected to the broker');
    });
  }

  it('the broker dropped nothing, and the daemon stops cleanly after all the jumps', async () => {
    assert.equal(await dropped.fresh(), 0);
    assert.ok(dropped.updates > 0, 'the $SYS dropped counter was read');
    assert.deepEqual(
      lines.filter((line) => (line.level ?? 0) >= 60),
      [],
      'no fatal log line',
    );
    reader?.close();
    reader = null;
    await daemon.stop();
    assert.ok(lines.some((line) => line.msg === 'forecastd stopped'));
  });
});

/**
 * node-cron plans by the real wall clock, which an injected clock does not move: here the global Date itself steps
 * (as libfaketime or NTP would make it), only inside this test, with the scheduler alone. Unguarded, node-cron stops
 * firing after a step back until the wall clock is where it was, and walks (and logs) every slot skipped after a
 * step forward; the scheduler re-plans its cron jobs when it sees the wall clock jump.
 */
describe('F8: node-cron training schedule when the real wall clock steps', { timeout: 60_000 }, () => {
  const forecast = parseConfig({
    forecasts: [{ name: 'room', target: 'room.temp', interval: '1h', training: { onStart: false, schedule: '* * * * * *' } }],
  }).forecasts[0];
  /** A wait on the monotonic clock: Date.now() is what this test moves. */
  const until = async (condition: () => boolean, timeoutMs: number, what: string) => {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  for (const [label, stepMs] of [
    ['back 1 h', -HOUR_MS],
    ['ahead 1 day', DAY_MS],
  ] as const) {
    it(`training ticks go on after the wall clock steps ${label}, without a burst`, async () => {
      const RealDate = Date;
      let offsetMs = 0;
      class SteppedDate extends RealDate {
        constructor(...args: ConstructorParameters<DateConstructor> | []) {
          if (args.length === 0) super(RealDate.now() + offsetMs);
          else super(...args);
        }
        static override now() {
          return RealDate.now() + offsetMs;
        }
      }
      const realWarn = console.warn;
      let missedWarnings = 0;
      const ticks: number[] = [];
      const { log, lines } = capturedLogger();
      globalThis.Date = SteppedDate as DateConstructor;
      console.warn = (...args: unknown[]) => {
        if (/missed execution/.test(String(args[0]))) missedWarnings++;
        else realWarn(...args);
      };
      const scheduler = new Scheduler({
        clock: () => Date.now(),
        log,
        train: () => void ticks.push(performance.now()),
        issue: () => undefined,
        wallClockCheckMs: 50,
      });
      try {
        scheduler.start([forecast]);
        await until(() => ticks.length >= 2, 10_000, 'two ticks before the step');
        // Step just after a tick: node-cron looks at the clock again only at the next second, the watch within 50 ms.
        const seen = ticks.length;
        await until(() => ticks.length > seen, 5_000, 'a tick to step after');
        const before = ticks.length;
        const steppedAt = performance.now();
        offsetMs = stepMs;
        await until(() => ticks.length >= before + 3, 15_000, `three ticks after the step ${label}`);
        const elapsedMs = performance.now() - steppedAt;
        const after = ticks.length - before;
        const firstTickMs = ticks[before] - steppedAt;
        recordFault({
          fault: `F8 real wall clock steps ${label} (node-cron)`,
          mechanism: `global Date stepped ${label} under a running scheduler with a per-second training cron`,
          ...NO_MESSAGE_FIGURES,
          lost: 0,
          recovery: secondsText(firstTickMs),
          note: `cron re-planned ${scheduler.counters.cronRearms}x; ${after} ticks in ${secondsText(elapsedMs)} after the step (expected ~${(elapsedMs / 1000).toFixed(1)}); node-cron "missed execution" warnings ${missedWarnings}`,
        });
        assert.ok(scheduler.counters.cronRearms >= 1, 'the jump was seen and the cron job planned again');
        assert.ok(lines.some((line) => line.msg === 'the wall clock jumped: training schedules planned again from the new time'));
        assert.ok(after <= Math.ceil(elapsedMs / 1000) + 2, `no burst: ${after} ticks in ${Math.round(elapsedMs)} ms`);
        assert.equal(missedWarnings, 0, 'no slot walked through and warned about');
        assert.ok(firstTickMs < 2_500, `the first tick came ${Math.round(firstTickMs)} ms after the step`);
      } finally {
        await scheduler.stop();
        globalThis.Date = RealDate;
        console.warn = realWarn;
      }
    });
  }
});

describe('F8: the periodic status publish when the clock steps back', () => {
  it('publishes at the next tick instead of waiting for the clock to catch up', () => {
    const clock = new MovableClock();
    const published: string[] = [];
    const view: DaemonView = {
      version: 'test',
      startedAt: clock.now(),
      backend: 'cpu',
      baseTopic: 'fd',
      clock: clock.now,
      brokerConnected: () => true,
      forecasts: () => [],
    };
    const status = new StatusReporter({
      view,
      publish: () => void published.push('fd/status'),
      intervalSeconds: 60,
      log: createLogger('silent'),
      pollMs: 3_600_000,
    });
    status.start();
    try {
      assert.equal(published.length, 1, 'published at start');
      clock.jumpTo(Date.now() - HOUR_MS);
      status.tick();
      assert.equal(published.length, 2, 'the step back makes the periodic publish due, not an hour late');
      status.tick();
      assert.equal(published.length, 2, 'and the interval counts from the new time');
    } finally {
      status.stop();
    }
  });
});
