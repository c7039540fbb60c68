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
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60]] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
