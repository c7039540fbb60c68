/**
 * Every message the broker sends forecastd goes through one router, installed before the first CONNECT
 * (./mqttAdapter.ts). The router is what makes forecastd's first promise hold by construction: a reading the
 * broker considers delivered is stored.
 *
 * - A message is acknowledged (PUBACK) only when the route that took it says so, and the ingest route says so only
 *   after the reading is committed. Nothing else in forecastd can acknowledge a message.
 * - A message that no route has claimed yet (the broker delivers a persistent session's queue as soon as it
 *   accepts the connection, while start-up may still be loading models) waits here, unacknowledged, and goes to
 *   the first route that claims its topic. The ingest route is the fallback: it claims every topic no other route does.
 * - PUBACKs leave in the order the messages arrived (MQTT 3.1.1 §4.6, MQTT 5 §4.6), on the connection they came in
 *   on; a message of a connection that has closed is never acknowledged on the next one (the broker sends it again).
 * - Once intake is closed (shutdown), every later message is left unacknowledged for the next start.
 *
 * This module knows nothing of mqtt.js: the adapter feeds it deliveries and sends the PUBACKs it releases.
 */
import type { Logger } from '../log.js';
import { topicMatches } from './topicFilter.js';

export type QoS = 0 | 1 | 2;

/** One message from the broker, as a route sees it. */
export interface Delivery {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: QoS;
  /** True when the broker says it may have sent this message before (DUP). */
  readonly redelivered: boolean;
  /**
   * The message is safe (stored, or handled): its PUBACK goes out once every earlier message of this connection is
   * settled. Call it once; later calls are ignored.
   */
  ack(): void;
  /** Settles without a PUBACK: the broker keeps the message and sends it again on the next connection. */
  withhold(): void;
}

/** What a route is told when its subscription was answered. */
export interface SubscribeOutcome {
  /** The filters the broker granted, with their QoS. */
  granted: Array<{ filter: string; qos: number }>;
  /** The filters it refused (SUBACK reason code ≥ 0x80). */
  refused: Array<{ filter: string; reasonCode: number }>;
  /** A failure of the SUBSCRIBE itself (the connection closed before the SUBACK, …). */
  error: Error | null;
}

export interface Route {
  /** For logs and metrics: ingest, homeassistant, train-requests, broker-drops. */
  readonly name: string;
  /** Subscribed on every connect (a resumed session would otherwise never learn a filter added to the config). */
  readonly filters: readonly string[];
  readonly qos: 0 | 1;
  /** Takes a message on one of its topics; must settle it (ack or withhold), now or later. */
  receive(delivery: Delivery): void;
  subscribed?(outcome: SubscribeOutcome): void;
  /** The connection closed: deliveries not settled yet can no longer be acknowledged (the broker resends them). */
  connectionClosed?(): void;
}

/** Sends one PUBACK on the current connection; the adapter supplies it. */
export type PubackSender = (messageId: number) => void;

/** One message of the current connection in arrival order, until its PUBACK leaves (or it is withheld). */
interface Slot {
  messageId: number;
  state: 'open' | 'ack' | 'withhold';
}

/**
 * PUBACKs in arrival order, per connection. A generation number tells a settlement of an earlier connection from one of
 * the current one: the broker redelivers an unacknowledged message on the new connection, with the same or another
 * packet id, so an old PUBACK sent now could acknowledge a different message.
 */
export class AckSequencer {
  private slots: Slot[] = [];
  private head = 0;
  private generation = 0;

  constructor(private readonly send: PubackSender) {}

  /** Registers a QoS 1 message; returns the settle function of its slot. */
  open(messageId: number): (outcome: 'ack' | 'withhold') => void {
    const slot: Slot = { messageId, state: 'open' };
    this.slots.push(slot);
    const generation = this.generation;
    return (outcome) => {
      if (generation !== this.generation || slot.state !== 'open') return;
      slot.state = outcome;
      this.release();
    };
  }

  /** The connection closed: every open slot is forgotten (the broker redelivers those messages). */
  reset(): void {
    this.generation++;
    this.slots = [];
    this.head = 0;
  }

  private release(): void {
    while (this.head < this.slots.length && this.slots[this.head].state !== 'open') {
      const slot = this.slots[this.head++];
      if (slot.state === 'ack') this.send(slot.messageId);
    }
    // Compact now and then, so that a long-lived connection does not keep every slot it ever had.
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }
}

/** A message as the adapter hands it over, with how it is settled at the MQTT level. */
export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  qos: QoS;
  redelivered: boolean;
  settle: (outcome: 'ack' | 'withhold') => void;
}

export interface RouterCounters {
  /** Messages that waited for a route (start-up, before ingest took its place). */
  parked: number;
  /** Messages beyond maxParked: left unacknowledged; a reconnect after ingest starts makes the broker send them again. */
  parkedOverflow: number;
  /** Messages that arrived after intake closed (shutdown): left unacknowledged for the next start. */
  afterClose: number;
}

