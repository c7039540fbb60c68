/** The Prometheus text exposition writer, checked by a strict parser of the format. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Histogram, renderExposition, type MetricFamily } from '../../src/http/prometheus.js';
import { parseExposition, sampleValue } from './promText.js';

describe('Prometheus text exposition', () => {
  it('writes HELP, TYPE and samples that the parser reads back', () => {
    const text = renderExposition([
      { name: 'forecastd_readings_received_total', type: 'counter', help: 'Messages received.', samples: [{ value: 42 }] },
      { name: 'forecastd_up', type: 'gauge', help: 'Up.', samples: [{ labels: { version: '1.0' }, value: 1 }] },
    ]);
    assert.equal(
      text,
      '# HELP forecastd_readings_received_total Messages received.\n# TYPE forecastd_readings_received_total counter\nforecastd_readings_received_total 42\n' +
        '# HELP forecastd_up Up.\n# TYPE forecastd_up gauge\nforecastd_up{version="1.0"} 1\n',
    );
    const families = parseExposition(text);
    assert.equal(families.get('forecastd_readings_received_total')?.type, 'counter');
    assert.equal(sampleValue(families, 'forecastd_up', { version: '1.0' }), 1);
  });

  it('escapes backslashes, quotes and newlines in label values, and backslashes and newlines in HELP', () => {
    const text = renderExposition([
      { name: 'odd', type: 'gauge', help: 'a \\ backslash\nand a newline', samples: [{ labels: { topic: 'a"b\\c\nd' }, value: 1 }] },
    ]);
    assert.match(text, /^# HELP odd a \\\\ backslash\\nand a newline$/m);
    assert.match(text, /^odd\{topic="a\\"b\\\\c\\nd"\} 1$/m);
    const family = parseExposition(text).get('odd')!;
    assert.equal(family.help, 'a \\ backslash\nand a newline');
    assert.equal(family.samples[0].labels.topic, 'a"b\\c\nd');
  });

  it('passes carriage returns and Unicode line separators through as text, since only a newline ends a line', () => {
    const odd = 'a\rb\u2028c\u2029d\u0085e';
    const text = renderExposition([{ name: 'odd', type: 'gauge', help: odd, samples: [{ labels: { topic: odd }, value: 1 }] }]);
    assert.equal(text.split('\n').length, 4);
    const family = parseExposition(text).get('odd')!;
    assert.equal(family.help, odd);
    assert.equal(family.samples[0].labels.topic, odd);
  });

  it('round-trips any label value and help text', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.double(),
        (label, help, value) => {
          const text = renderExposition([{ name: 'prop_metric', type: 'gauge', help, samples: [{ labels: { label }, value }] }]);
          const family = parseExposition(text).get('prop_metric')!;
          assert.equal(family.help, help);
          assert.equal(family.samples[0].labels.label, label);
          assert.ok(
            Object.is(family.samples[0].value, value) || (value === 0 && family.samples[0].value === 0),
            `${value} read back as ${family.samples[0].value}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes NaN and infinities the way Prometheus reads them', () => {
    const text = renderExposition([
      {
        name: 'x',
        type: 'gauge',
        help: 'x',
        samples: [
          { labels: { a: '1' }, value: NaN },
          { labels: { a: '2' }, value: Infinity },
          { labels: { a: '3' }, value: -Infinity },
        ],
      },
    ]);
    assert.match(text, /^x\{a="1"\} NaN$/m);
    assert.match(text, /^x\{a="2"\} \+Inf$/m);
    assert.match(text, /^x\{a="3"\} -Inf$/m);
    parseExposition(text);
  });

  it('refuses invalid metric and label names and a family written twice', () => {
    const family = (name: string, labels: Record<string, string> = {}): MetricFamily => ({
      name,
      type: 'gauge',
      help: 'h',
      samples: [{ labels, value: 1 }],
    });
    assert.throws(() => renderExposition([family('1bad')]), /invalid metric name/);
    assert.throws(() => renderExposition([family('good', { 'bad-label': 'x' })]), /invalid label name/);
    assert.throws(() => renderExposition([family('good', { __reserved: 'x' })]), /invalid label name/);
    assert.throws(() => renderExposition([family('twice'), family('twice')]), /appears twice/);
  });

  it('leaves out a family without samples', () => {
    assert.equal(renderExposition([{ name: 'empty', type: 'gauge', help: 'nothing yet', samples: [] }]), '');
  });

  it('writes cumulative histograms with +Inf, _sum and _count', () => {
    const histogram = new Histogram([1, 5, 15]);
    for (const seconds of [0.5, 3, 3, 12, 40]) histogram.observe(seconds);
    const text = renderExposition([
      { name: 'forecastd_training_duration_seconds', type: 'histogram', help: 'Durations.', samples: histogram.samples({ forecast: 'room' }) },
    ]);
    const families = parseExposition(text);
    const value = (le: string) => sampleValue(families, 'forecastd_training_duration_seconds_bucket', { forecast: 'room', le });
    assert.deepEqual([value('1'), value('5'), value('15'), value('+Inf')], [1, 3, 4, 5]);
    assert.equal(sampleValue(families, 'forecastd_training_duration_seconds_count', { forecast: 'room' }), 5);
    assert.equal(sampleValue(families, 'forecastd_training_duration_seconds_sum', { forecast: 'room' }), 58.5);
  });

  describe('the test parser itself is strict', () => {
    const bad: Array<[string, string]> = [
      ['a raw quote in a label value', 'm{a="x"y"} 1\n'],
      ['an unknown escape', 'm{a="\\t"} 1\n'],
      ['a missing value', 'm{a="x"}\n'],
      ['a bad value', 'm 1,5\n'],
      ['TYPE after samples', 'm 1\n# TYPE m gauge\n'],
      ['an interleaved family', '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n'],
      ['a duplicate sample', 'm 1\nm 2\n'],
      ['a non-cumulative histogram', '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'],
      ['no final newline', 'm 1'],
    ];
    for (const [what, text] of bad) it(`rejects ${what}`, () => assert.throws(() => parseExposition(text)));
  });
});
