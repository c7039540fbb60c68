import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const NO_ENV: NodeJS.ProcessEnv = {};

function problems(retention: unknown): string[] {
  try {
    parseConfig({ storage: { retention } }, 'test.yaml', NO_ENV);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('the config was accepted');
}

describe('storage.retention config', () => {
  it('defaults to a year, no per-series periods, no size cap, every 15 minutes', () => {
    const { retention } = parseConfig({}, 'test.yaml', NO_ENV).storage;
    assert.deepEqual(retention, { defaultDays: 365, perSeries: {}, maxDatabaseMb: 0, schedule: '7-59/15 * * * *' });
  });

  it('accepts per-series periods, a cap and a schedule', () => {
    const { retention } = parseConfig(
      { storage: { retention: { defaultDays: 90, perSeries: { 'livingroom.temperature': 730 }, maxDatabaseMb: 512, schedule: '*/5 * * * *' } } },
      'test.yaml',
      NO_ENV,
    ).storage;
    assert.equal(retention.defaultDays, 90);
    assert.deepEqual(retention.perSeries, { 'livingroom.temperature': 730 });
    assert.equal(retention.maxDatabaseMb, 512);
    assert.equal(retention.schedule, '*/5 * * * *');
  });

  it('names storage.retention.schedule when the schedule is not a cron expression', () => {
    const [problem, ...rest] = problems({ schedule: 'every quarter hour' });
    assert.equal(rest.length, 0);
    assert.match(problem, /^storage\.retention\.schedule: "every quarter hour" is not a cron expression/);
  });

  it('rejects non-positive periods, a negative cap, a bad series name and unknown keys, each by its key', () => {
    assert.match(problems({ defaultDays: 0 })[0], /^storage\.retention\.defaultDays: /);
    assert.match(problems({ perSeries: { 'a.b': -1 } })[0], /^storage\.retention\.perSeries\.a\.b: /);
    assert.match(problems({ perSeries: { 'bad name': 30 } })[0], /^storage\.retention\.perSeries/);
    assert.match(problems({ maxDatabaseMb: -1 })[0], /^storage\.retention\.maxDatabaseMb: /);
    assert.deepEqual(problems({ days: 30 }), ['storage.retention.days: unknown key']);
  });
});
