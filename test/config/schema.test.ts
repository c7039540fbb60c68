import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../../src/config/jsonSchema.js';
import { ConfigError, loadConfigFile, parseConfig } from '../../src/config/load.js';
import { renderReferenceConfig } from '../../src/config/reference.js';

// The compiled test runs from dist/test/config/; the repository root is three levels up.
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXAMPLE_FILE = join(REPO_ROOT, 'config', 'forecastd.example.yaml');
const REFERENCE_FILE = join(REPO_ROOT, 'config', 'forecastd.reference.yaml');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** No credentials from the environment of whoever runs the tests. */
const NO_ENV: NodeJS.ProcessEnv = {};

const scratch = mkdtempSync(join(tmpdir(), 'forecastd-config-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function scratchFile(name: string, text: string): string {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError a config is rejected with; fails the test when it is accepted or fails otherwise. */
function rejection(raw: unknown): ConfigError {
  try {
    parseConfig(raw, 'test.yaml', NO_ENV);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('the config was accepted');
}

function fileRejection(path: string): ConfigError {
  try {
    loadConfigFile(path, NO_ENV);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail('the config file was accepted');
}

const forecast = (fields: Record<string, unknown> = {}) => ({ name: 'living_room', target: 'livingroom.temperature', ...fields });

describe('config defaults', () => {
  it('fills every section from an empty object', () => {
    const config = parseConfig({}, 'test.yaml', NO_ENV);
    assert.equal(config.mqtt.url, 'mqtt://127.0.0.1:1883');
    assert.equal(config.mqtt.protocolVersion, 5);
    assert.equal(config.mqtt.clean, false);
    assert.equal(config.mqtt.sessionExpiryDays, 7);
    assert.equal(config.mqtt.keepaliveSeconds, 30);
    assert.equal(config.mqtt.baseTopic, 'forecastd');
    assert.equal(config.mqtt.clientId, `forecastd-${hostname()}`);
    assert.equal(config.mqtt.password, undefined);
    assert.deepEqual(config.ingest.topics, [{ filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' }]);
    assert.equal(config.ingest.maxPayloadBytes, 4096);
    assert.equal(config.ingest.maxFutureSeconds, 300);
    assert.equal(config.storage.stateDir, './state');
    assert.equal(config.storage.synchronous, 'NORMAL');
    assert.deepEqual(config.publish, {
      topicTemplate: '{baseTopic}/{forecast}/forecast',
      retain: true,
      qos: 1,
      expireAtHorizon: true,
      outbox: { maxPending: 10_000, maxInFlight: 20, keepSettledHours: 24 },
    });
    assert.equal(config.scheduler.poolThreads, undefined);
    assert.equal(config.scheduler.workerHeapMb, 256);
    assert.equal(config.model.backend, 'auto');
    assert.equal(config.log.level, 'info');
    assert.deepEqual(config.forecasts, []);
  });

  it('treats an empty YAML document (null) like an empty object', () => {
    assert.deepEqual(parseConfig(null, 'test.yaml', NO_ENV), parseConfig({}, 'test.yaml', NO_ENV));
  });

  it('fills a forecast that names only its series', () => {
    const [filled] = parseConfig({ forecasts: [forecast()] }, 'test.yaml', NO_ENV).forecasts;
    assert.deepEqual(filled.covariates, []);
    assert.deepEqual(filled.calendar, ['hourOfDay']);
    assert.equal(filled.interval, 900);
    assert.equal(filled.steps, 48);
    assert.equal(filled.horizon, 12);
    assert.equal(filled.maxGapSteps, 3);
    assert.deepEqual(filled.layers, [
      { type: 'lstm', units: 32, activation: 'tanh', recurrentActivation: 'sigmoid', dropout: 0, recurrentDropout: 0 },
      { type: 'dense', activation: 'linear', useBias: true },
    ]);
    assert.equal(filled.training.schedule, '17 3 * * *');
    assert.equal(filled.training.onStart, true);
    assert.equal(filled.training.epochs, 30);
    assert.equal(filled.training.validationSplit, 0.2);
    assert.equal(filled.training.learningRate, 0.001);
  });

  it('reads durations in seconds, minutes, hours and days', () => {
    const intervals = ['90s', '15m', '1h', '1d', 600].map(
      (interval) => parseConfig({ forecasts: [forecast({ interval })] }, 'test.yaml', NO_ENV).forecasts[0].interval,
    );
    assert.deepEqual(intervals, [90, 900, 3600, 86_400, 600]);
  });
});

describe('config files in config/', () => {
  it('the example parses, with the values it sets', () => {
    const config = loadConfigFile(EXAMPLE_FILE, NO_ENV);
    assert.equal(config.mqtt.url, 'mqtt://localhost:1883');
    assert.equal(config.mqtt.protocolVersion, 5);
    assert.deepEqual(config.ingest.topics, [{ filter: 'zigbee2mqtt/+', pattern: 'zigbee2mqtt/{device}', series: '{device}' }]);
    assert.equal(config.forecasts.length, 1);
    const [livingRoom] = config.forecasts;
    assert.equal(livingRoom.target, 'living_room_sensor.temperature');
    assert.deepEqual(livingRoom.covariates, ['living_room_sensor.humidity']);
    assert.equal(livingRoom.interval, 900);
    assert.equal(livingRoom.steps, 48);
    assert.equal(livingRoom.horizon, 8);
    assert.deepEqual(
      livingRoom.layers.map((layer) => [layer.type, layer.units]),
      [
        ['lstm', 32],
        ['lstm', 16],
        ['dense', 8],
      ],
    );
  });

  it('the reference, all comments, parses to the defaults', () => {
    assert.deepEqual(loadConfigFile(REFERENCE_FILE, NO_ENV), parseConfig({}, 'test.yaml', NO_ENV));
  });

  it('the reference is what `forecastd config reference` renders now (regenerate it when this fails)', () => {
    assert.equal(readFileSync(REFERENCE_FILE, 'utf8'), renderReferenceConfig());
  });

  it('uncommenting every setting of the reference that has a default changes nothing but adding the example forecast', () => {
    const uncommented = renderReferenceConfig()
      .split('\n')
      .filter((line) => !/^\s*##/.test(line) && !/: <[a-z|]+>$/.test(line))
      .map((line) => line.replace(/^(\s*)# /, '$1'))
      .join('\n');
    const path = scratchFile('uncommented.yaml', uncommented);
    assert.deepEqual(loadConfigFile(path, NO_ENV), parseConfig({ forecasts: [forecast()] }, 'test.yaml', NO_ENV));
  });

  it('the reference shows every option of the schema', () => {
    const reference = renderReferenceConfig();
    const missing: string[] = [];
    const visit = (node: Record<string, unknown>, path: string) => {
      for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        if (!new RegExp(`^\\s*# (- )?${key}:`, 'm').test(reference)) missing.push(`${path}${key}`);
        visit(child, `${path}${key}.`);
        const items = child.items as Record<string, unknown> | undefined;
        for (const variant of (items?.oneOf as Record<string, unknown>[] | undefined) ?? (items ? [items] : [])) visit(variant, `${path}${key}[].`);
      }
    };
    visit(configJsonSchema(), '');
    assert.deepEqual(missing, []);
  });

  it('the reference tells where secrets come from', () => {
    const reference = renderReferenceConfig();
    assert.match(reference, /FORECASTD_MQTT_PASSWORD/);
    assert.match(reference, /passwordFile/);
  });
});

describe('config errors name the key and the problem', () => {
  it('an unknown key, with its full path', () => {
    const error = rejection({ mqtt: { prot: 5 } });
    assert.deepEqual(error.problems, ['mqtt.prot: unknown key']);
    assert.match(error.message, /^invalid config test\.yaml:\n {2}- mqtt\.prot: unknown key$/);
  });

  it('an unknown top-level key', () => {
    assert.deepEqual(rejection({ mqt: {} }).problems, ['mqt: unknown key']);
  });

  it('a value of the wrong type', () => {
    const [problem, ...others] = rejection({ mqtt: { keepaliveSeconds: 'thirty' } }).problems;
    assert.equal(others.length, 0);
    assert.match(problem, /^mqtt\.keepaliveSeconds: .*expected number, received string/);
  });

  it('a value out of range', () => {
    assert.match(rejection({ mqtt: { keepaliveSeconds: 2 } }).problems[0], /^mqtt\.keepaliveSeconds: .*>=5/);
  });

  it('every problem at once, not only the first', () => {
    const { problems } = rejection({ mqtt: { prot: 5 }, log: { level: 'loud' } });
    assert.equal(problems.length, 2);
    assert.ok(problems.some((problem) => problem.startsWith('mqtt.prot: ')));
    assert.ok(problems.some((problem) => problem.startsWith('log.level: ')));
  });

  it('a bad cron expression in the training schedule', () => {
    const { problems } = rejection({ forecasts: [forecast({ training: { schedule: '61 * * * *' } })] });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^forecasts\.0\.training\.schedule: "61 \* \* \* \*" is not a cron expression \(minute: /);
  });

  it('a cron expression with too few fields', () => {
    assert.match(
      rejection({ forecasts: [forecast({ training: { schedule: 'nightly' } })] }).problems[0],
      /^forecasts\.0\.training\.schedule: "nightly" is not a cron expression/,
    );
  });

  it('a bad duration', () => {
    const { problems } = rejection({ forecasts: [forecast({ interval: '15 parsecs' })] });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^forecasts\.0\.interval: .*"15 parsecs" is not a duration like 30s, 15m, 1h or 1d/);
  });

  it('a zero duration', () => {
    assert.match(rejection({ forecasts: [forecast({ interval: '0m' })] }).problems[0], /^forecasts\.0\.interval: .*longer than zero/);
  });

  it('duplicate forecast names, at the second one', () => {
    const { problems } = rejection({ forecasts: [forecast(), forecast({ target: 'other' })] });
    assert.deepEqual(problems, ['forecasts.1.name: duplicate forecast name "living_room"']);
  });

  it('a last layer that is not dense', () => {
    const { problems } = rejection({ forecasts: [forecast({ layers: [{ type: 'lstm', units: 8 }] })] });
    assert.deepEqual(problems, ['forecasts.0.layers: the last layer must be a dense layer with `horizon` units']);
  });

  it('a dense output layer whose units differ from the horizon', () => {
    const { problems } = rejection({
      forecasts: [
        forecast({
          horizon: 8,
          layers: [
            { type: 'lstm', units: 16 },
            { type: 'dense', units: 12 },
          ],
        }),
      ],
    });
    assert.deepEqual(problems, ['forecasts.0.layers.1.units: the output layer must have horizon = 8 units, not 12']);
  });

  it('accepts a dense output layer with horizon units, or none given', () => {
    const layers = (units?: number) => [
      { type: 'lstm', units: 16 },
      { type: 'dense', ...(units === undefined ? {} : { units }) },
    ];
    assert.equal(parseConfig({ forecasts: [forecast({ horizon: 8, layers: layers(8) })] }, 'test.yaml', NO_ENV).forecasts[0].layers[1].units, 8);
    assert.equal(
      parseConfig({ forecasts: [forecast({ horizon: 8, layers: layers() })] }, 'test.yaml', NO_ENV).forecasts[0].layers[1].units,
      undefined,
    );
  });

  it('an unknown layer type', () => {
    assert.match(rejection({ forecasts: [forecast({ layers: [{ type: 'gru', units: 4 }] })] }).problems[0], /^forecasts\.0\.layers\.0\.type: /);
  });

  it('an unsafe series name', () => {
    assert.match(rejection({ forecasts: [forecast({ target: 'living room' })] }).problems[0], /^forecasts\.0\.target: a series name is/);
  });

  it('a client certificate without its key', () => {
    assert.deepEqual(rejection({ mqtt: { certFile: '/etc/forecastd/client.pem' } }).problems, [
      'mqtt.keyFile: a client certificate needs keyFile too',
    ]);
  });

  it('a file that is not YAML', () => {
    const path = scratchFile('broken.yaml', 'mqtt:\n  url: [unclosed\n');
    const error = fileRejection(path);
    assert.equal(error.source, path);
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0], /^not valid YAML: /);
  });

  it('a YAML file with a duplicated key', () => {
    const path = scratchFile('duplicated.yaml', 'log:\n  level: info\nlog:\n  level: debug\n');
    assert.match(fileRejection(path).problems[0], /^not valid YAML: /);
  });

  it('a missing file', () => {
    const path = join(scratch, 'does-not-exist.yaml');
    const error = fileRejection(path);
    assert.equal(error.source, path);
    assert.match(error.problems[0], /^cannot read the file: ENOENT/);
  });

  it('a file whose top level is not a mapping', () => {
    assert.match(fileRejection(scratchFile('scalar.yaml', 'just text\n')).problems[0], /^\(top level\): .*expected object/);
  });
});

describe('config secrets', () => {
  it('FORECASTD_MQTT_PASSWORD overrides the password in the file', () => {
    const config = parseConfig({ mqtt: { password: 'from-file' } }, 'test.yaml', { FORECASTD_MQTT_PASSWORD: 'from-env' });
    assert.equal(config.mqtt.password, 'from-env');
  });

  it('FORECASTD_MQTT_USERNAME overrides the user name', () => {
    assert.equal(parseConfig({ mqtt: { username: 'a' } }, 'test.yaml', { FORECASTD_MQTT_USERNAME: 'b' }).mqtt.username, 'b');
  });

  it('reads passwordFile, without the surrounding whitespace', () => {
    const passwordFile = scratchFile('password', '  s3cret pass\n');
    assert.equal(parseConfig({ mqtt: { passwordFile } }, 'test.yaml', NO_ENV).mqtt.password, 's3cret pass');
  });

  it('does not read passwordFile when the environment gives the password', () => {
    const passwordFile = join(scratch, 'no-such-password-file');
    assert.equal(parseConfig({ mqtt: { passwordFile } }, 'test.yaml', { FORECASTD_MQTT_PASSWORD: 'from-env' }).mqtt.password, 'from-env');
  });

  it('does not read passwordFile when the config sets password', () => {
    const passwordFile = join(scratch, 'no-such-password-file');
    assert.equal(parseConfig({ mqtt: { password: 'inline', passwordFile } }, 'test.yaml', NO_ENV).mqtt.password, 'inline');
  });

  it('an unreadable passwordFile is a config error naming the key', () => {
    const passwordFile = join(scratch, 'no-such-password-file');
    const error = rejection({ mqtt: { passwordFile } });
    assert.equal(error.problems.length, 1);
    assert.match(error.problems[0], /^mqtt\.passwordFile: cannot read .*no-such-password-file/);
  });
});

describe('config JSON schema', () => {
  const schema = configJsonSchema() as {
    $schema: string;
    additionalProperties: boolean;
    properties: Record<string, { default?: unknown; properties?: Record<string, { default?: unknown }>; items?: any }>;
  };

  it('describes every section and refuses unknown keys', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.deepEqual(Object.keys(schema.properties), [
      'mqtt',
      'ingest',
      'storage',
      'publish',
      'scheduler',
      'model',
      'log',
      'lifecycle',
      'http',
      'homeAssistant',
      'status',
      'forecasts',
    ]);
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.properties.mqtt.properties?.url.default, 'mqtt://127.0.0.1:1883');
  });

  it('describes the input side: a forecast needs only name and target', () => {
    assert.deepEqual(schema.properties.forecasts.items.required, ['name', 'target']);
    assert.deepEqual(schema.properties.forecasts.default, []);
  });

  it('keeps the defaults of fields that transform, in the form a user writes', () => {
    const interval = schema.properties.forecasts.items.properties.interval;
    assert.equal(interval.default, '15m');
    assert.deepEqual(
      interval.anyOf.map((option: { type: string }) => option.type),
      ['string', 'number'],
    );
    assert.equal(parseConfig({ forecasts: [forecast({ interval: interval.default })] }, 'test.yaml', NO_ENV).forecasts[0].interval, 900);
  });

  it('is plain JSON', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(schema)), schema);
  });
});

describe('forecastd config (the built CLI)', () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FORECASTD_MQTT_PASSWORD: '' } });

  it('config check exits 2 and names the key of a bad file', () => {
    const path = scratchFile('bad.yaml', 'mqtt:\n  prot: 5\n');
    const result = cli('config', 'check', path);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /mqtt\.prot: unknown key/);
    assert.equal(result.stdout, '');
  });

  it('config check exits 0 on the example', () => {
    const result = cli('config', 'check', EXAMPLE_FILE);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /ok \(1 forecast\(s\): living_room\)/);
  });

  it('config reference prints the reference', () => {
    const result = cli('config', 'reference');
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, renderReferenceConfig());
  });

  it('config schema prints the JSON schema', () => {
    const result = cli('config', 'schema');
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), configJsonSchema());
  });

  it('an unknown config subcommand is a usage error', () => {
    assert.equal(cli('config', 'frobnicate').status, 2);
  });
});
