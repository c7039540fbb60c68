import type { MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import type { Ingestor } from './ingestor.js';

/**
 * Wires an Ingestor to a client: acknowledgement after commit, subscriptions renewed on every connect
 * (a resumed session would otherwise never learn a topic filter added to the config).
 */
export function subscribeIngest(client: MqttClient, ingestor: Ingestor, filters: string[], log: Logger): void {
  client.handleMessage = (packet, done) => {
    try {
      ingestor.handle(packet.topic, packet.payload as Buffer);
      done();
    } catch (error) {
      // A storage failure (disk full, I/O error): no PUBACK, so the broker keeps the message for later.
      log.error({ err: (error as Error).message, topic: packet.topic.slice(0, 200) }, 'could not store reading; leaving it unacknowledged');
      done(error as Error);
    }
  };
  const subscribe = () =>
    client.subscribe(filters, { qos: 1 }, (error, granted) => {
      if (error) log.error({ err: error.message, filters }, 'subscribe failed');
      else log.info({ filters: granted?.map((grant) => `${grant.topic} (qos ${grant.qos})`) }, 'subscribed');
    });
  client.on('connect', subscribe);
  if (client.connected) subscribe();
}
