/**
 * Where forecastd's outputs go. Each sink receives every forecast, the status document and the live accuracy reports,
 * and has its own start and stop. The MQTT outbox (./mqttSink.ts) is the first; a second output (a webhook, a
 * time-series database) is one more class here and one line in the composition root.
 */
import type { LiveAccuracyReport } from '../scheduler/accuracyJob.js';
import type { ForecastMessage } from './forecastMessage.js';
import type { StatusDocument } from './status.js';

export interface Sink {
  readonly name: string;
  start(): void;
  stop(): void;
  /**
   * A forecast was issued. Called inside the database transaction that records it, so a sink that keeps an outbox in
   * the same database commits its row together with the record, or neither. Must not block.
   */
  publishForecast(message: ForecastMessage): void;
  /** The daemon's status changed (or is due again); sinks that have no use for it leave it out. */
  publishStatus?(status: StatusDocument): void;
  publishAccuracy?(report: LiveAccuracyReport): void;
}

/** Every sink as one: each call goes to each sink, and one sink's failure neither stops the others nor the caller. */
export class SinkSet {
  constructor(
    private readonly sinks: readonly Sink[],
    private readonly onError: (sink: string, what: string, error: Error) => void,
  ) {}

  start(): void {
    for (const sink of this.sinks) sink.start();
  }

  stop(): void {
    for (const sink of this.sinks) this.guard(sink, 'stop', () => sink.stop());
  }

  /**
   * Forecasts are not guarded: a sink that cannot take a forecast (the outbox table refused its row) must fail the
   * caller's transaction, so that the forecast is not recorded as published when it was not.
   */
  publishForecast(message: ForecastMessage): void {
    for (const sink of this.sinks) sink.publishForecast(message);
  }

  publishStatus(status: StatusDocument): void {
    for (const sink of this.sinks) if (sink.publishStatus) this.guard(sink, 'status', () => sink.publishStatus!(status));
  }

  publishAccuracy(report: LiveAccuracyReport): void {
    for (const sink of this.sinks) if (sink.publishAccuracy) this.guard(sink, 'accuracy', () => sink.publishAccuracy!(report));
  }

  private guard(sink: Sink, what: string, run: () => void): void {
    try {
      run();
    } catch (error) {
      this.onError(sink.name, what, error as Error);
    }
  }
}
