/**
 * `forecastd import` and `forecastd export` as a user runs them (the built CLI in a child process), on the real
 * datasets in ../shared/data. Expected counts are computed here from the files, independently of the importer:
 * the clean files are plain comma-separated text without quotes, so a line split is enough.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { SeriesCatalog } from '../../src/store/seriesCatalog.js';

/** This file runs as dist/test/cli/importExport.test.js: the repository root is three levels up, shared/ beside it. */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DATA = join(REPO_ROOT, '..', 'shared', 'data');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const AIR = join(DATA, 'uci-air-quality', 'air_quality_uci_hourly.csv');
const AIR_RAW = join(DATA, 'uci-air-quality', 'AirQualityUCI.csv');
const OCCUPANCY = join(DATA, 'uci-occupancy', 'occupancy_uci_minutely.csv');
const missingData = [AIR, AIR_RAW, OCCUPANCY].find((file) => !existsSync(file));
const skip = missingData ? `real datasets not found (${missingData}): ../shared/data must sit beside the repository` : false;

interface CleanFile {
  columns: string[];
  /** Cells by row, the timestamp first. */
  rows: string[][];
}

function readClean(path: string): CleanFile {
  const [header, ...lines] = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  return { columns: header.split(','), rows: lines.map((line) => line.split(',')) };
}

const nonEmpty = (file: CleanFile, column: number) => file.rows.filter((row) => row[column] !== '').length;

