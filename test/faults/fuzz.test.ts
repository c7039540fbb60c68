/**
 * F9: fuzzing the ingest path, and hostile topic and series names (docs/reliability.md, "Security" and "The fuzz run").
 *
 *   F9a  in process: 10⁵ fuzzed payloads through decodePayload (every format, two size limits) and the Ingestor;
 *        total (never throws), accepted readings are finite and in range, rejections carry a known reason, no
 *        decode is slow, Object.prototype is untouched.
 *   F9b  end to end: a QoS 1 publisher sends fuzzed payloads (10 % valid readings with a unique seq) to a daemon
 *        on a private Mosquitto. Every message is accounted for (received = accepted + rejected by reason, as a
 *        replay through a fresh Ingestor predicts), every valid reading is stored, sqlite_schema is unchanged and
 *        no file appears outside the state directory.
 *   F9c  hostile topics through the daemon's topic rules: traversal, SQL, quotes, bidi marks, 64 KB and 201-level
 *        topics, fuzzed levels; what MQTT forbids (NUL, wildcards) is sent from throwaway clients to show it never
 *        arrives. Accepted series round-trip byte for byte, rejected ones are counted and dead-lettered verbatim.
 *        The config side: `../` in a forecast or series name is refused by the schema, and checkpoints of a
 *        hostile-but-valid forecast name land in sha256-named directories under the state directory.
 *
 * The daemon runs in this process (its counters are readable) with the working directory moved to the temp parent
 * of its state directory, so that a write to a relative path would show up in the file-tree check too.
 * F9b sends 2·10⁴ messages in the default run (10⁵ took the whole file to 64 s on this loaded 2-core machine) and
 * 10⁵ with FORECASTD_FAULTS_LONG=1 (FORECASTD_FUZZ_N overrides both). Replay a run with FORECASTD_FUZZ_SEED.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { SERIES_NAME, type TopicRule } from '../../src/config/schema.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { statePaths } from '../../src/daemon/paths.js';
import { Ingestor } from '../../src/ingest/ingestor.js';
import { decodePayload, REJECTION_REASONS, type DecodeLimits, type PayloadFormat, type RejectionReason } from '../../src/ingest/payload.js';
import { createTopicMapper } from '../../src/ingest/topics.js';
import { createLogger, type Logger } from '../../src/log.js';
import { forecastCheckpoints } from '../../src/model/stores.js';
import { MAX_DEAD_LETTER_TOPIC_CHARS } from '../../src/store/deadLetters.js';
import type { ReadingStore } from '../../src/store/readings.js';
import { waitFor } from '../helpers/broker.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { formatTable, publishBurst, type BurstMessage } from '../helpers/load.js';
import { MOSQUITTO_BIN, mosquittoAvailable, startMosquitto, watchSysCounter, type PrivateMosquitto, type SysCounter } from '../helpers/mosquitto.js';
import { FUZZ_MAX_AGE_MS, FUZZ_MAX_FUTURE_MS, payloadArb } from '../ingest/hostilePayloads.js';
import { BROKER_REFUSED_TOPICS, deliveredText, EXTREME_TOPICS, HOSTILE_LEVELS, HOSTILE_TOPICS, topicLevelArb } from '../ingest/hostileTopics.js';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
const SEED = Number(process.env.FORECASTD_FUZZ_SEED ?? Date.now() % 2 ** 31);
const IN_PROCESS_RUNS = 100_000;
const E2E_MESSAGES = Number(process.env.FORECASTD_FUZZ_N ?? (LONG ? 100_000 : 20_000));
const E2E_FUZZED_TOPICS = LONG ? 20_000 : 2_000;
/** Every VALID_EVERY-th message of F9b is a valid reading with its own seq. */
const VALID_EVERY = 10;
/** The publisher may run this far ahead of the daemon, so the broker's queue (64 MB) never fills. */
const MAX_LEAD = 2_000;

const MAX_DECODE_MS = 1000;
const LIMITS: DecodeLimits = { maxPayloadBytes: 4096, maxFutureMs: FUZZ_MAX_FUTURE_MS, maxAgeMs: FUZZ_MAX_AGE_MS, maxReadings: 1000 };
/** The largest payload limit the schema allows is 1 MB; 70 KB lets every generated payload reach the parser. */
const WIDE_LIMITS: DecodeLimits = { ...LIMITS, maxPayloadBytes: 70_000 };
const FORMATS: PayloadFormat[] = [
  { format: 'auto' },
  { format: 'number' },
  { format: 'json' },
  { format: 'senml' },
  { format: 'json', valuePath: 'data.temp', timestampPath: 'meta.time' },
  { format: 'auto', valuePath: '__proto__.polluted', timestampPath: 'constructor.prototype' },
];
/** What a decoded field or SenML suffix may contain (FIELD_NAME or the SenML alphabet with `/` as `.`). */
const SUFFIX = /^[A-Za-z0-9_.:-]+$/;
const MAX_ABS_VALUE = 1e15;

const rand = () => Math.random().toString(16).slice(2, 10);
const megabytes = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
const ms = (nanoseconds: number) => `${(nanoseconds / 1e6).toFixed(1)} ms`;
const emptyTally = () => Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, 0])) as Record<RejectionReason, number>;
const nonZero = (tally: Record<string, number>) => Object.fromEntries(Object.entries(tally).filter(([, count]) => count > 0));
const sum = (tally: Record<string, number>) => Object.values(tally).reduce((total, count) => total + count, 0);

/** The combined fuzz report, printed once at the end. */
const fuzzReport: Record<string, string | number> = {};

