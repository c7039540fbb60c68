/**
 * The dashboard in the browser: polls the JSON API every few seconds and draws, per forecast, the recent history and
 * the current forecast with its interval (one uPlot chart), the training loss per epoch, and the serving model
 * against its baselines. Compiled by tsc with the daemon and served as /assets/dashboard.js; only type imports here,
 * so the emitted file needs nothing but the uPlot global.
 */
import type UPlot from 'uplot';
import type { ForecastMessage } from '../../publish/forecastMessage.js';
import type { ForecastStatus, HistoryResponse, ModelsResponse, ModelVersionResponse, StatusDocument } from '../../contracts/api.js';

declare const uPlot: typeof UPlot;

type ModelVersion = ModelVersionResponse;

interface ForecastCharts {
  main: UPlot | null;
  loss: UPlot | null;
  /** What the main chart shows, for tests and for curious people in the console. */
  shown: { history: number; forecast: number; interval: number };
}

interface DashboardState {
  charts: Record<string, ForecastCharts>;
  refreshes: number;
  lastError: string | null;
  status: StatusDocument | null;
}

const REFRESH_MS = 5_000;
const RANGES: Array<[string, number]> = [
  ['6h', 6 * 3600],
  ['24h', 24 * 3600],
  ['3d', 3 * 86_400],
  ['7d', 7 * 86_400],
];
const COLORS = {
  actual: '#2563eb',
  forecast: '#ea580c',
  band: 'rgba(234, 88, 12, 0.12)',
  innerBand: 'rgba(234, 88, 12, 0.16)',
  loss: '#0f766e',
  valLoss: '#a21caf',
  now: '#94a3b8',
};
const METHOD_NAMES: Record<string, string> = {
  model: 'LSTM model (this training)',
  champion: 'LSTM model (serving before)',
  persistence: 'Repeat last value',
  seasonal_naive: 'Same time last season',
  linear: 'Linear autoregression',
};
const METHOD_ORDER = ['model', 'champion', 'persistence', 'seasonal_naive', 'linear'];

const state: DashboardState = { charts: {}, refreshes: 0, lastError: null, status: null };
(window as unknown as { forecastd: DashboardState }).forecastd = state;
const rangeOf: Record<string, number> = {};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = ((await response.json()) as { error?: string }).error ?? message;
    } catch {
      // keep the status line
    }
    throw new HttpError(response.status, message);
  }
  return (await response.json()) as T;
}

async function optional<T>(path: string): Promise<T | null> {
  try {
    return await getJson<T>(path);
  } catch (error) {
    if (error instanceof HttpError && error.status === 404) return null;
    throw error;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Array<Node | string | null>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) if (child !== null) node.append(child);
  return node;
}

const fmt = (value: number | null | undefined, digits = 2) =>
  value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
const withUnit = (value: number | null | undefined, unit: string | null, digits = 2) =>
  `${fmt(value, digits)}${unit && Number.isFinite(value ?? NaN) ? ` ${unit}` : ''}`;
const clock = (iso: string | null) => (iso ? new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '–');
const dateTime = (iso: string | null) =>
  iso ? new Date(iso).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) : '–';

function ago(iso: string | null): string {
  if (!iso) return '';
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 0) return `in ${duration(-seconds)}`;
  return `${duration(seconds)} ago`;
}

