import { SERIES_NAME, type TopicRule } from '../config/schema.js';

/** A compiled topic rule: `sensors/{device}/{metric}` + template `{device}.{metric}` → series name. */
export interface TopicMapper {
  /** The series base name for a topic, or null when no rule matches or the name would be unsafe. */
  seriesFor(topic: string): string | null;
  readonly filters: string[];
}

interface CompiledRule {
  segments: Array<{ literal: string } | { name: string }>;
  template: string;
}

function compile(rule: TopicRule): CompiledRule {
  const segments = rule.pattern.split('/').map((segment) => {
    const named = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment);
    return named ? { name: named[1] } : { literal: segment };
  });
  return { segments, template: rule.series };
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

export function createTopicMapper(rules: readonly TopicRule[]): TopicMapper {
  const compiled = rules.map(compile);
  return {
    filters: [...new Set(rules.map((rule) => rule.filter))],
    seriesFor(topic) {
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
        const series = fill(rule.template, values);
        // First matching rule wins, even when its name is unsafe: a later rule must not silently re-route it.
        return series !== null && SERIES_NAME.test(series) ? series : null;
      }
      return null;
    },
  };
}
