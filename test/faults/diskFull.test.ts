/**
 * F5, disk full (docs/reliability.md, "The database"): the daemon's state directory on a small tmpfs, filled with a filler file.
 *
 *   F5a  full during ingest: a QoS 1 stream from a private Mosquitto; the disk fills mid-stream. The failed group is
 *        not acknowledged (the broker keeps it), one error line says so, /readyz and the status document say ingest
 *        is failing, the process stays up; once the filler is deleted ingest resumes in the same process, and every
 *        acked reading is stored exactly once (I1, I2), integrity_check ok.
 *   F5b  full during a model checkpoint save: saves with 0..96 KiB free fail at each step of the protocol in turn;
 *        CURRENT always names the last good checkpoint, which verifies, and no *.tmp or stray checkpoint survives.
 *   F5c  full at start-up: the daemon exits with code 1 and a message saying the disk is full, without quarantining
 *        the healthy database (which it did before: quick_check failed with SQLITE_IOERR_SHMSIZE); started again
 *        once there is room (what systemd's Restart=on-failure does), it takes the readings the broker kept.
 *
 * Needs root (or CAP_SYS_ADMIN) for `mount -t tmpfs`; skipped with the reason otherwise. Every tmpfs is unmounted in
 * `after`, after the daemons on it have been stopped. The long run repeats F5a on ext4, the file system of a Pi's SD
 * card: a loop-mounted image made without reserved blocks (with them, root would write on into the reserve).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { CheckpointStore, type CheckpointContent } from '../../src/model/checkpoint.js';
import { waitFor } from '../helpers/broker.js';
import { writeYaml, type DaemonProcess, type LogLine } from '../helpers/daemonProcess.js';
import { FaultScope } from '../helpers/faultScope.js';
import { recordFault, secondsText, type Figure } from '../helpers/faultReport.js';
import { publishBurst, readingBurst } from '../helpers/load.js';
import { MOSQUITTO_BIN, mosquittoAvailable } from '../helpers/mosquitto.js';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
/** Readings before the disk fills, during the stream that fills it, and published while the daemon is down (F5c). */
const BEFORE_FULL = 200;
const STREAM = LONG ? 20_000 : 3_000;
const WHILE_DOWN = LONG ? 5_000 : 500;
const KiB = 1024;

type Filesystem = 'tmpfs' | 'ext4';
/** F5a runs on each of these: ext4 in the long run, where a loop device can be mounted. */
const INGEST_FILESYSTEMS: Filesystem[] = LONG && !ext4SkipReason() ? ['tmpfs', 'ext4'] : ['tmpfs'];

const rand = () => Math.random().toString(16).slice(2, 10);
/** Readings are a day old and 1 s apart: inside maxAgeDays, never in the future. */
const baseTs = () => Date.now() - 86_400_000 - 100_000 * 1000;

