import { statSync } from 'node:fs';
import { openSqliteStore } from '../../store/sqliteStore.js';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { statePaths } from '../../daemon/paths.js';
import { ColumnPlanError } from '../../ingest/csv/columns.js';
import { csvFileSource, CsvFormatError, importCsv, type CsvSource, type ImportSummary } from '../../ingest/csv/importer.js';
import { timeZone, type TimeZone } from '../../time/timestamps.js';
import { Progress } from '../progress.js';
import { UsageError } from '../usage.js';

const DAY_MS = 86_400_000;
/** The import may wait this long for a running daemon's transaction (the daemon itself waits 250 ms at most). */
const IMPORT_BUSY_TIMEOUT_MS = 5000;

const USAGE_LINE =
  'forecastd import <file.csv> --config <file.yaml> [--timestamp-column <name|n>] [--map <column>=<series> ...] [--prefix <text>] ...';

/** `,` `;` `tab` (or a literal tab, or `\t`), or any other single character. */
export function parseDelimiterOption(text: string): string {
  if (text === 'tab' || text === '\\t' || text === '\t') return '\t';
  if (text.length !== 1 || text === '"')
    throw new UsageError(`--delimiter ${JSON.stringify(text)}: give one character such as , or ; or the word tab`);
  return text;
}

export function parseMapOptions(entries: readonly string[]): Record<string, string> {
  const map: Record<string, string> = {};
  for (const entry of entries) {
    const split = entry.lastIndexOf('=');
    if (split <= 0 || split === entry.length - 1) throw new UsageError(`--map ${entry}: write it as <column>=<series>, e.g. --map "CO(GT)=air.co"`);
    map[entry.slice(0, split)] = entry.slice(split + 1);
  }
  return map;
}

export function parseTimeZoneOption(spec: string): TimeZone {
  try {
    return timeZone(spec);
  } catch (error) {
    throw new UsageError(`--timezone: ${(error as Error).message}`);
  }
}

function stdinSource(): CsvSource {
  process.stdin.setEncoding('utf8');
  return { name: 'stdin', chunks: process.stdin as AsyncIterable<string> };
}

const rate = (count: number, ms: number) => (ms > 0 ? Math.round((count * 1000) / ms) : 0);
const quote = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);

/** The result, for stdout: one summary line, then the details a user acts on. */
export function formatSummary(summary: ImportSummary, databasePath: string): string {
  const readings = summary.readingsStored + summary.duplicates;
  const rejected = summary.columns.filter((column) => column.rejected > 0);
  const rejectedText = rejected.length ? rejected.map((column) => `${column.column} ${column.rejected}`).join(', ') : 'none';
  const lines = [
    `imported ${summary.source}: ${summary.rowsRead} rows read, ${summary.readingsStored} readings stored, ${summary.duplicates} duplicates, ` +
      `rejected: ${rejectedText}; ${rate(summary.rowsRead, summary.elapsedMs)} rows/s, ${rate(readings, summary.elapsedMs)} readings/s ` +
      `(${(summary.elapsedMs / 1000).toFixed(2)} s)`,
  ];
  const time = summary.plan.time ? `"${summary.plan.timestamp.column}" + "${summary.plan.time.column}"` : `"${summary.plan.timestamp.column}"`;
  lines.push(`  timestamps from ${time}; times without a zone read as ${summary.timeZone} time`);
  lines.push(
    `  into ${databasePath}: ${
      summary.columns
        .filter((c) => c.readings > 0)
        .map((c) => `${c.series} (${c.readings})`)
        .join(', ') || 'no series'
    }`,
  );
  for (const column of rejected) {
    const example = column.firstRejected ? ` (first: line ${column.firstRejected.line}, ${quote(column.firstRejected.text)})` : '';
    const verdict = column.readings === 0 ? 'no number in this column: nothing imported from it (--skip it to silence this)' : 'not numbers, skipped';
    lines.push(`  rejected ${column.rejected} cells of "${column.column}": ${verdict}${example}`);
  }
  for (const ignored of summary.plan.ignored) {
    lines.push(
      `  ignored column #${ignored.index + 1}${ignored.column ? ` "${ignored.column}"` : ''}: ${ignored.reason === 'skipped' ? '--skip' : 'no name in the header (--map it to import it)'}`,
    );
  }
  if (summary.blankRows) lines.push(`  ${summary.blankRows} blank rows skipped`);
  return `${lines.join('\n')}\n`;
}

