/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: every line must be a HELP, a TYPE, a
 * comment, blank, or a well-formed sample; escapes in HELP and label values are checked; a family's HELP and TYPE
 * come once and before its samples, its samples stay together, and histograms are cumulative.
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface ParsedFamily {
  name: string;
  help?: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: ParsedSample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<string, string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count', ''],
  counter: [''],
  gauge: [''],
  untyped: [''],
};

export class ExpositionError extends Error {
  constructor(lineNumber: number, line: string, problem: string) {
    super(`line ${lineNumber}: ${problem}: ${JSON.stringify(line)}`);
  }
}

function unescapeHelp(text: string, fail: (problem: string) => never): string {
  return text.replace(/\\(.?)/g, (_, next: string) => {
    if (next === '\\') return '\\';
    if (next === 'n') return '\n';
    return fail(`invalid escape \\${next} in HELP`);
  });
}

export function parseValue(text: string): number {
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return Number.NaN;
  return Number(text);
}

/** Parses `name{a="b",c="d"} value [timestamp]`. */
function parseSample(line: string, fail: (problem: string) => never): ParsedSample {
  let index = 0;
  while (index < line.length && /[a-zA-Z0-9_:]/.test(line[index])) index++;
  const name = line.slice(0, index);
  if (!METRIC_NAME.test(name)) fail('invalid metric name');
  const labels: Record<string, string> = {};
  if (line[index] === '{') {
    index++;
    while (line[index] !== '}') {
      const start = index;
      while (index < line.length && /[a-zA-Z0-9_]/.test(line[index])) index++;
      const label = line.slice(start, index);
      if (!LABEL_NAME.test(label)) fail(`invalid label name "${label}"`);
      if (label in labels) fail(`label "${label}" appears twice`);
      if (line[index] !== '=' || line[index + 1] !== '"') fail(`expected ="…" after label ${label}`);
      index += 2;
      let value = '';
      for (;;) {
        if (index >= line.length) fail('unterminated label value');
        const char = line[index];
        if (char === '"') break;
        if (char === '\n') fail('raw newline in a label value');
        if (char === '\\') {
          const next = line[index + 1];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else fail(`invalid escape \\${next ?? ''} in a label value`);
          index += 2;
          continue;
        }
        value += char;
        index++;
      }
      labels[label] = value;
      index++; // closing quote
      if (line[index] === ',') index++;
      else if (line[index] !== '}') fail('expected , or } after a label');
    }
    index++;
  }
  if (line[index] !== ' ') fail('expected a space before the value');
  const rest = line.slice(index + 1).split(' ');
  if (rest.length < 1 || rest.length > 2 || rest.some((part) => part === '')) fail('expected a value and an optional timestamp');
  const value = parseValue(rest[0]);
  if (Number.isNaN(value) && rest[0] !== 'NaN') fail(`invalid value "${rest[0]}"`);
  const sample: ParsedSample = { name, labels, value };
  if (rest[1] !== undefined) {
    if (!/^-?\d+$/.test(rest[1])) fail(`invalid timestamp "${rest[1]}"`);
    sample.timestampMs = Number(rest[1]);
  }
  return sample;
}

export function parseExposition(text: string): Map<string, ParsedFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, ParsedFamily>();
  const closed = new Set<string>();
  let current: ParsedFamily | null = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, lineIndex) => {
    const fail = (problem: string): never => {
      throw new ExpositionError(lineIndex + 1, line, problem);
    };
    if (line.trim() === '') return;
    const familyFor = (name: string): ParsedFamily => {
      if (!METRIC_NAME.test(name)) fail('invalid metric name');
      let family = families.get(name);
      if (!family) families.set(name, (family = { name, type: 'untyped', samples: [] }));
      if (current && current !== family) closed.add(current.name);
      if (closed.has(name)) fail(`family ${name} continues after another family`);
      current = family;
      return family;
    };
    // Only '\n' ends a line in this format: a carriage return or U+2028 in HELP is text, hence the s flag.
    const help = /^# HELP (\S+) (.*)$/s.exec(line) ?? /^# HELP (\S+)$/.exec(line);
    if (help) {
      const family = familyFor(help[1]);
      if (family.help !== undefined) fail('second HELP line');
      if (family.samples.length) fail('HELP after samples');
      family.help = unescapeHelp(help[2] ?? '', fail);
      return;
    }
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      if (!TYPES.has(type[2])) fail(`unknown type ${type[2]}`);
      const family = familyFor(type[1]);
      if ((family as ParsedFamily & { typed?: boolean }).typed) fail('second TYPE line');
      if (family.samples.length) fail('TYPE after samples');
      family.type = type[2] as ParsedFamily['type'];
      (family as ParsedFamily & { typed?: boolean }).typed = true;
      return;
    }
    if (line.startsWith('#')) {
      if (/^# (HELP|TYPE)\b/.test(line)) fail('malformed HELP or TYPE line');
      return;
    }
    const sample = parseSample(line, fail);
    // The family is the sample's name, or its name minus a suffix its type allows.
    let family: ParsedFamily | undefined;
    for (const candidate of [
      sample.name,
      ...['_bucket', '_sum', '_count'].filter((suffix) => sample.name.endsWith(suffix)).map((suffix) => sample.name.slice(0, -suffix.length)),
    ]) {
      const known = families.get(candidate);
      if (known && SUFFIXES[known.type].includes(sample.name.slice(candidate.length))) {
        family = known;
        break;
      }
    }
    family ??= familyFor(sample.name);
    if (current !== family) familyFor(family.name);
    const key = JSON.stringify([sample.name, Object.entries(sample.labels).sort()]);
    if (family.samples.some((other) => JSON.stringify([other.name, Object.entries(other.labels).sort()]) === key)) fail('duplicate sample');
    if (family.type === 'histogram' && sample.name.endsWith('_bucket') && sample.labels.le === undefined) fail('histogram bucket without le');
    if (family.type === 'counter' && sample.value < 0) fail('negative counter');
    family.samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: ParsedFamily): void {
  const groups = new Map<string, ParsedSample[]>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    groups.set(key, [...(groups.get(key) ?? []), sample]);
  }
  for (const [key, samples] of groups) {
    const buckets = samples
      .filter((sample) => sample.name.endsWith('_bucket'))
      .map((sample) => ({ le: Number(sample.labels.le === '+Inf' ? Infinity : sample.labels.le), value: sample.value }));
    const count = samples.find((sample) => sample.name.endsWith('_count'));
    const sum = samples.find((sample) => sample.name.endsWith('_sum'));
    if (!count || !sum) throw new Error(`histogram ${family.name}${key}: _sum and _count are required`);
    const inf = buckets.find((bucket) => bucket.le === Infinity);
    if (!inf) throw new Error(`histogram ${family.name}${key}: no +Inf bucket`);
    if (inf.value !== count.value) throw new Error(`histogram ${family.name}${key}: +Inf bucket ${inf.value} != _count ${count.value}`);
    const sorted = [...buckets].sort((a, b) => a.le - b.le);
    sorted.forEach((bucket, index) => {
      if (index > 0 && bucket.value < sorted[index - 1].value) throw new Error(`histogram ${family.name}${key}: buckets are not cumulative`);
    });
  }
}

/** The value of the one sample of `name` whose labels include `labels`. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const sample of family.samples) {
      if (sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) return sample.value;
    }
  }
  return undefined;
}
