import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ColumnPlanError, planColumns, sanitizeColumnName } from '../../src/ingest/csv/columns.js';
import { importCsv, type CsvImportOptions } from '../../src/ingest/csv/importer.js';
import { CsvParser, detectDelimiter } from '../../src/ingest/csv/parser.js';
import { parseTimestamp, timeZone } from '../../src/time/timestamps.js';
import { parseDecimal } from '../../src/ingest/csv/values.js';
import { openDatabase } from '../../src/store/database.js';
import { ReadingStore } from '../../src/store/readings.js';
import { SeriesCatalog } from '../../src/store/seriesCatalog.js';

/** Parses `text` fed in the given chunks; returns the records with the line each starts on. */
function parse(chunks: string[], delimiter = ','): Array<{ fields: string[]; line: number }> {
  const records: Array<{ fields: string[]; line: number }> = [];
  const parser = new CsvParser(delimiter, (fields, line) => records.push({ fields, line }));
  for (const chunk of chunks) parser.push(chunk);
  parser.end();
  return records;
}
const fieldsOf = (text: string, delimiter = ',') => parse([text], delimiter).map((record) => record.fields);

describe('CsvParser', () => {
  it('splits plain records on the delimiter and line feeds', () => {
    assert.deepEqual(fieldsOf('a,b,c\n1,2,3\n'), [
      ['a', 'b', 'c'],
      ['1', '2', '3'],
    ]);
  });

  it('drops the CR of CRLF line endings, and reads a last record without a line break', () => {
    assert.deepEqual(fieldsOf('a,b\r\n1,2\r\n'), [
      ['a', 'b'],
      ['1', '2'],
    ]);
    assert.deepEqual(fieldsOf('a;b\r\n1;2\r\n3;4', ';'), [
      ['a', 'b'],
      ['1', '2'],
      ['3', '4'],
    ]);
  });

  it('keeps empty cells, including a trailing one', () => {
    assert.deepEqual(fieldsOf('t,x,y\n1,,3\n2,5,\n'), [
      ['t', 'x', 'y'],
      ['1', '', '3'],
      ['2', '5', ''],
    ]);
  });

  it('reads quoted fields holding the delimiter, doubled quotes and line breaks', () => {
    const text = 'name,note\n"a,b","say ""hi"""\n"two\r\nlines",x\n"",y\n';
    assert.deepEqual(fieldsOf(text), [
      ['name', 'note'],
      ['a,b', 'say "hi"'],
      ['two\r\nlines', 'x'],
      ['', 'y'],
    ]);
  });

  it('numbers each record by the line it starts on, counting line breaks inside quotes', () => {
    const records = parse(['h\n"a\nb"\nc\n']);
    assert.deepEqual(
      records.map((record) => record.line),
      [1, 2, 4],
    );
  });

  it('reads malformed quoting leniently instead of dropping text', () => {
    assert.deepEqual(fieldsOf('5" pipe,2\n"x"y,3\n'), [
      ['5" pipe', '2'],
      ['xy', '3'],
    ]);
  });

  it('drops a UTF-8 byte order mark at the start only', () => {
    assert.deepEqual(fieldsOf('\uFEFFtimestamp,v\n1,\uFEFF\n'), [
      ['timestamp', 'v'],
      ['1', '\uFEFF'],
    ]);
  });

  it('gives the same records whatever the chunk boundaries', () => {
    const text = '\uFEFFts;"va;l"\r\n2024-01-01;"1,5"\r\n2024-01-02;"x""y"\r\n"multi\nline";\r\n2024-01-03;7';
    const whole = parse([text], ';');
    assert.equal(whole.length, 5);
    for (let cut = 0; cut <= text.length; cut++) {
      assert.deepEqual(parse([text.slice(0, cut), text.slice(cut)], ';'), whole, `split at ${cut}`);
    }
    assert.deepEqual(parse([...text], ';'), whole, 'one character at a time');
  });

  it('refuses a delimiter that cannot work', () => {
    assert.throws(() => new CsvParser('"', () => {}), RangeError);
    assert.throws(() => new CsvParser(';;', () => {}), RangeError);
  });
});

describe('detectDelimiter', () => {
  it('picks the candidate most frequent on the header line', () => {
    assert.equal(detectDelimiter('a,b,c\n1;2;3;4;5\n'), ',');
    assert.equal(detectDelimiter('Date;Time;CO(GT);T;;\r\n10/03/2004;18.00.00;2,6'), ';');
    assert.equal(detectDelimiter('a\tb\tc\n'), '\t');
  });

  it('ignores delimiters inside quotes and falls back to a comma', () => {
    assert.equal(detectDelimiter('"a;b;c",d\n'), ',');
    assert.equal(detectDelimiter('timestamp\n'), ',');
  });
});

