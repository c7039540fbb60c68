/**
 * A small streaming CSV parser (RFC 4180): chunks of text in, records (arrays of field strings) out.
 *
 * - Records end at LF or CRLF. Fields may be quoted with `"`; a quoted field may hold the delimiter, line breaks
 *   and `""` (one quote). A quote inside an unquoted field is kept as a character, and text after a closing quote
 *   is appended to the field: malformed files are read leniently rather than refused.
 * - A UTF-8 byte order mark at the start is dropped.
 * - Speed: a line without any `"` (the common case) is cut with one native `split`; only lines with quotes go
 *   through the character-by-character path. A record may span chunks: its start is kept and re-parsed with the
 *   next chunk.
 */

export type CsvDelimiter = ',' | ';' | '\t';
export const CSV_DELIMITERS: readonly CsvDelimiter[] = [',', ';', '\t'];

/** Receives each record and the (1-based) line of the file on which it starts. */
export type RecordHandler = (fields: string[], line: number) => void;

const QUOTE = 34; // "
const LF = 10;
const CR = 13;

/**
 * Guesses the delimiter from the start of a file: the candidate that occurs most often outside quotes on the first
 * line. A tie or a line without any candidate gives `,`.
 */
export function detectDelimiter(sample: string): CsvDelimiter {
  const counts = new Map<string, number>(CSV_DELIMITERS.map((d) => [d, 0]));
  let quoted = false;
  for (let i = sample.charCodeAt(0) === 0xfeff ? 1 : 0; i < sample.length; i++) {
    const char = sample[i];
    if (char === '"') quoted = !quoted;
    else if (!quoted && char === '\n') break;
    else if (!quoted && counts.has(char)) counts.set(char, counts.get(char)! + 1);
  }
  let best: CsvDelimiter = ',';
  for (const candidate of CSV_DELIMITERS) if (counts.get(candidate)! > counts.get(best)!) best = candidate;
  return best;
}

export class CsvParser {
  private pending = '';
  private atStart = true;
  private nextLine = 1;
  private readonly delimiterCode: number;

  constructor(
    private readonly delimiter: string,
    private readonly onRecord: RecordHandler,
  ) {
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
      throw new RangeError(`a CSV delimiter is one character other than a quote or a line break, not ${JSON.stringify(delimiter)}`);
    }
    this.delimiterCode = delimiter.charCodeAt(0);
  }

  /** Parses every complete record in `chunk` (plus what was left over from the previous chunk). */
  push(chunk: string): void {
    let text = this.pending.length ? this.pending + chunk : chunk;
    if (this.atStart && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.atStart = false;
    }
    this.pending = text.slice(this.parse(text, false));
  }

  /** The end of the input: the last record may lack its line break. */
  end(): void {
    const text = this.pending;
    this.pending = '';
    if (text.length) this.parse(text, true);
  }

  /** Parses the complete records of `text`; returns where the incomplete rest begins (text.length when none). */
  private parse(text: string, final: boolean): number {
    const length = text.length;
    let start = 0;
    // The next quote at or after `start`; -1 once there is none left in this text. Cached, so that a file without
    // quotes costs one indexOf per chunk instead of one per line.
    let nextQuote = text.indexOf('"');
    while (start < length) {
      let lineEnd = text.indexOf('\n', start);
      if (lineEnd === -1) {
        if (!final) return start;
        lineEnd = length;
      }
      if (nextQuote !== -1 && nextQuote < start) nextQuote = text.indexOf('"', start);
      if (nextQuote === -1 || nextQuote > lineEnd) {
        const end = lineEnd > start && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd;
        this.onRecord(text.slice(start, end).split(this.delimiter), this.nextLine++);
        start = lineEnd + 1;
        continue;
      }
      const next = this.parseQuotedRecord(text, start, final);
      if (next === -1) return start;
      start = next;
    }
    return length;
  }

  /**
   * The slow path, for a record with a quote somewhere: returns the index after the record's line break, or -1 when
   * the record continues beyond `text` (only possible when not `final`).
   */
  private parseQuotedRecord(text: string, recordStart: number, final: boolean): number {
    const length = text.length;
    const fields: string[] = [];
    let i = recordStart;
    for (;;) {
      let value = '';
      if (text.charCodeAt(i) === QUOTE) {
        i++;
        for (;;) {
          const quote = text.indexOf('"', i);
          if (quote === -1) {
            if (!final) return -1;
            // An unterminated quote swallows the rest of the file: keep it rather than lose it.
            value += text.slice(i);
            i = length;
            break;
          }
          value += text.slice(i, quote);
          // A quote at the very end of a chunk may be half of a `""`: the field-end check below then asks for more.
          if (text.charCodeAt(quote + 1) === QUOTE) {
            value += '"';
            i = quote + 2;
            continue;
          }
          i = quote + 1;
          break;
        }
      }
      // Unquoted text, or stray text after a closing quote, up to the delimiter or the line break.
      let stop = i;
      while (stop < length) {
        const code = text.charCodeAt(stop);
        if (code === this.delimiterCode || code === LF) break;
        stop++;
      }
      if (stop === length && !final) return -1;
      const end = stop > i && text.charCodeAt(stop - 1) === CR && (stop === length || text.charCodeAt(stop) === LF) ? stop - 1 : stop;
      value += text.slice(i, end);
      fields.push(value);
      if (stop < length && text.charCodeAt(stop) === this.delimiterCode) {
        i = stop + 1;
        continue;
      }
      const line = this.nextLine;
      for (let k = recordStart; k < stop; k++) if (text.charCodeAt(k) === LF) this.nextLine++;
      this.nextLine++;
      this.onRecord(fields, line);
      return stop + 1;
    }
  }
}
