import type { MqttClient } from 'mqtt';
import type { Logger } from '../log.js';
import { claimTopic } from '../publish/homeAssistant.js';

/** Where a training of one forecast can be requested over MQTT, as zigbee2mqtt takes bridge requests. */
export const trainRequestTopic = (baseTopic: string, forecast: string) => `${baseTopic}/${forecast}/train`;

/**
 * Lets a person, an automation or `forecastd train --daemon` ask the running daemon for a training
 * now. The request goes through the daemon's own queue, so it never overlaps a running training of
 * the same forecast. Install after ingest: the topics are claimed from the ingest message handler.
 */
export function acceptTrainRequests(
  client: MqttClient,
  deps: { baseTopic: string; forecasts: readonly string[]; request: (forecast: string, reason: string) => string; log: Logger },
): void {
  const topics = deps.forecasts.map((forecast) => trainRequestTopic(deps.baseTopic, forecast));
  // An empty SUBSCRIBE is a protocol error: a daemon that only stores readings has nothing to accept.
  if (topics.length === 0) return;
  deps.forecasts.forEach((forecast, index) =>
    claimTopic(client, topics[index], () => {
      const outcome = deps.request(forecast, 'mqtt request');
      deps.log.info({ forecast, outcome }, 'training requested over MQTT');
    }),
  );
  const subscribe = () =>
    client.subscribe(topics, { qos: 1 }, (error) => {
      if (error) deps.log.warn({ topics, err: error.message }, 'cannot subscribe to the training request topics');
    });
  client.on('connect', subscribe);
  if (client.connected) subscribe();
}