function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('import and export of the real datasets', { skip, timeout: 600_000 }, () => {
  let dir: string;
  let config: string;
  const withStore = <T>(use: (store: ReadingStore, catalog: SeriesCatalog) => T): T => {
    const { db } = openDatabase({ path: join(dir, 'state', 'forecastd.db'), synchronous: 'NORMAL', readonly: true });
    try {
      return use(new ReadingStore(db), new SeriesCatalog(db));
    } finally {
      db.close();
    }
  };
  const all = (store: ReadingStore, series: string) => store.read(series, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'forecastd-import-'));
    config = join(dir, 'forecastd.yaml');
    writeFileSync(config, `storage:\n  stateDir: ${JSON.stringify(join(dir, 'state'))}\n  retention:\n    defaultDays: 3650\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('UCI air quality, hourly (clean file)', () => {
    const clean = skip ? { columns: [], rows: [] } : readClean(AIR);
    const seriesOf = (column: string) => column.replace(/[^A-Za-z0-9_.:-]+/g, '_').replace(/^_+|_+$/g, '');
    let first: ReturnType<typeof cli>;

    before(() => {
      first = cli(['import', AIR, '--config', config, '--timezone', 'UTC']);
    });

    it('stores, for each value column, one reading per non-empty cell', () => {
      assert.equal(first.code, 0, first.stderr);
      const expected = clean.columns.slice(1).map((column, k) => [seriesOf(column), nonEmpty(clean, k + 1)]);
      assert.equal(expected.length, 13);
      const stored = withStore((store) => expected.map(([series]) => [series, all(store, series as string).values.length]));
      assert.deepEqual(stored, expected);
      const total = expected.reduce((sum, [, count]) => sum + (count as number), 0);
      assert.match(
        first.stdout,
        new RegExp(
          `^imported air_quality_uci_hourly\\.csv: ${clean.rows.length} rows read, ${total} readings stored, 0 duplicates, rejected: none; \\d+ rows/s, \\d+ readings/s`,
        ),
      );
    });

    it('keeps every timestamp and value (times without a zone read in --timezone)', () => {
      withStore((store) => {
        for (const [k, column] of clean.columns.entries()) {
          if (k === 0) continue;
          const rows = clean.rows.filter((row) => row[k] !== '');
          const data = all(store, seriesOf(column));
          assert.deepEqual(
            [...data.timestampsMs],
            rows.map((row) => Date.parse(`${row[0]}Z`)),
            column,
          );
          assert.deepEqual(
            [...data.values],
            rows.map((row) => Number(row[k])),
            column,
          );
        }
      });
    });

    it('stores nothing new when the file is imported again', () => {
      const again = cli(['import', AIR, '--config', config, '--timezone', 'UTC']);
      assert.equal(again.code, 0, again.stderr);
      const total = clean.columns.slice(1).reduce((sum, _, k) => sum + nonEmpty(clean, k + 1), 0);
      assert.match(again.stdout, new RegExp(`: ${clean.rows.length} rows read, 0 readings stored, ${total} duplicates,`));
      assert.equal(
        withStore((store) => store.count()),
        total,
      );
    });

    it('exports a range as the imported values, a row per timestamp, empty where a series has no value', () => {
      const out = join(dir, 'week.csv');
      const result = cli([
        'export',
        '--config',
        config,
        '--series',
        'NMHC_GT',
        '--series',
        'CO_GT',
        '--series',
        'T',
        '--from',
        '2004-06-17T00:00:00Z',
        '--to',
        '2004-06-24T00:00:00Z',
        '--out',
        out,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const columns = ['NMHC(GT)', 'CO(GT)', 'T'].map((name) => clean.columns.indexOf(name));
      const from = Date.parse('2004-06-17T00:00:00Z');
      const to = Date.parse('2004-06-24T00:00:00Z');
      const expected = clean.rows
        .filter((row) => Date.parse(`${row[0]}Z`) >= from && Date.parse(`${row[0]}Z`) < to && columns.some((k) => row[k] !== ''))
        .map((row) => [`${row[0]}Z`, ...columns.map((k) => (row[k] === '' ? '' : Number(row[k])))]);
      assert.ok(
        expected.length > 100 && expected.length < 168,
        `a week of hours, some with no value in any of the three series: got ${expected.length}`,
      );
      assert.ok(
        expected.some((row) => row.includes('')),
        'the range has empty cells to check',
      );
      const [header, ...lines] = readFileSync(out, 'utf8').trimEnd().split('\n');
      assert.equal(header, 'timestamp,NMHC_GT,CO_GT,T');
      const exported = lines.map((line) => line.split(',')).map(([ts, ...cells]) => [ts, ...cells.map((cell) => (cell === '' ? '' : Number(cell)))]);
      assert.deepEqual(exported, expected);
    });

    it('exports to stdout, and re-imports its own output to the same readings', () => {
      const result = cli([
        'export',
        '--config',
        config,
        '--series',
        'T',
        '--series',
        'RH',
        '--from',
        '2004-03-10T18:00:00Z',
        '--to',
        '2004-03-11T00:00:00Z',
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        result.stdout,
        [
          'timestamp,T,RH',
          ...clean.rows.slice(0, 6).map((row) => `${row[0]}Z,${Number(row[clean.columns.indexOf('T')])},${Number(row[clean.columns.indexOf('RH')])}`),
          '',
        ].join('\n'),
      );
      const file = join(dir, 'evening.csv');
      writeFileSync(file, result.stdout);
      const back = cli(['import', file, '--config', config, '--prefix', 'copy.', '--timezone', 'Asia/Tokyo']);
      assert.equal(back.code, 0, back.stderr);
      withStore((store) => {
        for (const series of ['T', 'RH']) {
          const original = store.read(series, Date.parse('2004-03-10T18:00:00Z'), Date.parse('2004-03-11T00:00:00Z'));
          const copy = all(store, `copy.${series}`);
          assert.deepEqual([copy.timestampsMs, copy.values], [original.timestampsMs, original.values], 'zoned timestamps ignore --timezone');
        }
      });
    });

    it("reads times without a zone in the machine's zone by default, and reports daylight-saving trouble", () => {
      const result = cli(['import', AIR, '--config', config, '--prefix', 'rome.', '--map', 'T=rome.temperature'], { TZ: 'Europe/Rome' });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /read as Europe\/Rome time/);
      // The file's clock has no DST jumps: in Europe/Rome two of its hours do not exist and one occurs twice.
      assert.match(result.stderr, /in Europe\/Rome, 2 times of the file do not exist .* 1 occur twice .*--timezone \+01:00/);
      withStore((store) => {
        const temperature = all(store, 'rome.temperature');
        assert.equal(temperature.timestampsMs[0], Date.parse('2004-03-10T17:00:00Z'), 'CET is UTC+1');
        assert.ok(temperature.values.length < nonEmpty(clean, clean.columns.indexOf('T')), 'a moved hour collides with the next one');
      });
    });
  });

  describe('UCI air quality, raw file (`;`, decimal comma, Date + Time columns, -200 for missing, CRLF, empty rows)', () => {
    it('gives the same readings as the clean file', () => {
      const result = cli(['import', AIR_RAW, '--config', config, '--timezone', 'UTC', '--prefix', 'raw.', '--missing=-200']);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /timestamps from "Date" \+ "Time"/);
      assert.match(result.stdout, /114 blank rows skipped/);
      assert.match(result.stdout, /ignored column #16: no name in the header/);
      withStore((store) => {
        for (const series of ['CO_GT', 'NMHC_GT', 'C6H6_GT', 'T', 'AH']) {
          const raw = all(store, `raw.${series}`);
          const cleanData = all(store, series);
          assert.ok(raw.values.length > 900, series);
          assert.deepEqual([raw.timestampsMs, raw.values], [cleanData.timestampsMs, cleanData.values], series);
        }
      });
    });
  });

  describe('UCI occupancy, about one row a minute, with a `source_file` text column', () => {
    const clean = skip ? { columns: [], rows: [] } : readClean(OCCUPANCY);
    let result: ReturnType<typeof cli>;
    before(() => {
      result = cli(['import', OCCUPANCY, '--config', config, '--timezone', 'UTC', '--prefix', 'office.']);
    });

    it('stores every number column and rejects the text column cell by cell, creating no series for it', () => {
      assert.equal(result.code, 0, result.stderr);
      const numeric = clean.columns.slice(1, -1);
      assert.deepEqual(numeric, ['Temperature', 'Humidity', 'Light', 'CO2', 'HumidityRatio', 'Occupancy']);
      withStore((store, catalog) => {
        for (const column of numeric)
          assert.equal(all(store, `office.${column}`).values.length, nonEmpty(clean, clean.columns.indexOf(column)), column);
        const names = catalog.list().map((series) => series.name);
        assert.ok(names.includes('office.CO2') && !names.includes('office.source_file'), names.join(', '));
      });
      assert.match(result.stdout, new RegExp(`rejected: source_file ${clean.rows.length};`));
      assert.match(
        result.stdout,
        /rejected 20560 cells of "source_file": no number in this column: nothing imported from it \(--skip it to silence this\) \(first: line 2, "datatest.txt"\)/,
      );
    });

    it('keeps the jittered timestamps (59 s and 61 s steps) exactly', () => {
      withStore((store) => {
        const co2 = all(store, 'office.CO2');
        assert.deepEqual(
          [...co2.timestampsMs],
          clean.rows.map((row) => Date.parse(`${row[0]}Z`)),
        );
        const steps = new Set([...co2.timestampsMs].slice(1).map((ts, i) => ts - co2.timestampsMs[i]));
        assert.ok(steps.has(59_000) && steps.has(61_000));
      });
    });

    it('imports nothing new the second time, and --skip silences the text column', () => {
      const again = cli(['import', OCCUPANCY, '--config', config, '--timezone', 'UTC', '--prefix', 'office.', '--skip', 'source_file']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(
        again.stdout,
        new RegExp(`: ${clean.rows.length} rows read, 0 readings stored, ${clean.rows.length * 6} duplicates, rejected: none;`),
      );
    });
  });

  describe('exit codes and messages', () => {
    it('2 for command lines that cannot work, with what to change', () => {
      const cases: Array<[string[], RegExp]> = [
        [['import', AIR], /import needs --config/],
        [['import', '--config', config], /import takes one CSV file/],
        [['import', AIR, '--config', config, '--map', 'Temp=t'], /--map "Temp": no such column; the header has "timestamp", "CO\(GT\)"/],
        [['import', AIR, '--config', config, '--timezone', 'Mars/Olympus'], /unknown time zone "Mars\/Olympus"/],
        [['import', AIR, '--config', config, '--frobnicate'], /Unknown option '--frobnicate'/],
        [['export', '--config', config], /export needs at least one --series/],
        [['export', '--config', config, '--series', 'T', '--from', 'yesterday'], /--from "yesterday": not a time/],
        [['export', '--config', config, '--series', 'T', '--from', '2005-01-01', '--to', '2004-01-01'], /--from must be before --to/],
      ];
      for (const [args, message] of cases) {
        const result = cli(args);
        assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, message);
      }
    });

    it('1 for failures at run time, saying what to do', () => {
      const missing = cli(['import', join(dir, 'nope.csv'), '--config', config]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /cannot read .*nope\.csv: ENOENT/);
      const unknown = cli(['export', '--config', config, '--series', 'no.such.series']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /no series "no\.such\.series" in .*forecastd\.db; it has: .*CO_GT/);
      const badTimes = join(dir, 'bad-times.csv');
      writeFileSync(badTimes, 'when,v\nsoon,1\nlater,2\n');
      const noTimes = cli(['import', badTimes, '--config', config]);
      assert.equal(noTimes.code, 1);
      assert.match(
        noTimes.stderr,
        /no row of bad-times\.csv has a timestamp that could be read in "when": nothing was imported; choose the column with --timestamp-column/,
      );
    });
  });
});
