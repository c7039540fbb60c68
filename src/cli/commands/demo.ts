import { parseArgs } from 'node:util';
import { runDemo } from '../../demo/demo.js';
import { UsageError } from '../usage.js';

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { duration: { type: 'string', short: 'd' } } });
  const durationSeconds = values.duration === undefined ? undefined : Number(values.duration);
  if (durationSeconds !== undefined && !(durationSeconds > 0)) throw new UsageError('--duration takes a number of seconds');
  await runDemo({ durationSeconds });
  return 0;
}