export interface InboundRouterOptions {
  /** Messages kept while no route claims them (the broker's in-flight window bounds them in practice). */
  maxParked?: number;
  /** Called once the fallback route is in place when parked messages had to be dropped: the broker must resend them. */
  requestRedelivery: () => void;
  log: Logger;
}

/**
 * Routes each message to the first route whose filters match its topic, the fallback (ingest) last. See the module
 * comment for the rules.
 */
export class InboundRouter {
  readonly counters: RouterCounters = { parked: 0, parkedOverflow: 0, afterClose: 0 };
  private readonly routes: Route[] = [];
  private fallback: Route | null = null;
  /** The route of each topic seen since the routes last changed (topics repeat: a sensor has one or a few). */
  private readonly routeCache = new Map<string, Route | null>();
  private parked: IncomingMessage[] = [];
  private overflowSinceFallback = false;
  private intakeClosed = false;
  private readonly maxParked: number;

  constructor(private readonly options: InboundRouterOptions) {
    this.maxParked = options.maxParked ?? 50_000;
  }

  /** Adds a route for its own topics; parked messages on them go to it now. Returns its removal. */
  add(route: Route): () => void {
    this.routes.push(route);
    this.routeCache.clear();
    this.replayParked();
    return () => {
      const index = this.routes.indexOf(route);
      if (index >= 0) this.routes.splice(index, 1);
      this.routeCache.clear();
    };
  }

  /** The route that takes every message no other route claims (ingest). Parked messages go to it now, in arrival order. */
  setFallback(route: Route): void {
    this.fallback = route;
    this.routeCache.clear();
    this.replayParked();
    if (this.overflowSinceFallback) {
      this.overflowSinceFallback = false;
      this.options.log.warn(
        { dropped: this.counters.parkedOverflow },
        'reconnecting so that the broker resends the messages that arrived before ingest was ready and did not fit in memory',
      );
      this.options.requestRedelivery();
    }
  }

  /** Every route, fallback included (for subscribing them on connect). */
  allRoutes(): Route[] {
    return this.fallback ? [...this.routes, this.fallback] : [...this.routes];
  }

  /** From now on every message is left unacknowledged (the broker keeps it in the session for the next start). */
  closeIntake(): void {
    this.intakeClosed = true;
    for (const message of this.parked) message.settle('withhold');
    this.parked = [];
  }

  /** Parked messages now. */
  get parkedNow(): number {
    return this.parked.length;
  }

  dispatch(message: IncomingMessage): void {
    if (this.intakeClosed) {
      this.counters.afterClose++;
      message.settle('withhold');
      return;
    }
    const route = this.routeFor(message.topic);
    if (route) {
      route.receive(new RoutedDelivery(message));
      return;
    }
    this.counters.parked++;
    if (this.parked.length >= this.maxParked) {
      this.counters.parkedOverflow++;
      this.overflowSinceFallback = true;
      message.settle('withhold');
      return;
    }
    this.parked.push(message);
  }

  /** The connection closed: parked messages of it can no longer be acknowledged; the broker sends them again. */
  connectionClosed(): void {
    this.parked = [];
    for (const route of this.allRoutes()) route.connectionClosed?.();
  }

  private routeFor(topic: string): Route | null {
    const cached = this.routeCache.get(topic);
    if (cached !== undefined) return cached;
    let found: Route | null = this.fallback;
    for (const route of this.routes) {
      if (route.filters.some((filter) => topicMatches(filter, topic))) {
        found = route;
        break;
      }
    }
    // Bounded: a broker feeding millions of distinct topics must not grow this without end.
    if (this.routeCache.size >= ROUTE_CACHE_TOPICS) this.routeCache.clear();
    // A topic that no route claims yet is not cached: it must be looked up again once a route is added.
    if (found) this.routeCache.set(topic, found);
    return found;
  }

  private replayParked(): void {
    if (this.parked.length === 0) return;
    const waiting = this.parked;
    this.parked = [];
    for (const message of waiting) {
      const route = this.routeFor(message.topic);
      if (route) route.receive(new RoutedDelivery(message));
      else this.parked.push(message);
    }
  }
}

const ROUTE_CACHE_TOPICS = 10_000;

/** A message as a route sees it: settled once, by ack or withhold. */
class RoutedDelivery implements Delivery {
  private settled = false;

  constructor(private readonly message: IncomingMessage) {}

  get topic(): string {
    return this.message.topic;
  }

  get payload(): Buffer {
    return this.message.payload;
  }

  get qos(): QoS {
    return this.message.qos;
  }

  get redelivered(): boolean {
    return this.message.redelivered;
  }

  ack(): void {
    this.settle('ack');
  }

  withhold(): void {
    this.settle('withhold');
  }

  private settle(outcome: 'ack' | 'withhold'): void {
    if (this.settled) return;
    this.settled = true;
    this.message.settle(outcome);
  }
}
