/**
 * The dashboard in a real headless Chromium: a running daemon fed with two days of a sine over MQTT, a tiny
 * model trained, the page loaded (with the token, as a user would: /?token=...); the chart must draw the history
 * and the forecast, and a screenshot is saved for people to look at.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startFixture, trainAndForecast, type Fixture } from '../http/daemonFixture.js';

const CHROMIUM = '/usr/bin/chromium';
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SCREENSHOT = join(REPO_ROOT, 'dist', 'test-artifacts', 'dashboard.png');
const TOKEN = 'browser-test-token-0123456789';

interface ChartProbe {
  refreshes: number;
  lastError: string | null;
  shown: { history: number; forecast: number; interval: number } | null;
  /** uPlot's own data: [x, actual, forecast, lower, upper]. */
  data: Array<Array<number | null>> | null;
  canvas: { width: number; height: number; coloured: number; forecastColoured: number; actualColoured: number } | null;
}

/** Reads the chart state the dashboard exposes on window.forecastd, and counts coloured pixels on its canvas. */
async function probe(page: Page, forecast: string): Promise<ChartProbe> {
  return page.evaluate((name) => {
    type Chart = { data: Array<Array<number | null>>; ctx: CanvasRenderingContext2D };
    const state = (
      window as unknown as {
        forecastd?: { refreshes: number; lastError: string | null; charts: Record<string, { main: Chart | null; shown: ChartProbe['shown'] }> };
      }
    ).forecastd;
    const charts = state?.charts[name];
    const result: ChartProbe = {
      refreshes: state?.refreshes ?? 0,
      lastError: state?.lastError ?? null,
      shown: charts?.shown ?? null,
      data: null,
      canvas: null,
    };
    if (!charts?.main) return result;
    result.data = charts.main.data.map((column) => Array.from(column));
    const canvas = charts.main.ctx.canvas;
    const pixels = charts.main.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let coloured = 0;
    let forecastColoured = 0;
    let actualColoured = 0;
    for (let index = 0; index < pixels.length; index += 4) {
      const [r, g, b, a] = [pixels[index], pixels[index + 1], pixels[index + 2], pixels[index + 3]];
      if (a < 40) continue;
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
      // The forecast line is orange (#ea580c), the actuals blue (#2563eb).
      if (r > 180 && g > 60 && g < 140 && b < 80) forecastColoured++;
      if (b > 180 && r < 90 && g > 70 && g < 140) actualColoured++;
    }
    result.canvas = { width: canvas.width, height: canvas.height, coloured, forecastColoured, actualColoured };
    return result;
  }, forecast);
}

describe(
  'dashboard in headless Chromium',
  { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)`, timeout: 120_000 },
  () => {
    let fixture: Fixture;
    let browser: BrowserContext;
    let profile: string;

    before(async () => {
      fixture = await startFixture({ token: TOKEN });
      await fixture.publishHistory(2);
      await trainAndForecast(fixture);
      profile = mkdtempSync(join(tmpdir(), 'forecastd-chromium-'));
      // A persistent context is how Playwright takes a user-data-dir: a fresh one per run.
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 1100 },
        deviceScaleFactor: 1,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
    });

    after(async () => {
      await browser?.close();
      await fixture?.close();
      if (profile) rmSync(profile, { recursive: true, force: true });
    });

    it('draws the history and the forecast in one chart, and saves a screenshot', async () => {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (request) => requests.push(request.url()));
      const failed: string[] = [];
      page.on('response', (answer) => {
        if (answer.status() >= 400) failed.push(`${answer.status()} ${answer.url()}`);
      });
      const consoleErrors: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') consoleErrors.push(message.text());
      });
      page.on('pageerror', (error) => consoleErrors.push(error.message));

      // The token in the URL is swapped for a cookie and the page is shown at "/".
      const response = await page.goto(`${fixture.url}/?token=${TOKEN}`);
      assert.equal(response?.status(), 200);
      assert.equal(new URL(page.url()).search, '', 'the token is gone from the address bar');

      await page.waitForFunction(
        () => {
          const state = (window as unknown as { forecastd?: { charts: Record<string, { shown: { history: number; forecast: number } }> } }).forecastd;
          const shown = state?.charts.room?.shown;
          return !!shown && shown.history > 0 && shown.forecast > 0;
        },
        undefined,
        { timeout: 20_000 },
      );
      const state = await probe(page, 'room');
      assert.equal(state.lastError, null, `the dashboard reported: ${state.lastError}`);
      assert.ok(state.data, 'the uPlot instance is exposed');
      const [xs, actual, forecast] = state.data;
      assert.ok(
        actual.filter((value) => value !== null).length >= 30,
        `history drawn: ${actual.filter((value) => value !== null).length} buckets (six hours of 10-minute buckets expected)`,
      );
      assert.equal(forecast.filter((value) => value !== null).length, 6 + 1, 'the six forecast points, joined to the last actual');
      const lastActualX = xs[actual.map((value) => value !== null).lastIndexOf(true)]!;
      const firstForecastOnlyX = xs.find((_, index) => forecast[index] !== null && actual[index] === null)!;
      assert.ok(firstForecastOnlyX > lastActualX, 'the forecast continues where the history ends');
      assert.ok(state.canvas && state.canvas.coloured > 2000, `the canvas is not blank (${state.canvas?.coloured} coloured pixels)`);
      assert.ok(state.canvas.actualColoured > 300, `the blue history line is drawn (${state.canvas.actualColoured} px)`);
      assert.ok(state.canvas.forecastColoured > 50, `the orange forecast line is drawn (${state.canvas.forecastColoured} px)`);

      // The rest of the card: readiness, the loss curve, the comparison with the baseline.
      // ready when the tiny model beats persistence (it nearly always does on this signal), degraded when a baseline serves.
      assert.match((await page.textContent('#forecast-room .badge'))?.trim().toLowerCase() ?? '', /^(ready|degraded)$/);
      assert.ok((await page.locator('#forecast-room .loss-chart canvas').count()) > 0, 'the loss curve is drawn');
      const scores = await page.textContent('#forecast-room .score-table');
      assert.match(scores ?? '', /LSTM model/);
      assert.match(scores ?? '', /Repeat last value/);

      // Nothing left the machine: every request went to the daemon.
      const foreign = requests.filter((url) => !url.startsWith(fixture.url));
      assert.deepEqual(foreign, [], 'no CDN or other network access');
      assert.deepEqual(failed, [], 'every request succeeded');
      assert.deepEqual(consoleErrors, [], 'no errors in the browser console');

      mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`dashboard screenshot: ${SCREENSHOT}`);
      await page.close();
    });

    it('without the token the page says how to pass it, and shows no data', async () => {
      await browser.clearCookies();
      const page = await browser.newPage();
      const response = await page.goto(`${fixture.url}/`);
      assert.equal(response?.status(), 401);
      assert.match((await page.textContent('body')) ?? '', /token required/);
      await page.close();
    });
  },
);
