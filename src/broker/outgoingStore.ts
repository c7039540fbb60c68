/**
 * mqtt.js's outgoing store (the QoS 1 and 2 packets waiting for their acknowledgement), except that a PUBLISH sent
 * again after a reconnect carries the message expiry it has left, not the one it was first sent with.
 *
 * Why: a forecast is published with an MQTT 5 message expiry that ends at its horizon. mqtt.js's own store replays
 * an unacknowledged packet exactly as it was first written, so a forecast held through a two-hour outage would reach
 * the broker with its full two hours still to live and be retained past its horizon. MQTT 5 has the receiver count
 * the expiry down from when it gets the message (3.3.2.3.3), so the sender has to hand over what is left.
 *
 * A packet whose expiry has run out is still sent, with one second left: a resumed session must resend every
 * unacknowledged PUBLISH under its packet id (MQTT 5, 4.4), and one second is the shortest expiry the protocol has.
 */
import { Readable } from 'node:stream';
import type { IStore } from 'mqtt';

type Packet = Parameters<IStore['put']>[0];
type PacketCallback = Parameters<IStore['get']>[1];

interface Held {
  packet: Packet;
  /** When mqtt.js stored it, by `elapsedMs` (monotonic: a wall clock step must not age a message). */
  storedAtMs: number;
}

/** `packet` with its message expiry reduced by `heldMs`, to one second at the least; other packets unchanged. */
export function withRemainingExpiry(packet: Packet, heldMs: number): Packet {
  if (packet.cmd !== 'publish') return packet;
  const expirySeconds = packet.properties?.messageExpiryInterval;
  if (expirySeconds === undefined) return packet;
  const remainingSeconds = Math.max(1, Math.ceil((expirySeconds * 1000 - heldMs) / 1000));
  return { ...packet, properties: { ...packet.properties, messageExpiryInterval: remainingSeconds } };
}

export class ExpiryAwareStore implements IStore {
  private readonly held = new Map<number, Held>();

  /** `elapsedMs` is a monotonic clock in milliseconds; tests pass their own. */
  constructor(private readonly elapsedMs: () => number = () => performance.now()) {}

  /** Number of packets waiting for their acknowledgement. */
  get size(): number {
    return this.held.size;
  }

  put(packet: Packet, cb: () => void): this {
    if (packet.messageId !== undefined) this.held.set(packet.messageId, { packet, storedAtMs: this.elapsedMs() });
    cb?.();
    return this;
  }

  /** The packets to send again after a reconnect, in the order they were stored, each with the expiry it has left. */
  createStream(): ReturnType<IStore['createStream']> {
    const now = this.elapsedMs();
    const packets = [...this.held.values()].map(({ packet, storedAtMs }) => withRemainingExpiry(packet, now - storedAtMs));
    // mqtt.js reads this with read(1), 'readable', 'end' and destroy(), which node's Readable has like readable-stream's.
    return Readable.from(packets, { objectMode: true }) as unknown as ReturnType<IStore['createStream']>;
  }

  del(packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    const held = packet.messageId === undefined ? undefined : this.held.get(packet.messageId);
    if (held) {
      this.held.delete(packet.messageId!);
      cb(undefined, held.packet);
    } else cb?.(new Error('missing packet'));
    return this;
  }

  get(packet: Pick<Packet, 'messageId'>, cb: PacketCallback): this {
    const held = packet.messageId === undefined ? undefined : this.held.get(packet.messageId);
    if (held) cb(undefined, held.packet);
    else cb?.(new Error('missing packet'));
    return this;
  }

  /** mqtt.js closes its stores when the client ends: nothing is kept in memory past that. */
  close(cb: () => void): void {
    this.held.clear();
    cb?.();
  }
}
