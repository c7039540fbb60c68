/**
 * The dashboard's page and style sheet. They live in TypeScript (as the client script does, in client.ts) so that
 * `tsc` alone puts the whole dashboard into dist/: no copy step, no CDN, nothing fetched from the network.
 * uPlot itself is served from the installed `uplot` package.
 */

export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>forecastd</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'%3E%3Cpath d='M2 17 L7 11 L11 14 L16 6' fill='none' stroke='%232563eb' stroke-width='2.6' stroke-linecap='round' stroke-linejoin='round'/%3E%3Cpath d='M16 6 L22 3' fill='none' stroke='%23ea580c' stroke-width='2.6' stroke-linecap='round'/%3E%3C/svg%3E">
<link rel="stylesheet" href="/assets/uPlot.min.css">
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/uPlot.iife.min.js"></script>
<script type="module" src="/assets/dashboard.js"></script>
</head>
<body>
<header class="topbar">
  <div class="brand"><svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M2 17 L7 11 L11 14 L16 6" fill="none" stroke="#2563eb" stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round"/><path d="M16 6 L22 3" fill="none" stroke="#ea580c" stroke-width="2.4" stroke-dasharray="2 2.5" stroke-linecap="round"/></svg><span>forecastd</span></div>
  <div class="pills" id="pills"></div>
  <div class="updated" id="updated">connecting…</div>
</header>
<div class="banner" id="banner" hidden></div>
<main id="forecasts"><p class="empty">Loading…</p></main>
<footer>forecastd dashboard · refreshes every few seconds · <a href="/metrics">/metrics</a> · <a href="/api/status">/api/status</a> · <a href="/readyz">/readyz</a></footer>
</body>
</html>
`;
}

export const DASHBOARD_CSS = `
:root {
  --bg: #f4f6f9; --card: #ffffff; --ink: #0f172a; --muted: #64748b; --line: #e2e8f0;
  --actual: #2563eb; --forecast: #ea580c; --band: rgba(234, 88, 12, 0.16);
  --ok: #15803d; --ok-bg: #dcfce7; --warn: #b45309; --warn-bg: #fef3c7; --bad: #b91c1c; --bad-bg: #fee2e2;
  --info: #1d4ed8; --info-bg: #dbeafe; --idle: #475569; --idle-bg: #e2e8f0;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--actual); }
.topbar { display: flex; align-items: center; gap: 16px; padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 5; }
.brand { display: flex; align-items: center; gap: 8px; font-weight: 700; font-size: 18px; letter-spacing: -0.01em; }
.pills { display: flex; gap: 8px; flex-wrap: wrap; flex: 1; }
.pill { font-size: 12px; padding: 3px 10px; border-radius: 999px; background: var(--idle-bg); color: var(--idle); white-space: nowrap; }
.pill.ok { background: var(--ok-bg); color: var(--ok); }
.pill.bad { background: var(--bad-bg); color: var(--bad); }
.updated { font-size: 12px; color: var(--muted); white-space: nowrap; }
.banner { margin: 16px 24px 0; padding: 10px 14px; border-radius: 8px; background: var(--bad-bg); color: var(--bad); font-size: 14px; }
main { padding: 20px 24px; display: grid; gap: 20px; max-width: 1400px; margin: 0 auto; }
.empty { color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px 20px; box-shadow: 0 1px 2px rgba(15, 23, 42, 0.04); }
.card-head { display: flex; align-items: flex-start; justify-content: space-between; gap: 12px; }
.card-head h2 { margin: 0; font-size: 20px; letter-spacing: -0.01em; }
.sub { color: var(--muted); font-size: 13px; margin-top: 2px; }
.badge { font-size: 12px; font-weight: 600; padding: 4px 10px; border-radius: 999px; text-transform: uppercase; letter-spacing: 0.04em; white-space: nowrap; }
.badge.ready { background: var(--ok-bg); color: var(--ok); }
.badge.training { background: var(--info-bg); color: var(--info); }
.badge.degraded, .badge.stale { background: var(--warn-bg); color: var(--warn); }
.badge.warming_up { background: var(--idle-bg); color: var(--idle); }
.detail { margin-top: 10px; font-size: 13px; color: var(--warn); background: var(--warn-bg); border-radius: 6px; padding: 6px 10px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 16px 0 10px; }
.kpi { border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
.kpi-label { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
.kpi-value { font-size: 22px; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.kpi-sub { font-size: 12px; color: var(--muted); margin-top: 2px; }
.kpi-sub.good { color: var(--ok); }
.kpi-sub.poor { color: var(--bad); }
.ranges { display: flex; gap: 4px; justify-content: flex-end; margin: 6px 0 0; }
.ranges button { font: inherit; font-size: 12px; border: 1px solid var(--line); background: var(--card); color: var(--muted); border-radius: 6px; padding: 2px 8px; cursor: pointer; }
.ranges button.active { background: var(--ink); color: #fff; border-color: var(--ink); }
.chart { width: 100%; min-height: 120px; }
.row { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 20px; margin-top: 14px; }
@media (max-width: 900px) { .row { grid-template-columns: minmax(0, 1fr); } }
.panel h3 { margin: 0 0 8px; font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: 0.05em; font-weight: 600; }
.panel + .panel h3 { margin-top: 0; }
table { width: 100%; border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th { text-align: left; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--line); padding: 6px 8px; }
td { border-bottom: 1px solid var(--line); padding: 6px 8px; }
td.num, th.num { text-align: right; }
tr.serving td { font-weight: 600; }
tr.model td:first-child::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 50%; background: var(--forecast); margin-right: 6px; }
.tag { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: var(--ok-bg); color: var(--ok); margin-left: 6px; }
.muted { color: var(--muted); }
.versions { margin-top: 16px; }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 8px 0 24px; }
.u-legend { font-size: 12px; }
.main-chart .u-legend tr.u-series:nth-child(n+4) { display: none; }
.note { font-size: 12px; margin: 6px 0 0; }
.chart-note { font-size: 12px; margin: 2px 0 0; text-align: center; }
.u-legend .u-marker { border-radius: 2px; }
`;