/** A ReadingStore stand-in that counts and checks what the Ingestor would write. */
function countingStore(onReadings: (readings: ReadonlyArray<{ series: string; ts: number; value: number }>) => void = () => undefined) {
  let readings = 0;
  const store = {
    insertMany(batch: ReadonlyArray<{ series: string; ts: number; value: number }>) {
      onReadings(batch);
      readings += batch.length;
      return batch.length;
    },
  } as unknown as ReadingStore;
  return { store, readings: () => readings };
}

const quietLog = { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as unknown as Logger;

/** Own property names of the prototypes a payload could try to reach. */
const prototypeShape = () =>
  [Object.prototype, Array.prototype, Function.prototype].map((proto) => Object.getOwnPropertyNames(proto).sort().join(','));

/** Every path under root (files, directories, links; links are not followed), relative, sorted. */
function walk(root: string): string[] {
  const found: string[] = [];
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      found.push(relative(root, path));
      if (entry.isDirectory() && !lstatSync(path).isSymbolicLink()) visit(path);
    }
  };
  visit(root);
  return found.sort();
}

/** The schema as SQLite holds it, from a read-only connection. */
function readSchema(databasePath: string): string[] {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name').all() as Array<Record<string, unknown>>).map(
      (row) => JSON.stringify(row),
    );
  } finally {
    db.close();
  }
}

/** What the state directory may hold: the database files, and checkpoints in sha256-named directories. */
const STATE_ENTRY = /^(forecastd\.db(-wal|-shm)?|checkpoints|checkpoints\/[0-9a-f]{16}(\/.*)?)$/;

interface DaemonUnderTest {
  daemon: Daemon;
  parent: string;
  stateDir: string;
  schemaBefore: string[];
  treeBefore: string[];
  errorLines: string[];
  disconnects: () => number;
  /** Stops the daemon and returns to the original working directory. */
  stop(): Promise<void>;
}

/**
 * What the F9c rules make of a topic, derived here independently of src/ingest/topics.ts: `sensors/{device}/{metric}`
 * → `{device}.{metric}`, `sensors/{a}/{b}/{c}/{d}` → `{a}.{b}.{c}.{d}`, `raw/{name}` → `{name}`; named levels must
 * not be empty; a name outside SERIES_NAME is bad_series_name.
 */
function expectedOutcome(topic: string): { series?: string; reason?: RejectionReason } {
  const levels = deliveredText(topic).split('/');
  const named = levels.slice(1);
  let series: string | undefined;
  if (levels[0] === 'sensors' && (named.length === 2 || named.length === 4) && named.every((level) => level !== '')) series = named.join('.');
  if (levels[0] === 'raw' && named.length === 1 && named[0] !== '') series = named[0];
  if (series === undefined) return { reason: 'unknown_topic' };
  return SERIES_NAME.test(series) ? { series } : { reason: 'bad_series_name' };
}

/** A dead letter keeps this much of its topic, never half a surrogate pair (store/deadLetters.ts). */
function capTopic(topic: string): string {
  if (topic.length <= MAX_DEAD_LETTER_TOPIC_CHARS) return topic;
  const last = topic.charCodeAt(MAX_DEAD_LETTER_TOPIC_CHARS - 1);
  return topic.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_DEAD_LETTER_TOPIC_CHARS - 1 : MAX_DEAD_LETTER_TOPIC_CHARS);
}

/**
 * One QoS 1 publish from a throwaway client that never reconnects, and what became of it: acked, refused by mqtt.js
 * (a throw or an error), or the broker closing the connection (Mosquitto's answer to a malformed topic).
 */
async function publishOnce(url: string, topic: string): Promise<string> {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `refused-${rand()}`,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  client.on('error', () => undefined);
  try {
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('no answer in 5 s'), 5000);
      const settle = (outcome: string) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      client.once('close', () => settle('broker closed the connection'));
      try {
        client.publish(topic, '{"value": 1}', { qos: 1 }, (error) => settle(error ? `mqtt.js error: ${error.message}` : 'acked'));
      } catch (error) {
        settle(`mqtt.js threw: ${(error as Error).message.slice(0, 80)}`);
      }
    });
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;

before(() => console.log(`fuzz: seed=${SEED} (replay with FORECASTD_FUZZ_SEED=${SEED}), ${LONG ? 'long' : 'default'} run`));

after(() => {
  if (Object.keys(fuzzReport).length) console.log(`\n${formatTable('F9 fuzz report', [fuzzReport])}\n`);
});