describe('parseDecimal', () => {
  it('reads plain decimal numbers', () => {
    assert.equal(parseDecimal('2.6', false), 2.6);
    assert.equal(parseDecimal('-3e2', false), -300);
    assert.equal(parseDecimal('+.5', false), 0.5);
    assert.equal(parseDecimal(' 12 ', false), 12);
    assert.equal(parseDecimal('0.00476416302416414', false), 0.00476416302416414);
  });

  it('reads a decimal comma only when asked to', () => {
    assert.equal(parseDecimal('2,6', true), 2.6);
    assert.equal(parseDecimal('-0,7578', true), -0.7578);
    assert.equal(parseDecimal('2.6', true), 2.6);
    assert.ok(Number.isNaN(parseDecimal('2,6', false)));
  });

  it('refuses what Number() would wrongly accept', () => {
    for (const text of ['', '   ', 'NaN', 'Infinity', '0x10', '1.234,5', '1,234,5', '1e', '.', '-', '12abc', 'datatest.txt']) {
      assert.ok(Number.isNaN(parseDecimal(text, true)), text);
    }
  });
});

const UTC = timeZone('UTC');
const at = (iso: string) => Date.parse(iso);

describe('parseTimestamp', () => {
  it('reads ISO 8601 local times in the given zone (here UTC)', () => {
    assert.equal(parseTimestamp('2004-03-10T18:00:00', UTC), at('2004-03-10T18:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10 18:00', UTC), at('2004-03-10T18:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10T18:00:00.25', UTC), at('2004-03-10T18:00:00.250Z'));
    assert.equal(parseTimestamp('2004-03-10T18:00:00.123456', UTC), at('2004-03-10T18:00:00.123Z'));
  });

  it('reads dates and months as their first midnight', () => {
    assert.equal(parseTimestamp('1973-05-01', UTC), at('1973-05-01T00:00:00Z'));
    assert.equal(parseTimestamp('1749-01', UTC), Date.UTC(1749, 0, 1));
    assert.equal(parseTimestamp('2004-02-29', UTC), at('2004-02-29T00:00:00Z'));
  });

  it('uses a zone written in the timestamp rather than the import zone', () => {
    const rome = timeZone('Europe/Rome');
    assert.equal(parseTimestamp('2004-03-10T17:00:00Z', rome), at('2004-03-10T17:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10T18:00:00+01:00', rome), at('2004-03-10T17:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10T18:00:00+0100', UTC), at('2004-03-10T17:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10T12:30:00-05:30', UTC), at('2004-03-10T18:00:00Z'));
    assert.equal(parseTimestamp('2004-03-10T19:00:00+02', UTC), at('2004-03-10T17:00:00Z'));
  });

  it('reads the raw UCI day-first date with a dotted time', () => {
    assert.equal(parseTimestamp('10/03/2004 18.00.00', UTC), at('2004-03-10T18:00:00Z'));
    assert.equal(parseTimestamp('10/03/2004', UTC), at('2004-03-10T00:00:00Z'));
  });

  it('reads epoch seconds and milliseconds', () => {
    assert.equal(parseTimestamp('1078941600', UTC), 1_078_941_600_000);
    assert.equal(parseTimestamp('1078941600.5', UTC), 1_078_941_600_500);
    assert.equal(parseTimestamp('1078941600123', UTC), 1_078_941_600_123);
  });

  it('refuses impossible or unknown forms', () => {
    for (const text of [
      '',
      'yesterday',
      '2004-13-01',
      '2005-02-29',
      '2004-04-31',
      '2004-03-10T24:00',
      '2004-03-10T18:60',
      '2004-03-10T18:00:00+25:00',
      '2004-03-10T18:00:00 CET',
      '20040310',
      '12345678',
      '2004/03/10',
      '32/01/2004',
      '2004-03-1',
    ]) {
      assert.ok(Number.isNaN(parseTimestamp(text, UTC)), text);
    }
  });
});

