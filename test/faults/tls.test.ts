/**
 * Secure connections (issue 3) against a private Mosquitto with TLS: mqtts:// with a CA file, a login whose
 * password comes from FORECASTD_MQTT_PASSWORD or mqtt.passwordFile, and a client certificate. Refused
 * logins and untrusted brokers keep the daemon running with bounded reconnection attempts, and the
 * password never reaches the log, even at level debug.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { parseConfig } from '../../src/config/load.js';
import { startDaemon, type Daemon } from '../../src/daemon/daemon.js';
import { createLogger } from '../../src/log.js';
import { uniquePrefix, waitFor } from '../helpers/broker.js';
import { mosquittoAvailable, startMosquitto, type PrivateMosquitto } from '../helpers/mosquitto.js';

const MOSQUITTO_PASSWD = process.env.FORECASTD_MOSQUITTO_PASSWD_BIN ?? 'mosquitto_passwd';

function onPath(bin: string): boolean {
  const probe = spawnSync('sh', ['-c', `command -v "$0"`, bin], { encoding: 'utf8' });
  return probe.status === 0 && probe.stdout.trim() !== '';
}

const missing = [
  mosquittoAvailable() ? null : 'mosquitto',
  onPath(MOSQUITTO_PASSWD) ? null : 'mosquitto_passwd',
  onPath('openssl') ? null : 'openssl',
].filter((name): name is string => name !== null);
const skip = missing.length > 0 ? `needs ${missing.join(', ')}` : false;

function run(bin: string, args: string[], cwd: string): void {
  const result = spawnSync(bin, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${result.status}):\n${result.stderr}`);
}

/** A CA, with a key and a certificate it signed for `name` (extensions in `ext`). */
function signedPair(dir: string, ca: string, name: string, subject: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
  run('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  run('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.crt`, '-days', '2', '-sha256', '-extfile', `${name}.ext`], dir);
}

function makeCa(dir: string, name: string): void {
  run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2',
    '-sha256', '-subj', `/CN=forecastd test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
}

/** Every log line of every daemon in this file, at level debug. */
const logLines: string[] = [];
const log = createLogger('debug', { write: (line: string) => void logLines.push(line) });

describe('TLS and broker authentication', { skip, timeout: 60_000 }, () => {
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const wrongPassword = `wrong-${randomBytes(12).toString('hex')}`;
  let pki: string;
  let auth: PrivateMosquitto; // TLS + password file, no anonymous clients
  let mutual: PrivateMosquitto; // TLS + require_certificate
  let sensor: MqttClient;
  const daemons: Daemon[] = [];
  const stateDirs: string[] = [];
  const file = (name: string) => join(pki, name);
  const mqttsUrl = (broker: PrivateMosquitto) => `mqtts://127.0.0.1:${broker.port}`;

  before(async () => {
    pki = mkdtempSync(join(tmpdir(), 'forecastd-tls-'));
    makeCa(pki, 'ca');
    makeCa(pki, 'other-ca');
    signedPair(pki, 'ca', 'server', '/CN=localhost',
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment');
    signedPair(pki, 'ca', 'client', '/CN=forecastd',
      'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment');
    run(MOSQUITTO_PASSWD, ['-b', '-c', file('passwd'), 'forecastd', password], pki);
    writeFileSync(file('password.txt'), `${password}\n`);

    const tls = [`cafile ${file('ca.crt')}`, `certfile ${file('server.crt')}`, `keyfile ${file('server.key')}`];
    auth = await startMosquitto({ listenerConfig: tls, allowAnonymous: false, extraConfig: [`password_file ${file('passwd')}`] });
    mutual = await startMosquitto({ listenerConfig: [...tls, 'require_certificate true'] });

    sensor = await mqtt.connectAsync(mqttsUrl(auth), {
      protocolVersion: 5, clientId: uniquePrefix('tls-sensor'), ca: readFileSync(file('ca.crt')),
      username: 'forecastd', password, connectTimeout: 5000, reconnectPeriod: 500,
    });
  });

  after(async () => {
    await sensor?.endAsync().catch(() => undefined);
    for (const daemon of daemons) await daemon.stop().catch(() => undefined);
    await auth?.close();
    await mutual?.close();
    for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
    if (pki) rmSync(pki, { recursive: true, force: true });
  });

  async function daemonWith(mqttOptions: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
    const prefix = uniquePrefix('tls');
    const stateDir = mkdtempSync(join(tmpdir(), 'forecastd-tls-state-'));
    stateDirs.push(stateDir);
    const config = parseConfig({
      mqtt: { protocolVersion: 5, clientId: `forecastd-${prefix}`, baseTopic: `forecastd-test-${prefix}`, reconnectSeconds: 0.5, ...mqttOptions },
      ingest: { topics: [{ filter: `${prefix}/#`, pattern: `${prefix}/{device}/{metric}`, series: '{device}.{metric}' }] },
      storage: { stateDir },
    }, '(tls test)', env);
    const daemon = await startDaemon({ config, log });
    daemons.push(daemon);
    const events = { errors: 0, reconnects: 0, connects: 0, messages: new Set<string>() };
    daemon.client.on('error', (error) => {
      events.errors++;
      events.messages.add(error.message);
    });
    daemon.client.on('reconnect', () => events.reconnects++);
    daemon.client.on('connect', () => events.connects++);
    return { daemon, prefix, events };
  }

  async function assertStoresReading(daemon: Daemon, prefix: string, publisher: MqttClient = sensor) {
    await waitFor(() => daemon.client.connected, 10_000, 'the daemon to connect over TLS');
    // The subscription follows the CONNACK; publish until the daemon has it.
    const ts = Date.now() - 1000;
    const deadline = Date.now() + 10_000;
    while (daemon.readings.latest('probe.value')?.ts !== ts) {
      assert.ok(Date.now() < deadline, 'the reading published over TLS was not stored within 10 s');
      await publisher.publishAsync(`${prefix}/probe/value`, JSON.stringify({ value: 21.5, ts }), { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(daemon.readings.latest('probe.value')?.value, 21.5);
  }

  /** Watches a daemon that must never connect: it keeps trying, boundedly, and keeps running. */
  async function assertRefused(started: Awaited<ReturnType<typeof daemonWith>>, what: string, reason: RegExp) {
    const { daemon, events } = started;
    await new Promise((resolve) => setTimeout(resolve, 5000));
    assert.equal(daemon.client.connected, false, `${what}: the daemon must not connect`);
    assert.equal(events.connects, 0, `${what}: no connect event`);
    const messages = [...events.messages];
    assert.ok(messages.some((message) => reason.test(message)), `${what}: refused for the expected reason (errors: ${JSON.stringify(messages)})`);
    assert.ok(events.reconnects < 10, `${what}: reconnect backoff keeps attempts bounded (${events.reconnects} in 5 s)`);
    assert.ok(!daemon.client.disconnecting, `${what}: the client has not given up`);
    // The daemon is still alive and serving its store.
    assert.equal(daemon.readings.latest('probe.value') ?? null, null);
  }

  it('connects with a CA file and a password from FORECASTD_MQTT_PASSWORD, and stores a reading', async () => {
    const { daemon, prefix } = await daemonWith(
      { url: mqttsUrl(auth), caFile: file('ca.crt'), username: 'forecastd' },
      { FORECASTD_MQTT_PASSWORD: password },
    );
    await assertStoresReading(daemon, prefix);
  });

  it('connects with the password from mqtt.passwordFile', async () => {
    const { daemon, prefix } = await daemonWith({ url: mqttsUrl(auth), caFile: file('ca.crt'), username: 'forecastd', passwordFile: file('password.txt') });
    await assertStoresReading(daemon, prefix);
  });

  it('is refused with a wrong password and with a CA that did not sign the broker certificate, without crashing', async () => {
    const [wrongLogin, wrongCa] = await Promise.all([
      daemonWith({ url: mqttsUrl(auth), caFile: file('ca.crt'), username: 'forecastd' }, { FORECASTD_MQTT_PASSWORD: wrongPassword }),
      daemonWith({ url: mqttsUrl(auth), caFile: file('other-ca.crt'), username: 'forecastd' }, { FORECASTD_MQTT_PASSWORD: password }),
    ]);
    await Promise.all([
      assertRefused(wrongLogin, 'wrong password', /not authori[sz]ed|bad user ?name or password/i),
      assertRefused(wrongCa, 'wrong CA', /self.signed certificate|unable to verify|certificate/i),
    ]);
    assert.ok(
      logLines.some((line) => /broker error/.test(line) && /self.signed certificate|unable to verify/i.test(line)),
      'the TLS verification failure is logged',
    );
  });

  it('with require_certificate: connects with certFile + keyFile and is refused without them', async () => {
    const withCert = await daemonWith({ url: mqttsUrl(mutual), caFile: file('ca.crt'), certFile: file('client.crt'), keyFile: file('client.key') });
    const withoutCert = await daemonWith({ url: mqttsUrl(mutual), caFile: file('ca.crt') });
    const certSensor = await mqtt.connectAsync(mqttsUrl(mutual), {
      protocolVersion: 5, clientId: uniquePrefix('tls-cert-sensor'), ca: readFileSync(file('ca.crt')),
      cert: readFileSync(file('client.crt')), key: readFileSync(file('client.key')), connectTimeout: 5000,
    });
    try {
      await assertStoresReading(withCert.daemon, withCert.prefix, certSensor);
      await assertRefused(withoutCert, 'no client certificate', /certificate required|handshake|alert/i);
    } finally {
      await certSensor.endAsync().catch(() => undefined);
    }
  });

  it('never writes the password (right or wrong) to the log, even at level debug', () => {
    assert.ok(logLines.length > 0, 'the daemons logged something');
    assert.ok(logLines.some((line) => /connected to broker/.test(line)));
    for (const secret of [password, wrongPassword]) {
      const leaks = logLines.filter((line) => line.includes(secret));
      assert.deepEqual(leaks, [], `the password appears in ${leaks.length} log line(s)`);
    }
  });
});
