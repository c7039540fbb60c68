/** The stop sequence's runner: order kept, a failing or stuck step does not keep the later ones from running. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runShutdownSteps } from '../../src/daemon/shutdown.js';
import { capturedLogger } from './support.js';

describe('runShutdownSteps', () => {
  it('runs every step in order, past one that throws and one that hangs', async () => {
    const { log, lines } = capturedLogger();
    const ran: string[] = [];
    const failed = await runShutdownSteps(
      [
        { name: 'first', run: () => void ran.push('first') },
        {
          name: 'throws',
          run: () => {
            ran.push('throws');
            throw new Error('broken');
          },
        },
        { name: 'hangs', run: () => new Promise<void>(() => void ran.push('hangs')), timeoutMs: 50 },
        { name: 'hangs too', run: () => new Promise<void>(() => void ran.push('hangs too')) },
        { name: 'close database', run: () => void ran.push('close database') },
      ],
      log,
      { defaultTimeoutMs: 80 },
    );
    assert.deepEqual(ran, ['first', 'throws', 'hangs', 'hangs too', 'close database']);
    assert.deepEqual(failed, ['throws', 'hangs', 'hangs too']);
    assert.ok(lines.some((line) => line.msg === 'shutdown step failed; going on' && line.step === 'throws'));
    assert.ok(
      lines.some((line) => line.msg === 'shutdown step took too long; going on without it' && line.step === 'hangs too' && line.timeoutMs === 80),
    );
  });
});
