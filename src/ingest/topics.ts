import { SERIES_NAME, type TopicRule } from '../config/schema.js';
import { AUTO_FORMAT, type PayloadFormat } from './payload.js';

/** What a topic means: the series it feeds and how its payloads are read, or why it feeds none. */
export type TopicMatch =
  | { ok: true; series: string; payload: PayloadFormat }
  /** unknown_topic: no rule matches; bad_series_name: the first matching rule yields a name that is not safe. */
  | { ok: false; reason: 'unknown_topic' | 'bad_series_name'; detail: string };

/** Compiled topic rules: `sensors/{device}/{metric}` + template `{device}.{metric}` → series name. */
export interface TopicMapper {
  match(topic: string): TopicMatch;
  readonly filters: string[];
}

interface CompiledRule {
  segments: Array<{ literal: string } | { name: string }>;
  template: string;
  payload: PayloadFormat;
}

function compile(rule: TopicRule): CompiledRule {
  const segments = rule.pattern.split('/').map((segment) => {
    const named = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment);
    return named ? { name: named[1] } : { literal: segment };
  });
  const payload: PayloadFormat = { format: rule.format ?? AUTO_FORMAT.format };
  if (rule.valuePath !== undefined) payload.valuePath = rule.valuePath;
  if (rule.timestampPath !== undefined) payload.timestampPath = rule.timestampPath;
  return { segments, template: rule.series, payload };
}

function fill(template: string, values: Map<string, string>): string | null {
  let missing = false;
  const name = template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, key: string) => {
    const value = values.get(key);
    if (value === undefined) missing = true;
    return value ?? '';
  });
  return missing ? null : name;
}

const NO_RULE: TopicMatch = { ok: false, reason: 'unknown_topic', detail: 'no topic rule matches' };

export function createTopicMapper(rules: readonly TopicRule[]): TopicMapper {
  const compiled = rules.map(compile);
  return {
    filters: [...new Set(rules.map((rule) => rule.filter))],
    match(topic) {
      const levels = topic.split('/');
      for (const rule of compiled) {
        if (rule.segments.length !== levels.length) continue;
        const values = new Map<string, string>();
        const matches = rule.segments.every((segment, index) => {
          if ('literal' in segment) return segment.literal === levels[index];
          values.set(segment.name, levels[index]);
          return levels[index].length > 0;
        });
        if (!matches) continue;
        // First matching rule wins, even when its name is unsafe: a later rule must not silently re-route it.
        const series = fill(rule.template, values);
        if (series === null) return { ok: false, reason: 'bad_series_name', detail: 'the series template names a segment the pattern lacks' };
        if (!SERIES_NAME.test(series)) return { ok: false, reason: 'bad_series_name', detail: 'the topic gives a series name that is not safe' };
        return { ok: true, series, payload: rule.payload };
      }
      return NO_RULE;
    },
  };
}
