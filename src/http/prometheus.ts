/**
 * The Prometheus text exposition format (version 0.0.4), written by hand: a family is a name, a help text, a type
 * and its samples. https://prometheus.io/docs/instrumenting/exposition_formats/
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
export type Labels = Record<string, string>;

export interface Sample {
  /** Appended to the family name: '_bucket', '_sum', '_count' for histograms and summaries; '' otherwise. */
  suffix?: '' | '_bucket' | '_sum' | '_count';
  labels?: Labels;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export const escapeHelp = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
export const escapeLabelValue = (text: string) => text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  for (const [name] of entries) if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`invalid label name "${name}"`);
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** The exposition text of `families`; a family without samples is left out. */
export function renderExposition(families: MetricFamily[]): string {
  const seen = new Set<string>();
  let text = '';
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid metric name "${family.name}"`);
    if (seen.has(family.name)) throw new Error(`metric family "${family.name}" appears twice`);
    seen.add(family.name);
    if (family.samples.length === 0) continue;
    text += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) text += `${family.name}${sample.suffix ?? ''}${formatLabels(sample.labels)} ${formatValue(sample.value)}\n`;
  }
  return text;
}

/** A cumulative histogram: bucket counts, sum and count, in constant memory. */
export class Histogram {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(readonly buckets: ReadonlyArray<number>) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.buckets.forEach((bound, index) => {
      if (value <= bound) this.counts[index]++;
    });
    this.sum += value;
    this.count++;
  }

  samples(labels: Labels = {}): Sample[] {
    return [
      ...this.buckets.map((bound, index): Sample => ({
        suffix: '_bucket',
        labels: { ...labels, le: formatValue(bound) },
        value: this.counts[index],
      })),
      { suffix: '_bucket', labels: { ...labels, le: '+Inf' }, value: this.count },
      { suffix: '_sum', labels, value: this.sum },
      { suffix: '_count', labels, value: this.count },
    ];
  }
}
