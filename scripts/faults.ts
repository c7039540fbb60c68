/**
 * `npm run test:faults`: the whole fault-injection suite with its long variants (FORECASTD_FAULTS_LONG=1:
 * many kills, bigger bursts, every corruption variant), then one table of every fault test's row.
 *
 * node --test runs each file in its own process; the rows come back through a JSON-lines file whose path is
 * passed in FORECASTD_FAULT_REPORT (test/helpers/faultReport.ts). The exit code is the test run's.
 *
 *   npm run test:faults                 all fault tests, long variants
 *   npm run test:faults -- --fast       the variants the default `npm test` runs
 *   npm run test:faults -- --out F.md   also write the table as Markdown to F.md
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FaultRow } from '../test/helpers/faultReport.js';
import { REPORT_ENV } from '../test/helpers/faultReport.js';

const distTest = fileURLToPath(new URL('../test/', import.meta.url));

/** Fault tests live in test/faults; a few faults are proven where their subject is tested (daemon lifecycle). */
const FAULT_FILES = ['faults', 'daemon/signals.test.js', 'daemon/shutdown.test.js', 'daemon/workerCrash.test.js']
  .map((relative) => join(distTest, relative))
  .filter((path) => existsSync(path));

const COLUMNS: Array<[keyof FaultRow, string]> = [
  ['fault', 'fault'],
  ['mechanism', 'mechanism'],
  ['published', 'published'],
  ['acked', 'acked'],
  ['stored', 'stored'],
  ['duplicates', 'dup'],
  ['rejected', 'rejected'],
  ['brokerDropped', 'broker dropped'],
  ['lost', 'lost'],
  ['recovery', 'recovery'],
];

const text = (value: FaultRow[keyof FaultRow] | undefined) =>
  typeof value === 'number' ? value.toLocaleString('en-US', { maximumFractionDigits: 1 }) : (value ?? '');
const cell = (value: FaultRow[keyof FaultRow] | undefined) => text(value).replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** A Markdown table of the figures, then each row's explanation as a numbered note (too long for a cell). */
function faultTable(rows: FaultRow[]): string {
  const header = `| # | ${COLUMNS.map(([, title]) => title).join(' | ')} |`;
  const rule = `|---|${COLUMNS.map(() => '---').join('|')}|`;
  const body = rows.map((row, index) => `| ${index + 1} | ${COLUMNS.map(([key]) => cell(row[key])).join(' | ')} |`);
  const notes = rows.map((row, index) => `${index + 1}. ${row.fault}: ${row.note}`);
  return [header, rule, ...body, '', 'Notes:', ...notes].join('\n');
}

function main(): number {
  const args = process.argv.slice(2);
  const fast = args.includes('--fast');
  const outIndex = args.indexOf('--out');
  const out = outIndex >= 0 ? args[outIndex + 1] : undefined;

  const dir = mkdtempSync(join(tmpdir(), 'forecastd-faults-'));
  const reportFile = join(dir, 'rows.jsonl');
  try {
    const started = performance.now();
    const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...FAULT_FILES], {
      stdio: 'inherit',
      env: { ...process.env, [REPORT_ENV]: reportFile, FORECASTD_FAULTS_LONG: fast ? '0' : '1' },
    });
    const minutes = (performance.now() - started) / 60_000;
    const rows = existsSync(reportFile)
      ? readFileSync(reportFile, 'utf8')
          .split('\n')
          .filter((line) => line.trim())
          .map((line) => JSON.parse(line) as FaultRow)
      : [];
    const table = faultTable(rows);
    const status = run.status === 0 ? 'all passed' : `FAILED (exit ${run.status ?? run.signal})`;
    const title = `forecastd fault suite (${fast ? 'fast' : 'long'} variants): ${rows.length} fault rows, ${status}, ${minutes.toFixed(1)} min`;
    console.log(`\n${title}\n\n${table}\n`);
    if (out) writeFileSync(out, `${title}\n\n${table}\n`);
    return run.status ?? 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
