/**
 * The MQTT sink: forecasts through the outbox table (retained, QoS 1, kept until the broker's PUBACK: ./publisher.ts),
 * the status document and the live accuracy reports retained on their topics (src/broker/topics.ts).
 */
import type { MqttClient } from 'mqtt';
import { accuracyTopic, statusTopic } from '../broker/topics.js';
import type { Logger } from '../log.js';
import type { LiveAccuracyReport } from '../scheduler/accuracyJob.js';
import type { ForecastMessage } from './forecastMessage.js';
import type { ForecastPublisher } from './publisher.js';
import type { Sink } from './sink.js';
import type { StatusDocument } from './status.js';

export class MqttSink implements Sink {
  readonly name = 'mqtt';
  private lastStatus: string | null = null;
  /** After every reconnect the status goes out again, in case the broker lost its retained messages. */
  private readonly onConnect = () => {
    if (this.lastStatus !== null) this.sendStatus(this.lastStatus);
  };

  constructor(
    private readonly deps: {
      client: MqttClient;
      /** The forecast outbox. */
      forecasts: ForecastPublisher;
      baseTopic: string;
      log: Logger;
    },
  ) {}

  start(): void {
    this.deps.forecasts.start();
    this.deps.client.on('connect', this.onConnect);
  }

  stop(): void {
    this.deps.client.off('connect', this.onConnect);
    this.deps.forecasts.stop();
  }

  publishForecast(message: ForecastMessage): void {
    this.deps.forecasts.publish(message);
  }

  publishStatus(status: StatusDocument): void {
    this.lastStatus = JSON.stringify(status);
    this.sendStatus(this.lastStatus);
  }

  publishAccuracy(report: LiveAccuracyReport): void {
    this.deps.client.publish(accuracyTopic(this.deps.baseTopic, report.forecast), JSON.stringify(report), { qos: 1, retain: true });
  }

  private sendStatus(text: string): void {
    // QoS 0 and no offline queue: a status that could not be sent is superseded by the next one anyway.
    if (!this.deps.client.connected) return;
    this.deps.client.publish(statusTopic(this.deps.baseTopic), text, { qos: 0, retain: true }, (error) => {
      if (error) this.deps.log.debug({ err: error.message }, 'status publish failed');
    });
  }
}
