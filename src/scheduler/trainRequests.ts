import type { Route } from '../broker/inbound.js';
import { trainRequestTopic } from '../broker/topics.js';
import type { Logger } from '../log.js';

/**
 * Lets a person, an automation or `forecastd train --daemon` ask the running daemon for a training now, with any
 * message on `<baseTopic>/<forecast>/train`, as zigbee2mqtt takes bridge requests. The request goes through the
 * daemon's own queue, so it never overlaps a running training of the same forecast. Null when there is no forecast
 * (an empty SUBSCRIBE is a protocol error).
 */
export function trainRequestRoute(deps: {
  baseTopic: string;
  forecasts: readonly string[];
  request: (forecast: string, reason: string) => string;
  log: Logger;
}): Route | null {
  if (deps.forecasts.length === 0) return null;
  const byTopic = new Map(deps.forecasts.map((forecast) => [trainRequestTopic(deps.baseTopic, forecast), forecast]));
  return {
    name: 'train-requests',
    filters: [...byTopic.keys()],
    qos: 1,
    receive(delivery) {
      const forecast = byTopic.get(delivery.topic);
      if (forecast !== undefined) {
        const outcome = deps.request(forecast, 'mqtt request');
        deps.log.info({ forecast, outcome }, 'training requested over MQTT');
      }
      delivery.ack();
    },
    subscribed(outcome) {
      const failure = outcome.error?.message ?? (outcome.refused.length > 0 ? `refused (reason code ${outcome.refused[0].reasonCode})` : null);
      if (failure) deps.log.warn({ topics: [...byTopic.keys()], err: failure }, 'cannot subscribe to the training request topics');
      else deps.log.debug({ topics: [...byTopic.keys()] }, 'subscribed to training requests');
    },
  };
}
