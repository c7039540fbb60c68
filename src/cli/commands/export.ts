import { once } from 'node:events';
import { openSqliteStore } from '../../store/sqliteStore.js';
import { createWriteStream, existsSync, renameSync, rmSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../../config/load.js';
import { SERIES_NAME } from '../../config/schema.js';
import { statePaths } from '../../daemon/paths.js';
import { parseTimestamp, type TimeZone } from '../../time/timestamps.js';
import { csvLines } from '../../store/export.js';
import { UsageError } from '../usage.js';
import { parseTimeZoneOption } from './import.js';

const USAGE_LINE = 'forecastd export --config <file.yaml> --series <name> [--series ...] [--from <time>] [--to <time>] [--out <file.csv>]';
/** Lines are handed to the stream in chunks of about this many characters. */
const WRITE_CHUNK_CHARS = 64 * 1024;

function parseBound(option: string, text: string | undefined, zone: TimeZone, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseTimestamp(text, zone);
  if (Number.isNaN(ms)) throw new UsageError(`${option} ${JSON.stringify(text)}: not a time; write e.g. 2004-03-10T18:00:00Z, 2004-03-10 or 2004-03`);
  return ms;
}

/** Writes the lines with backpressure; returns the number of lines, or throws the stream's error. */
async function writeLines(stream: Writable, lines: Iterable<string>): Promise<number> {
  // In an object: TypeScript cannot see the listener assign it, and would take `failure` for always null.
  const state = { failure: null as Error | null };
  const onError = (error: Error) => {
    state.failure = error;
  };
  stream.on('error', onError);
  let count = 0;
  let buffer = '';
  try {
    for (const line of lines) {
      buffer += line;
      count++;
      if (buffer.length < WRITE_CHUNK_CHARS) continue;
      const flowing = stream.write(buffer);
      buffer = '';
      if (!flowing) await Promise.race([once(stream, 'drain'), once(stream, 'error')]).catch(() => undefined);
      if (state.failure) throw state.failure;
    }
    if (buffer) stream.write(buffer);
    if (state.failure) throw state.failure;
  } finally {
    stream.off('error', onError);
  }
  return count;
}

export async function exportCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      series: { type: 'string', multiple: true, short: 's' },
      from: { type: 'string' },
      to: { type: 'string' },
      out: { type: 'string', short: 'o' },
      timezone: { type: 'string' },
    },
  });
  if (positionals.length) throw new UsageError(`export takes no file argument (use --out <file.csv>): ${USAGE_LINE}`);
  if (!values.config)
    throw new UsageError(`export needs --config <file.yaml>: the readings come from the database in its storage.stateDir. ${USAGE_LINE}`);
  const series = values.series ?? [];
  if (series.length === 0) throw new UsageError(`export needs at least one --series <name>: ${USAGE_LINE}`);
  for (const name of series)
    if (!SERIES_NAME.test(name)) throw new UsageError(`--series ${JSON.stringify(name)}: not a series name (letters, digits, _ . : -)`);
  const repeated = series.find((name, index) => series.indexOf(name) !== index);
  if (repeated) throw new UsageError(`--series ${repeated} is given twice`);
  const zone = parseTimeZoneOption(values.timezone ?? 'local');
  const fromMs = parseBound('--from', values.from, zone, Number.MIN_SAFE_INTEGER);
  const toMs = parseBound('--to', values.to, zone, Number.MAX_SAFE_INTEGER);
  if (fromMs >= toMs) throw new UsageError('--from must be before --to (the range includes --from and excludes --to)');
  const config = loadConfigFile(values.config);

  const { databasePath } = statePaths(config);
  if (!existsSync(databasePath)) {
    process.stderr.write(
      `forecastd export: no database at ${databasePath}: nothing was recorded yet; import a CSV (forecastd import) or run the daemon first\n`,
    );
    return 1;
  }
  const opened = openSqliteStore({ path: databasePath, synchronous: config.storage.synchronous, readonly: true });
  try {
    const store = opened.readings;
    const known = new Set(opened.catalog.list().map((info) => info.name));
    const unknown = series.filter((name) => !known.has(name));
    if (unknown.length) {
      const list = [...known].slice(0, 50).join(', ') + (known.size > 50 ? `, … (${known.size} in all)` : '');
      process.stderr.write(
        `forecastd export: no series ${unknown.map((name) => `"${name}"`).join(', ')} in ${databasePath}; it has: ${list || 'none'}\n`,
      );
      return 1;
    }
    const lines = csvLines(store, { series, fromMs, toMs });
    if (values.out === undefined) {
      try {
        await writeLines(process.stdout, lines);
        // main() exits the process as soon as this returns: let what was queued reach the reader first.
        await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
      } catch (error) {
        // The reader went away (`| head`): that is how pipes end, not a failure.
        if ((error as NodeJS.ErrnoException).code === 'EPIPE') return 0;
        throw error;
      }
      return 0;
    }
    // Written aside and renamed: an interrupted export never leaves a truncated file under the asked-for name.
    const partial = `${values.out}.partial-${process.pid}`;
    const file = createWriteStream(partial);
    try {
      const count = await writeLines(file, lines);
      await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
      renameSync(partial, values.out);
      process.stderr.write(`exported ${count - 1} rows of ${series.length} series to ${values.out}\n`);
    } catch (error) {
      file.destroy();
      rmSync(partial, { force: true });
      process.stderr.write(`forecastd export: cannot write ${values.out}: ${(error as Error).message}\n`);
      return 1;
    }
    return 0;
  } finally {
    opened.close();
  }
}
