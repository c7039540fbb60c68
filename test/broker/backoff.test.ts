import assert from 'node:assert/strict';
import { waitFor } from '../helpers/broker.js';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { reconnectDelayMs } from '../../src/broker/backoff.js';
import { createBrokerLink } from '../../src/broker/connection.js';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';

describe('reconnect backoff', () => {
  it('doubles from the base and stops at the cap, with at most half of each step random', () => {
    // random() = 0 gives the lower edge (half the step), random() = 1 the full step.
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6].map((attempt) => reconnectDelayMs(attempt, 1000, 10_000, () => 1)),
      [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000],
    );
    assert.deepEqual(
      [0, 1, 2, 3].map((attempt) => reconnectDelayMs(attempt, 1000, 10_000, () => 0)),
      [500, 1000, 2000, 4000],
    );
  });

  it('never returns more than the cap, whatever the attempt count', () => {
    for (const attempt of [10, 100, 10_000]) assert.ok(reconnectDelayMs(attempt, 2000, 60_000) <= 60_000);
  });

  it('a daemon whose broker is down keeps trying, waiting longer each time', { timeout: 20_000 }, async () => {
    // A port that accepts TCP and closes at once: a broker that is "there" but never answers CONNECT.
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const config = parseConfig({ mqtt: { url: `mqtt://127.0.0.1:${port}`, reconnectSeconds: 0.1, reconnectMaxSeconds: 0.8 } });
    const client = createBrokerLink(config.mqtt, createLogger('silent')).connect();
    const attemptsAt: number[] = [];
    client.on('reconnect', () => attemptsAt.push(Date.now()));
    // Until five attempts, not for a fixed time: 0.1 + 0.2 + 0.4 + 0.8 s of waits (with jitter) on a quiet machine.
    await waitFor(() => attemptsAt.length >= 5, 15_000, 'five reconnect attempts').finally(() => client.end(true));
    server.close();
    const gaps = attemptsAt.slice(1).map((at, index) => at - attemptsAt[index]);
    assert.ok(attemptsAt.length >= 4, `kept reconnecting (${attemptsAt.length} attempts)`);
    assert.ok(gaps.at(-1)! > gaps[0], `later waits are longer: ${gaps.join(', ')} ms`);
    assert.ok(Math.max(...gaps) <= 800 + 150, `no wait exceeds the cap (+ timer slack): ${gaps.join(', ')} ms`);
  });
});