/** Why this file cannot run here, or false. A mount is tried once: only root (or CAP_SYS_ADMIN) may. */
function skipReason(): string | false {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (!mosquittoAvailable()) return `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;
  const probe = mkdtempSync(join(tmpdir(), 'forecastd-f5-probe-'));
  try {
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
    if (mounted.status !== 0)
      return `cannot mount a tmpfs (${(mounted.stderr || mounted.error?.message || '').trim() || 'not root?'}): F5 needs root or CAP_SYS_ADMIN`;
    spawnSync('umount', [probe]);
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Why a small ext4 image cannot be loop-mounted here, or false. */
function ext4SkipReason(): string | false {
  if (process.platform !== 'linux') return 'loop mounts need Linux';
  try {
    mountSmallDisk(1, 'ext4').unmount();
    return false;
  } catch (error) {
    return (error as Error).message;
  }
}

/** A small tmpfs (or ext4 image) and a filler file that takes all but `leaveBytes` of it. */
interface SmallDisk {
  readonly dir: string;
  available(): number;
  /** Grows the filler until at most `leaveBytes` are free; returns the free bytes after. */
  fill(leaveBytes: number): number;
  /** Deletes the filler. */
  free(): void;
  unmount(): void;
}

function mountSmallDisk(sizeMiB: number, filesystem: Filesystem = 'tmpfs'): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), 'forecastd-f5-disk-'));
  const image = `${dir}.img`;
  const run = (command: string, commandArgs: string[]) => {
    const result = spawnSync(command, commandArgs, { encoding: 'utf8' });
    if (result.status !== 0) {
      rmSync(image, { force: true });
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${command} ${commandArgs.join(' ')} failed: ${(result.stderr || result.error?.message || '').trim()}`);
    }
  };
  if (filesystem === 'tmpfs') run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m,mode=0755`, 'tmpfs', dir]);
  else {
    run('truncate', ['-s', `${sizeMiB}M`, image]);
    // -m 0: no blocks reserved for root, or the tests (as root) would write on into the reserve.
    run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
    run('mount', ['-o', 'loop', image, dir]);
  }
  let fillers = 0;
  const available = () => {
    const stats = statfsSync(dir);
    return stats.bavail * stats.bsize;
  };
  return {
    dir,
    available,
    fill(leaveBytes) {
      // The daemon writes meanwhile: a filler may find less room than measured; a few bounded tries, each smaller.
      for (let attempt = 0; attempt < 5 && available() > leaveBytes; attempt++) {
        const bytes = available() - leaveBytes;
        spawnSync('fallocate', ['-l', String(bytes), join(dir, `filler-${++fillers}`)]);
      }
      return available();
    },
    free() {
      for (const name of readdirSync(dir)) if (name.startsWith('filler-')) rmSync(join(dir, name), { force: true });
    },
    unmount() {
      // A process that still holds a file there makes umount fail (EBUSY): detach it lazily then, never leave it mounted.
      if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
      rmSync(image, { force: true });
    },
  };
}

/** Counts readings through a separate read-only connection (WAL mode lets it read while the daemon writes). */
function rowCounter(databasePath: string): { count(): number; close(): void } {
  let db: Database.Database | null = null;
  return {
    count() {
      try {
        db ??= new Database(databasePath, { readonly: true, fileMustExist: true });
        return db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
      } catch {
        return 0; // not created or not migrated yet
      }
    },
    close() {
      db?.close();
      db = null;
    },
  };
}

interface Verified {
  rows: number;
  distinct: number;
  seqs: Set<number>;
  integrity: string;
}

/** After the daemon stopped: integrity, duplicates, and the seq of every stored reading (value = seq by construction). */
function verifyDatabase(databasePath: string, base: number): Verified {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const integrity = (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((row) => row.integrity_check).join('; ');
    const rows = db.prepare('SELECT count(*) FROM readings').pluck().get() as number;
    const distinct = db.prepare('SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM readings)').pluck().get() as number;
    const seqs = new Set<number>();
    for (const { ts, v } of db.prepare('SELECT ts, v FROM readings').all() as Array<{ ts: number; v: number }>) {
      assert.equal(v, (ts - base) / 1000, `the value stored at ts ${ts} is the seq it was published with`);
      seqs.add(v);
    }
    return { rows, distinct, seqs, integrity };
  } finally {
    db.close();
  }
}

/** A row's figures from what the stopped daemon's database holds, against the acked readings it misses. */
function storedFigures(stored: Verified, missing: number[], brokerDropped: Figure, recoveryMs: number) {
  return {
    stored: stored.seqs.size,
    duplicates: stored.rows - stored.distinct,
    rejected: 0,
    brokerDropped,
    lost: missing.length,
    recovery: secondsText(recoveryMs),
  };
}

function daemonConfig(url: string, prefix: string, stateDir: string) {
  return {
    mqtt: { url, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-${prefix}` },
    ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
    storage: { stateDir },
    http: { enabled: true, port: 0 },
    // No forecasts: the model runtime is only loaded; the cheapest one keeps starts short.
    model: { backend: 'cpu' },
    // Debug: each failed storage retry is a debug line, which proves retries happen without an error line each.
    log: { level: 'debug' },
  };
}

