/**
 * Load generation for fault tests and benchmarks: QoS 1 bursts with several publishes in flight, and the
 * bookkeeping the harness conventions ask for ("published" = PUBACKs the publisher received, per seq).
 */
import type { MqttClient } from 'mqtt';

export interface BurstMessage {
  seq: number;
  topic: string;
  payload: string | Buffer;
}

export interface BurstResult {
  /** Publishes attempted. */
  attempted: number;
  /** seqs whose PUBACK (success) the publisher received. */
  acked: Set<number>;
  /** seqs whose publish failed (error in the callback); the broker may or may not have it. */
  failed: Map<number, string>;
  ms: number;
}

export interface BurstOptions {
  /** Publishes in flight at once. */
  window?: number;
  /** Called after every PUBACK with the count so far. */
  onAck?: (acked: number) => void;
  /** Stop issuing new publishes when this returns true (already issued ones still complete). */
  shouldStop?: () => boolean;
}

/** Publishes `messages` at QoS 1, keeping `window` in flight; resolves when every issued publish has completed. */
export function publishBurst(client: MqttClient, messages: Iterable<BurstMessage>, options: BurstOptions = {}): Promise<BurstResult> {
  const window = options.window ?? 64;
  const iterator = messages[Symbol.iterator]();
  const result: BurstResult = { attempted: 0, acked: new Set(), failed: new Map(), ms: 0 };
  const started = performance.now();
  return new Promise((resolve) => {
    let inFlight = 0;
    let exhausted = false;
    const finish = () => {
      result.ms = performance.now() - started;
      resolve(result);
    };
    const pump = () => {
      while (!exhausted && inFlight < window) {
        if (options.shouldStop?.()) {
          exhausted = true;
          break;
        }
        const next = iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const { seq, topic, payload } = next.value;
        inFlight++;
        result.attempted++;
        client.publish(topic, payload, { qos: 1 }, (error) => {
          inFlight--;
          if (error) result.failed.set(seq, error.message);
          else {
            result.acked.add(seq);
            options.onAck?.(result.acked.size);
          }
          pump();
        });
      }
      if (exhausted && inFlight === 0) finish();
    };
    pump();
  });
}

/** The reading payload the fault tests and benchmarks use: value = seq, ts = base + seq·1000 ms. */
export const readingPayload = (seq: number, baseTs: number) => `{"value": ${seq}, "ts": ${baseTs + seq * 1000}}`;

export function* readingBurst(topic: string, from: number, to: number, baseTs: number): Generator<BurstMessage> {
  for (let seq = from; seq <= to; seq++) yield { seq, topic, payload: readingPayload(seq, baseTs) };
}

/** Percentile of an unsorted sample (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Prints an aligned table of rows with the same keys (for test and bench reports). */
export function formatTable(title: string, rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return `${title}: (no rows)`;
  const keys = Object.keys(rows[0]);
  const cell = (value: string | number | undefined) =>
    value === undefined ? '' : typeof value === 'number' ? value.toLocaleString('en-US', { maximumFractionDigits: 1 }) : value;
  const widths = keys.map((key) => Math.max(key.length, ...rows.map((row) => cell(row[key]).length)));
  const line = (values: string[]) => `| ${values.map((value, index) => value.padStart(widths[index])).join(' | ')} |`;
  return [
    title,
    line(keys),
    `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`,
    ...rows.map((row) => line(keys.map((key) => cell(row[key])))),
  ].join('\n');
}