/** Problems the user should act on, for stderr. */
export function importWarnings(summary: ImportSummary, config: Config): string[] {
  const warnings: string[] = [];
  if (summary.badTimestampRows) {
    const first = summary.firstBadTimestamp!;
    warnings.push(
      `${summary.badTimestampRows} rows have no readable timestamp and were skipped (first: line ${first.line}, ${quote(first.text)}); ` +
        'accepted: ISO 8601, YYYY-MM-DD HH:MM:SS, YYYY-MM-DD, YYYY-MM, DD/MM/YYYY [HH:MM:SS], epoch seconds or ms. Another column? --timestamp-column',
    );
  }
  if (summary.raggedRows) {
    warnings.push(
      `${summary.raggedRows} rows do not have as many fields as the header (first: line ${summary.firstRagged!.line}, ${summary.firstRagged!.text}): check --delimiter`,
    );
  }
  if (summary.nonexistentLocalTimes || summary.ambiguousLocalTimes) {
    warnings.push(
      `in ${summary.timeZone}, ${summary.nonexistentLocalTimes} times of the file do not exist (clocks went forward: moved forward by the gap) and ` +
        `${summary.ambiguousLocalTimes} occur twice (clocks went back: read as the first); a moved time can land on the next row's time and count as a duplicate. ` +
        "If the file's clock ignores daylight saving time, import again with a fixed offset, e.g. --timezone +01:00",
    );
  }
  const { defaultDays, perSeries } = config.storage.retention;
  const beyond = summary.columns.flatMap((column) => {
    const days = perSeries[column.series] ?? defaultDays;
    const span = column.lastMs - column.firstMs;
    return column.readings > 0 && span > days * DAY_MS ? [`${column.series} (${Math.ceil(span / DAY_MS)} > ${days} days)`] : [];
  });
  if (beyond.length) {
    warnings.push(
      `${beyond.length} series span more time than storage.retention keeps: ${beyond.join(', ')}. The daemon's retention job deletes a series' ` +
        'readings older than its retention period before its newest reading; raise storage.retention.defaultDays (or perSeries) to keep them',
    );
  }
  return warnings;
}

export async function importCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'timestamp-column': { type: 'string' },
      'time-column': { type: 'string' },
      map: { type: 'string', multiple: true },
      skip: { type: 'string', multiple: true },
      prefix: { type: 'string' },
      delimiter: { type: 'string' },
      'decimal-comma': { type: 'boolean' },
      missing: { type: 'string', multiple: true },
      timezone: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new UsageError(`import takes one CSV file (or - for stdin): ${USAGE_LINE}`);
  if (!values.config)
    throw new UsageError(`import needs --config <file.yaml>: the readings go to the database in its storage.stateDir. ${USAGE_LINE}`);
  const map = parseMapOptions(values.map ?? []);
  const delimiter = values.delimiter === undefined ? undefined : parseDelimiterOption(values.delimiter);
  const zone = parseTimeZoneOption(values.timezone ?? 'local');
  const config = loadConfigFile(values.config);
  const file = positionals[0];

  let source: CsvSource;
  try {
    if (file !== '-' && statSync(file).isDirectory()) {
      process.stderr.write(`forecastd import: ${file} is a directory; give a CSV file\n`);
      return 1;
    }
    source = file === '-' ? stdinSource() : csvFileSource(file);
  } catch (error) {
    process.stderr.write(`forecastd import: cannot read ${file}: ${(error as Error).message}\n`);
    return 1;
  }

  const { databasePath } = statePaths(config);
  const store = openSqliteStore({ path: databasePath, synchronous: config.storage.synchronous });
  const { db, quarantinedAs } = store;
  if (quarantinedAs) process.stderr.write(`forecastd import: the database was corrupt and was moved to ${quarantinedAs}; importing into a new one\n`);
  db.pragma(`busy_timeout = ${IMPORT_BUSY_TIMEOUT_MS}`);
  const progress = new Progress({ label: `import ${source.name}` });
  let summary: ImportSummary;
  try {
    summary = await importCsv(source, store.readings, {
      timestampColumn: values['timestamp-column'],
      timeColumn: values['time-column'],
      map,
      skip: values.skip,
      prefix: values.prefix,
      delimiter,
      decimalComma: values['decimal-comma'],
      missing: values.missing,
      timeZone: zone,
      onProgress: (state) => progress.update({ rows: state.rowsRead, done: state.bytesRead, total: state.totalBytes }),
    });
    progress.finish();
  } catch (error) {
    progress.finish();
    if (error instanceof ColumnPlanError) throw new UsageError(`import ${source.name}: ${error.message}`);
    if (error instanceof CsvFormatError) {
      process.stderr.write(`forecastd import: ${error.message}\n`);
      return 1;
    }
    const code = (error as { code?: string }).code;
    if (code === 'SQLITE_BUSY') {
      process.stderr.write(
        `forecastd import: the database ${databasePath} stayed locked by another writer for ${IMPORT_BUSY_TIMEOUT_MS / 1000} s; try again (readings already imported are kept)\n`,
      );
      return 1;
    }
    if (code === 'ENOENT' || code === 'EACCES') {
      process.stderr.write(`forecastd import: cannot read ${file}: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  } finally {
    store.close();
  }

  process.stdout.write(formatSummary(summary, databasePath));
  for (const warning of importWarnings(summary, config)) process.stderr.write(`forecastd import: warning: ${warning}\n`);
  const dataRows = summary.rowsRead - summary.blankRows;
  if (dataRows > 0 && summary.badTimestampRows === dataRows) {
    process.stderr.write(
      `forecastd import: no row of ${summary.source} has a timestamp that could be read in "${summary.plan.timestamp.column}": nothing was imported; ` +
        'choose the column with --timestamp-column\n',
    );
    return 1;
  }
  return 0;
}
