/** What forecastd believes of the wall clock. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clockIsPlausible, EARLIEST_PLAUSIBLE_CLOCK_MS, wallIntervalPassed } from '../src/clock.js';

const TEN_MINUTES = 600_000;
const SINCE = Date.UTC(2026, 10, 28, 12);

describe('wallIntervalPassed', () => {
  it('waits the interval out while the clock runs forward', () => {
    assert.equal(wallIntervalPassed(SINCE, SINCE, TEN_MINUTES), false);
    assert.equal(wallIntervalPassed(SINCE, SINCE + TEN_MINUTES - 1, TEN_MINUTES), false);
    assert.equal(wallIntervalPassed(SINCE, SINCE + TEN_MINUTES, TEN_MINUTES), true);
  });

  it('ends the wait when the clock stepped back past the start, rather than waiting as long as the step', () => {
    assert.equal(wallIntervalPassed(SINCE, SINCE - 3_600_000, TEN_MINUTES), true);
    assert.equal(wallIntervalPassed(SINCE, 0, TEN_MINUTES), true);
  });
});

describe('clockIsPlausible', () => {
  it('believes a clock from the release date on, and not an unset or broken one', () => {
    assert.equal(clockIsPlausible(EARLIEST_PLAUSIBLE_CLOCK_MS), true);
    assert.equal(clockIsPlausible(SINCE), true);
    assert.equal(clockIsPlausible(EARLIEST_PLAUSIBLE_CLOCK_MS - 1), false);
    assert.equal(clockIsPlausible(0), false);
    assert.equal(clockIsPlausible(Number.NaN), false);
  });
});