function duration(seconds: number): string {
  if (seconds < 90) return `${seconds} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}

function pill(text: string, kind: '' | 'ok' | 'bad' = ''): HTMLElement {
  return el('span', { class: `pill ${kind}`.trim() }, text);
}

function renderHeader(status: StatusDocument): void {
  const pills = document.getElementById('pills')!;
  pills.replaceChildren(
    pill(status.brokerConnected ? 'broker connected' : 'broker disconnected', status.brokerConnected ? 'ok' : 'bad'),
    pill(`backend ${status.backend}`),
    pill(`v${status.version}`),
    pill(`up ${duration(status.uptimeSeconds)}`),
  );
  document.getElementById('updated')!.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function showBanner(message: string | null): void {
  const banner = document.getElementById('banner')!;
  banner.hidden = message === null;
  banner.textContent = message ?? '';
}

/** The card of one forecast, created once and then updated in place (charts keep their size and legend state). */
function cardFor(name: string): HTMLElement {
  const id = `forecast-${name}`;
  const existing = document.getElementById(id);
  if (existing) return existing;
  const card = el('section', { class: 'card', id, 'data-forecast': name });
  const ranges = el('div', { class: 'ranges' });
  for (const [label, seconds] of RANGES) {
    const button = el('button', { type: 'button', 'data-range': String(seconds) }, label);
    button.addEventListener('click', () => {
      rangeOf[name] = seconds;
      void refreshForecast(name);
    });
    ranges.append(button);
  }
  card.append(
    el('div', { class: 'card-head' }, el('div', {}, el('h2', {}, name), el('div', { class: 'sub' })), el('span', { class: 'badge' })),
    el('div', { class: 'detail', hidden: '' }),
    el('div', { class: 'kpis' }),
    ranges,
    el('div', { class: 'chart main-chart' }),
    el('p', { class: 'chart-note muted' }),
    el(
      'div',
      { class: 'row' },
      el('div', { class: 'panel' }, el('h3', {}, 'Training loss per epoch'), el('div', { class: 'chart loss-chart' })),
      el('div', { class: 'panel' }, el('h3', {}, 'Serving model vs baselines'), el('div', { class: 'scores' }), el('div', { class: 'versions' })),
    ),
  );
  document.getElementById('forecasts')!.append(card);
  return card;
}

function kpi(label: string, value: string, sub = '', subClass = ''): HTMLElement {
  return el(
    'div',
    { class: 'kpi' },
    el('div', { class: 'kpi-label' }, label),
    el('div', { class: 'kpi-value' }, value),
    el('div', { class: `kpi-sub ${subClass}`.trim() }, sub),
  );
}

function renderSummary(card: HTMLElement, status: ForecastStatus, message: ForecastMessage | null): void {
  card.querySelector('.sub')!.textContent = `${status.target} · every ${status.interval} · ${status.horizon} steps ahead`;
  const badge = card.querySelector('.badge')!;
  badge.className = `badge ${status.readiness}`;
  badge.textContent = status.readiness.replace('_', ' ');
  const detail = card.querySelector<HTMLElement>('.detail')!;
  detail.hidden = !status.detail;
  detail.textContent = status.detail ?? '';

  const first = message?.points[0];
  const levels = message ? intervalKeys(message) : null;
  const inner = levels?.inner ?? levels?.outer ?? null;
  const interval =
    first && inner && first.lower?.[inner] !== undefined && first.upper?.[inner] !== undefined
      ? `${inner} % interval ${fmt(first.lower[inner])} – ${fmt(first.upper[inner])}`
      : '';
  const validation = message?.model.validation ?? status.validation;
  let skill = '';
  let skillClass = '';
  if (validation && validation.persistenceMae > 0) {
    const change = (validation.mae / validation.persistenceMae - 1) * 100;
    skill = `${change <= 0 ? '' : '+'}${change.toFixed(0)} % vs repeat last value`;
    skillClass = change < 0 ? 'good' : 'poor';
  }
  const servedBy = status.servedBy && status.servedBy !== 'model' ? `${METHOD_NAMES[status.servedBy] ?? status.servedBy} serves` : '';
  const training = status.training
    ? kpi(
        'Training',
        `epoch ${status.training.epoch}/${status.training.epochs}`,
        status.training.etaSeconds !== null ? `about ${duration(status.training.etaSeconds)} left` : status.training.reason,
      )
    : kpi(
        'Next training',
        status.nextTrainingAt ? dateTime(status.nextTrainingAt) : '–',
        status.lastTrainedAt ? `last ${ago(status.lastTrainedAt)}` : 'never trained',
      );
  card
    .querySelector('.kpis')!
    .replaceChildren(
      kpi(
        first ? `Next · ${clock(first.ts)}–${clock(new Date(Date.parse(first.ts) + status.intervalSeconds * 1000).toISOString())}` : 'Next value',
        first ? withUnit(first.value, status.unit) : '–',
        interval,
      ),
      kpi('Issued', message ? clock(message.issuedAt) : '–', message ? ago(message.issuedAt) : 'no forecast yet'),
      kpi(
        servedBy ? 'Baseline MAE' : 'Model MAE',
        validation ? withUnit(validation.mae, status.unit, 3) : '–',
        servedBy || skill,
        servedBy ? 'poor' : skillClass,
      ),
      training,
    );
  for (const button of card.querySelectorAll<HTMLButtonElement>('.ranges button')) {
    button.classList.toggle('active', Number(button.dataset.range) === (rangeOf[card.dataset.forecast!] ?? defaultRange(status)));
  }
}

/** Six horizons of history, at least 6 h and at most a week: the forecast stays readable next to its context. */
function defaultRange(status: ForecastStatus): number {
  return Math.min(7 * 86_400, Math.max(6 * 3600, 6 * status.horizon * status.intervalSeconds));
}

/** The interval levels to shade: the widest (outer) and, when there are two or more, the narrowest (inner). */
function intervalKeys(message: ForecastMessage): { outer: string | null; inner: string | null } {
  const keys = Object.keys(message.points[0]?.lower ?? {}).sort((a, b) => Number(a) - Number(b));
  if (keys.length === 0) return { outer: null, inner: null };
  return { outer: keys[keys.length - 1], inner: keys.length > 1 ? keys[0] : null };
}

type Column = Array<number | null>;
type Row = [number | null, number | null, number | null, number | null, number | null, number | null];
const emptyRow = (): Row => [null, null, null, null, null, null];

/**
 * Aligned columns for uPlot: x (s), actual, forecast, outer lower/upper, inner lower/upper.
 * The forecast (and its intervals) start at the last actual, so the lines join.
 */
function mainData(history: HistoryResponse, message: ForecastMessage | null): [number[], Column, Column, Column, Column, Column, Column] {
  const rows = new Map<number, Row>();
  // The bucket that is still open belongs to the forecast: the actuals end where the forecast starts.
  const originX = message && message.points.length ? Date.parse(message.origin) / 1000 : Infinity;
  for (const point of history.points) {
    if (Date.parse(point.ts) / 1000 >= originX) continue;
    const row = emptyRow();
    row[0] = point.value;
    rows.set(Date.parse(point.ts) / 1000, row);
  }
  if (message && message.points.length) {
    const { outer, inner } = intervalKeys(message);
    const origin = Date.parse(message.origin) / 1000;
    const lastBucket = origin - message.intervalSeconds;
    const joint = rows.get(lastBucket) ?? emptyRow();
    joint.fill(message.lastObserved, 1);
    if (!outer) joint.fill(null, 2);
    if (!inner) joint.fill(null, 4);
    rows.set(lastBucket, joint);
    for (const point of message.points) {
      const x = Date.parse(point.ts) / 1000;
      const row = rows.get(x) ?? emptyRow();
      row[1] = point.value;
      row[2] = outer ? (point.lower?.[outer] ?? null) : null;
      row[3] = outer ? (point.upper?.[outer] ?? null) : null;
      row[4] = inner ? (point.lower?.[inner] ?? null) : null;
      row[5] = inner ? (point.upper?.[inner] ?? null) : null;
      rows.set(x, row);
    }
  }
  const xs = [...rows.keys()].sort((a, b) => a - b);
  const column = (index: number) => xs.map((x) => rows.get(x)![index]);
  return [xs, column(0), column(1), column(2), column(3), column(4), column(5)];
}

function chartWidth(container: HTMLElement): number {
  return Math.max(280, Math.floor(container.getBoundingClientRect().width));
}

function mainChart(container: HTMLElement, unit: string | null, nowSeconds: () => number | null): UPlot {
  const valueLabel = (_self: UPlot, raw: number | null) => (raw === null || raw === undefined ? '–' : withUnit(raw, unit));
  const options: UPlot.Options = {
    width: chartWidth(container),
    height: 300,
    cursor: { sync: { key: 'forecastd' } },
    scales: { x: { time: true } },
    legend: { live: true },
    series: [
      {},
      { label: 'actual', stroke: COLORS.actual, width: 2, value: valueLabel, spanGaps: false, points: { show: false } },
      {
        label: 'forecast',
        stroke: COLORS.forecast,
        width: 2.5,
        dash: [6, 4],
        points: { show: true, size: 5, fill: COLORS.forecast },
        value: valueLabel,
      },
      // Interval edges: drawn faintly, shaded between by the bands below, left out of the legend (dashboard.css).
      { label: 'outer lower', stroke: 'rgba(234, 88, 12, 0.25)', width: 1, value: valueLabel, points: { show: false } },
      { label: 'outer upper', stroke: 'rgba(234, 88, 12, 0.25)', width: 1, value: valueLabel, points: { show: false } },
      { label: 'inner lower', stroke: 'rgba(234, 88, 12, 0.35)', width: 1, value: valueLabel, points: { show: false } },
      { label: 'inner upper', stroke: 'rgba(234, 88, 12, 0.35)', width: 1, value: valueLabel, points: { show: false } },
    ],
    bands: [
      { series: [4, 3], fill: COLORS.band },
      { series: [6, 5], fill: COLORS.innerBand },
    ],
    axes: [
      { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' } },
      {
        stroke: '#64748b',
        grid: { stroke: '#eef2f7' },
        ticks: { stroke: '#e2e8f0' },
        size: 60,
        values: (_self, splits) => splits.map((value) => `${fmt(value, 1)}${unit ? ` ${unit}` : ''}`),
      },
    ],
    hooks: {
      draw: [
        (chart) => {
          const now = nowSeconds();
          if (now === null) return;
          const x = Math.round(chart.valToPos(now, 'x', true));
          if (x < chart.bbox.left || x > chart.bbox.left + chart.bbox.width) return;
          const ctx = chart.ctx;
          ctx.save();
          ctx.strokeStyle = COLORS.now;
          ctx.setLineDash([4, 4]);
          ctx.lineWidth = 1 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, chart.bbox.top);
          ctx.lineTo(x, chart.bbox.top + chart.bbox.height);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = '#64748b';
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          ctx.fillText('now', x + 4 * devicePixelRatio, chart.bbox.top + 12 * devicePixelRatio);
          ctx.restore();
        },
      ],
    },
  };
  return new uPlot(options, [[], [], [], [], [], [], []], container);
}

function lossChart(container: HTMLElement): UPlot {
  const options: UPlot.Options = {
    width: chartWidth(container),
    height: 200,
    scales: { x: { time: false }, y: { distr: 3 } },
    series: [
      { label: 'epoch', value: (_self, raw) => (raw === null ? '–' : String(raw)) },
      { label: 'train loss', stroke: COLORS.loss, width: 2, value: (_self, raw) => (raw === null ? '–' : raw.toPrecision(3)) },
      { label: 'validation loss', stroke: COLORS.valLoss, width: 2, dash: [5, 3], value: (_self, raw) => (raw === null ? '–' : raw.toPrecision(3)) },
    ],
    axes: [
      { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' }, label: 'epoch', labelSize: 20, space: 40 },
      {
        stroke: '#64748b',
        grid: { stroke: '#eef2f7' },
        ticks: { stroke: '#e2e8f0' },
        size: 60,
        values: (_self, splits) => splits.map((value) => (value === null ? '' : value.toPrecision(2))),
      },
    ],
  };
  return new uPlot(options, [[], [], []], container);
}

/** The newest evaluation: the new model, the one it challenged and every baseline, on the same held-out windows. */
function scoreTable(version: ModelVersion | undefined, status: ForecastStatus): HTMLElement {
  if (!version?.scores) return el('p', { class: 'muted' }, 'No validation scores yet: they come with the first training that has held-out windows.');
  const scores = version.scores;
  const persistence = scores.persistence?.mae;
  // Which row serves now: the new model when promoted, else the champion; or a baseline.
  const servingRow = status.servedBy === 'model' ? (version.decision?.promoted === false && scores.champion ? 'champion' : 'model') : status.servedBy;
  const rows = Object.entries(scores).sort(([a], [b]) => rank(a) - rank(b));
  const unit = status.unit;
  const table = el(
    'table',
    { class: 'score-table' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        el('th', {}, 'Forecaster'),
        el('th', { class: 'num' }, `MAE${unit ? ` (${unit})` : ''}`),
        el('th', { class: 'num' }, 'RMSE'),
        el('th', { class: 'num' }, 'MASE'),
        el('th', { class: 'num' }, 'vs repeat last'),
      ),
    ),
    el(
      'tbody',
      {},
      ...rows.map(([key, score]) =>
        el(
          'tr',
          { class: `${key === 'model' || key === 'champion' ? 'model' : ''} ${key === servingRow ? 'serving' : ''}`.trim() },
          el('td', {}, METHOD_NAMES[key] ?? key, key === servingRow ? el('span', { class: 'tag' }, 'serving') : null),
          el('td', { class: 'num' }, fmt(score.mae, 3)),
          el('td', { class: 'num' }, fmt(score.rmse, 3)),
          el('td', { class: 'num' }, fmt(score.mase, 2)),
          el('td', { class: 'num' }, persistence && key !== 'persistence' ? `${((score.mae / persistence - 1) * 100).toFixed(0)} %` : '–'),
        ),
      ),
    ),
  );
  const note = el(
    'p',
    { class: 'note muted' },
    `${version.validationWindows} held-out windows of the training of ${dateTime(version.trainedAt)}.`,
    version.decision ? ` ${version.decision.reason}.` : '',
  );
  const wrapper = el('div', {}, table, note);
  return wrapper;
}

const rank = (method: string) => {
  const index = METHOD_ORDER.indexOf(method);
  return index < 0 ? METHOD_ORDER.length : index;
};

function versionsTable(models: ModelsResponse): HTMLElement {
  if (models.versions.length === 0) return el('p', { class: 'muted' }, 'No trained versions yet.');
  return el(
    'table',
    { class: 'versions-table' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        el('th', {}, 'Version (trained)'),
        el('th', { class: 'num' }, 'Epochs'),
        el('th', { class: 'num' }, 'Val MAE'),
        el('th', { class: 'num' }, 'Took'),
      ),
    ),
    el(
      'tbody',
      {},
      ...models.versions
        .slice(0, 5)
        .map((version) =>
          el(
            'tr',
            { class: version.serving ? 'serving' : '' },
            el(
              'td',
              {},
              dateTime(version.trainedAt),
              version.serving ? el('span', { class: 'tag' }, 'serving') : null,
              models.pinned === version.version ? el('span', { class: 'tag' }, 'pinned') : null,
            ),
            el('td', { class: 'num' }, String(version.epochs)),
            el('td', { class: 'num' }, fmt(version.scores?.model?.mae, 3)),
            el('td', { class: 'num' }, duration(Math.round(version.durationSeconds))),
          ),
        ),
    ),
  );
}

async function refreshForecast(name: string): Promise<void> {
  const status = state.status?.forecasts[name];
  if (!status) return;
  const card = cardFor(name);
  const rangeSeconds = rangeOf[name] ?? defaultRange(status);
  const from = new Date(Date.now() - rangeSeconds * 1000).toISOString();
  const [message, history, models] = await Promise.all([
    optional<ForecastMessage>(`/api/forecasts/${encodeURIComponent(name)}`),
    getJson<HistoryResponse>(`/api/forecasts/${encodeURIComponent(name)}/history?from=${encodeURIComponent(from)}`),
    getJson<ModelsResponse>(`/api/models/${encodeURIComponent(name)}?limit=10`),
  ]);
  renderSummary(card, status, message);

  const charts = (state.charts[name] ??= { main: null, loss: null, shown: { history: 0, forecast: 0, interval: 0 } });
  const data = mainData(history, message);
  const mainContainer = card.querySelector<HTMLElement>('.main-chart')!;
  const origin = message ? Date.parse(message.origin) / 1000 : null;
  charts.main ??= mainChart(mainContainer, status.unit, () => origin ?? Date.now() / 1000);
  charts.main.setData(data);
  const levels = message ? intervalKeys(message) : null;
  const shaded = [levels?.inner, levels?.outer].filter((level): level is string => !!level);
  card.querySelector('.chart-note')!.textContent = message
    ? `Actuals (blue) and the forecast${message.servedBy && message.servedBy !== 'model' ? ` by ${METHOD_NAMES[message.servedBy] ?? message.servedBy}` : ''} (orange)` +
      (shaded.length ? `, shaded: its ${shaded.join(' % and ')} % prediction intervals, calibrated on held-out windows.` : '.')
    : 'Actuals; the forecast appears here once one is issued.';
  charts.shown = {
    history: data[1].filter((value) => value !== null && value !== undefined).length,
    forecast: message?.points.length ?? 0,
    interval: data[3].filter((value, index) => value !== null && value !== undefined && data[1][index] === null).length,
  };

  // The newest training: its loss curves, and its evaluation of the model against the baselines.
  const newest = models.versions[0];
  const lossContainer = card.querySelector<HTMLElement>('.loss-chart')!;
  if (newest && newest.loss.length) {
    if (!charts.loss) {
      lossContainer.replaceChildren();
      charts.loss = lossChart(lossContainer);
    }
    const epochs = newest.loss.map((_, index) => index + 1);
    charts.loss.setData([epochs, newest.loss, newest.loss.map((_, index) => newest.valLoss[index] ?? null)]);
  } else if (!charts.loss) {
    lossContainer.replaceChildren(el('p', { class: 'muted' }, 'No training yet.'));
  }
  card.querySelector('.scores')!.replaceChildren(scoreTable(newest, status));
  card.querySelector('.versions')!.replaceChildren(el('h3', {}, 'Versions'), versionsTable(models));
}

async function refresh(): Promise<void> {
  try {
    const status = await getJson<StatusDocument>('/api/status');
    state.status = status;
    renderHeader(status);
    const names = Object.keys(status.forecasts);
    const main = document.getElementById('forecasts')!;
    if (names.length === 0)
      main.replaceChildren(el('p', { class: 'empty' }, 'No forecasts configured. Add one under "forecasts:" in the config file.'));
    else main.querySelector('.empty')?.remove();
    await Promise.all(names.map((name) => refreshForecast(name)));
    state.lastError = null;
    showBanner(null);
  } catch (error) {
    state.lastError = (error as Error).message;
    showBanner(
      error instanceof HttpError && error.status === 401 ? `Not authorised: ${error.message}` : `Cannot reach forecastd: ${(error as Error).message}`,
    );
    document.getElementById('updated')!.textContent = 'offline';
  } finally {
    state.refreshes++;
  }
}

function resizeCharts(): void {
  for (const [name, charts] of Object.entries(state.charts)) {
    const card = document.getElementById(`forecast-${name}`);
    if (!card) continue;
    const main = card.querySelector<HTMLElement>('.main-chart');
    const loss = card.querySelector<HTMLElement>('.loss-chart');
    if (charts.main && main) charts.main.setSize({ width: chartWidth(main), height: 300 });
    if (charts.loss && loss) charts.loss.setSize({ width: chartWidth(loss), height: 200 });
  }
}

let resizeTimer: number | undefined;
window.addEventListener('resize', () => {
  window.clearTimeout(resizeTimer);
  resizeTimer = window.setTimeout(resizeCharts, 150);
});

async function loop(): Promise<void> {
  await refresh();
  window.setTimeout(() => void loop(), REFRESH_MS);
}

void loop();
