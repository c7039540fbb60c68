/**
 * The forecast outbox under faults (docs/reliability.md, "Forecasts: the outbox": F18, F3c, and the ACL refusal of "Security"), each against its
 * own private Mosquitto on a free loopback port.
 *
 * How each reported figure is obtained:
 *   published   rows put in the outbox (forecasts issued, or messages enqueued through the drain's API)
 *   acked       rows the broker confirmed with a successful PUBACK (the drain's `published` counter)
 *   stored      distinct messages a subscriber connected straight to the broker (not through the proxy) received
 *   duplicates  deliveries to that subscriber beyond the first per message
 *   rejected    rows the broker refused (PUBACK reason code >= 0x80)
 *   dropped     the broker's `$SYS/broker/publish/messages/dropped`
 *   lost        published − stored − rejected − dropped: must be 0
 *
 * The kill -9 variant runs the publishing side in a child process: this very file, started with
 * FORECASTD_OUTBOX_CHILD set, drains the outbox and reports its progress on stdout until it is killed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import type { ForecastMessage } from '../../src/publish/forecastMessage.js';
import { OutboxDrain } from '../../src/publish/outboxDrain.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { OutboxStore } from '../../src/store/outbox.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { recordFault, secondsText } from '../helpers/faultReport.js';
import { FaultScope } from '../helpers/faultScope.js';
import { MOSQUITTO_BIN, mosquittoAvailable, type MosquittoOptions } from '../helpers/mosquitto.js';
import { startTcpProxy } from '../helpers/tcpProxy.js';
import { capturedLogger, writeHistory, type LogLine } from '../daemon/support.js';
import { FAULTS, FAULTY_WORKER } from '../scheduler/fixtures/faultyWorker.js';

const LONG = process.env.FORECASTD_FAULTS_LONG === '1';
/** Messages in the outbox for F18 (the catalogue's 10k; more in the long run). */
const N = LONG ? 50_000 : 10_000;
const DROPS = LONG ? 20 : 5;
const KILLS = LONG ? 5 : 1;
const MAX_IN_FLIGHT = 20;
const CHILD_ENV = 'FORECASTD_OUTBOX_CHILD';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ChildTask {
  databasePath: string;
  url: string;
  clientId: string;
  /** The test process: the child ends itself when it is gone, so a crashed test leaves no publisher behind. */
  parentPid: number;
}

/** A child that is never killed (the test failed first) ends on its own after this long. */
const CHILD_LIFETIME_MS = 10 * 60_000;

/** A publisher client as the daemon builds it: persistent session (MQTT 5, session expiry), quick reconnects. */
function connectPublisher(url: string, clientId: string): MqttClient {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId,
    clean: false,
    properties: { sessionExpiryInterval: 600 },
    reconnectPeriod: 200,
    connectTimeout: 5000,
    keepalive: 5,
    queueQoSZero: false,
  });
  client.on('error', () => undefined);
  return client;
}

const openOutbox = (databasePath: string): { db: Db; store: OutboxStore } => {
  const { db } = openDatabase({ path: databasePath, synchronous: 'NORMAL' });
  return { db, store: new OutboxStore(db, { maxPending: 10_000_000 }) };
};

const drainFor = (client: MqttClient, store: OutboxStore) =>
  new OutboxDrain({ client, store, qos: 1, maxInFlight: MAX_IN_FLIGHT, keepSettledMs: 3_600_000, log: createLogger('silent') });

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The child's whole life: drain the outbox, print `{"published":n}` as it goes, until killed. */
function runChild(task: ChildTask): void {
  const { store } = openOutbox(task.databasePath);
  const client = connectPublisher(task.url, task.clientId);
  const drain = drainFor(client, store);
  drain.start();
  let reported = 0;
  const startedAt = Date.now();
  setInterval(() => {
    if (!processAlive(task.parentPid) || Date.now() - startedAt > CHILD_LIFETIME_MS) process.exit(2);
    if (drain.counters.published === reported) return;
    reported = drain.counters.published;
    process.stdout.write(`${JSON.stringify({ published: reported, pending: store.pending })}\n`);
  }, 20);
}

