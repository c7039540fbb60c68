/**
 * Makes the broker's own losses visible to forecastd's operator.
 *
 * Mosquitto silently drops QoS 1 messages beyond `max_queued_messages` (default 1000) or `max_queued_bytes` for a
 * session that is offline or too slow (docs/reliability.md, "Where a reading can still be lost", item 1). The only traces are a line in the broker's
 * log and the counter `$SYS/broker/publish/messages/dropped`. forecastd follows that counter, exports it on
 * /metrics and warns when it grows, so that a queue limit too small for the outages a gateway sees is found
 * from forecastd's side, not by a gap in the forecasts weeks later.
 *
 * The counter is the broker's: it covers every client of the broker since the broker started, not only
 * forecastd's session. Brokers without a `$SYS` tree (aedes) never publish it, and the value stays unknown.
 */
import type { Logger } from '../log.js';
import type { Route, SubscribeOutcome } from './inbound.js';
import { BROKER_DROPPED_TOPIC } from './topics.js';

/** The warning's message, fixed so that log alerts can match it. */
export const BROKER_DROPPED_MESSAGE = 'the broker dropped queued messages';

/** What to change when the warning appears. */
export const QUEUE_LIMIT_ADVICE =
  'Mosquitto dropped messages beyond its queue limit for a client that was offline or slow. If forecastd was one of them, those readings are gone: ' +
  'set max_queued_messages 0 and max_queued_bytes sized to the longest outage to survive in mosquitto.conf (see docs/reliability.md, broker settings)';

/**
 * Follows the broker's drop counter through its own route (QoS 0: a $SYS value missed while offline is superseded by
 * the next one, and the topic is retained), so those messages never reach ingest.
 */
export class BrokerDropWatch implements Route {
  readonly name = 'broker-drops';
  readonly qos = 0 as const;
  /** The broker's count as last published (all clients, since the broker started); null until one arrives. */
  dropped: number | null = null;
  /** The broker's ACL refused the subscription: asking again on every reconnect (until a restart) would only repeat the refusal. */
  private refused = false;

  constructor(private readonly deps: { log: Logger }) {}

  get filters(): readonly string[] {
    return this.refused ? [] : [BROKER_DROPPED_TOPIC];
  }

  receive(delivery: { payload: Buffer; ack(): void }): void {
    this.observe(delivery.payload.toString());
    delivery.ack();
  }

  subscribed(outcome: SubscribeOutcome): void {
    const refusal = outcome.refused[0];
    if (refusal) {
      this.refused = true;
      this.deps.log.info(
        { topic: BROKER_DROPPED_TOPIC, reasonCode: refusal.reasonCode },
        'the broker does not let forecastd read its drop counter: grant read on this topic in its ACL to see dropped messages, or set mqtt.watchBrokerDrops false',
      );
    } else if (outcome.error)
      this.deps.log.debug({ topic: BROKER_DROPPED_TOPIC, err: outcome.error.message }, 'cannot follow the broker drop counter');
  }

  /** Takes one published value; warns when the count grew (or, on first sight, is already above zero). */
  observe(text: string): void {
    const digits = text.trim();
    if (!/^\d{1,15}$/.test(digits)) return;
    const value = Number(digits);
    const previous = this.dropped;
    this.dropped = value;
    // A lower value than before: the broker restarted and counts from zero again.
    const increase = previous === null || value < previous ? value : value - previous;
    if (increase > 0) {
      const countedSince = previous === null ? 'broker start (first value forecastd saw)' : previous > value ? 'broker restart' : 'previous value';
      this.deps.log.warn({ dropped: value, increase, countedSince, advice: QUEUE_LIMIT_ADVICE }, BROKER_DROPPED_MESSAGE);
    }
  }
}
