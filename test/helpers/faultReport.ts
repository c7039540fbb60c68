/**
 * One row per fault test for the reliability table that `npm run test:faults` prints at the end.
 *
 * node --test runs each test file in its own process, so rows cannot be collected in memory: each row is
 * printed at once (readable in any run) and, when the fault runner set FORECASTD_FAULT_REPORT, appended as
 * one JSON line to that file, from which test/faults/run.ts prints the combined table.
 */
import { appendFileSync } from 'node:fs';
import { formatTable } from './load.js';

/** A figure, or a short text when the figure does not apply ("n/a") or needs its unit ("5.1 s"). */
export type Figure = number | string;

export interface FaultRow {
  /** Catalogue id and short name, e.g. "F3a partition: drop". */
  fault: string;
  /** How the fault was injected, e.g. "TCP proxy destroys both sockets mid-burst". */
  mechanism: string;
  /** Messages the test's publisher sent. */
  published: Figure;
  /** PUBACKs the publisher received (what the broker took responsibility for). */
  acked: Figure;
  /** Distinct readings (or forecasts) found afterwards. */
  stored: Figure;
  /** Rows or deliveries beyond the first for the same reading (or forecast). */
  duplicates: Figure;
  /** Payloads rejected by forecastd's validation, by design. */
  rejected: Figure;
  /** Messages the broker reported dropping ($SYS counter or its log). */
  brokerDropped: Figure;
  /** acked − stored − rejected − brokerDropped (or the fault's own definition, given in `note`). */
  lost: Figure;
  /** Time from the end of the fault to normal operation, e.g. "1.2 s". */
  recovery: Figure;
  /** Why any non-zero figure is what it is; what else was checked. */
  note: string;
}

export const REPORT_ENV = 'FORECASTD_FAULT_REPORT';

export const secondsText = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** The message figures of a fault in which no message moves (a stop, a clock step, a log scan): they do not apply. */
export const NO_MESSAGE_FIGURES = {
  published: 'n/a',
  acked: 'n/a',
  stored: 'n/a',
  duplicates: 'n/a',
  rejected: 'n/a',
  brokerDropped: 'n/a',
} as const satisfies Partial<FaultRow>;

/** Prints the row, and appends it to the runner's report file when there is one. */
export function recordFault(row: FaultRow): void {
  console.log(`\n${formatTable(row.fault, [row as unknown as Record<string, Figure>])}\n`);
  const file = process.env[REPORT_ENV];
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
}
