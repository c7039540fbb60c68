/**
 * synchronous=NORMAL vs FULL, measured on the real forecastd schema and pragmas: rows per second and bytes written
 * to storage per row (Linux /proc/self/io write_bytes) for one reading per transaction, the way ingest commits
 * (one MQTT message, one transaction, then the ack).
 *
 *   node dist/bench/sqlite-sync.js [--rows 20000] [--rows-per-txn 1] [--dir <path on the disk to measure>] [--json]
 *
 * Run it on the target's SD card (`--dir /var/lib/forecastd`), not on tmpfs: tmpfs does no block I/O and reports 0 bytes.
 * With --json the last line is a JSON array of the rows of the table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openDatabase } from '../src/store/database.js';
import { ReadingStore } from '../src/store/readings.js';
import { readProcessWriteBytes } from '../src/store/writeMeter.js';

interface Result {
  synchronous: 'NORMAL' | 'FULL';
  rows: number;
  rowsPerTransaction: number;
  rowsPerSecond: number;
  /** Bytes written during the inserts (auto-checkpoints included), per row; null where /proc/self/io is missing. */
  bytesPerRow: number | null;
  /** The same, including the checkpoint that close() runs. */
  bytesPerRowWithClose: number | null;
  commitP50Ms: number;
  commitP99Ms: number;
  commitMaxMs: number;
}

function option(name: string, fallback: string): string {
  const index = process.argv.indexOf(name);
  return index >= 0 && process.argv[index + 1] !== undefined ? process.argv[index + 1] : fallback;
}

const rows = Number(option('--rows', '20000'));
const rowsPerTransaction = Number(option('--rows-per-txn', '1'));
const parent = option('--dir', tmpdir());
const json = process.argv.includes('--json');

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function measure(synchronous: 'NORMAL' | 'FULL'): Result {
  const dir = mkdtempSync(join(parent, 'forecastd-sync-bench-'));
  try {
    const { db } = openDatabase({ path: join(dir, 'bench.db'), synchronous });
    const readings = new ReadingStore(db);
    const start = Date.UTC(2026, 0, 1);
    // Warm-up outside the measurement: creates the series row and the statements' first pages.
    readings.insertMany([{ series: 'bench.value', ts: start - 1000, value: 0 }]);

    const transactions = Math.ceil(rows / rowsPerTransaction);
    const commitMs = new Float64Array(transactions);
    const bytesBefore = readProcessWriteBytes();
    const began = performance.now();
    for (let transaction = 0; transaction < transactions; transaction++) {
      const batch = [];
      for (let index = transaction * rowsPerTransaction; index < Math.min(rows, (transaction + 1) * rowsPerTransaction); index++) {
        batch.push({ series: 'bench.value', ts: start + index * 1000, value: 20 + Math.sin(index / 100) });
      }
      const committing = performance.now();
      readings.insertMany(batch);
      commitMs[transaction] = performance.now() - committing;
    }
    const elapsedMs = performance.now() - began;
    const bytesAfterInserts = readProcessWriteBytes();
    db.close();
    const bytesAfterClose = readProcessWriteBytes();

    commitMs.sort();
    const perRow = (after: number | null) => (after === null || bytesBefore === null ? null : Math.round((after - bytesBefore) / rows));
    return {
      synchronous,
      rows,
      rowsPerTransaction,
      rowsPerSecond: Math.round(rows / (elapsedMs / 1000)),
      bytesPerRow: perRow(bytesAfterInserts),
      bytesPerRowWithClose: perRow(bytesAfterClose),
      commitP50Ms: Number(quantile(commitMs, 0.5).toFixed(3)),
      commitP99Ms: Number(quantile(commitMs, 0.99).toFixed(3)),
      commitMaxMs: Number(commitMs[commitMs.length - 1].toFixed(3)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [measure('NORMAL'), measure('FULL')];

const header = ['synchronous', 'rows/txn', 'rows/s', 'bytes/row', 'bytes/row incl. close', 'commit p50 ms', 'p99 ms', 'max ms'];
const table = results.map((result) => [
  result.synchronous,
  String(result.rowsPerTransaction),
  String(result.rowsPerSecond),
  String(result.bytesPerRow ?? 'n/a'),
  String(result.bytesPerRowWithClose ?? 'n/a'),
  result.commitP50Ms.toFixed(3),
  result.commitP99Ms.toFixed(3),
  result.commitMaxMs.toFixed(3),
]);
const widths = header.map((title, column) => Math.max(title.length, ...table.map((row) => row[column].length)));
const line = (cells: string[]) => `| ${cells.map((cell, column) => cell.padStart(widths[column])).join(' | ')} |`;
console.log(`${rows} rows into ${parent} (forecastd schema, journal_mode=WAL, one series)`);
console.log(line(header));
console.log(`|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
for (const row of table) console.log(line(row));
if (json) console.log(JSON.stringify(results));
