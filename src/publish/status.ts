/**
 * What forecastd says about itself: per forecast a readiness state (can it forecast now, and if not, why),
 * training progress and the serving model; for the process its version, uptime and backend.
 *
 * The same document goes to the retained `<baseTopic>/status` topic (on every change and every
 * `status.intervalSeconds`), to `GET /api/status`, to the dashboard and to Home Assistant's diagnostic sensors.
 */
import { STATUS_READINESS, type ForecastStatus, type IngestStatus, type StatusDocument } from '../contracts/api.js';
import { readFileSync } from 'node:fs';
import cron from 'node-cron';
import { formatDuration } from '../time/duration.js';
import type { ForecastConfig } from '../config/schema.js';
import type { IngestHealth } from '../ingest/ingestRoute.js';
import type { Logger } from '../log.js';
import type { BackendName } from '../model/backend.js';
import type { EpochProgress, TrainingSummary } from '../model/training.js';
import type { ForecastMessage } from './forecastMessage.js';

/**
 * - `ready`: a model that beats persistence on the newest held-out windows serves, and forecasts are issued.
 * - `degraded`: forecasts are issued, but by a baseline (no model beats persistence, or the last training
 *   failed); the detail says which and why.
 * - `stale`: something could serve, but no forecast was issued for over two intervals: the input window has a
 *   gap (a sensor went silent).
 * - `training`: nothing serves yet, and the first training runs.
 * - `warming_up`: nothing serves yet: not enough history, or the first training has not started.
 */
export const READINESS_STATES = STATUS_READINESS;
export type Readiness = (typeof READINESS_STATES)[number];

/** Everything the status needs to know about one forecast, gathered by the composition root. */
export interface ForecastFacts {
  config: ForecastConfig;
  /** Whether an LSTM checkpoint is loaded. */
  hasModel: boolean;
  /** What would serve a forecast now and how ready it is (ForecastJobs.choose); null while warming up. */
  serving: { servedBy: string; readiness: 'ready' | 'degraded' | 'warming_up'; reason: string } | null;
  lastIssued: ForecastMessage | null;
  training: { startedAt: number; reason: string; progress: EpochProgress | null } | null;
  lastFailure: { at: number; message: string; kind?: string } | null;
  /** The newest recorded training (model_versions), whether or not its model serves. */
  lastTraining: TrainingSummary | null;
}

/** A read-only view of the running daemon. */
export interface DaemonView {
  readonly version: string;
  readonly startedAt: number;
  readonly backend: BackendName;
  readonly baseTopic: string;
  clock(): number;
  brokerConnected(): boolean;
  /** Whether readings are being stored (absent where nothing ingests). */
  ingest?(): IngestHealth;
  /** Where a corrupt database found at start was moved (this run began with an empty one); null or absent: none. */
  readonly databaseQuarantinedAs?: string | null;
  forecasts(): ForecastFacts[];
}

export type Validation = NonNullable<ForecastMessage['model']['validation']>;

/** The status document and each forecast's part of it: src/contracts/api.ts. */
export type { ForecastStatus, IngestStatus, StatusDocument };

/** Forecasts are issued just after each boundary; this much slack covers the settle time and a busy loop. */
const STALE_SLACK_MS = 60_000;

const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString());
const round = (value: number | null | undefined, digits = 6) =>
  value === null || value === undefined || !Number.isFinite(value) ? null : Number(value.toPrecision(digits));

export function readinessOf(facts: ForecastFacts, nowMs: number, startedAtMs: number): { readiness: Readiness; detail: string | null } {
  const intervalMs = facts.config.interval * 1000;
  const serving = facts.serving && facts.serving.readiness !== 'warming_up' ? facts.serving : null;
  if (serving || facts.lastIssued) {
    // A forecast stored before a restart does not make the new run stale: it gets its own two intervals.
    const since = Math.max(startedAtMs, facts.lastIssued ? Date.parse(facts.lastIssued.issuedAt) : startedAtMs);
    const silentMs = nowMs - since;
    if (silentMs > 2 * intervalMs + STALE_SLACK_MS) {
      return {
        readiness: 'stale',
        detail: `no forecast for ${Math.round(silentMs / 60_000)} min: the input window has a gap longer than maxGapSteps (is ${facts.config.target} still reporting?)`,
      };
    }
    const readiness = serving?.readiness ?? facts.lastIssued!.readiness;
    const reason = serving?.reason ?? facts.lastIssued!.readinessReason;
    if (readiness === 'ready' || readiness === 'degraded') return { readiness, detail: readiness === 'ready' ? null : reason };
  }
  if (facts.training) {
    const progress = facts.training.progress;
    return { readiness: 'training', detail: progress ? `first training, epoch ${progress.epoch}/${progress.epochs}` : 'first training started' };
  }
  if (facts.lastFailure) return { readiness: 'warming_up', detail: facts.lastFailure.message };
  if (facts.config.training.onStart) return { readiness: 'warming_up', detail: 'waiting for the first training' };
  return { readiness: 'warming_up', detail: 'no model yet, and training.onStart is off: run `forecastd train` or wait for the schedule' };
}

const nextRuns = new Map<string, number | null>();