describe('F9a: the ingest decode path is total on hostile payloads (in process)', () => {
  it(
    `decodes ${IN_PROCESS_RUNS.toLocaleString('en-US')} fuzzed payloads in every format without a throw, a slow decode or prototype pollution`,
    { timeout: 600_000 },
    () => {
      const nowMs = Date.now();
      const prototypesBefore = prototypeShape();
      const outcomes = { accepted: 0, ...emptyTally() };
      const reasonsSeen = new Set<RejectionReason>();
      const rules: TopicRule[] = [
        { filter: 'f/+/+', pattern: 'f/{device}/{metric}', series: '{device}.{metric}' },
        { filter: 'p/+', pattern: 'p/{device}', series: '{device}.power', valuePath: 'data.temp', timestampPath: 'meta.time' },
      ];
      let slowest = 0;
      let problem: string | null = null;
      const { store, readings: ingestedReadings } = countingStore((batch) => {
        for (const reading of batch) {
          if (!SERIES_NAME.test(reading.series)) problem ??= `stored under an unsafe series name ${JSON.stringify(reading.series)}`;
          if (!Number.isFinite(reading.value) || Math.abs(reading.value) > MAX_ABS_VALUE) problem ??= `stored value ${reading.value}`;
          if (!Number.isSafeInteger(reading.ts)) problem ??= `stored ts ${reading.ts}`;
        }
      });
      const ingestor = new Ingestor({ store, mapper: createTopicMapper(rules), limits: LIMITS, clock: () => nowMs, log: quietLog });
      const started = performance.now();

      fc.assert(
        fc.property(payloadArb(nowMs), fc.constantFrom('f/dev/temp', 'p/plug', 'unmatched/x'), (payload, topic) => {
          for (const limits of [LIMITS, WIDE_LIMITS]) {
            for (const format of FORMATS) {
              const t0 = performance.now();
              const result = decodePayload(payload, nowMs, limits, format);
              const took = performance.now() - t0;
              slowest = Math.max(slowest, took);
              assert.ok(took < MAX_DECODE_MS, `decoding ${payload.byteLength} bytes took ${took.toFixed(0)} ms`);
              if (!result.ok) {
                assert.ok((REJECTION_REASONS as readonly string[]).includes(result.reason), `unknown reason ${result.reason}`);
                assert.notEqual(result.reason, 'unknown_topic');
                assert.equal(typeof result.detail, 'string');
                reasonsSeen.add(result.reason);
                if (limits === LIMITS && format === FORMATS[0]) outcomes[result.reason]++;
                continue;
              }
              if (limits === LIMITS && format === FORMATS[0]) outcomes.accepted++;
              assert.ok(result.readings.length >= 1 && result.readings.length <= (limits.maxReadings ?? 1000), `${result.readings.length} readings`);
              for (const reading of result.readings) {
                assert.equal(typeof reading.value, 'number');
                assert.ok(Number.isFinite(reading.value) && Math.abs(reading.value) <= MAX_ABS_VALUE, `value ${reading.value}`);
                assert.ok(Number.isSafeInteger(reading.ts), `ts ${reading.ts}`);
                assert.ok(reading.ts >= nowMs - limits.maxAgeMs && reading.ts <= nowMs + limits.maxFutureMs, `ts ${reading.ts} outside the window`);
                if (reading.field !== undefined) assert.match(reading.field, SUFFIX);
              }
            }
          }
          // The Ingestor: one message is exactly one of "stored" or "rejected", and never throws.
          const received = ingestor.counters.received;
          const rejected = ingestor.rejectedTotal();
          const stored = ingestedReadings();
          ingestor.handle(topic, payload);
          assert.equal(ingestor.counters.received, received + 1);
          const wasRejected = ingestor.rejectedTotal() - rejected;
          const wasStored = ingestedReadings() > stored ? 1 : 0;
          assert.equal(wasRejected + wasStored, 1, 'a message is either stored or rejected');
          assert.equal(problem, null, problem ?? '');
        }),
        { numRuns: IN_PROCESS_RUNS, seed: SEED },
      );

      const tookMs = performance.now() - started;
      assert.deepEqual(prototypeShape(), prototypesBefore, 'no property was added to Object/Array/Function.prototype');
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(Object.getPrototypeOf({}), Object.prototype);
      assert.equal(ingestor.counters.received, IN_PROCESS_RUNS);
      // The mix must reach every decoder branch worth fuzzing, or the property proves little.
      for (const reason of [
        'too_large',
        'not_text',
        'not_a_number',
        'non_finite',
        'out_of_range',
        'bad_json_shape',
        'bad_timestamp',
        'too_old',
        'in_future',
        'too_deep',
        'too_many_readings',
        'bad_series_name',
      ] as const) {
        assert.ok(reasonsSeen.has(reason), `the mix produced no ${reason}`);
      }
      assert.ok(outcomes.accepted > IN_PROCESS_RUNS / 20, `only ${outcomes.accepted} accepted`);
      console.log(
        `F9a: ${IN_PROCESS_RUNS} payloads × ${FORMATS.length} formats × 2 limits in ${secondsText(tookMs)}, slowest decode ${slowest.toFixed(1)} ms; auto/4 KB outcomes ${JSON.stringify(nonZero(outcomes))}`,
      );
      fuzzReport['F9a payloads'] = IN_PROCESS_RUNS;
      fuzzReport['F9a throws'] = 0;
      fuzzReport['F9a slowest decode'] = `${slowest.toFixed(1)} ms`;
    },
  );

  it('maps 10⁵ fuzzed topics to a safe series name or a reason, never throwing', () => {
    const rules: TopicRule[] = [
      { filter: 'sensors/#', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' },
      { filter: 'raw/#', pattern: 'raw/{name}', series: '{name}' },
    ];
    const mapper = createTopicMapper(rules);
    let tried = 0;
    const levelArb = fc.oneof(topicLevelArb, fc.string({ unit: 'binary', maxLength: 300 }), fc.constant(''));
    const topicArb = fc.oneof(
      fc.tuple(levelArb, levelArb).map(([device, metric]) => ({ topic: `sensors/${device}/${metric}`, expected: `${device}.${metric}` })),
      levelArb.map((name) => ({ topic: `raw/${name}`, expected: name })),
      fc.string({ unit: 'binary', maxLength: 300 }).map((topic) => ({ topic, expected: undefined })),
    );
    fc.assert(
      fc.property(topicArb, ({ topic, expected }) => {
        tried++;
        const match = mapper.match(topic);
        if (match.ok) {
          assert.match(match.series, SERIES_NAME);
          if (expected !== undefined && topic.split('/').length === (topic.startsWith('raw/') ? 2 : 3)) assert.equal(match.series, expected);
        } else {
          assert.ok(match.reason === 'unknown_topic' || match.reason === 'bad_series_name');
          // A single-level name that the safe alphabet allows is never refused.
          if (expected !== undefined && topic.split('/').length === (topic.startsWith('raw/') ? 2 : 3) && !topic.split('/').slice(1).includes('')) {
            assert.equal(SERIES_NAME.test(expected), false, `${JSON.stringify(expected)} is safe but was refused`);
          }
        }
      }),
      { numRuns: 100_000, seed: SEED },
    );
    assert.equal(tried, 100_000);
    fuzzReport['F9a topics'] = tried;
  });
});

describe('F9c config side: names in the config never become paths', () => {
  const scratch: string[] = [];
  after(() => {
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses ../ and other unsafe forecast and series names, naming the key and the rule', () => {
    const forecast = (fields: Record<string, unknown>) => ({ forecasts: [{ name: 'room', target: 'room.temp', ...fields }] });
    const cases: Array<{ raw: unknown; key: string; rule: string }> = [
      ...['../../etc/passwd', '..', 'a/b', '%2e%2e', 'Room', '', 'x\u0000', '__proto__/x', 'a'.repeat(65)].map((name) => ({
        raw: forecast({ name }),
        key: 'forecasts.0.name',
        rule: 'a forecast name is',
      })),
      ...['../etc/passwd', '..', '.hidden', "x'; DROP TABLE readings; --", 'a\u0000b', 'a/b', 'a'.repeat(129)].map((target) => ({
        raw: forecast({ target }),
        key: 'forecasts.0.target',
        rule: 'a series name is',
      })),
      { raw: forecast({ covariates: ['room.hum', '../x'] }), key: 'forecasts.0.covariates.1', rule: 'a series name is' },
      { raw: { storage: { retention: { perSeries: { '../x': 30 } } } }, key: 'storage.retention.perSeries', rule: 'a series name is' },
    ];
    for (const { raw, key, rule } of cases) {
      assert.throws(
        () => parseConfig(raw),
        (error: unknown) => error instanceof ConfigError && error.problems.some((problem) => problem.startsWith(key) && problem.includes(rule)),
        `${JSON.stringify(raw)} must be refused at ${key}`,
      );
    }
  });

  it('keeps the checkpoints of hostile-but-valid forecast names in sha256-named directories under the state dir', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'forecastd-fuzz-ckpt-'));
    scratch.push(parent);
    const stateDir = join(parent, 'state');
    const names = ['__proto__', 'constructor', 'prototype', 'con', 'nul', '_', 'a--b', '0', 'x'.repeat(64)];
    const prototypesBefore = prototypeShape();
    const config = parseConfig({
      storage: { stateDir },
      forecasts: names.map((name) => ({ name, target: 'a..b', training: { onStart: false } })),
    });
    const { checkpointRoot } = statePaths(config);
    const weights = new Float32Array([0.25, -0.5]);
    const expectedDirs = new Set<string>();
    for (const forecast of config.forecasts) {
      const stores = forecastCheckpoints(checkpointRoot, forecast);
      for (const [kind, store] of Object.entries(stores)) {
        const content = {
          modelTopology: { name: forecast.name },
          weightSpecs: [{ name: 'w', shape: [2], dtype: 'float32' }],
          weightData: weights.slice().buffer,
          meta: { forecast: forecast.name },
        };
        await store.save(content, 1);
        const loaded = await store.loadLatest();
        assert.deepEqual(loaded?.content.meta, { forecast: forecast.name }, `${forecast.name} ${kind}: round trip`);
        assert.deepEqual([...new Float32Array(loaded!.content.weightData)], [...weights]);
        const key = kind === 'serving' ? forecast.name : `${forecast.name}#${kind}`;
        expectedDirs.add(createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16));
      }
    }
    const tree = walk(parent).map((path) => path.split(sep).join('/'));
    const outside = tree.filter((path) => path !== 'state' && !path.startsWith('state/'));
    const storeDirs = new Set(readdirSync(checkpointRoot));
    const stray = tree.filter((path) => path.startsWith('state/') && !/^state\/(forecastd\.db.*|checkpoints(\/[0-9a-f]{16}(\/.*)?)?)$/.test(path));
    fuzzReport['F9c checkpoint names'] = names.length;
    assert.deepEqual(outside, [], 'nothing outside the state dir');
    assert.deepEqual(stray, [], 'only sha256-named store directories under checkpoints/');
    assert.deepEqual([...storeDirs].sort(), [...expectedDirs].sort(), 'one directory per store, named by sha256 of its key');
    for (const name of names.filter((candidate) => /[^0-9a-f-]/.test(candidate))) {
      assert.ok(!tree.some((path) => path.split('/').includes(name)), `no path segment is the forecast name ${name}`);
    }
    assert.deepEqual(prototypeShape(), prototypesBefore, 'a forecast named __proto__ changed no prototype');
  });
});

