import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** A config that cannot be used; the message names every offending key and what is wrong with it. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** One line per problem, starting with the full key path (`mqtt.prot: unknown key`), as a user would search the file for it. */
function describeIssue(issue: z.core.$ZodIssue): string[] {
  const keyPath = (path: PropertyKey[]) => (path.length ? path.map(String).join('.') : '(top level)');
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${keyPath([...issue.path, key])}: unknown key`);
  return [`${keyPath(issue.path)}: ${issue.message}`];
}

/** Validates an already parsed object, filling defaults and the secrets that come from the environment. */
export function parseConfig(raw: unknown, source = '(inline)', env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(source, result.error.issues.flatMap(describeIssue));
  const config = result.data;
  config.mqtt.clientId ??= `forecastd-${hostname()}`;
  if (env.FORECASTD_MQTT_PASSWORD) config.mqtt.password = env.FORECASTD_MQTT_PASSWORD;
  else if (config.mqtt.passwordFile && config.mqtt.password === undefined) {
    try {
      config.mqtt.password = readFileSync(config.mqtt.passwordFile, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(source, [`mqtt.passwordFile: cannot read ${config.mqtt.passwordFile}: ${(error as Error).message}`]);
    }
  }
  if (env.FORECASTD_MQTT_USERNAME) config.mqtt.username = env.FORECASTD_MQTT_USERNAME;
  if (env.FORECASTD_HTTP_TOKEN) config.http.token = env.FORECASTD_HTTP_TOKEN;
  return config;
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    // The yaml library quotes the offending line after its first line; that line can be `password: ...`, and this
    // message reaches stderr and (on a SIGHUP reload) the log. Line and column are enough to find it.
    const [summary] = (error as Error).message.split('\n');
    throw new ConfigError(path, [`not valid YAML: ${summary.replace(/:\s*$/, '')}`]);
  }
  return parseConfig(raw, path, env);
}