describe('time zones', () => {
  it('applies a fixed offset', () => {
    assert.equal(parseTimestamp('2004-03-10T18:00:00', timeZone('+01:00')), at('2004-03-10T17:00:00Z'));
    assert.equal(parseTimestamp('2004-07-10T18:00:00', timeZone('-0330')), at('2004-07-10T21:30:00Z'));
  });

  it('follows daylight saving time in an IANA zone', () => {
    const rome = timeZone('Europe/Rome');
    assert.equal(parseTimestamp('2004-03-10T18:00:00', rome), at('2004-03-10T17:00:00Z'), 'winter: +01:00');
    assert.equal(parseTimestamp('2004-07-10T18:00:00', rome), at('2004-07-10T16:00:00Z'), 'summer: +02:00');
    const sydney = timeZone('Australia/Sydney');
    assert.equal(parseTimestamp('2024-01-15T12:00:00', sydney), at('2024-01-15T01:00:00Z'), 'southern summer: +11:00');
    assert.equal(parseTimestamp('2024-07-15T12:00:00', sydney), at('2024-07-15T02:00:00Z'), 'southern winter: +10:00');
    assert.equal(parseTimestamp('2024-07-15T12:00:00', timeZone('Asia/Kolkata')), at('2024-07-15T06:30:00Z'));
    assert.equal(rome.nonexistent + rome.ambiguous + sydney.nonexistent + sydney.ambiguous, 0);
  });

  it('moves a time in the spring-forward gap forward, and counts it', () => {
    const rome = timeZone('Europe/Rome');
    // 2004-03-28: 02:00 CET became 03:00 CEST (01:00Z), so 02:30 does not exist.
    assert.equal(parseTimestamp('2004-03-28T02:30:00', rome), at('2004-03-28T01:30:00Z'));
    assert.equal(parseTimestamp('2004-03-28T01:59:00', rome), at('2004-03-28T00:59:00Z'));
    assert.equal(parseTimestamp('2004-03-28T03:00:00', rome), at('2004-03-28T01:00:00Z'));
    assert.equal(rome.nonexistent, 1);
    assert.equal(rome.ambiguous, 0);
  });

  it('reads a time that occurs twice (fall back) as the first occurrence, and counts it', () => {
    const rome = timeZone('Europe/Rome');
    // 2004-10-31: 03:00 CEST went back to 02:00 CET (01:00Z), so 02:30 happened at 00:30Z and at 01:30Z.
    assert.equal(parseTimestamp('2004-10-31T02:30:00', rome), at('2004-10-31T00:30:00Z'));
    assert.equal(parseTimestamp('2004-10-31T03:00:00', rome), at('2004-10-31T02:00:00Z'));
    assert.equal(rome.ambiguous, 1);
    assert.equal(rome.nonexistent, 0);
  });

  it('names an unknown zone and what is accepted', () => {
    assert.throws(() => timeZone('Mars/Olympus'), /unknown time zone "Mars\/Olympus".*Europe\/Rome/);
    assert.equal(timeZone('local').name.length > 0, true);
    assert.equal(timeZone('utc').name, 'UTC');
  });
});

describe('planColumns', () => {
  it('finds the timestamp column by name, else takes the first column', () => {
    assert.equal(planColumns(['v', 'Timestamp', 'w']).timestamp.index, 1);
    assert.equal(planColumns(['month', 'co2_ppm']).timestamp.index, 0);
    assert.deepEqual(planColumns(['month', 'co2_ppm']).values, [{ index: 1, column: 'co2_ppm', series: 'co2_ppm' }]);
  });

  it('joins a date column with a time column', () => {
    const plan = planColumns(['Date', 'Time', 'CO(GT)', '', '']);
    assert.equal(plan.timestamp.column, 'Date');
    assert.equal(plan.time?.column, 'Time');
    assert.deepEqual(
      plan.values.map((column) => column.series),
      ['CO_GT'],
    );
    assert.deepEqual(
      plan.ignored.map((column) => [column.index, column.reason]),
      [
        [3, 'unnamed'],
        [4, 'unnamed'],
      ],
    );
  });

  it('takes --timestamp-column by name or by position counting from 1', () => {
    assert.equal(planColumns(['a', 'when', 'b'], { timestampColumn: 'when' }).timestamp.index, 1);
    assert.equal(planColumns(['a', 'when', 'b'], { timestampColumn: '3' }).timestamp.index, 2);
    assert.throws(() => planColumns(['a', 'b'], { timestampColumn: '3' }), ColumnPlanError);
  });

  it('derives series names from column names, with the prefix, unless mapped', () => {
    assert.equal(sanitizeColumnName('PT08.S1(CO)'), 'PT08.S1_CO');
    assert.equal(sanitizeColumnName(' Temp °C '), 'Temp_C');
    const plan = planColumns(['timestamp', 'CO(GT)', 'T', 'RH'], { prefix: 'air.', map: { T: 'kitchen.temperature' }, skip: ['RH'] });
    assert.deepEqual(
      plan.values.map((column) => column.series),
      ['air.CO_GT', 'kitchen.temperature'],
    );
    assert.deepEqual(
      plan.ignored.map((column) => column.column),
      ['RH'],
    );
  });

  it('says what to do when the options do not fit the header', () => {
    assert.throws(() => planColumns(['timestamp', 'T'], { map: { Temp: 'x' } }), /--map "Temp": no such column; the header has "timestamp", "T"/);
    assert.throws(() => planColumns(['timestamp', 'T'], { map: { T: '.bad' } }), /--map T=\.bad: a series name/);
    assert.throws(() => planColumns(['timestamp', 'a b', 'a_b']), /columns "a b" and "a_b" would both feed the series "a_b".*--map/);
    assert.throws(() => planColumns(['timestamp', '°']), /--map "°=<series>".*--skip "°"/);
    assert.throws(() => planColumns(['timestamp', 'T'], { skip: ['T'] }), /no value columns/);
  });
});

