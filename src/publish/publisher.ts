import type { MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { forecastTopic, type ForecastMessage } from './forecastMessage.js';

/** Puts forecasts on the broker: retained, so a consumer that connects later gets the current one at once. */
export class ForecastPublisher {
  published = 0;

  constructor(
    private readonly client: MqttClient,
    private readonly config: { publish: Config['publish']; baseTopic: string },
    private readonly log: Logger,
  ) {}

  topicFor(forecast: string): string {
    return forecastTopic(this.config.publish.topicTemplate, this.config.baseTopic, forecast);
  }

  publish(message: ForecastMessage): void {
    const topic = this.topicFor(message.forecast);
    // While offline, mqtt.js keeps QoS 1 publishes and sends them on reconnect.
    this.client.publish(topic, JSON.stringify(message), { qos: this.config.publish.qos, retain: this.config.publish.retain }, (error) => {
      if (error) this.log.warn({ topic, err: error.message }, 'forecast publish failed');
    });
    this.published++;
  }
}
