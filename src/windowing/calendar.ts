export type CalendarFeatureKind = 'hourOfDay' | 'dayOfWeek';

export interface CalendarFeatures {
  names: string[];
  columns: Float64Array[];
}

const HOURS_PER_DAY = 24;
const DAYS_PER_WEEK = 7;

/**
 * Sin/cos encodings of the local time of each grid row, two columns per kind
 * (`<kind>_sin`, `<kind>_cos`), in the order of `kinds`.
 *
 * Sin and cos together make the cycle continuous (23:30 sits next to 00:00, Saturday next to
 * Sunday) and bounded in [-1, 1]. Local time, not UTC, because the daily rhythm of what sensors
 * measure (heating, occupancy, sunlight) follows the clock on the wall, including its DST shifts.
 */
export function calendarFeatures(
  gridStartMs: number,
  intervalMs: number,
  count: number,
  kinds: ReadonlyArray<CalendarFeatureKind>,
): CalendarFeatures {
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`calendarFeatures: count must be a non-negative integer, got ${count}`);
  }
  const names: string[] = [];
  const columns: Float64Array[] = [];
  for (const kind of kinds) {
    names.push(`${kind}_sin`, `${kind}_cos`);
    columns.push(new Float64Array(count), new Float64Array(count));
  }
  for (let row = 0; row < count; row++) {
    const time = new Date(gridStartMs + row * intervalMs);
    const fractionalHour = time.getHours() + time.getMinutes() / 60;
    for (let k = 0; k < kinds.length; k++) {
      const angle =
        kinds[k] === 'hourOfDay'
          ? (2 * Math.PI * fractionalHour) / HOURS_PER_DAY
          : (2 * Math.PI * (time.getDay() + fractionalHour / HOURS_PER_DAY)) / DAYS_PER_WEEK;
      columns[2 * k][row] = Math.sin(angle);
      columns[2 * k + 1][row] = Math.cos(angle);
    }
  }
  return { names, columns };
}
