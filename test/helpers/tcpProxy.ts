/**
 * A small TCP proxy between forecastd and a test broker, for network partitions (reliability.md §6, F3/F18:
 * `tc netem` is not available on these machines).
 *
 * - drop():      destroys every open connection (both sides see a reset / close at once), as when a link dies.
 * - blackhole(): keeps the sockets open but forwards nothing in either direction, as when a router silently
 *                loses packets: only keepalive can notice. New connections are accepted and then starve too.
 * - refuse():    new connections are closed as soon as they are accepted (the broker "is down").
 * - heal():      back to forwarding; black-holed connections are destroyed (their buffered bytes are stale, and
 *                a real black hole would have lost them), so the client reconnects.
 */
import { createServer, connect as netConnect, type Socket } from 'node:net';

export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export interface TcpProxy {
  readonly port: number;
  /** mqtt://127.0.0.1:<port> */
  readonly url: string;
  readonly mode: ProxyMode;
  /** Connections accepted so far (a reconnect storm shows here). */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  drop(): void;
  blackhole(): void;
  refuse(): void;
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let accepted = 0;

  const destroy = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream.destroy();
    pairs.delete(pair);
  };

  const server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = netConnect({ host: targetHost, port: targetPort });
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    // Forward by hand rather than pipe(): a black hole must swallow bytes, not buffer them for later.
    client.on('data', (chunk) => {
      if (mode === 'pass') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (mode === 'pass') client.write(chunk);
    });
    const end = () => destroy(pair);
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    drop() {
      for (const pair of [...pairs]) destroy(pair);
    },
    blackhole() {
      mode = 'blackhole';
    },
    refuse() {
      mode = 'refuse';
      for (const pair of [...pairs]) destroy(pair);
    },
    heal() {
      if (mode === 'blackhole') for (const pair of [...pairs]) destroy(pair);
      mode = 'pass';
    },
    close() {
      for (const pair of [...pairs]) destroy(pair);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
