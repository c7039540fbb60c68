import type { MqttClient } from 'mqtt';
import type { Outbox } from '../store/store.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { forecastTopic } from '../broker/topics.js';
import type { ForecastMessage } from './forecastMessage.js';
import { OutboxDrain, type OutboxCounters } from './outboxDrain.js';

export interface ForecastPublisherOptions {
  client: MqttClient;
  outbox: Outbox;
  config: { publish: Config['publish']; baseTopic: string };
  clock?: () => number;
  log: Logger;
}

/** The end of a forecast's horizon: after it, every point it predicts is in the past. */
export function horizonEnd(message: ForecastMessage): number | null {
  const last = message.points.at(-1);
  const ts = last ? Date.parse(last.ts) : NaN;
  return Number.isFinite(ts) ? ts : null;
}

/**
 * Puts forecasts on the broker through the outbox: retained, so a consumer that connects later gets the current
 * one at once; stored before it is sent, so a disconnect or a restart neither loses nor repeats it (see outboxDrain.ts).
 */
export class ForecastPublisher {
  private readonly drain: OutboxDrain;

  constructor(private readonly options: ForecastPublisherOptions) {
    const { outbox } = options.config.publish;
    this.drain = new OutboxDrain({
      client: options.client,
      store: options.outbox,
      qos: options.config.publish.qos,
      maxInFlight: outbox.maxInFlight,
      keepSettledMs: outbox.keepSettledHours * 3_600_000,
      clock: options.clock,
      log: options.log,
    });
  }

  /** Forecasts the broker has confirmed (QoS 1 PUBACK; QoS 0: written to the connection). */
  get published(): number {
    return this.drain.counters.published;
  }

  get counters(): Readonly<OutboxCounters> {
    return this.drain.counters;
  }

  /** Forecasts waiting in the outbox, and how many of them are in flight. */
  backlog(): { pending: number; inFlight: number } {
    return { pending: this.drain.pending, inFlight: this.drain.inFlightCount };
  }

  topicFor(forecast: string): string {
    return forecastTopic(this.options.config.publish.topicTemplate, this.options.config.baseTopic, forecast);
  }

  start(): void {
    this.drain.start();
  }

  stop(): void {
    this.drain.stop();
  }

  /** Adds the forecast to the outbox (inside the caller's transaction, if any); it is sent on the next turn. */
  publish(message: ForecastMessage): void {
    const { publish } = this.options.config;
    this.drain.enqueue({
      topic: this.topicFor(message.forecast),
      payload: JSON.stringify(message),
      retain: publish.retain,
      expiresAt: publish.expireAtHorizon ? horizonEnd(message) : null,
    });
  }
}
