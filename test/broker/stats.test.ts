/**
 * Broker connection statistics: every attempt counted, each failure classified once (tls, auth, network, other),
 * one error line per kind per interval however often the broker refuses, and SUBACK refusals counted.
 * Real brokers (Mosquitto with TLS, passwords and ACLs) are in test/faults/tls.test.ts; here, small fakes.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { maxAttemptsWithin } from '../../src/broker/backoff.js';
import { BrokerStats, createBrokerLink } from '../../src/broker/connection.js';
import { RateLimitedLog } from '../../src/broker/failureLog.js';
import { classifyConnectFailure } from '../../src/broker/stats.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { waitFor } from '../helpers/broker.js';

type LogLine = Record<string, unknown> & { level: number; msg: string };

function capturingLogger() {
  const lines: LogLine[] = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}

const withCode = (message: string, code: string | number) => Object.assign(new Error(message), { code });

describe('classifyConnectFailure', () => {
  it('tells certificate problems, refused logins and network faults apart', () => {
    assert.equal(classifyConnectFailure(withCode('certificate has expired', 'CERT_HAS_EXPIRED')), 'tls');
    assert.equal(classifyConnectFailure(withCode('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN')), 'tls');
    assert.equal(classifyConnectFailure(withCode("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID')), 'tls');
    assert.equal(classifyConnectFailure(withCode('tlsv13 alert certificate required', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')), 'tls');
    assert.equal(classifyConnectFailure(withCode('Connection refused: Not authorized', 0x87)), 'auth');
    assert.equal(classifyConnectFailure(withCode('Connection refused: Bad User Name or Password', 0x86)), 'auth');
    assert.equal(classifyConnectFailure(withCode('Connection refused: Not authorized', 5)), 'auth');
    assert.equal(classifyConnectFailure(withCode('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED')), 'network');
    assert.equal(classifyConnectFailure(new Error('connack timeout')), 'network');
    assert.equal(classifyConnectFailure(undefined), 'network', 'a socket closed without an error');
    assert.equal(classifyConnectFailure(withCode('Connection refused: Server busy', 0x89)), 'other');
    assert.equal(classifyConnectFailure(new Error('something else')), 'other');
  });
});

describe('RateLimitedLog', () => {
  it('logs the first failure of a kind at once, then one line per interval with the count since the last line', () => {
    const { log, lines } = capturingLogger();
    let now = 0;
    const limited = new RateLimitedLog(log, 60_000, () => now);
    const logged: boolean[] = [];
    // One failure every 5 s for 3 minutes, of one kind, plus a single failure of another kind.
    for (now = 0; now < 180_000; now += 5_000) logged.push(limited.error('connect:auth', { reason: 'auth' }, 'refused'));
    limited.error('connect:tls', { reason: 'tls' }, 'tls');
    const authLines = lines.filter((line) => line.reason === 'auth');
    assert.equal(authLines.length, 3, 'at 0 s, 60 s and 120 s');
    assert.deepEqual(
      authLines.map((line) => line.occurrences),
      [1, 12, 12],
    );
    assert.ok(
      authLines.every((line) => line.level === 50),
      'error level',
    );
    assert.equal(logged.filter(Boolean).length, 3);
    assert.equal(lines.filter((line) => line.reason === 'tls').length, 1, 'another kind is not held back by the first');
    // 11 auth failures since the line at 120 s, never logged: reset() reports them.
    assert.equal(limited.reset(), 11);
    assert.equal(limited.error('connect:auth', {}, 'refused again'), true, 'after a reset the first failure is logged at once');
  });
});

describe('maxAttemptsWithin', () => {
  it('counts the attempts the fastest backoff schedule can start within a window', () => {
    // Starts at 0, 0.5, 1, 2, 4, 8 s (first retry after the base, then the low edge of each jittered wait).
    assert.equal(maxAttemptsWithin(5_000, 500, 60_000), 5);
    assert.equal(maxAttemptsWithin(8_000, 500, 60_000), 6);
    assert.equal(maxAttemptsWithin(400, 500, 60_000), 1);
    // With the cap, the waits stop growing: 0, 1, 2, then every 1.5 s (half of the 3 s cap) at least.
    assert.equal(maxAttemptsWithin(10_000, 1_000, 3_000), 8);
  });
});

/** A fake broker on a loopback port: `answer` gets each complete MQTT packet (type, body) and the socket. */
async function fakeBroker(answer: (type: number, body: Buffer, socket: Socket, flags: number) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        // Remaining length: a variable-length integer of up to 4 bytes after the first byte.
        let length = 0;
        let offset = 1;
        let multiplier = 1;
        for (; offset < Math.min(pending.length, 5); offset++) {
          length += (pending[offset] & 0x7f) * multiplier;
          multiplier *= 128;
          if ((pending[offset] & 0x80) === 0) break;
        }
        if (offset >= pending.length || pending.length < offset + 1 + length) return;
        const body = pending.subarray(offset + 1, offset + 1 + length);
        answer(pending[0] >> 4, body, socket, pending[0] & 0x0f);
        pending = pending.subarray(offset + 1 + length);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const CONNECT = 1;
const SUBSCRIBE = 8;
const PUBLISH = 3;
const PINGREQ = 12;

describe('broker link statistics', () => {
  it('counts every refused login as an auth failure and logs it once, however often it is retried', { timeout: 20_000 }, async () => {
    // MQTT 3.1.1 CONNACK with return code 5: not authorized.
    const { url, server } = await fakeBroker((type, _body, socket) => {
      if (type === CONNECT) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x05]));
    });
    const { log, lines } = capturingLogger();
    const stats = new BrokerStats();
    const config = parseConfig({
      mqtt: { url, protocolVersion: 4, username: 'someone', password: 'not-this-one', reconnectSeconds: 0.1, reconnectMaxSeconds: 0.2 },
    });
    const client = createBrokerLink(config.mqtt, log, { stats }).connect();
    try {
      await waitFor(() => stats.failures.auth >= 4, 15_000, 'four refused logins');
    } finally {
      client.end(true);
      server.close();
    }
    assert.equal(stats.connects, 0);
    assert.equal(stats.failuresTotal, stats.failures.auth, 'no attempt counted under another reason');
    // The attempt running when the client was ended is not a failure; every other one is, exactly once.
    assert.ok(stats.attempts - stats.failures.auth <= 1, `${stats.attempts} attempts, ${stats.failures.auth} failures`);
    assert.equal(stats.lastFailure?.reason, 'auth');
    assert.match(stats.lastFailure?.message ?? '', /not authori[sz]ed/i);
    const errorLines = lines.filter((line) => line.level >= 50);
    assert.equal(errorLines.length, 1, `one error line for ${stats.failures.auth} failures: ${JSON.stringify(errorLines)}`);
    assert.equal(errorLines[0].reason, 'auth');
    assert.match(String(errorLines[0].hint), /username/);
    assert.ok(lines.filter((line) => line.msg === 'broker connection attempt failed').length >= 4, 'each failure is at level debug');
    assert.ok(!lines.some((line) => JSON.stringify(line).includes('not-this-one')), 'the password is in no line');
  });

  it('counts a broker that hangs up before its CONNACK as a network failure', { timeout: 20_000 }, async () => {
    const { url, server } = await fakeBroker((_type, _body, socket) => socket.destroy());
    const stats = new BrokerStats();
    const config = parseConfig({ mqtt: { url, protocolVersion: 4, reconnectSeconds: 0.1, reconnectMaxSeconds: 0.2 } });
    const client = createBrokerLink(config.mqtt, createLogger('silent'), { stats }).connect();
    try {
      await waitFor(() => stats.failures.network >= 3, 15_000, 'three failed attempts');
    } finally {
      client.end(true);
      server.close();
    }
    assert.equal(stats.failures.auth + stats.failures.tls + stats.failures.other, 0);
    assert.equal(stats.connects, 0);
  });

  it('backs off from a broker that drops every connection right after accepting it, and logs that once', { timeout: 20_000 }, async () => {
    // Accepts the login, acknowledges the `online` message, then hangs up: what Mosquitto 2.0.11 with
    // max_queued_messages 0 does to a client whose publish its ACL denies.
    const { url, server } = await fakeBroker((type, body, socket, flags) => {
      if (type === CONNECT) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
      else if (type === PUBLISH && (flags & 0x06) !== 0) {
        const messageIdAt = 2 + body.readUInt16BE(0);
        socket.write(Buffer.from([0x40, 0x02, body[messageIdAt], body[messageIdAt + 1]]));
        socket.end();
      }
    });
    const { log, lines } = capturingLogger();
    const stats = new BrokerStats();
    const reconnectSeconds = 0.1;
    const reconnectMaxSeconds = 1;
    const config = parseConfig({ mqtt: { url, protocolVersion: 4, reconnectSeconds, reconnectMaxSeconds } });
    const startedAt = Date.now();
    const client = createBrokerLink(config.mqtt, log, { stats }).connect();
    try {
      // Five: reconnecting at the base period would get there in 0.4 s, where the backoff allows four attempts.
      await waitFor(() => stats.connectionsLost >= 5, 15_000, 'five dropped connections');
    } finally {
      client.end(true);
      server.close();
    }
    const elapsedMs = Date.now() - startedAt;
    const bound = maxAttemptsWithin(elapsedMs, reconnectSeconds * 1000, reconnectMaxSeconds * 1000);
    assert.ok(stats.attempts <= bound, `${stats.attempts} attempts in ${elapsedMs} ms; the backoff allows ${bound}`);
    assert.equal(stats.failuresTotal, 0, 'every attempt was accepted');
    const flapping = lines.filter((line) => line.kind === 'flapping');
    assert.equal(flapping.length, 1, 'one error line for all the dropped connections');
    assert.equal(flapping[0].level, 50);
  });

  it('counts an MQTT 5 DISCONNECT "session taken over" (0x8E) and logs it once with what to change', { timeout: 20_000 }, async () => {
    // Accepts the login, acknowledges the `online` message, then says another client took the session, as a broker
    // does when a second process connects with the same client id.
    const { url, server } = await fakeBroker((type, body, socket, flags) => {
      if (type === CONNECT) socket.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]));
      else if (type === PUBLISH && (flags & 0x06) !== 0) {
        const messageIdAt = 2 + body.readUInt16BE(0);
        socket.write(Buffer.from([0x40, 0x02, body[messageIdAt], body[messageIdAt + 1]]));
        socket.end(Buffer.from([0xe0, 0x02, 0x8e, 0x00]));
      }
    });
    const { log, lines } = capturingLogger();
    const stats = new BrokerStats();
    const config = parseConfig({ mqtt: { url, protocolVersion: 5, clientId: 'twin', reconnectSeconds: 0.1, reconnectMaxSeconds: 0.4 } });
    const client = createBrokerLink(config.mqtt, log, { stats }).connect();
    try {
      await waitFor(() => stats.sessionTakeovers >= 3, 15_000, 'three takeovers');
    } finally {
      client.end(true);
      server.close();
    }
    const takeovers = lines.filter((line) => line.kind === 'takeover');
    assert.equal(takeovers.length, 1, 'one error line for all the takeovers');
    assert.equal(takeovers[0].level, 50);
    assert.equal(takeovers[0].clientId, 'twin');
    assert.match(String(takeovers[0].hint), /clientId/);
    assert.equal(stats.failuresTotal, 0, 'every attempt was accepted');
  });

  it('counts the topic filters a SUBACK refuses, and a lost connection once', { timeout: 20_000 }, async () => {
    let sockets = 0;
    const { url, server } = await fakeBroker((type, body, socket, flags) => {
      if (type === PUBLISH && (flags & 0x06) !== 0) {
        // The `online` availability message (QoS 1): mqtt.js holds back its next `connect` event until it is acknowledged.
        const messageIdAt = 2 + body.readUInt16BE(0);
        socket.write(Buffer.from([0x40, 0x02, body[messageIdAt], body[messageIdAt + 1]]));
      } else if (type === CONNECT) {
        sockets++;
        socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
      } else if (type === SUBSCRIBE) {
        // Refuse the second filter of two (3.1.1 SUBACK: 0x80 = failure), then drop the connection.
        socket.write(Buffer.from([0x90, 0x04, body[0], body[1], 0x01, 0x80]));
        if (sockets === 1) setTimeout(() => socket.destroy(), 50);
      } else if (type === PINGREQ) socket.write(Buffer.from([0xd0, 0x00]));
    });
    const stats = new BrokerStats();
    const config = parseConfig({ mqtt: { url, protocolVersion: 4, reconnectSeconds: 0.1, reconnectMaxSeconds: 0.2 } });
    const client = createBrokerLink(config.mqtt, createLogger('silent'), { stats }).connect();
    const refusedCodes: number[] = [];
    client.on('connect', () =>
      client.subscribe(['allowed/#', 'forbidden/#'], { qos: 1 }, (_error, _granted, suback) => {
        for (const code of suback?.granted ?? []) if (typeof code === 'number' && code >= 0x80) refusedCodes.push(code);
      }),
    );
    try {
      await waitFor(() => stats.connects >= 2 && stats.refusals.subscribe >= 2, 15_000, 'a reconnect and its second SUBACK');
    } finally {
      client.end(true);
      server.close();
    }
    assert.equal(stats.refusals.subscribe, refusedCodes.length, 'one refusal per refused filter, as the subscriber saw them');
    assert.equal(stats.connectionsLost, 1);
    assert.equal(stats.failuresTotal, 0, 'a dropped connection is not a failed attempt');
  });
});
