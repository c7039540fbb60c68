import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { calendarFeatures } from '../../src/windowing/calendar.js';
import { assertCloseArray } from './close.js';

const HALF_HOUR_MS = 30 * 60_000;
const HOUR_MS = 60 * 60_000;

describe('calendarFeatures at local times built with new Date(y, m, d, h)', () => {
  it('names two columns per kind, in the order of kinds', () => {
    const { names, columns } = calendarFeatures(0, HOUR_MS, 2, ['dayOfWeek', 'hourOfDay']);
    assert.deepEqual(names, ['dayOfWeek_sin', 'dayOfWeek_cos', 'hourOfDay_sin', 'hourOfDay_cos']);
    assert.equal(columns.length, 4);
    for (const column of columns) assert.equal(column.length, 2);
  });

  it('encodes the hour of day, fractional with the minutes, with period 24', () => {
    // Wednesday 2024-01-17, 12:00, 12:30, 13:00 local.
    const gridStartMs = new Date(2024, 0, 17, 12).getTime();
    const { columns } = calendarFeatures(gridStartMs, HALF_HOUR_MS, 3, ['hourOfDay']);
    // 12:00 -> angle 2π*12/24 = π:           sin 0,          cos -1
    // 12:30 -> angle 2π*12.5/24 = π + π/24:  sin -sin(π/24), cos -cos(π/24)
    // 13:00 -> angle 2π*13/24 = π + π/12:    sin -sin(π/12) = -0.258819, cos -cos(π/12) = -0.965926
    assertCloseArray(columns[0], [0, -Math.sin(Math.PI / 24), -0.2588190451], 1e-9);
    assertCloseArray(columns[1], [-1, -Math.cos(Math.PI / 24), -0.9659258263], 1e-9);
  });

  it('encodes the day of week, fractional with the hour, with period 7', () => {
    // Sunday 2024-01-14 00:00 -> day 0: angle 0 -> sin 0, cos 1.
    // Wednesday 2024-01-17 12:00 -> day 3 + 12/24 = 3.5: angle 2π*3.5/7 = π -> sin 0, cos -1.
    // Monday 2024-01-15 06:00 -> day 1 + 6/24 = 1.25: angle 2π*1.25/7 = 5π/14
    //   -> sin(5π/14) = 0.900969, cos(5π/14) = 0.433884.
    const sunday = calendarFeatures(new Date(2024, 0, 14, 0).getTime(), HOUR_MS, 1, ['dayOfWeek']);
    assertCloseArray(sunday.columns[0], [0], 1e-9);
    assertCloseArray(sunday.columns[1], [1], 1e-9);

    const wednesday = calendarFeatures(new Date(2024, 0, 17, 12).getTime(), HOUR_MS, 1, ['dayOfWeek']);
    assertCloseArray(wednesday.columns[0], [0], 1e-9);
    assertCloseArray(wednesday.columns[1], [-1], 1e-9);

    const monday = calendarFeatures(new Date(2024, 0, 15, 6).getTime(), HOUR_MS, 1, ['dayOfWeek', 'hourOfDay']);
    assertCloseArray(monday.columns[0], [0.9009688679], 1e-9);
    assertCloseArray(monday.columns[1], [0.4338837391], 1e-9);
    // The same row's hour of day: 6:00 -> angle π/2 -> sin 1, cos 0.
    assertCloseArray(monday.columns[2], [1], 1e-9);
    assertCloseArray(monday.columns[3], [0], 1e-9);
  });

  it('wraps around midnight: 23:00 and 01:00 are symmetric about 00:00', () => {
    const gridStartMs = new Date(2024, 0, 16, 23).getTime();
    const { columns } = calendarFeatures(gridStartMs, HOUR_MS, 3, ['hourOfDay']);
    // 23:00 -> angle -π/12, 00:00 -> 0, 01:00 -> π/12: sin -s, 0, s; cos c, 1, c.
    assertCloseArray(columns[0], [-Math.sin(Math.PI / 12), 0, Math.sin(Math.PI / 12)], 1e-9);
    assertCloseArray(columns[1], [Math.cos(Math.PI / 12), 1, Math.cos(Math.PI / 12)], 1e-9);
  });
});

describe('calendarFeatures follows the process time zone', () => {
  const originalTz = process.env.TZ;
  before(() => {
    // UTC+05:30 and no DST: a half-hour offset shows that minutes count and that UTC is not used.
    process.env.TZ = 'Asia/Kolkata';
  });
  after(() => {
    if (originalTz === undefined) delete process.env.TZ;
    else process.env.TZ = originalTz;
  });

  it('reads 00:00 UTC as 05:30 local', () => {
    const gridStartMs = Date.UTC(2024, 0, 17, 0, 0);
    const { columns } = calendarFeatures(gridStartMs, HOUR_MS, 1, ['hourOfDay']);
    // Local 5.5 h -> angle 2π*5.5/24 = 11π/24 -> sin = cos(π/24) = 0.991445, cos = sin(π/24) = 0.130526.
    // (In UTC it would be hour 0: sin 0, cos 1.)
    assertCloseArray(columns[0], [0.9914448614], 1e-9);
    assertCloseArray(columns[1], [0.1305261922], 1e-9);
  });
});