/** Subscribes straight at the broker and counts deliveries per message number (the payload is `<label>:<n>`). */
async function countingSubscriber(
  url: string,
  filter: string,
): Promise<{ client: MqttClient; deliveries: Map<number, number>; duplicates(): number }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: uniquePrefix('counter'), reconnectPeriod: 200 });
  const deliveries = new Map<number, number>();
  client.on('message', (_topic, payload) => {
    const n = Number(payload.toString().split(':')[1]);
    deliveries.set(n, (deliveries.get(n) ?? 0) + 1);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { client, deliveries, duplicates: () => [...deliveries.values()].reduce((sum, count) => sum + count - 1, 0) };
}

/** Fills the outbox in one transaction, as N forecasts over 100 retained topics. */
function fillOutbox(databasePath: string, prefix: string, count: number): void {
  const { db, store } = openOutbox(databasePath);
  db.transaction(() => {
    for (let n = 1; n <= count; n++)
      store.enqueue({ topic: `${prefix}/f${n % 100}/forecast`, payload: `${prefix}:${n}`, retain: true, expiresAt: Date.now() + 3_600_000 });
  })();
  db.close();
}

const skip = mosquittoAvailable() ? false : `no Mosquitto binary at ${MOSQUITTO_BIN} (set FORECASTD_MOSQUITTO_BIN)`;
const childTask = process.env[CHILD_ENV];

if (childTask) runChild(JSON.parse(childTask) as ChildTask);
else
  describe('forecast outbox under faults', { skip, timeout: LONG ? 900_000 : 180_000 }, () => {
    const scope = new FaultScope('outbox');
    const broker = (options: MosquittoOptions = {}) => scope.broker(options);
    const tempDir = (label: string) => scope.tempDir(label);
    const track = <T extends MqttClient>(client: T) => scope.track(client);

    after(() => scope.close());

    it(
      `F18: ${N} forecasts drained through a proxy that drops the connection ${DROPS} times: all delivered, duplicates bounded by the in-flight window`,
      { timeout: LONG ? 600_000 : 90_000 },
      async () => {
        const { mosquitto, dropped } = await broker();
        const proxy = await startTcpProxy(mosquitto.port);
        scope.onClose(proxy, () => proxy.close());
        const prefix = uniquePrefix('f18');
        const subscriber = await countingSubscriber(mosquitto.url, `${prefix}/#`);
        track(subscriber.client);
        const databasePath = join(tempDir('f18'), 'forecastd.db');
        fillOutbox(databasePath, prefix, N);

        const { db, store } = openOutbox(databasePath);
        scope.onClose(db, () => db.open && db.close());
        const client = track(connectPublisher(proxy.url, `forecastd-${prefix}`));
        await waitFor(() => client.connected, 10_000, 'the publisher to connect through the proxy');
        const drain = drainFor(client, store);
        const startedAt = performance.now();
        drain.start();

        const inFlightAtDrops: number[] = [];
        for (let drop = 1; drop <= DROPS; drop++) {
          const at = Math.round((N * drop) / (DROPS + 1));
          await waitFor(() => drain.counters.published >= at, 60_000, `${at} PUBACKs before drop ${drop}`);
          // Read and drop in the same turn: no PUBACK can be handled in between.
          inFlightAtDrops.push(drain.inFlightCount);
          proxy.drop();
        }
        await waitFor(() => store.pending === 0, LONG ? 300_000 : 60_000, 'the outbox to drain');
        const drainMs = performance.now() - startedAt;
        await waitFor(() => subscriber.deliveries.size >= N, 20_000, `${N} distinct deliveries`);
        await sleep(300); // a late duplicate, if any, is counted before the figures are read
        const droppedTotal = await dropped.fresh();
        drain.stop();

        const stored = subscriber.deliveries.size;
        const duplicates = subscriber.duplicates();
        const bound = inFlightAtDrops.reduce((sum, count) => sum + count, 0);
        const missing = Array.from({ length: N }, (_, index) => index + 1).filter((n) => !subscriber.deliveries.has(n));
        recordFault({
          fault: 'F18 disconnect while publishing forecasts',
          mechanism: `${N} rows in the outbox; TCP proxy drop() ${DROPS}× mid-drain (in flight at each: ${inFlightAtDrops.join(', ')})`,
          published: N,
          acked: drain.counters.published,
          stored,
          duplicates,
          rejected: 0,
          brokerDropped: dropped.updates ? droppedTotal : 'unknown',
          lost: N - stored - droppedTotal,
          recovery: `drain ${secondsText(drainMs)} (${Math.round(N / (drainMs / 1000))} msg/s)`,
          note: `duplicates are QoS 1 re-sends by mqtt.js's replay of what was in flight at a drop (bound ${bound}); the outbox handed no row over twice (republished ${drain.counters.republished}, lostByClient ${drain.counters.lostByClient}, lateAcks ${drain.counters.lateAcks}); proxy connections ${proxy.accepted}`,
        });
        assert.equal(inFlightAtDrops.filter((count) => count > 0).length, DROPS, 'every drop came with publishes in flight');
        assert.deepEqual(missing.slice(0, 10), [], `not delivered: ${missing.length}`);
        assert.equal(stored, N);
        assert.equal(drain.counters.published, N, 'every row confirmed by a PUBACK');
        assert.deepEqual(store.countsByState(), { pending: 0, published: N, refused: 0, expired: 0, dropped: 0 });
        assert.ok(duplicates <= bound, `duplicates (${duplicates}) at most the messages in flight at the drops (${bound})`);
        assert.equal(drain.counters.lostByClient, 0, 'mqtt.js replayed every in-flight publish before `connect`');
        assert.equal(drain.counters.republished, 0, 'the outbox left the in-flight publishes to that replay');
        assert.ok(proxy.accepted >= DROPS + 1, 'the publisher reconnected after each drop');
        assert.equal(droppedTotal, 0, 'the broker dropped nothing');
      },
    );

    it(
      `F18 kill -9: the publishing process killed mid-drain ${KILLS}×; a fresh publisher on the same database file finishes`,
      { timeout: LONG ? 600_000 : 90_000 },
      async () => {
        const { mosquitto, dropped } = await broker();
        const prefix = uniquePrefix('f18k');
        const subscriber = await countingSubscriber(mosquitto.url, `${prefix}/#`);
        track(subscriber.client);
        const databasePath = join(tempDir('f18k'), 'forecastd.db');
        const total = LONG ? N : 5000;
        fillOutbox(databasePath, prefix, total);
        const task: ChildTask = { databasePath, url: mosquitto.url, clientId: `forecastd-${prefix}`, parentPid: process.pid };
        // Not a test-runner child: without NODE_TEST_CONTEXT it runs as a plain script.
        const { NODE_TEST_CONTEXT: _runnerContext, ...env } = process.env;
        const self = fileURLToPath(import.meta.url);

        const startedAt = performance.now();
        const publishedAtKill: number[] = [];
        for (let kill = 1; kill <= KILLS; kill++) {
          const child = spawn(process.execPath, [self], { env: { ...env, [CHILD_ENV]: JSON.stringify(task) }, stdio: ['ignore', 'pipe', 'pipe'] });
          scope.onClose(child, () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'));
          let stderr = '';
          child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          let progress = { published: 0, pending: total };
          child.stdout.on('data', (chunk: Buffer) => {
            const last = chunk.toString().trim().split('\n').at(-1);
            if (last) progress = JSON.parse(last) as typeof progress;
          });
          const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
          // Kill once this child has confirmed a share of what is left: mid-drain, with publishes in flight.
          const share = Math.max(50, Math.round(progress.pending / (KILLS + 2)));
          await waitFor(() => progress.published >= share || child.exitCode !== null, 60_000, `the child to publish ${share} forecasts`);
          assert.equal(child.exitCode, null, `the child died on its own: ${stderr.slice(-2000)}`);
          child.kill('SIGKILL');
          assert.equal(await exited, 'SIGKILL');
          publishedAtKill.push(progress.published);
        }

        // The restart: a fresh publisher on the same file, same client id.
        const { db, store } = openOutbox(databasePath);
        scope.onClose(db, () => db.open && db.close());
        const pendingAtRestart = store.pending;
        const handedOverAtKill = db.prepare(`SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts > 0`).pluck().get() as number;
        const client = track(connectPublisher(mosquitto.url, `forecastd-${prefix}`));
        const drain = drainFor(client, store);
        const restartedAt = performance.now();
        drain.start();
        await waitFor(() => store.pending === 0, 60_000, 'the resumed drain to empty the outbox');
        const resumeMs = performance.now() - restartedAt;
        await waitFor(() => subscriber.deliveries.size >= total, 20_000, `${total} distinct deliveries`);
        await sleep(300);
        const droppedTotal = await dropped.fresh();
        drain.stop();

        const stored = subscriber.deliveries.size;
        const duplicates = subscriber.duplicates();
        const acked = db.prepare(`SELECT count(*) FROM outbox WHERE state = 'published'`).pluck().get() as number;
        recordFault({
          fault: 'F18 kill -9 of the publisher mid-drain',
          mechanism: `${total} rows in the outbox; SIGKILL of the draining process ${KILLS}× (after ${publishedAtKill.join(', ')} PUBACKs), then a fresh drain on the same SQLite file`,
          published: total,
          acked,
          stored,
          duplicates,
          rejected: 0,
          brokerDropped: dropped.updates ? droppedTotal : 'unknown',
          lost: total - stored - droppedTotal,
          recovery: `restart→drained ${secondsText(resumeMs)} (${pendingAtRestart} left); whole run ${secondsText(performance.now() - startedAt)}`,
          note: `duplicates: rows handed to the broker before a kill whose PUBACK was not recorded (last kill: ${handedOverAtKill}, re-sent as republished ${drain.counters.republished}); the irreducible QoS 1 duplicate, consumers deduplicate by issuedAt`,
        });
        assert.equal(stored, total, 'every row delivered');
        assert.equal(acked, total);
        assert.equal(drain.counters.republished, handedOverAtKill, 'what was in flight at the kill is what was sent again');
        assert.ok(handedOverAtKill <= MAX_IN_FLIGHT, `at most maxInFlight (${MAX_IN_FLIGHT}) rows were in flight at the kill (${handedOverAtKill})`);
        assert.ok(duplicates <= KILLS * MAX_IN_FLIGHT, `duplicates (${duplicates}) at most the in-flight window per kill`);
        assert.equal(droppedTotal, 0);
      },
    );

    /**
     * A daemon whose forecast's training fails on purpose, so that persistence serves it at once: `issue` then
     * publishes through the real path (ForecastJobs → publisher → outbox). `issuedAt` collects every forecast
     * issued, the scheduler's 10-minute ticks included.
     */
    const daemonThrough = async (url: string, stateDir: string, prefix: string, log = createLogger('silent')) => {
      writeHistory(stateDir, 'room.temp', 1);
      const config = parseConfig({
        mqtt: {
          url,
          clientId: `forecastd-${prefix}`,
          baseTopic: `forecastd-${prefix}`,
          keepaliveSeconds: 5,
          reconnectSeconds: 0.2,
          reconnectMaxSeconds: 0.5,
        },
        ingest: { topics: [{ filter: `${prefix}/+/+`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
        storage: { stateDir },
        model: { backend: 'cpu' },
        scheduler: { poolThreads: 1 },
        forecasts: [
          {
            name: FAULTS.throws,
            target: 'room.temp',
            interval: '10m',
            steps: 12,
            horizon: 6,
            training: { onStart: false, epochs: 1, historyDays: 1 },
          },
        ],
      });
      const issuedAt = new Set<string>();
      const daemon = await startDaemon({
        config,
        log,
        trainingWorkerModule: FAULTY_WORKER,
        onForecast: (message) => void issuedAt.add(message.issuedAt),
      });
      scope.onClose(daemon, () => daemon.stop());
      await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect');
      assert.equal(daemon.train(FAULTS.throws), 'started');
      await daemon.trainings.idle(FAULTS.throws);
      return { daemon, issuedAt, topic: `forecastd-${prefix}/${FAULTS.throws}/forecast` };
    };

    /** Issues a forecast with an issuedAt of its own: a later millisecond than any before (each call is a new outbox row). */
    const issueDistinct = async (daemon: Daemon, seen: ReadonlySet<string>): Promise<ForecastMessage> => {
      await sleep(2);
      const before = new Set(seen);
      const message = daemon.issue(FAULTS.throws);
      assert.ok(message, 'persistence serves the forecast whose training failed');
      assert.ok(!before.has(message.issuedAt), 'a new issuedAt');
      return message;
    };

    it('F3c: forecasts issued while a proxy black-holes the daemon all arrive after healing', { timeout: 90_000 }, async () => {
      const { mosquitto, dropped } = await broker();
      const proxy = await startTcpProxy(mosquitto.port);
      scope.onClose(proxy, () => proxy.close());
      const prefix = uniquePrefix('f3c');
      const received = new Map<string, number>();
      const consumer = track(
        await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: uniquePrefix('consumer'), reconnectPeriod: 200 }),
      );
      consumer.on('message', (_topic, payload) => {
        const { issuedAt } = JSON.parse(payload.toString()) as ForecastMessage;
        received.set(issuedAt, (received.get(issuedAt) ?? 0) + 1);
      });
      const { daemon, issuedAt, topic } = await daemonThrough(proxy.url, tempDir('f3c'), prefix);
      await consumer.subscribeAsync(topic, { qos: 1 });

      const before = await issueDistinct(daemon, issuedAt);
      await waitFor(() => received.has(before.issuedAt), 10_000, 'the forecast issued before the partition');

      proxy.blackhole();
      const partitionedAt = performance.now();
      const duringPartition: string[] = [];
      // Right after the black hole the client still believes it is connected: these go into the void, in flight.
      for (let index = 0; index < 3; index++) duringPartition.push((await issueDistinct(daemon, issuedAt)).issuedAt);
      await waitFor(() => !daemon.client.connected, 20_000, 'keepalive to notice the black hole');
      const detectMs = performance.now() - partitionedAt;
      // Offline: these wait in the outbox table.
      for (let index = 0; index < 3; index++) duringPartition.push((await issueDistinct(daemon, issuedAt)).issuedAt);
      const backlog = daemon.publisher.backlog();
      assert.ok(backlog.pending >= 3, `the offline forecasts wait in the outbox (${JSON.stringify(backlog)})`);
      assert.ok(
        duringPartition.every((at) => !received.has(at)),
        'nothing issued in the partition got through',
      );

      proxy.heal();
      const healedAt = performance.now();
      await waitFor(() => duringPartition.every((at) => received.has(at)), 20_000, 'every forecast of the partition after healing');
      const recoveryMs = performance.now() - healedAt;
      // The daemon's own interval ticks (every 10-minute boundary) issue forecasts too, and one can fall at any moment of
      // this test: the failure seen once ("8 issued, 7 arrived") was a tick between this wait and the count below, whose
      // forecast was still on its way. So a tick is issued here on purpose, every run, and each check waits for every
      // forecast issued so far, counted when it is made.
      const lateTick = (await issueDistinct(daemon, issuedAt)).issuedAt;
      const allArrived = () => daemon.publisher.backlog().pending === 0 && [...issuedAt].every((at) => received.has(at));
      await waitFor(allArrived, 10_000, 'the outbox to empty');
      const droppedTotal = await dropped.fresh();

      // The retained forecast is the newest one, whatever order the backlog went out in.
      const late = track(await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: uniquePrefix('late') }));
      let retained: string | null = null;
      late.on('message', (_topic, payload) => (retained = (JSON.parse(payload.toString()) as ForecastMessage).issuedAt));
      await late.subscribeAsync(topic, { qos: 1 });
      await waitFor(() => retained !== null && retained === [...issuedAt].sort().at(-1), 5000, 'the retained forecast to be the newest issued');
      await waitFor(allArrived, 10_000, 'every forecast issued by now to arrive');
      assert.ok(received.has(lateTick), 'the forecast of the tick after healing arrived');

      const counters = daemon.publisher.counters;
      const duplicates = [...received.values()].reduce((sum, count) => sum + count - 1, 0);
      const stored = [...issuedAt].filter((at) => received.has(at)).length;
      recordFault({
        fault: 'F3c partition while publishing forecasts',
        mechanism: `TCP proxy black hole; 3 forecasts issued before keepalive noticed it (${secondsText(detectMs)}), 3 while offline; then heal`,
        published: counters.enqueued,
        acked: counters.published,
        stored,
        duplicates,
        rejected: 0,
        brokerDropped: dropped.updates ? droppedTotal : 'unknown',
        lost: issuedAt.size - stored - droppedTotal,
        recovery: `heal→all delivered ${secondsText(recoveryMs)}`,
        note: `the 3 in flight in the black hole were replayed by mqtt.js after the reconnect, the 3 issued offline came from the outbox table; a duplicate would be a QoS 1 re-send (republished ${counters.republished})`,
      });
      assert.equal(counters.enqueued, issuedAt.size, 'one outbox row per issued forecast');
      assert.equal(stored, issuedAt.size, 'every issued forecast arrived');
      assert.equal(counters.published, counters.enqueued);
      assert.ok(duplicates <= 3, `duplicates (${duplicates}) at most the forecasts in flight when the black hole began`);
      assert.equal(counters.lostByClient, 0);
      assert.equal(droppedTotal, 0);
    });

    /**
     * A broker whose ACL lets forecastd write everything it publishes except the forecast topic (everyone may
     * read it, so a subscriber would see a forecast that got through). `maxQueuedMessages` 0 was the design notes'
     * advice; on Mosquitto 2.0.11 it makes the broker close the connection after every denied publish.
     */
    const refusalScenario = async (label: string, maxQueuedMessages: number) => {
      const prefix = uniquePrefix(label);
      const baseTopic = `forecastd-${prefix}`;
      const dir = tempDir(label);
      const aclPath = join(dir, 'acl');
      writeFileSync(
        aclPath,
        [
          `topic read ${baseTopic}/#`,
          `topic write ${baseTopic}/availability`,
          `topic write ${baseTopic}/status`,
          `topic write ${baseTopic}/+/summary`,
          `topic write ${baseTopic}/+/accuracy`,
          'topic readwrite homeassistant/#',
          'topic read $SYS/#',
          '',
        ].join('\n'),
      );
      const { mosquitto, dropped } = await broker({ maxQueuedMessages, extraConfig: [`acl_file ${aclPath}`, 'log_type debug'] });
      const { log, lines } = capturedLogger();
      const received: string[] = [];
      const consumer = track(await mqtt.connectAsync(mosquitto.url, { protocolVersion: 5, clientId: uniquePrefix('consumer') }));
      consumer.on('message', (_topic, payload) => received.push(payload.toString()));
      const { daemon, issuedAt, topic } = await daemonThrough(mosquitto.url, join(dir, 'state'), prefix, log);
      await consumer.subscribeAsync(topic, { qos: 1 });
      const connects = () => lines.filter((line: LogLine) => line.msg === 'connected to broker').length;
      const connectsBefore = connects();

      const COUNT = 3;
      for (let index = 0; index < COUNT; index++) await issueDistinct(daemon, issuedAt);
      await waitFor(
        () => daemon.publisher.counters.refused >= daemon.publisher.counters.enqueued && daemon.client.connected,
        15_000,
        'every forecast refused',
      );
      await sleep(1500); // time for a retry loop to show, if there were one
      const droppedTotal = await dropped.fresh();
      const counters = { ...daemon.publisher.counters };
      const reconnects = connects() - connectsBefore;
      const denied = mosquitto
        .log()
        .split('\n')
        .filter((line) => line.includes('Denied PUBLISH'));
      const reader = new Database(daemon.databasePath, { readonly: true, fileMustExist: true });
      const attempts = reader.prepare(`SELECT attempts FROM outbox WHERE topic = ?`).pluck().all(topic) as number[];
      reader.close();
      const refusalLines = lines.filter((line) => /refused a forecast/.test(String(line.msg)));
      return {
        daemon,
        topic,
        counters,
        reconnects,
        denied,
        attempts,
        refusalLines,
        received,
        dropped: dropped.updates ? droppedTotal : 'unknown',
        droppedTotal,
      };
    };
    /** The figures both refusal rows report: forecasts enqueued, refused by the broker's ACL, delivered (none). */
    const refusalFigures = (run: Awaited<ReturnType<typeof refusalScenario>>) => ({
      published: run.counters.enqueued,
      acked: run.counters.published,
      stored: run.received.length,
      duplicates: 0,
      rejected: run.counters.refused,
      brokerDropped: run.dropped,
      lost: run.counters.enqueued - run.received.length - run.counters.refused - run.droppedTotal,
      // A refusal is the broker's answer by design, not an outage: nothing to recover from.
      recovery: 'n/a',
    });

    it(
      'ACL refusal: a broker that denies the forecast topic: refused, counted, logged once, not retried; the daemon carries on',
      { timeout: 60_000 },
      async () => {
        // A count limit the test never reaches stands for "no count limit" (0), which misbehaves here (next test).
        const run = await refusalScenario('acl', 1_000_000);
        recordFault({
          fault: 'F17 ACL refuses the forecast topic',
          mechanism: 'Mosquitto acl_file without write on <baseTopic>/+/forecast (max_queued_messages 1000000); MQTT 5 PUBACK reason 135',
          ...refusalFigures(run),
          note: `refused by the broker's ACL, by design: counted (forecastd_outbox_refused_total), ${run.refusalLines.length} log line for the topic, ${run.denied.length} PUBLISH denied for ${run.counters.enqueued} forecasts (no retry), ${run.reconnects} reconnects`,
        });
        assert.ok(run.counters.enqueued >= 3);
        assert.equal(run.counters.refused, run.counters.enqueued, 'every forecast refused');
        assert.equal(run.counters.published, 0);
        assert.deepEqual(
          run.attempts,
          run.attempts.map(() => 1),
          'each refused forecast was sent once',
        );
        assert.equal(run.denied.length, run.counters.enqueued, 'the broker saw each forecast once');
        assert.ok(
          run.denied.every((line) => line.includes(run.topic)),
          'only the forecast topic was denied',
        );
        assert.equal(run.daemon.publisher.backlog().pending, 0, 'nothing waits to be retried');
        assert.equal(run.refusalLines.length, 1, 'one log line for the topic');
        assert.equal(run.refusalLines[0].reasonCode, 135);
        assert.deepEqual(run.received, [], 'the broker delivered nothing');
        assert.equal(run.reconnects, 0, 'no reconnect');
        assert.ok(run.daemon.client.connected);
        assert.ok(run.daemon.issue(FAULTS.throws), 'the daemon still issues forecasts');
      },
    );

    it(
      'ACL refusal with max_queued_messages 0: Mosquitto 2.0.11 drops the connection after each denied publish; still no retry loop',
      { timeout: 60_000 },
      async () => {
        const run = await refusalScenario('acl0', 0);
        recordFault({
          fault: 'F17 ACL refusal, max_queued_messages 0',
          mechanism:
            'as above with max_queued_messages 0 (docs/reliability.md, "Broker settings"): Mosquitto 2.0.11 sends PUBACK 135, then closes the connection',
          ...refusalFigures(run),
          note: `broker quirk: ${run.reconnects} reconnects for ${run.counters.refused} refused forecasts (at most one per denied PUBLISH; ${run.denied.length} denied: mqtt.js re-sends what was in flight behind a refused one); the outbox sent each once (attempts ${[...new Set(run.attempts)].join('/')}); use a large count with max_queued_bytes instead of 0`,
        });
        assert.equal(run.counters.refused, run.counters.enqueued, 'every forecast refused, none lost, none published');
        assert.deepEqual(
          run.attempts,
          run.attempts.map(() => 1),
          'the outbox sent each refused forecast once',
        );
        assert.ok(run.reconnects <= run.denied.length, `at most one reconnect per denied publish (${run.reconnects} for ${run.denied.length})`);
        assert.ok(
          run.denied.every((line) => line.includes(run.topic)),
          'only the forecast topic was denied',
        );
        assert.deepEqual(run.received, []);
        assert.equal(run.daemon.publisher.backlog().pending, 0);
      },
    );
  });
