/**
 * A small TCP proxy between forecastd and a test broker, for network partitions (docs/reliability.md, F3 and F18:
 * `tc netem` is not available on these machines).
 *
 * - drop():      destroys every open connection (both sides see a reset / close at once), as when a link dies.
 * - blackhole(): keeps the sockets open but forwards nothing in either direction, as when a router silently
 *                loses packets: only keepalive can notice. New connections are accepted and then starve too.
 * - refuse():    new connections are closed as soon as they are accepted (the broker "is down").
 * - shape():     a slow link (F3c): each chunk arrives `latencyMs` late, in order, and each direction carries at
 *                most `bytesPerSecond`. Connections stay up; only timing changes.
 * - heal():      back to forwarding at full speed; black-holed connections are destroyed (their buffered bytes are
 *                stale, and a real black hole would have lost them), so the client reconnects. Bytes a slow link
 *                still holds are delivered at once, in order.
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
  /** Bytes forwarded over the connections open now, by direction. */
  readonly forwardedBytes: { toBroker: number; toClient: number };
  drop(): void;
  blackhole(): void;
  /** A slow link from now on, for new and open connections (missing fields: no delay, no limit). */
  shape(link: Partial<LinkShape>): void;
  refuse(): void;
  heal(): void;
  close(): Promise<void>;
}

export interface LinkShape {
  /** One-way delay added to every chunk, in each direction. */
  latencyMs: number;
  /** Bandwidth of each direction; Infinity for no limit. */
  bytesPerSecond: number;
}

const FULL_SPEED: LinkShape = { latencyMs: 0, bytesPerSecond: Infinity };

/** The longest a throttled link sends in one write, so that a large chunk trickles rather than lands at once. */
const THROTTLE_SLICE_MS = 50;

/**
 * One direction of a connection: writes to `target` at once when the link is at full speed and nothing is queued,
 * else queues each chunk with the time it may leave (latency) and sends it in slices no faster than the bandwidth.
 */
class Direction {
  private queue: Array<{ chunk: Buffer; readyAt: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the throttled link has finished sending what it was given (performance.now() time). */
  private busyUntil = 0;
  forwardedBytes = 0;

  constructor(
    private readonly target: Socket,
    private readonly shape: () => LinkShape,
  ) {}

  send(chunk: Buffer): void {
    const { latencyMs, bytesPerSecond } = this.shape();
    if (this.queue.length === 0 && latencyMs === 0 && bytesPerSecond === Infinity) {
      this.write(chunk);
      return;
    }
    this.queue.push({ chunk, readyAt: performance.now() + latencyMs });
    this.pump();
  }

  /** Sends what is queued now, whatever its time (the link was healed). */
  flush(): void {
    for (const item of this.queue) item.readyAt = 0;
    this.busyUntil = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pump();
  }

  clear(): void {
    this.queue = [];
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private write(chunk: Buffer): void {
    this.forwardedBytes += chunk.length;
    this.target.write(chunk);
  }

  private pump(): void {
    if (this.timer) return;
    for (;;) {
      const head = this.queue[0];
      if (!head) return;
      const now = performance.now();
      const { bytesPerSecond } = this.shape();
      const waitMs = Math.max(head.readyAt - now, bytesPerSecond === Infinity ? 0 : this.busyUntil - now);
      if (waitMs > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, Math.ceil(waitMs));
        return;
      }
      if (bytesPerSecond === Infinity) {
        this.queue.shift();
        this.write(head.chunk);
        continue;
      }
      const slice = head.chunk.subarray(0, Math.max(1, Math.floor((bytesPerSecond * THROTTLE_SLICE_MS) / 1000)));
      head.chunk = head.chunk.subarray(slice.length);
      if (head.chunk.length === 0) this.queue.shift();
      this.busyUntil = Math.max(this.busyUntil, now) + (slice.length / bytesPerSecond) * 1000;
      this.write(slice);
    }
  }
}

interface Pair {
  client: Socket;
  upstream: Socket;
  toBroker: Direction;
  toClient: Direction;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let shape: LinkShape = FULL_SPEED;
  let accepted = 0;

  const destroy = (pair: Pair) => {
    pair.toBroker.clear();
    pair.toClient.clear();
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
    const currentShape = () => shape;
    const pair: Pair = { client, upstream, toBroker: new Direction(upstream, currentShape), toClient: new Direction(client, currentShape) };
    pairs.add(pair);
    // Forward by hand rather than pipe(): a black hole must swallow bytes, not buffer them for later.
    client.on('data', (chunk: Buffer) => {
      if (mode === 'pass') pair.toBroker.send(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (mode === 'pass') pair.toClient.send(chunk);
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
    get forwardedBytes() {
      let toBroker = 0;
      let toClient = 0;
      for (const pair of pairs) {
        toBroker += pair.toBroker.forwardedBytes;
        toClient += pair.toClient.forwardedBytes;
      }
      return { toBroker, toClient };
    },
    drop() {
      for (const pair of [...pairs]) destroy(pair);
    },
    blackhole() {
      mode = 'blackhole';
      // What a slow link still held goes into the hole too.
      for (const pair of pairs) {
        pair.toBroker.clear();
        pair.toClient.clear();
      }
    },
    shape(link: Partial<LinkShape>) {
      shape = { ...FULL_SPEED, ...link };
    },
    refuse() {
      mode = 'refuse';
      for (const pair of [...pairs]) destroy(pair);
    },
    heal() {
      if (mode === 'blackhole') for (const pair of [...pairs]) destroy(pair);
      mode = 'pass';
      shape = FULL_SPEED;
      for (const pair of pairs) {
        pair.toBroker.flush();
        pair.toClient.flush();
      }
    },
    close() {
      for (const pair of [...pairs]) destroy(pair);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
