/**
 * The command line of a bench: its numeric options, declared with their defaults; any other options in
 * node:util parseArgs's own form; and the two every bench takes, --json and --help.
 *
 * parseArgs hands numbers over as text: they come back here as numbers, and one that is not a number stops the
 * bench before it starts rather than letting it run on NaN. Parsing is strict, so a mistyped option stops it too.
 */
import { basename } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

type OtherOptions = NonNullable<ParseArgsConfig['options']>;

const EVERY_BENCH = {
  /** The last stdout line is then one JSON object of the figures, for scripts. */
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false },
} as const;

type ParsedOther<Other extends OtherOptions> = ReturnType<typeof parseArgs<{ options: Other & typeof EVERY_BENCH }>>['values'];

export function benchArgs<const Numbers extends Record<string, number>, const Other extends OtherOptions = Record<never, never>>(
  numbers: Numbers,
  other: Other = {} as Other,
): { [Name in keyof Numbers]: number } & Omit<ParsedOther<Other>, keyof Numbers> {
  const asText = Object.fromEntries(
    Object.entries(numbers).map(([name, fallback]) => [name, { type: 'string', default: String(fallback) } as const]),
  );
  const options: OtherOptions = { ...asText, ...other, ...EVERY_BENCH };
  const { values } = parseArgs({ options });
  if (values.help) {
    process.stdout.write(`${usage(options)}\n`);
    process.exit(0);
  }
  const parsed: Record<string, unknown> = { ...values };
  for (const name of Object.keys(numbers)) {
    parsed[name] = Number(values[name]);
    if (!Number.isFinite(parsed[name])) throw new Error(`--${name} takes a number, not "${String(values[name])}"`);
  }
  return parsed as { [Name in keyof Numbers]: number } & Omit<ParsedOther<Other>, keyof Numbers>;
}

/** The options with their defaults; what each measures is in the comment at the top of the bench's source. */
function usage(options: OtherOptions): string {
  const script = basename(process.argv[1] ?? 'bench.js');
  const lines = Object.entries(options).map(([name, option]) => {
    const value = option.type === 'string' ? ' <value>' : '';
    const fallback = option.type === 'string' && option.default !== undefined ? ` (default ${String(option.default)})` : '';
    return `  --${name}${value}${fallback}`;
  });
  return [`Usage: node dist/bench/${script} [options]   (method and figures: bench/${script.replace(/\.js$/, '.ts')})`, ...lines].join('\n');
}
