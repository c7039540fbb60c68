/**
 * One MQTT owner (issue 12, 13): only src/broker/mqttAdapter.ts touches mqtt.js's message handling and its private
 * packet writer, so that no other module can acknowledge a reading (or install a handler in the wrong order). A
 * module that does is a failing test, not a review comment.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The TypeScript sources, found from this compiled file (dist/test/broker → src). */
const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

const ADAPTER = 'broker/mqttAdapter.ts';

describe('the MQTT adapter is the only owner of inbound message handling', () => {
  const files = sources(SRC).map((path) => ({ path: relative(SRC, path), text: readFileSync(path, 'utf8') }));

  it('finds the sources', () =>
    assert.ok(
      files.some((file) => file.path === ADAPTER),
      `${ADAPTER} among ${files.length} files`,
    ));

  for (const [what, pattern] of [
    ['handleMessage', /\bhandleMessage\b/],
    ['_sendPacket', /\b_sendPacket\b/],
    ['a subscribing client created with manualConnect', /manualConnect/],
  ] as const) {
    it(`no module but ${ADAPTER} uses ${what}`, () => {
      const users = files.filter((file) => file.path !== ADAPTER && pattern.test(file.text)).map((file) => file.path);
      assert.deepEqual(users, []);
    });
  }

  it("every other mqtt.connect in src is a client of its own, not the daemon's (the CLI's train request, the demo's sensor and consumer)", () => {
    const connecting = files
      .filter((file) => file.path !== ADAPTER && /\bmqtt\.connect(Async)?\(/.test(file.text))
      .map((file) => file.path)
      .sort();
    assert.deepEqual(connecting, ['cli/commands/train.ts', 'demo/demo.ts']);
  });
});
