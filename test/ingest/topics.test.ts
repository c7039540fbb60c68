import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TopicRule } from '../../src/config/schema.js';
import { createTopicMapper, type TopicMapper } from '../../src/ingest/topics.js';

const SENSORS: TopicRule = { filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' };

/** The series a topic feeds, or the reason it feeds none. */
function seriesOr(mapper: TopicMapper, topic: string): string {
  const match = mapper.match(topic);
  return match.ok ? match.series : match.reason;
}

describe('createTopicMapper', () => {
  const mapper = createTopicMapper([SENSORS]);

  it('fills the series template from the named segments', () => {
    assert.equal(seriesOr(mapper, 'sensors/kitchen/temperature'), 'kitchen.temperature');
  });

  it('uses the segments in the order the template names them, around literal text', () => {
    const reordered = createTopicMapper([{ filter: 'home/+/+', pattern: 'home/{room}/{metric}', series: 'home_{metric}:{room}' }]);
    assert.equal(seriesOr(reordered, 'home/attic/humidity'), 'home_humidity:attic');
  });

  it('takes the first rule that matches', () => {
    const rules = createTopicMapper([{ filter: 'sensors/+/temperature', pattern: 'sensors/{device}/temperature', series: '{device}.temp' }, SENSORS]);
    assert.equal(seriesOr(rules, 'sensors/kitchen/temperature'), 'kitchen.temp');
    assert.equal(seriesOr(rules, 'sensors/kitchen/humidity'), 'kitchen.humidity');
  });

  it('does not fall through to a later rule when the first match yields an unsafe name', () => {
    const rules = createTopicMapper([
      { filter: 'a/+', pattern: 'a/{x}', series: '{x}' },
      { filter: 'a/+', pattern: 'a/{y}', series: 'fallback' },
    ]);
    assert.equal(seriesOr(rules, 'a/..'), 'bad_series_name');
    assert.equal(seriesOr(rules, 'a/ok'), 'ok');
  });

  it('calls a topic no rule matches unknown_topic: another literal segment', () => {
    assert.deepEqual(mapper.match('sensor/kitchen/temperature'), { ok: false, reason: 'unknown_topic', detail: 'no topic rule matches' });
    assert.equal(seriesOr(mapper, 'Sensors/kitchen/temperature'), 'unknown_topic');
  });

  it('calls a topic with fewer or more levels than the pattern unknown_topic', () => {
    assert.equal(seriesOr(mapper, 'sensors/kitchen'), 'unknown_topic');
    assert.equal(seriesOr(mapper, 'sensors/kitchen/temperature/raw'), 'unknown_topic');
    assert.equal(seriesOr(mapper, ''), 'unknown_topic');
  });

  it('does not match an empty named segment (unknown_topic)', () => {
    assert.equal(seriesOr(mapper, 'sensors//temperature'), 'unknown_topic');
    assert.equal(seriesOr(mapper, 'sensors/kitchen/'), 'unknown_topic');
  });

  it('calls a matching topic that would give an unsafe series name bad_series_name, not unknown_topic', () => {
    assert.equal(seriesOr(mapper, 'sensors/../x'), 'bad_series_name'); // "...x" starts with a dot
    assert.equal(seriesOr(mapper, 'sensors/living room/temperature'), 'bad_series_name');
    assert.equal(seriesOr(mapper, 'sensors/kit\u0000chen/temperature'), 'bad_series_name');
    assert.equal(seriesOr(mapper, 'sensors/küche/temperature'), 'bad_series_name');
    assert.equal(seriesOr(mapper, 'sensors/a;DROP TABLE readings/x'), 'bad_series_name');
    assert.equal(seriesOr(mapper, `sensors/${'d'.repeat(200)}/temperature`), 'bad_series_name');
    const match = mapper.match('sensors/../x');
    assert.ok(!match.ok && !match.detail.includes('..'), 'the detail does not echo the topic');
  });

  it('allows series names up to 128 characters', () => {
    // 123 + "." + "temp" = 128 characters; one more is too many.
    assert.equal(seriesOr(mapper, `sensors/${'d'.repeat(123)}/temp`), `${'d'.repeat(123)}.temp`);
    assert.equal(seriesOr(mapper, `sensors/${'d'.repeat(124)}/temp`), 'bad_series_name');
  });

  it('calls a template that names a segment the pattern lacks bad_series_name (config validation refuses it first)', () => {
    const broken = createTopicMapper([{ filter: 'x/+', pattern: 'x/{device}', series: '{room}.{device}' }]);
    assert.deepEqual(broken.match('x/lamp'), {
      ok: false,
      reason: 'bad_series_name',
      detail: 'the series template names a segment the pattern lacks',
    });
  });

  it('hands over the payload format of the rule that matched, auto when the rule names none', () => {
    const rules = createTopicMapper([
      { filter: 'lwm2m/+', pattern: 'lwm2m/{device}', series: '{device}', format: 'senml' },
      {
        filter: 'shelly/+',
        pattern: 'shelly/{device}',
        series: '{device}.power',
        format: 'json',
        valuePath: 'data.apower',
        timestampPath: 'meta.time',
      },
      SENSORS,
    ]);
    assert.deepEqual(rules.match('lwm2m/meter'), { ok: true, series: 'meter', payload: { format: 'senml' } });
    assert.deepEqual(rules.match('shelly/plug'), {
      ok: true,
      series: 'plug.power',
      payload: { format: 'json', valuePath: 'data.apower', timestampPath: 'meta.time' },
    });
    assert.deepEqual(rules.match('sensors/a/b'), { ok: true, series: 'a.b', payload: { format: 'auto' } });
  });

  it('subscribes to each filter once, in rule order', () => {
    const rules = createTopicMapper([
      SENSORS,
      { filter: 'zigbee2mqtt/+', pattern: 'zigbee2mqtt/{device}', series: '{device}' },
      { ...SENSORS, series: 'other.{device}.{metric}' },
    ]);
    assert.deepEqual(rules.filters, ['sensors/+/+', 'zigbee2mqtt/+']);
  });
});