const subscribed = (line: LogLine) => line.msg === 'subscribed';
const connected = (line: LogLine) => line.msg === 'connected to broker';
const storageError = (line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('cannot store readings');
const isError = (line: LogLine) => (line.level ?? 0) >= 50;

/** The promise's value, or null after `ms` (the timer is cleared either way, so it never holds the process). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A model-shaped checkpoint of 64 KiB of weights whose values say which save wrote them. */
function checkpointContent(seed: number): CheckpointContent {
  const weights = new Float32Array(16 * KiB).map((_, index) => Math.sin(seed * 1000 + index));
  return {
    modelTopology: { class_name: 'Sequential', config: { name: `f5-${seed}`, layers: [] } },
    weightSpecs: [{ name: 'dense/kernel', shape: [128, 128], dtype: 'float32' }],
    weightData: weights.buffer,
    meta: { seed },
  };
}

const skip = skipReason();

describe('F5 disk full: the state directory on a small tmpfs', { skip, timeout: 180_000 }, () => {
  // Released in reverse order: the daemons on a tmpfs go before it is unmounted (a process holding files keeps it busy).
  const scope = new FaultScope('f5');
  const disk = (sizeMiB: number, filesystem: Filesystem = 'tmpfs') => {
    const mounted = mountSmallDisk(sizeMiB, filesystem);
    return scope.onClose(mounted, () => mounted.unmount());
  };
  const tempDir = (label: string) => scope.tempDir(label);
  const broker = () => scope.broker();
  const spawn = (configPath: string) => scope.spawn(configPath);
  const sensor = async (url: string, clientId: string) => {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, reconnectPeriod: 200, connectTimeout: 5000 });
    client.on('error', () => undefined);
    return scope.track(client);
  };
  /** A private broker, an 8 MiB tmpfs (or ext4) holding the state directory, and a config for a daemon that ingests `<label>-…/+/+` there. */
  const daemonOnSmallDisk = async (label: string, filesystem: Filesystem = 'tmpfs') => {
    const { mosquitto, dropped } = await broker();
    const small = disk(8, filesystem);
    const stateDir = join(small.dir, 'state');
    const configPath = join(tempDir(label), 'forecastd.yaml');
    const databasePath = join(stateDir, 'forecastd.db');
    const prefix = `${label}-${rand()}`;
    writeYaml(configPath, daemonConfig(mosquitto.url, prefix, stateDir));
    return { mosquitto, dropped, small, stateDir, configPath, databasePath, prefix, topic: `${prefix}/dev/temp` };
  };
  const httpUrlOf = async (daemon: DaemonProcess) =>
    String(
      (await daemon.waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('dashboard and metrics at'), 30_000, 'its HTTP address'))
        .url,
    );

  after(() => scope.close());

  for (const filesystem of INGEST_FILESYSTEMS) {
    it(
      `F5a (${filesystem}): full during ingest: nothing of the failed group is acked, one error, ingest reported failing, resumes in the same process when space returns`,
      { timeout: 120_000 },
      async () => {
        const { mosquitto, dropped, small, configPath, databasePath, prefix, topic } = await daemonOnSmallDisk(`f5a${filesystem}`, filesystem);

        const daemon = spawn(configPath);
        const httpUrl = await httpUrlOf(daemon);
        await daemon.waitForLog(subscribed, 30_000, 'its subscription');
        const base = baseTs();
        const publisher = await sensor(mosquitto.url, `sensor-${prefix}`);
        const rows = rowCounter(databasePath);

        // Before the fill: a few hundred readings (the WAL stays far below its 1000-page checkpoint, so it must grow to take more).
        const before = await publishBurst(publisher, readingBurst(topic, 1, BEFORE_FULL, base), { window: 16 });
        assert.equal(before.acked.size, BEFORE_FULL);
        await waitFor(() => rows.count() >= BEFORE_FULL, 20_000, 'the first readings to be stored');
        assert.equal((await getJson(`${httpUrl}/readyz`)).status, 200, 'ready before the fault');

        // The stream that fills the disk: the filler goes in once it is under way.
        let ackedNow = 0;
        const stream = publishBurst(publisher, readingBurst(topic, BEFORE_FULL + 1, BEFORE_FULL + STREAM, base), {
          window: 16,
          onAck: (count) => (ackedNow = count),
        });
        await waitFor(() => ackedNow >= STREAM / 10 && rows.count() > BEFORE_FULL, 20_000, 'the stream to be under way');
        const linesBeforeFill = daemon.lines.length;
        const connectsBeforeFill = daemon.lines.filter(connected).length;
        const leftBytes = small.fill(16 * KiB);
        const filledAt = performance.now();
        const failedLine = await daemon.waitForLog(storageError, 30_000, 'the storage error (SQLITE_FULL)');
        const failedAfterMs = performance.now() - filledAt;
        const rowsAtFailure = rows.count();
        const walAtFailure = statSync(`${databasePath}-wal`).size;
        assert.equal(failedLine.code, 'SQLITE_FULL', 'the disk-full error is named');

        const streamed = await stream;
        assert.equal(streamed.acked.size, STREAM, `the broker acked the whole stream (${streamed.failed.size} failed)`);
        const ackedTotal = before.acked.size + streamed.acked.size;
        // Storage retries fail (a debug line each) while the disk stays full, and the process stays up.
        await daemon.waitForLog((line) => line.msg === 'retry failed: still cannot store readings', 30_000, 'a failed storage retry');
        const rowsWhileFull = rows.count();
        const ready = await getJson(`${httpUrl}/readyz`);
        const status = await getJson(`${httpUrl}/api/status`);
        const ingest = status.body.ingest as { storing: boolean; heldMessages: number; error: string | null };
        const metricsWhileFull = await (await fetch(`${httpUrl}/metrics`)).text();
        const databaseCheck = (ready.body.checks as Record<string, { ok: boolean; detail: string }>).database;
        const whileFull = daemon.lines.slice(linesBeforeFill);
        assert.ok(daemon.running, 'the daemon is still running');
        assert.equal(rowsWhileFull, rowsAtFailure, 'nothing is committed while the disk is full');
        assert.ok(rowsWhileFull < ackedTotal, 'readings are waiting');
        assert.equal(ready.status, 503, '/readyz says not ready');
        assert.equal(databaseCheck.ok, false);
        assert.match(databaseCheck.detail, /cannot store readings .*database or disk is full/);
        assert.equal(ingest.storing, false, 'the status document says ingest is not storing');
        assert.match(String(ingest.error), /disk is full/);
        assert.ok(ingest.heldMessages > 0, 'messages are held unacknowledged');
        assert.match(metricsWhileFull, /^forecastd_ingest_storing 0$/m, '/metrics says ingest is not storing');
        assert.match(metricsWhileFull, /^forecastd_ingest_held_messages [1-9]\d*$/m, '/metrics counts the held messages');
        assert.equal(whileFull.filter(storageError).length, 1, 'the storage error is logged once');
        assert.deepEqual(
          whileFull.filter(isError).map((line) => line.msg),
          [failedLine.msg],
          'and no other error',
        );
        assert.equal(whileFull.filter(connected).length, 0, 'no reconnect while full: retries stay on the connection');

        // Room again: the same process resumes.
        small.free();
        const freedAt = performance.now();
        await waitFor(() => rows.count() >= ackedTotal, 60_000, 'every acked reading to be stored after the filler is deleted');
        const recoveryMs = performance.now() - freedAt;
        await daemon.waitForLog((line) => line.msg === 'storing readings again', 10_000, 'the recovery line');
        rows.close();
        assert.equal((await getJson(`${httpUrl}/readyz`)).status, 200, 'ready again');
        assert.match(await (await fetch(`${httpUrl}/metrics`)).text(), /^forecastd_ingest_storing 1$/m, '/metrics says storing again');
        const connectsWhileFull = daemon.lines.filter(connected).length - connectsBeforeFill;
        const droppedTotal = await dropped.fresh();
        const stopped = await daemon.stop();
        assert.equal(stopped.code, 0, 'a clean stop after the fault, in the process that met it');

        const stored = verifyDatabase(databasePath, base);
        const missing = [...before.acked, ...[...streamed.acked]].filter((seq) => !stored.seqs.has(seq));
        recordFault({
          fault: `F5a disk full during ingest${filesystem === 'tmpfs' ? '' : ` (${filesystem})`}`,
          mechanism: `state dir on an 8 MiB ${filesystem === 'tmpfs' ? 'tmpfs' : 'ext4 loop image, no reserved blocks'}; filler fallocate'd to ${Math.round(leftBytes / KiB)} KiB free mid-stream (QoS 1, ${STREAM} msgs); deleted after a failed retry`,
          published: before.attempted + streamed.attempted,
          acked: ackedTotal,
          ...storedFigures(stored, missing, dropped.updates ? droppedTotal : 'unknown', recoveryMs),
          note:
            `SQLITE_FULL ${secondsText(failedAfterMs)} after the fill, with ${rowsAtFailure} rows stored and a ${Math.round(walAtFailure / KiB)} KiB -wal; ` +
            `${ackedTotal - rowsWhileFull} acked msgs kept at the broker while full (${ingest.heldMessages} of them in flight, unacked); ` +
            `1 error line, ${connectsWhileFull} reconnects, /readyz 503 while full; same PID throughout; integrity_check ${stored.integrity}`,
        });
        assert.equal(stored.integrity, 'ok');
        assert.equal(stored.rows, stored.distinct, 'no duplicate rows (I2)');
        assert.deepEqual(missing.slice(0, 10), [], `acked but not stored: ${missing.length} (I1)`);
        assert.equal(stored.seqs.size, ackedTotal);
        assert.equal(connectsWhileFull, 0, 'recovery needed no reconnect');
        assert.ok(dropped.updates > 0, 'the $SYS dropped counter was read');
        assert.equal(droppedTotal, 0, 'the broker dropped nothing');
      },
    );
  }

  it('F5b: full during a model checkpoint save: CURRENT keeps naming the last good checkpoint, and nothing partial survives', async () => {
    const small = disk(1);
    const root = join(small.dir, 'checkpoints');
    const key = 'f5b-room';
    const store = new CheckpointStore(root, key);
    let lastGood = (await store.save(checkpointContent(0), 1)).id;
    const currentFile = join(store.dir, 'CURRENT');
    const saved = new Set([lastGood]);
    const failedAfterStep = new Map<number, number>();
    let successes = 0;
    let tempLeftBySave = 0;
    let removedAtNextStart = 0;
    // 0 to 96 KiB free, 4 KiB (one tmpfs page) apart: a new checkpoint needs about 76 KiB, so the save runs out of room
    // in each of its writes in turn (payload files, manifest, CURRENT.tmp) before it first fits.
    const freeSteps = Array.from({ length: 25 }, (_, index) => index * 4 * KiB);
    for (const [attempt, leave] of freeSteps.entries()) {
      let lastStep = 0;
      const saving = new CheckpointStore(root, key, { onStep: (step) => (lastStep = step) });
      small.fill(leave);
      let failure: NodeJS.ErrnoException | null = null;
      try {
        const info = await saving.save(checkpointContent(attempt + 1), attempt + 2);
        lastGood = info.id;
        saved.add(info.id);
        successes++;
      } catch (error) {
        failure = error as NodeJS.ErrnoException;
        failedAfterStep.set(lastStep, (failedAfterStep.get(lastStep) ?? 0) + 1);
      }
      const entries = readdirSync(store.dir);
      tempLeftBySave += entries.filter((name) => name.endsWith('.tmp')).length;
      small.free();
      if (failure)
        assert.equal(failure.code, 'ENOSPC', `a save with ${leave / KiB} KiB free fails for want of space, not otherwise: ${failure.message}`);

      assert.equal(readFileSync(currentFile, 'utf8').trim(), lastGood, `CURRENT names the last good checkpoint (${leave / KiB} KiB free)`);
      const loaded = await new CheckpointStore(root, key).loadLatest();
      assert.equal(loaded?.info.id, lastGood, 'the last good checkpoint loads');
      assert.equal(loaded?.fallbacks, 0, 'without falling back');
      // Epoch n was saved with seed n - 1.
      assert.deepEqual(loaded?.content.meta, { seed: Number(lastGood.split('-')[0]) - 1 }, 'with its own content');
      // The next start: stale temp files are removed, and no checkpoint is left that a failed save wrote.
      removedAtNextStart += await new CheckpointStore(root, key).removeStaleTemp();
      const after = readdirSync(store.dir);
      assert.deepEqual(
        after.filter((name) => name.endsWith('.tmp')),
        [],
        'no *.tmp survives the next start',
      );
      const strays = after.filter((name) => /^\d+-[0-9a-f]+$/.test(name) && !saved.has(name));
      assert.deepEqual(strays, [], 'no checkpoint directory from a failed save is left (it could be loaded as a fallback)');
    }
    const failures = [...failedAfterStep.values()].reduce((sum, count) => sum + count, 0);
    // onStep(k) runs after step k, so a save whose last step was k failed in step k + 1.
    const failedIn = ['model.json/weights.bin', 'manifest.json', 'rename', 'CURRENT.tmp', 'prune'];
    recordFault({
      fault: 'F5b disk full during checkpoint save',
      mechanism: `checkpoints on a 1 MiB tmpfs; ${freeSteps.length} saves of a 64 KiB model with 0..${freeSteps.at(-1)! / KiB} KiB free (filler fallocate'd)`,
      published: 'n/a',
      acked: 'n/a',
      stored: `${successes} saves`,
      duplicates: 'n/a',
      rejected: `${failures} saves (ENOSPC)`,
      brokerDropped: 'n/a',
      lost: 0,
      recovery: 'n/a',
      note:
        `failed while writing ${[...failedAfterStep.entries()]
          .sort(([a], [b]) => a - b)
          .map(([step, count]) => `${failedIn[step]} (step ${step + 1}): ${count}`)
          .join(', ')}; ` +
        `CURRENT named the last good checkpoint after every save, and it loaded without fallback; ` +
        `*.tmp left by failed saves: ${tempLeftBySave}, removed at the next start: ${removedAtNextStart}; stray checkpoints: 0`,
    });
    assert.ok(failures > 0 && successes > 0, `the sweep covers failed saves (${failures}) and saves that fit (${successes})`);
    assert.ok(
      [...failedAfterStep.keys()].filter((step) => step < 4).length >= 2,
      `failures at different steps of the save: ${[...failedAfterStep.keys()].join(', ')}`,
    );
  });

  it(
    'F5c: full at start-up: exits 1 with a clear message and leaves the database alone; started again with room, it takes what the broker kept',
    { timeout: 120_000 },
    async () => {
      const { mosquitto, dropped, small, stateDir, configPath, databasePath, prefix, topic } = await daemonOnSmallDisk('f5c');
      const base = baseTs();
      const publisher = await sensor(mosquitto.url, `sensor-${prefix}`);

      // A history, and a clean stop (the WAL is checkpointed and removed, and the -shm with it).
      let daemon = spawn(configPath);
      await daemon.waitForLog(subscribed, 30_000, 'its subscription');
      const first = await publishBurst(publisher, readingBurst(topic, 1, BEFORE_FULL, base), { window: 16 });
      const rows = rowCounter(databasePath);
      await waitFor(() => rows.count() >= first.acked.size, 20_000, 'the history to be stored');
      rows.close();
      assert.equal((await daemon.stop()).code, 0);
      const databaseBytes = statSync(databasePath).size;

      // While it is down the disk fills, and the broker queues readings for its session.
      const leftBytes = small.fill(4 * KiB);
      const whileDown = await publishBurst(publisher, readingBurst(topic, BEFORE_FULL + 1, BEFORE_FULL + WHILE_DOWN, base), { window: 16 });
      assert.equal(whileDown.acked.size, WHILE_DOWN);

      const startedAt = performance.now();
      daemon = spawn(configPath);
      const ended = await within(daemon.exited, 60_000);
      const exitMs = performance.now() - startedAt;
      assert.ok(ended, 'the daemon exits instead of running without a database');
      assert.equal(ended.code, 1, 'exit code 1: a failure systemd restarts (2 would mean a config error, which it does not)');
      const explained = daemon.lines.find((line) => isError(line) && typeof line.msg === 'string' && line.msg.startsWith('cannot open the database'));
      assert.ok(explained, `a log line explains the failure; stderr: ${daemon.stderr().slice(-500)}`);
      assert.match(String(explained.msg), /the disk is full \(\d+ KiB free in .*\): free some space there/);
      assert.match(daemon.stderr(), /cannot open the database/, 'stderr (systemctl status) says it too');
      const quarantined = readdirSync(stateDir).filter((name) => name.includes('.corrupt-'));
      assert.deepEqual(quarantined, [], 'a full disk is not corruption: the database is not moved aside');
      assert.equal(statSync(databasePath).size, databaseBytes, 'the database file is as it was');

      // Room again; systemd's Restart=on-failure starts it again.
      small.free();
      const freedAt = performance.now();
      daemon = spawn(configPath);
      const resumed = await daemon.waitForLog(connected, 30_000, 'connected to broker after the restart');
      assert.equal(resumed.sessionPresent, true, 'its broker session survived the failed start');
      const all = first.acked.size + whileDown.acked.size;
      await waitFor(() => rows.count() >= all, 30_000, 'the history and the queued readings to be stored');
      const recoveryMs = performance.now() - freedAt;
      rows.close();
      const droppedTotal = await dropped.fresh();
      assert.equal((await daemon.stop()).code, 0);

      const stored = verifyDatabase(databasePath, base);
      const missing = [...first.acked, ...whileDown.acked].filter((seq) => !stored.seqs.has(seq));
      recordFault({
        fault: 'F5c disk full at start-up',
        mechanism: `existing database on an 8 MiB tmpfs, filler fallocate'd to ${Math.round(leftBytes / KiB)} KiB free while the daemon was stopped; ${WHILE_DOWN} msgs queued at the broker`,
        published: first.attempted + whileDown.attempted,
        acked: all,
        ...storedFigures(stored, missing, dropped.updates ? droppedTotal : 'unknown', recoveryMs),
        note:
          `start with a full disk: exit code 1 after ${secondsText(exitMs)} with "cannot open the database ... the disk is full", no quarantine ` +
          `(before the fix quick_check's SQLITE_IOERR_SHMSIZE moved the database aside as corrupt); recovery = space freed → restart → all stored; integrity_check ${stored.integrity}`,
      });
      assert.equal(stored.integrity, 'ok');
      assert.equal(stored.rows, stored.distinct, 'no duplicate rows (I2)');
      assert.deepEqual(missing.slice(0, 10), [], `acked but not stored: ${missing.length} (I1)`);
      assert.equal(droppedTotal, 0, 'the broker dropped nothing');
      assert.ok(!existsSync(join(stateDir, 'forecastd.db-journal')), 'no rollback journal: the database stayed in WAL mode');
    },
  );
});
