/**
 * Durations, in one place: config values ("15m" ⇄ 900 seconds, exact) and elapsed or remaining times for people
 * ("3m05s", rounded), plus the text progress bar that shows them.
 */
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses "90s", "15m", "1h", "1d" (or a plain number of seconds) into whole seconds. */
export function parseDuration(raw: string | number): number {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw) || raw <= 0) throw new Error(`expected a positive number of seconds, got ${raw}`);
    return raw;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(raw);
  if (!match) throw new Error(`"${raw}" is not a duration like 30s, 15m, 1h or 1d`);
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] || 's'];
  if (seconds <= 0) throw new Error(`"${raw}" must be longer than zero`);
  return seconds;
}

/** The inverse, for messages and payloads: 900 -> "15m". */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}

/** An elapsed or remaining time for people, rounded: `42s`, `3m05s`, `1h02m` (`?` when unknown). */
export function formatElapsed(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole}s`;
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A Keras-style bar of `width` characters for `fraction` done: `=====>....` (`pad` fills what is left). Nothing done
 * is all padding; all done is all `=`.
 */
export function progressBar(fraction: number, width: number, pad = '.'): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  if (filled === 0) return pad.repeat(width);
  return '='.repeat(filled - 1) + (filled === width ? '=' : '>') + pad.repeat(width - filled);
}