/** When the cron schedule fires next after `afterMs`, or null when it cannot tell. Cached until that time passes. */
export function nextTrainingAt(forecast: ForecastConfig, afterMs = Date.now()): number | null {
  const key = `${forecast.training.schedule}|${forecast.training.timezone ?? ''}`;
  const cached = nextRuns.get(key);
  if (cached !== undefined && cached !== null && cached > afterMs) return cached;
  let next: number | null = null;
  try {
    // node-cron computes the next run only for a started task: start one that can never run (destroyed at once).
    const task = cron.schedule(forecast.training.schedule, () => undefined, {
      timezone: forecast.training.timezone,
      name: `next-run-probe:${forecast.name}`,
    });
    next = task.getNextRun()?.getTime() ?? null;
    void task.destroy();
  } catch {
    next = null;
  }
  nextRuns.set(key, next);
  return next !== null && next > afterMs ? next : null;
}

export function forecastStatus(facts: ForecastFacts, nowMs: number, startedAtMs: number): ForecastStatus {
  const { readiness, detail } = readinessOf(facts, nowMs, startedAtMs);
  const progress = facts.training?.progress ?? null;
  const message = facts.lastIssued;
  const servedBy = facts.serving?.readiness === 'warming_up' ? null : (facts.serving?.servedBy ?? message?.servedBy ?? null);
  let servingVersion: string | null = null;
  if (servedBy === 'model')
    servingVersion =
      (message?.servedBy === 'model' && message.model.version) || facts.lastTraining?.decision?.servingVersion || facts.lastTraining?.version || null;
  return {
    readiness,
    detail,
    servedBy,
    target: facts.config.target,
    unit: facts.config.unit ?? null,
    interval: formatDuration(facts.config.interval),
    intervalSeconds: facts.config.interval,
    horizon: facts.config.horizon,
    servingVersion,
    lastForecastAt: message?.issuedAt ?? null,
    training: facts.training
      ? {
          reason: facts.training.reason,
          epoch: progress?.epoch ?? 0,
          epochs: progress?.epochs ?? facts.config.training.epochs,
          loss: round(progress?.loss),
          valLoss: round(progress?.valLoss),
          etaSeconds: progress ? Math.round(progress.etaMs / 1000) : null,
        }
      : null,
    lastTrainedAt: isoOrNull(facts.lastTraining?.startedAt),
    nextTrainingAt: isoOrNull(nextTrainingAt(facts.config, nowMs)),
    validation: message?.model.validation ?? null,
  };
}

export function statusDocument(view: DaemonView): StatusDocument {
  const now = view.clock();
  const forecasts: Record<string, ForecastStatus> = {};
  for (const facts of view.forecasts()) forecasts[facts.config.name] = forecastStatus(facts, now, view.startedAt);
  const ingest = view.ingest?.();
  return {
    version: view.version,
    startedAt: new Date(view.startedAt).toISOString(),
    updatedAt: new Date(now).toISOString(),
    uptimeSeconds: Math.round((now - view.startedAt) / 1000),
    backend: view.backend,
    brokerConnected: view.brokerConnected(),
    ...(ingest && {
      ingest: { storing: ingest.storing, failingSince: isoOrNull(ingest.failingSince), error: ingest.lastError, heldMessages: ingest.held },
    }),
    ...(view.databaseQuarantinedAs ? { databaseQuarantinedAs: view.databaseQuarantinedAs } : {}),
    forecasts,
  };
}

/** What counts as a change: everything but the clock-driven fields (uptime, ETA, the count of held messages). */
function changeKey(doc: StatusDocument): string {
  return JSON.stringify([doc.ingest?.storing, doc.forecasts], (key, value: unknown) => (key === 'etaSeconds' ? undefined : value));
}

/** How often the status is checked for a change; also the shortest gap between two change-driven publishes. */
const CHANGE_POLL_MS = 1000;

/**
 * Makes the status document and hands it to the sinks (the MQTT sink keeps it retained on <baseTopic>/status) on every
 * change (checked every second, so that a fast training publishes at most once a second) and at least every
 * `intervalSeconds`. Listeners (Home Assistant's summaries) hear about every publish.
 */
export class StatusReporter {
  private timer: NodeJS.Timeout | null = null;
  private lastKey = '';
  private lastPublishedAt = 0;
  private readonly listeners: Array<(doc: StatusDocument) => void> = [];

  constructor(
    private readonly deps: { view: DaemonView; publish: (doc: StatusDocument) => void; intervalSeconds: number; log: Logger; pollMs?: number },
  ) {}

  onPublish(listener: (doc: StatusDocument) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    this.publish();
    this.timer = setInterval(() => this.tick(), this.deps.pollMs ?? CHANGE_POLL_MS);
    this.timer.unref();
  }

  /** Publishes when something changed or the interval is up. */
  tick(): void {
    const doc = statusDocument(this.deps.view);
    const sinceMs = this.deps.view.clock() - this.lastPublishedAt;
    // A clock stepped back (docs/reliability.md, "Clock jumps (F8)") would otherwise hold the periodic publish until it caught up again.
    const due = sinceMs >= this.deps.intervalSeconds * 1000 || sinceMs < 0;
    if (due || changeKey(doc) !== this.lastKey) this.publish(doc);
  }

  publish(doc = statusDocument(this.deps.view)): StatusDocument {
    this.lastKey = changeKey(doc);
    this.lastPublishedAt = this.deps.view.clock();
    for (const listener of [this.deps.publish, ...this.listeners]) {
      try {
        listener(doc);
      } catch (error) {
        this.deps.log.error({ err: (error as Error).message }, 'status listener failed');
      }
    }
    return doc;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

let packageVersion: string | null = null;

/** forecastd's version, from its package.json (dist/src/publish → three levels up; src/publish → two). */
export function forecastdVersion(): string {
  if (packageVersion) return packageVersion;
  for (const relative of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'forecastd' && pkg.version) return (packageVersion = pkg.version);
    } catch {
      // try the next candidate
    }
  }
  return (packageVersion = 'unknown');
}