describe('F9b/F9c: fuzzing a running daemon on a private Mosquitto', { skip, timeout: 600_000 }, () => {
  let mosquitto: PrivateMosquitto;
  let dropped: SysCounter;
  const clients: MqttClient[] = [];
  const running: DaemonUnderTest[] = [];
  const parents: string[] = [];
  const originalCwd = process.cwd();

  before(async () => {
    mosquitto = await startMosquitto();
    dropped = await watchSysCounter(mosquitto.url);
  });

  after(async () => {
    for (const under of running) await under.stop().catch(() => undefined);
    process.chdir(originalCwd);
    for (const parent of parents) rmSync(parent, { recursive: true, force: true });
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await dropped?.close();
    await mosquitto?.close();
  });

  const publisher = async (clientId: string) => {
    const client = await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 500, connectTimeout: 5000 });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  /** A daemon in this process, its state dir inside a fresh temp parent that is also the working directory. */
  async function startDaemonUnderTest(label: string, topics: TopicRule[], forecasts: unknown[] = []): Promise<DaemonUnderTest> {
    const parent = mkdtempSync(join(tmpdir(), `forecastd-fuzz-${label}-`));
    parents.push(parent);
    const stateDir = join(parent, 'state');
    const treeBefore = walk(parent);
    const logLines: string[] = [];
    const errorLines: string[] = [];
    // A storage failure or an unexpected throw in the message path is logged at error level (pino level 50+).
    const log = createLogger('info', {
      write: (line: string) => {
        logLines.push(line);
        if (/"level":(5|6)\d/.test(line)) errorLines.push(line);
      },
    });
    const config = parseConfig({
      mqtt: { url: mosquitto.url, clientId: `forecastd-${label}-${rand()}`, baseTopic: `forecastd-${label}` },
      ingest: { topics, deadLetter: { enabled: true, maxRows: 1_000_000 } },
      storage: { stateDir },
      model: { backend: 'cpu' },
      forecasts,
    });
    process.chdir(parent);
    let daemon: Daemon;
    try {
      daemon = await startDaemon({ config, log });
    } catch (error) {
      process.chdir(originalCwd);
      throw error;
    }
    let disconnects = 0;
    daemon.client.on('close', () => disconnects++);
    await waitFor(() => daemon.client.connected, 15_000, 'the daemon to connect');
    const under: DaemonUnderTest = {
      daemon,
      parent,
      stateDir,
      schemaBefore: readSchema(daemon.databasePath),
      treeBefore,
      errorLines,
      disconnects: () => disconnects,
      async stop() {
        const index = running.indexOf(under);
        if (index >= 0) running.splice(index, 1);
        try {
          await daemon.stop();
        } finally {
          process.chdir(originalCwd);
        }
      },
    };
    running.push(under);
    // After the SUBACK every publish is delivered: one probe then proves the whole path before the run starts.
    await waitFor(() => logLines.some((line) => line.includes('"msg":"subscribed"')), 15_000, 'the daemon to subscribe');
    const probe = await publisher(`probe-${label}-${rand()}`);
    await probe.publishAsync(topics[0].pattern.replace(/\{[^}]+\}/g, 'probe'), '1', { qos: 1 });
    await waitFor(() => daemon.ingestor.counters.stored === 1, 15_000, 'the daemon to store the probe reading');
    await probe.endAsync();
    return under;
  }

  /** Files outside the state dir, and entries inside it that are not the database or a sha256-named checkpoint. */
  function strayFiles(under: DaemonUnderTest): { outside: string[]; unexpected: string[] } {
    const after = walk(under.parent);
    const stateRelative = relative(under.parent, under.stateDir);
    const outside = after.filter((path) => !under.treeBefore.includes(path) && path !== stateRelative && !path.startsWith(stateRelative + sep));
    const unexpected = walk(under.stateDir).filter((path) => !STATE_ENTRY.test(path.split(sep).join('/')));
    return { outside, unexpected };
  }

  it(
    `F9b: ${E2E_MESSAGES.toLocaleString('en-US')} fuzzed QoS 1 messages to a running daemon: no crash, every message accounted for`,
    { timeout: 540_000 },
    async () => {
      const rules: TopicRule[] = [{ filter: 'fz/#', pattern: 'fz/{device}/{metric}', series: '{device}.{metric}' }];
      const under = await startDaemonUnderTest('f9b', rules);
      const { daemon } = under;
      const nowMs = Date.now();
      const base = nowMs - 86_400_000 - E2E_MESSAGES * 1000;
      const receivedBefore = daemon.ingestor.counters.received;
      const rejectedBefore = { ...daemon.ingestor.counters.rejected };
      const storedBefore = daemon.ingestor.counters.stored;

      // The oracle: the same messages through a fresh Ingestor, in this process, as they are generated.
      const oracleStore = countingStore();
      const oracle = new Ingestor({ store: oracleStore.store, mapper: createTopicMapper(rules), limits: LIMITS, clock: Date.now, log: quietLog });
      const payloads = payloadArb(nowMs);
      let validCount = 0;
      let bytesSent = 0;
      const CHUNK = 1000;
      /** Payloads are drawn 100 at a time: generating a thousand at once would block the loop being measured. */
      const SAMPLE = 100;
      let fuzzed: Uint8Array[] = [];
      function* messages(from: number, to: number): Generator<BurstMessage> {
        for (let seq = from; seq <= to; seq++) {
          if ((seq - 1) % SAMPLE === 0) fuzzed = fc.sample(payloads, { numRuns: SAMPLE, seed: SEED + seq });
          let topic: string;
          let payload: Buffer;
          if (seq % VALID_EVERY === 0) {
            validCount++;
            topic = 'fz/valid/seq';
            payload = Buffer.from(`{"value": ${seq}, "ts": ${base + seq * 1000}}`);
          } else {
            topic = `fz/d${seq % 16}/m`;
            payload = Buffer.from(fuzzed[(seq - 1) % SAMPLE]);
          }
          oracle.handle(topic, payload);
          bytesSent += payload.byteLength;
          yield { seq, topic, payload };
        }
      }

      const sensor = await publisher(`sensor-f9b-${rand()}`);
      const rssBefore = process.memoryUsage().rss;
      const delay = monitorEventLoopDelay({ resolution: 10 });
      delay.enable();
      const started = performance.now();
      let acked = 0;
      let attempted = 0;
      const failed: string[] = [];
      for (let from = 1; from <= E2E_MESSAGES; from += CHUNK) {
        const to = Math.min(E2E_MESSAGES, from + CHUNK - 1);
        const burst = await publishBurst(sensor, messages(from, to), { window: 64 });
        acked += burst.acked.size;
        attempted += burst.attempted;
        failed.push(...burst.failed.values());
        // Bounded lead: the daemon, not the broker's queue, holds the backlog.
        await waitFor(
          () => daemon.ingestor.counters.received - receivedBefore >= acked - MAX_LEAD,
          120_000,
          `the daemon to catch up to ${acked - MAX_LEAD}`,
        );
      }
      await waitFor(() => daemon.ingestor.counters.received - receivedBefore >= acked, 120_000, `all ${acked} acked messages to be received`);
      const elapsedMs = performance.now() - started;
      delay.disable();
      const rssAfter = process.memoryUsage().rss;

      // Still answering: a last valid reading is stored.
      const lastSeq = E2E_MESSAGES + VALID_EVERY;
      await sensor.publishAsync('fz/valid/seq', `{"value": ${lastSeq}, "ts": ${base + lastSeq * 1000}}`, { qos: 1 });
      await waitFor(() => daemon.readings.latest('valid.seq')?.value === lastSeq, 15_000, 'the daemon to store a reading after the run');
      const stillConnected = daemon.client.connected;
      const disconnects = under.disconnects();
      const counters = structuredClone(daemon.ingestor.counters);
      const droppedTotal = await dropped.fresh();
      await under.stop();

      const received = counters.received - receivedBefore - 1;
      const rejected = Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, counters.rejected[reason] - rejectedBefore[reason]])) as Record<
        RejectionReason,
        number
      >;
      const rejectedTotal = sum(rejected);
      const acceptedMessages = received - rejectedTotal;
      const oracleRejected = oracle.counters.rejected;
      const oracleAccepted = oracle.counters.received - oracle.rejectedTotal();
      const readingsStoredOrAbsorbed = counters.stored - storedBefore - 1 + counters.duplicates;

      // The file: every valid seq, the counters' readings, the schema, the tree.
      const db = new Database(daemon.databasePath, { readonly: true, fileMustExist: true });
      let validStored: Set<number>;
      let fuzzRows: number;
      let deadLetters: number;
      try {
        validStored = new Set(
          db.prepare("SELECT r.v FROM readings r JOIN series s ON s.id = r.series_id WHERE s.name = 'valid.seq'").pluck().all() as number[],
        );
        fuzzRows = db.prepare("SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id WHERE s.name LIKE 'd%'").pluck().get() as number;
        deadLetters = db.prepare('SELECT count(*) FROM dead_letters').pluck().get() as number;
      } finally {
        db.close();
      }
      const missingValid: number[] = [];
      for (let seq = VALID_EVERY; seq <= E2E_MESSAGES; seq += VALID_EVERY) if (!validStored.has(seq)) missingValid.push(seq);
      const schemaAfter = readSchema(daemon.databasePath);
      const files = strayFiles(under);
      const throughput = Math.round(received / (elapsedMs / 1000));

      fuzzReport['F9b messages'] = received;
      fuzzReport['F9b crashes'] = stillConnected ? 0 : 1;
      fuzzReport['F9b schema changes'] = schemaAfter.join('\n') === under.schemaBefore.join('\n') ? 0 : 1;
      fuzzReport['F9b files outside state'] = files.outside.length;
      fuzzReport['F9b loop delay max'] = ms(delay.max);
      fuzzReport['F9b loop delay p99'] = ms(delay.percentile(99));
      fuzzReport['F9b RSS delta'] = megabytes(rssAfter - rssBefore);
      fuzzReport['F9b msg/s'] = throughput;
      console.log(
        `F9b rejected by reason: ${JSON.stringify(nonZero(rejected))}; ${megabytes(bytesSent)} sent; ${acceptedMessages} messages accepted`,
      );
      recordFault({
        fault: 'F9b fuzzed payloads end to end',
        mechanism: `${E2E_MESSAGES} QoS 1 payloads from fast-check (seed ${SEED}), 1 in ${VALID_EVERY} a valid reading with a unique seq, to an in-process daemon`,
        published: attempted,
        acked,
        stored: `${validStored.size - 1} valid + ${fuzzRows} fuzz readings`,
        duplicates: counters.duplicates,
        rejected: rejectedTotal,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: missingValid.length + (acked - received),
        recovery: 'n/a',
        note:
          `received = ${acceptedMessages} accepted + ${rejectedTotal} rejected, as a replay predicts; duplicates: fuzz readings with the same ` +
          `series and ts (receive-time stamps in one message or one ms, repeated timestamps), absorbed by the primary key; loop delay max ${ms(delay.max)} p99 ${ms(delay.percentile(99))}, ${throughput} msg/s, RSS ${megabytes(rssAfter - rssBefore)}`,
      });

      assert.deepEqual(failed, [], 'no publish failed');
      assert.equal(acked, E2E_MESSAGES, 'the broker acked every publish');
      assert.ok(stillConnected, 'the daemon is still connected (no crash)');
      assert.equal(disconnects, 0, 'the daemon never lost its broker connection');
      assert.deepEqual(under.errorLines, [], 'no error was logged');
      assert.equal(received, acked, 'every acked message was received once (no loss, no redelivery)');
      assert.deepEqual(missingValid.slice(0, 10), [], `${missingValid.length} valid readings not stored`);
      assert.equal(validStored.size - 1, validCount, 'nothing but the valid readings in valid.seq');
      // Every message accounted for: accepted + rejected by reason, exactly as the replay predicts.
      assert.deepEqual(nonZero(rejected), nonZero(oracleRejected), 'rejections by reason match the replay');
      assert.equal(acceptedMessages, oracleAccepted, 'accepted messages match the replay');
      assert.equal(readingsStoredOrAbsorbed, oracleStore.readings(), 'readings stored or absorbed as duplicates match the replay');
      assert.equal(fuzzRows, counters.stored - storedBefore - 1 - validCount, 'the file holds what the stored counter says');
      assert.equal(deadLetters, sum(counters.rejected), 'every rejected message was dead-lettered');
      assert.equal(counters.deadLetterFailures, 0);
      assert.deepEqual(schemaAfter, under.schemaBefore, 'sqlite_schema unchanged');
      assert.deepEqual(files.outside, [], 'no file outside the state directory');
      assert.deepEqual(files.unexpected, [], 'nothing unexpected in the state directory');
      assert.equal(dropped.updates > 0 ? droppedTotal : 0, 0, 'the broker dropped nothing');
      // A speed limit, not a behaviour: it holds on a quiet machine (the long run, npm run test:faults, checks it) but not
      // beside other test files on two busy cores, so the default run only reports the figure (in the fault row above).
      if (LONG) assert.ok(delay.percentile(99) < 100e6, `event-loop delay p99 ${ms(delay.percentile(99))} < 100 ms`);
    },
  );

  it('F9c: hostile topics become safe series names or counted rejections; no schema change, no stray file', { timeout: 240_000 }, async () => {
    const rules: TopicRule[] = [
      { filter: 'sensors/#', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' },
      { filter: 'sensors/#', pattern: 'sensors/{a}/{b}/{c}/{d}', series: '{a}.{b}.{c}.{d}' },
      { filter: 'raw/#', pattern: 'raw/{name}', series: '{name}' },
    ];
    // A forecast whose name is a key every JS object has, on a series that a hostile-looking topic feeds.
    const under = await startDaemonUnderTest('f9c', rules, [{ name: '__proto__', target: 'a..b', training: { onStart: false } }]);
    const { daemon } = under;
    const base = Date.now() - 86_400_000 - 10 * E2E_FUZZED_TOPICS * 1000;
    const receivedBefore = daemon.ingestor.counters.received;
    const rejectedBefore = { ...daemon.ingestor.counters.rejected };

    const fuzzTopicArb = fc.oneof(
      topicLevelArb.map((level) => `raw/${level}`),
      fc.tuple(topicLevelArb, topicLevelArb).map(([device, metric]) => `sensors/${device}/${metric}`),
    );
    const topics = [
      ...HOSTILE_TOPICS,
      ...HOSTILE_LEVELS.flatMap((level) => [`raw/${level}`, `sensors/${level}/t`, `sensors/d/${level}`]),
      // The 128-character limit of a series name, from both sides.
      `raw/${'a'.repeat(128)}`,
      `raw/${'a'.repeat(129)}`,
      `sensors/${'a'.repeat(126)}/t`,
      `sensors/${'a'.repeat(127)}/t`,
      ...EXTREME_TOPICS.map(({ topic }) => topic),
      ...fc.sample(fuzzTopicArb, { numRuns: E2E_FUZZED_TOPICS, seed: SEED }),
    ];
    const expected = topics.map((topic, index) => ({ topic, value: index + 1, ...expectedOutcome(topic) }));
    const sensor = await publisher(`sensor-f9c-${rand()}`);
    const burst = await publishBurst(
      sensor,
      expected.map(({ topic, value }): BurstMessage => ({ seq: value, topic, payload: `{"value": ${value}, "ts": ${base + value * 1000}}` })),
      { window: 64 },
    );
    await waitFor(
      () => daemon.ingestor.counters.received - receivedBefore >= burst.acked.size,
      60_000,
      `all ${burst.acked.size} acked messages to be received`,
    );

    // What MQTT forbids, each from a client of its own (a refused publish would otherwise be re-sent on reconnect).
    const refused: Array<{ label: string; outcome: string }> = [];
    for (const { label, topic } of BROKER_REFUSED_TOPICS) refused.push({ label, outcome: await publishOnce(mosquitto.url, topic) });
    const receivedAfterRefused = daemon.ingestor.counters.received;
    // The daemon still takes readings, and nothing of the refused publishes reached it.
    await sensor.publishAsync('raw/sentinel', `{"value": 1, "ts": ${base}}`, { qos: 1 });
    await waitFor(() => daemon.readings.latest('sentinel') !== null, 15_000, 'the sentinel reading');
    const receivedAfterSentinel = daemon.ingestor.counters.received;
    const stillConnected = daemon.client.connected;
    const disconnects = under.disconnects();
    const counters = structuredClone(daemon.ingestor.counters);
    const droppedTotal = await dropped.fresh();
    await under.stop();

    const db = new Database(daemon.databasePath, { readonly: true, fileMustExist: true });
    let seriesRows: Array<{ name: string; hex: string }>;
    let valueRows: Array<{ name: string; v: number }>;
    let letterRows: Array<{ hex: string; reason: string }>;
    try {
      seriesRows = db.prepare("SELECT name, hex(name) AS hex FROM series WHERE name NOT IN ('probe.probe', 'sentinel')").all() as typeof seriesRows;
      valueRows = db.prepare('SELECT s.name AS name, r.v AS v FROM readings r JOIN series s ON s.id = r.series_id').all() as typeof valueRows;
      letterRows = db.prepare('SELECT hex(topic) AS hex, reason FROM dead_letters').all() as typeof letterRows;
    } finally {
      db.close();
    }
    const schemaAfter = readSchema(daemon.databasePath);
    const files = strayFiles(under);

    const accepted = expected.filter((entry) => entry.reason === undefined);
    const expectedNames = new Map<string, Set<number>>();
    for (const { series, value } of accepted) {
      if (!expectedNames.has(series!)) expectedNames.set(series!, new Set());
      expectedNames.get(series!)!.add(value);
    }
    const storedValues = new Map<string, Set<number>>();
    for (const { name, v } of valueRows) {
      if (!storedValues.has(name)) storedValues.set(name, new Set());
      storedValues.get(name)!.add(v);
    }
    const hex = (text: string) => Buffer.from(text, 'utf8').toString('hex').toUpperCase();
    const expectedHex = [...expectedNames.keys()].map(hex).sort();
    const storedHex = seriesRows.map((row) => row.hex).sort();
    const lost = accepted.filter(({ series, value }) => !storedValues.get(series!)?.has(value));
    const rejectedExpected = emptyTally();
    for (const { reason } of expected) if (reason) rejectedExpected[reason]++;
    const rejected = Object.fromEntries(REJECTION_REASONS.map((reason) => [reason, counters.rejected[reason] - rejectedBefore[reason]])) as Record<
      RejectionReason,
      number
    >;
    const letterKeys = letterRows.map(({ hex: topicHex, reason }) => `${reason}:${topicHex}`).sort();
    const expectedLetterKeys = expected
      .filter((entry) => entry.reason)
      .map(({ topic, reason }) => `${reason}:${hex(capTopic(deliveredText(topic)))}`)
      .sort();
    const longest = Math.max(...topics.map((topic) => Buffer.byteLength(topic)));

    fuzzReport['F9c topics'] = topics.length + refused.length;
    fuzzReport['F9c accepted series'] = expectedNames.size;
    fuzzReport['F9c schema changes'] = schemaAfter.join('\n') === under.schemaBefore.join('\n') ? 0 : 1;
    fuzzReport['F9c files outside state'] = files.outside.length;
    console.log(`F9c refused before the daemon: ${refused.map(({ label, outcome }) => `${label}: ${outcome}`).join('; ')}`);
    console.log(
      `F9c accepted names include: ${[...expectedNames.keys()]
        .filter((name) => /\.\.|__proto__|constructor|^(CON|nul)$/.test(name))
        .slice(0, 12)
        .join(' ')}`,
    );
    recordFault({
      fault: 'F9c hostile topics and series names',
      mechanism: `${topics.length} QoS 1 topics (traversal, SQL, quotes, bidi, ${longest}-byte and 201-level topics, ${E2E_FUZZED_TOPICS} fuzzed) through 3 topic rules; ${refused.length} forbidden topics from throwaway clients`,
      published: burst.attempted,
      acked: burst.acked.size,
      stored: `${accepted.length} readings in ${expectedNames.size} series`,
      duplicates: counters.duplicates,
      rejected: `${sum(rejected)} (${Object.entries(nonZero(rejected))
        .map(([reason, count]) => `${reason} ${count}`)
        .join(', ')})`,
      brokerDropped: dropped.updates ? droppedTotal : 'unknown',
      lost: lost.length,
      recovery: 'n/a',
      note: `series names byte-identical to the derived ones; every rejected topic dead-lettered verbatim (capped at ${MAX_DEAD_LETTER_TOPIC_CHARS} chars); NUL, wildcards, controls, 202 levels: the broker drops the publisher; 65,536-byte topic: mqtt.js throws; none reached the daemon`,
    });

    assert.equal(burst.acked.size, topics.length, `the broker acked every deliverable topic (${[...burst.failed.values()].slice(0, 3).join('; ')})`);
    assert.equal(receivedAfterRefused - receivedBefore, topics.length, 'every deliverable topic was received once');
    assert.equal(receivedAfterSentinel - receivedAfterRefused, 1, 'of the refused publishes nothing reached the daemon');
    for (const { label, outcome } of refused) assert.notEqual(outcome, 'acked', `${label}: a forbidden topic was accepted by the broker`);
    assert.ok(stillConnected, 'the daemon is still connected');
    assert.equal(disconnects, 0, 'the daemon never lost its connection');
    assert.deepEqual(under.errorLines, [], 'no error was logged');
    assert.deepEqual(storedHex, expectedHex, 'the series table holds exactly the derived names, byte for byte');
    assert.deepEqual(lost.slice(0, 5), [], `${lost.length} accepted readings missing`);
    assert.deepEqual(nonZero(rejected), nonZero(rejectedExpected), 'rejections by reason as derived');
    assert.ok(rejected.bad_series_name > 0 && rejected.unknown_topic > 0);
    assert.deepEqual(letterKeys, expectedLetterKeys, 'every rejected topic is a dead letter, its text verbatim');
    assert.deepEqual(schemaAfter, under.schemaBefore, 'sqlite_schema unchanged');
    assert.deepEqual(files.outside, [], 'no file outside the state directory');
    assert.deepEqual(files.unexpected, [], 'nothing unexpected in the state directory');
    assert.equal(dropped.updates > 0 ? droppedTotal : 0, 0, 'the broker dropped nothing');
    // Names that look like traversal but keep to the safe alphabet are plain text here.
    for (const name of ['a..b', '_..', '__proto__', 'constructor', 'CON']) assert.ok(expectedNames.has(name), `${name} is accepted`);
  });
});
