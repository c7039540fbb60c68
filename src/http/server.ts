/**
 * forecastd's HTTP endpoint (off unless `http.enabled`): health for service managers, Prometheus metrics, the JSON
 * API and the dashboard. Read-only: nothing here changes the daemon. It binds 127.0.0.1 by default; with
 * `http.token` set, every path but /healthz needs the token (bearer header, or once `?token=` in the browser, which
 * turns into a cookie).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { handleApi, type ApiSources } from './api.js';
import { DASHBOARD_CSS, dashboardHtml } from './dashboard/page.js';
import { CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE, renderExposition, type MetricFamily } from './prometheus.js';
import type { Readiness } from './readiness.js';

export interface HttpServerDeps extends ApiSources {
  config: Config['http'];
  log: Logger;
  readiness: () => Readiness;
  metrics: () => MetricFamily[];
}

export const TOKEN_COOKIE = 'forecastd_token';

interface Asset {
  contentType: string;
  load: () => Buffer;
}

const uplotDir = () => dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

/** Static files of the dashboard; the client script is compiled by tsc next to this file. */
const ASSETS: Record<string, Asset> = {
  '/assets/dashboard.js': {
    contentType: 'text/javascript; charset=utf-8',
    load: () => readFileSync(fileURLToPath(new URL('./dashboard/client.js', import.meta.url))),
  },
  '/assets/dashboard.css': { contentType: 'text/css; charset=utf-8', load: () => Buffer.from(DASHBOARD_CSS) },
  '/assets/uPlot.iife.min.js': { contentType: 'text/javascript; charset=utf-8', load: () => readFileSync(join(uplotDir(), 'uPlot.iife.min.js')) },
  '/assets/uPlot.min.css': { contentType: 'text/css; charset=utf-8', load: () => readFileSync(join(uplotDir(), 'uPlot.min.css')) },
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

const UNAUTHORISED_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>forecastd: token required</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto; color: #0f172a">
<h1>forecastd: token required</h1>
<p>This dashboard is protected by <code>http.token</code> (or <code>FORECASTD_HTTP_TOKEN</code>).
Open it once as <code>/?token=&lt;your token&gt;</code>: the token is then kept in a cookie for this browser.</p>
</body></html>
`;

const digest = (text: string) => createHash('sha256').update(text).digest();

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return null;
}

export class HttpServer {
  private server: Server | null = null;
  private readonly assetCache = new Map<string, Buffer>();
  private readonly tokenDigest: Buffer | null;
  private boundUrl: string | null = null;

  constructor(private readonly deps: HttpServerDeps) {
    this.tokenDigest = deps.config.token ? digest(deps.config.token) : null;
  }

  /** The URL the server listens on (with the real port when the config asked for port 0), or null before start. */
  get url(): string | null {
    return this.boundUrl;
  }

  async start(): Promise<string> {
    const { host, port } = this.deps.config;
    const server = createServer((request, response) => this.handle(request, response));
    server.keepAliveTimeout = 5_000;
    server.requestTimeout = 15_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.deps.log.error({ err: error.message }, 'HTTP server error'));
    this.server = server;
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.boundUrl = `http://${shownHost}:${address.port}`;
    const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
    if (!loopback && !this.tokenDigest) {
      this.deps.log.warn({ host }, 'HTTP listens beyond this machine without a token: set http.token (or FORECASTD_HTTP_TOKEN)');
    }
    this.deps.log.info({ url: this.boundUrl, token: this.tokenDigest !== null }, `dashboard and metrics at ${this.boundUrl}/`);
    return this.boundUrl;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private authorized(request: IncomingMessage, query: URLSearchParams): { ok: boolean; viaQuery: boolean } {
    if (!this.tokenDigest) return { ok: true, viaQuery: false };
    const matches = (candidate: string | null | undefined) =>
      typeof candidate === 'string' && candidate.length > 0 && timingSafeEqual(digest(candidate), this.tokenDigest!);
    const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1]?.trim();
    if (matches(bearer) || matches(cookieValue(request.headers.cookie, TOKEN_COOKIE))) return { ok: true, viaQuery: false };
    if (matches(query.get('token'))) return { ok: true, viaQuery: true };
    return { ok: false, viaQuery: false };
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://localhost');
    } catch {
      return this.send(response, 400, 'application/json', JSON.stringify({ error: 'bad request URL' }));
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      return this.send(response, 405, 'application/json', JSON.stringify({ error: 'read-only: only GET and HEAD' }));
    }
    try {
      if (path === '/healthz') return this.sendJson(response, 200, { status: 'ok' });
      const auth = this.authorized(request, url.searchParams);
      if (!auth.ok) {
        response.setHeader('www-authenticate', 'Bearer realm="forecastd"');
        if ((path === '/' || path === '/index.html') && (request.headers.accept ?? '').includes('text/html')) {
          return this.send(response, 401, 'text/html; charset=utf-8', UNAUTHORISED_PAGE);
        }
        return this.sendJson(response, 401, {
          error: 'token required: send "Authorization: Bearer <http.token>", or open the dashboard once as /?token=<http.token>',
        });
      }
      if (auth.viaQuery && (path === '/' || path === '/index.html')) {
        // Swap the token in the URL (history, bookmarks, screenshots) for a cookie, and show the page without it.
        response.setHeader('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(this.deps.config.token!)}; HttpOnly; SameSite=Strict; Path=/`);
        response.setHeader('location', '/');
        return this.send(response, 303, 'text/plain; charset=utf-8', 'see /');
      }
      if (path === '/readyz') {
        const verdict = this.deps.readiness();
        return this.sendJson(response, verdict.ready ? 200 : 503, verdict);
      }
      if (path === '/metrics') return this.send(response, 200, PROMETHEUS_CONTENT_TYPE, renderExposition(this.deps.metrics()));
      if (path === '/api' || path.startsWith('/api/')) {
        const answer = handleApi(path, url.searchParams, this.deps);
        return this.sendJson(response, answer.status, answer.body);
      }
      if (path === '/' || path === '/index.html') {
        response.setHeader('content-security-policy', DASHBOARD_CSP);
        return this.send(response, 200, 'text/html; charset=utf-8', dashboardHtml());
      }
      const asset = ASSETS[path];
      if (asset) {
        let body = this.assetCache.get(path);
        if (!body) this.assetCache.set(path, (body = asset.load()));
        response.setHeader('cache-control', 'no-cache');
        return this.send(response, 200, asset.contentType, body);
      }
      return this.sendJson(response, 404, { error: `not found: ${path}` });
    } catch (error) {
      this.deps.log.error({ path, err: (error as Error).message }, 'HTTP request failed');
      if (!response.headersSent) this.sendJson(response, 500, { error: (error as Error).message });
    } finally {
      this.deps.log.trace({ method: request.method, path, status: response.statusCode, ms: Math.round(performance.now() - started) }, 'http request');
    }
  }

  private sendJson(response: ServerResponse, status: number, body: unknown): void {
    response.setHeader('cache-control', 'no-store');
    this.send(response, status, 'application/json; charset=utf-8', JSON.stringify(body));
  }

  private send(response: ServerResponse, status: number, contentType: string, body: string | Buffer): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
    response.statusCode = status;
    response.setHeader('content-type', contentType);
    response.setHeader('content-length', Buffer.byteLength(body));
    response.end(response.req.method === 'HEAD' ? undefined : body);
  }
}