describe('importCsv', () => {
  const openStore = () => {
    const { db } = openDatabase({ path: ':memory:', synchronous: 'NORMAL' });
    return { readings: new ReadingStore(db), catalog: new SeriesCatalog(db) };
  };
  const store = () => openStore().readings;
  const source = (text: string, chunkSize = text.length) => {
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += chunkSize) chunks.push(text.slice(i, i + chunkSize));
    return { name: 'test.csv', chunks };
  };
  const options: CsvImportOptions = { timeZone: UTC };

  it('imports a European export: BOM, `;`, decimal comma, CRLF, quotes, gaps and a text column', async () => {
    const text =
      '\uFEFFtimestamp;"Temp;°C";RH;note\r\n' +
      '2024-01-01T00:00:00;"21,5";40;"ok; fine"\r\n' +
      '2024-01-01T01:00:00;;41,25;x\r\n' +
      '2024-01-01T02:00:00;-0,5;;\r\n';
    const { readings, catalog } = openStore();
    const summary = await importCsv(source(text), readings, options);
    assert.equal(summary.delimiter, ';');
    assert.equal(summary.decimalComma, true);
    assert.equal(summary.rowsRead, 3);
    assert.equal(summary.readingsStored, 4);
    assert.deepEqual(
      summary.columns.map((column) => [column.series, column.readings, column.rejected]),
      [
        ['Temp_C', 2, 0],
        ['RH', 2, 0],
        ['note', 0, 2],
      ],
    );
    assert.deepEqual(summary.columns[2].firstRejected, { line: 2, text: 'ok; fine' });
    const temperature = readings.read('Temp_C', 0, Number.MAX_SAFE_INTEGER);
    assert.deepEqual([...temperature.timestampsMs], [at('2024-01-01T00:00:00Z'), at('2024-01-01T02:00:00Z')]);
    assert.deepEqual([...temperature.values], [21.5, -0.5]);
    assert.deepEqual([...readings.read('RH', 0, Number.MAX_SAFE_INTEGER).values], [40, 41.25]);
    assert.deepEqual(
      catalog.list().map((series) => series.name),
      ['RH', 'Temp_C'],
      'the all-text column creates no series',
    );
  });

  it('is idempotent, across many small transactions and chunks', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => `${1_700_000_000 + i * 60},${i},${i % 3 === 0 ? '' : i * 2}`);
    const text = `ts,a,b\n${rows.join('\n')}\n`;
    const readings = store();
    const first = await importCsv(source(text, 7), readings, { ...options, batchRows: 4 });
    assert.equal(first.readingsStored, 50 + 33);
    assert.equal(first.duplicates, 0);
    const again = await importCsv(source(text, 13), readings, { ...options, batchReadings: 5 });
    assert.equal(again.readingsStored, 0);
    assert.equal(again.duplicates, 83);
    assert.equal(readings.count(), 83);
  });

  it('counts bad timestamps, out-of-range numbers and blank rows without failing; missing markers match by value or text', async () => {
    const text =
      'time,v\n2024-01-01,1\nsoon,2\n2024-01-03,1e400\n2024-01-04,2e15\n2024-01-05,-200\n2024-01-05,"-200,0"\n2024-01-05,NA\n,\n\n2024-01-06, 6 \n';
    const summary = await importCsv(source(text), store(), { ...options, decimalComma: true, missing: ['-200', 'NA'] });
    assert.equal(summary.rowsRead, 10);
    assert.equal(summary.blankRows, 2);
    assert.equal(summary.badTimestampRows, 1);
    assert.deepEqual(summary.firstBadTimestamp, { line: 3, text: 'soon' });
    assert.equal(summary.columns[0].rejected, 2);
    assert.equal(summary.readingsStored, 2);
    assert.equal(summary.columns[0].firstMs, at('2024-01-01T00:00:00Z'));
    assert.equal(summary.columns[0].lastMs, at('2024-01-06T00:00:00Z'));
  });

  it('refuses an empty file', async () => {
    await assert.rejects(importCsv(source(''), store(), options), /test\.csv is empty/);
  });
});
