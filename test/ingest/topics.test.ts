import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TopicRule } from '../../src/config/schema.js';
import { createTopicMapper } from '../../src/ingest/topics.js';

const SENSORS: TopicRule = { filter: 'sensors/+/+', pattern: 'sensors/{device}/{metric}', series: '{device}.{metric}' };

describe('createTopicMapper', () => {
  const mapper = createTopicMapper([SENSORS]);

  it('fills the series template from the named segments', () => {
    assert.equal(mapper.seriesFor('sensors/kitchen/temperature'), 'kitchen.temperature');
  });

  it('uses the segments in the order the template names them, around literal text', () => {
    const reordered = createTopicMapper([{ filter: 'home/+/+', pattern: 'home/{room}/{metric}', series: 'home_{metric}:{room}' }]);
    assert.equal(reordered.seriesFor('home/attic/humidity'), 'home_humidity:attic');
  });

  it('takes the first rule that matches', () => {
    const rules = createTopicMapper([
      { filter: 'sensors/+/temperature', pattern: 'sensors/{device}/temperature', series: '{device}.temp' },
      SENSORS,
    ]);
    assert.equal(rules.seriesFor('sensors/kitchen/temperature'), 'kitchen.temp');
    assert.equal(rules.seriesFor('sensors/kitchen/humidity'), 'kitchen.humidity');
  });

  it('does not fall through to a later rule when the first match yields an unsafe name', () => {
    const rules = createTopicMapper([
      { filter: 'a/+', pattern: 'a/{x}', series: '{x}' },
      { filter: 'a/+', pattern: 'a/{y}', series: 'fallback' },
    ]);
    assert.equal(rules.seriesFor('a/..'), null);
    assert.equal(rules.seriesFor('a/ok'), 'ok');
  });

  it('rejects a topic whose literal segment differs', () => {
    assert.equal(mapper.seriesFor('sensor/kitchen/temperature'), null);
    assert.equal(mapper.seriesFor('Sensors/kitchen/temperature'), null);
  });

  it('rejects a topic with fewer or more levels than the pattern', () => {
    assert.equal(mapper.seriesFor('sensors/kitchen'), null);
    assert.equal(mapper.seriesFor('sensors/kitchen/temperature/raw'), null);
    assert.equal(mapper.seriesFor(''), null);
  });

  it('rejects an empty named segment', () => {
    assert.equal(mapper.seriesFor('sensors//temperature'), null);
    assert.equal(mapper.seriesFor('sensors/kitchen/'), null);
  });

  it('rejects a topic that would give an unsafe series name', () => {
    assert.equal(mapper.seriesFor('sensors/../x'), null); // "...x" starts with a dot
    assert.equal(mapper.seriesFor('sensors/living room/temperature'), null);
    assert.equal(mapper.seriesFor('sensors/kit\u0000chen/temperature'), null);
    assert.equal(mapper.seriesFor('sensors/küche/temperature'), null);
    assert.equal(mapper.seriesFor('sensors/a;DROP TABLE readings/x'), null);
    assert.equal(mapper.seriesFor(`sensors/${'d'.repeat(200)}/temperature`), null);
  });

  it('allows series names up to 128 characters', () => {
    // 123 + "." + "temp" = 128 characters; one more is too many.
    assert.equal(mapper.seriesFor(`sensors/${'d'.repeat(123)}/temp`), `${'d'.repeat(123)}.temp`);
    assert.equal(mapper.seriesFor(`sensors/${'d'.repeat(124)}/temp`), null);
  });

  it('rejects a template that names a segment the pattern lacks', () => {
    const broken = createTopicMapper([{ filter: 'x/+', pattern: 'x/{device}', series: '{room}.{device}' }]);
    assert.equal(broken.seriesFor('x/lamp'), null);
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
