/**
 * The JSON API answers what src/contracts/api.ts says it does: each endpoint of a daemon with a trained forecast is
 * fetched and validated against its schema (the types the dashboard reads are those schemas' types).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { z } from 'zod';
import {
  apiErrorSchema,
  forecastListSchema,
  historySchema,
  latestForecastSchema,
  modelsSchema,
  seriesListSchema,
  statusDocumentSchema,
} from '../../src/contracts/api.js';
import { startFixture, trainAndForecast, type Fixture } from './daemonFixture.js';

describe('the JSON API against its contract', { timeout: 180_000 }, () => {
  let fixture: Fixture;
  before(async () => {
    fixture = await startFixture({ epochs: 3 });
    await fixture.publishHistory(2);
    await trainAndForecast(fixture);
  });
  after(() => fixture?.close());

  const valid = async (path: string, schema: z.ZodType, status = 200) => {
    const response = await fixture.get(path);
    assert.equal(response.status, status, path);
    const parsed = schema.safeParse(await response.json());
    assert.ok(parsed.success, parsed.success ? '' : `${path}: ${JSON.stringify(parsed.error.issues.slice(0, 3))}`);
    return parsed.data;
  };

  it('/api/status is a status document', async () => {
    const status = (await valid('/api/status', statusDocumentSchema)) as z.output<typeof statusDocumentSchema>;
    assert.ok(status.forecasts.room, 'with the configured forecast');
  });

  it('/api/series, /api/forecasts, /api/forecasts/<name> and its history', async () => {
    const series = (await valid('/api/series', seriesListSchema)) as z.output<typeof seriesListSchema>;
    assert.ok(series.some((entry) => entry.name === 'room.temp'));
    const forecasts = (await valid('/api/forecasts', forecastListSchema)) as z.output<typeof forecastListSchema>;
    assert.ok(forecasts[0].next, 'a next value after the training');
    await valid('/api/forecasts/room', latestForecastSchema);
    const history = (await valid('/api/forecasts/room/history', historySchema)) as z.output<typeof historySchema>;
    assert.ok(history.points.length > 0);
  });

  it('/api/models/<forecast> lists the trained version with its scores', async () => {
    const models = (await valid('/api/models/room', modelsSchema)) as z.output<typeof modelsSchema>;
    assert.ok(models.versions.length >= 1);
    assert.ok(models.versions[0].scores, 'scored against the baselines');
  });

  it('every error is { error }', async () => {
    await valid('/api/forecasts/nope', apiErrorSchema, 404);
    await valid('/api/models/room?limit=0', apiErrorSchema, 400);
  });
});
