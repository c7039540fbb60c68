/**
 * The ledger side of the ingest fault tests (docs/reliability.md, "The three invariants"): a daemon config that
 * ingests `<prefix>/{device}/{metric}`, what its SQLite file holds afterwards (per series, by seq), a live row
 * counter while it runs, the log lines the tests wait on, and a sensor that publishes at a steady rate.
 *
 * Every reading carries its seq twice: as its value, and in its timestamp (`base + seq·1000`, see load.ts).
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import type { MqttClient } from 'mqtt';
import type { LogLine } from './daemonProcess.js';
import { readingPayload, type BurstResult } from './load.js';
import { HOME_SERIES, realisticDaemonConfig } from './realisticState.js';

/** Readings `count` seconds long ending a day ago: well inside maxAgeDays and never in the future. */
export const readingsBaseTs = (count: number) => Date.now() - 86_400_000 - count * 1000;

export interface StoredSummary {
  rows: number;
  distinct: number;
  /** seqs stored, by series name. */
  bySeries: Map<string, Set<number>>;
}

/** SQL selecting the series a fault test counts: the named ones, else all but the gateway's own sensor history. */
function seriesScope(series?: readonly string[]): { where: string; params: readonly string[] } {
  const names = series ?? HOME_SERIES;
  const list = names.map(() => '?').join(', ');
  return { where: `series_id ${series ? 'IN' : 'NOT IN'} (SELECT id FROM series WHERE name IN (${list}))`, params: names };
}

/**
 * Opens the daemon's database read-only and collects the seqs per series (checking value = seq on every row): the
 * named series, else every series but the realistic state's own history (./realisticState.ts).
 */
export function readStored(databasePath: string, base: number, series?: readonly string[]): StoredSummary {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    const { where, params } = seriesScope(series);
    const rows = db
      .prepare(`SELECT count(*) FROM readings WHERE ${where}`)
      .pluck()
      .get(...params) as number;
    const distinct = db
      .prepare(`SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM readings WHERE ${where})`)
      .pluck()
      .get(...params) as number;
    const bySeries = new Map<string, Set<number>>();
    const all = db
      .prepare(`SELECT s.name AS name, r.ts AS ts, r.v AS v FROM readings r JOIN series s ON s.id = r.series_id WHERE r.${where}`)
      .all(...params) as Array<{ name: string; ts: number; v: number }>;
    for (const { name, ts, v } of all) {
      const seq = (ts - base) / 1000;
      assert.equal(v, seq, `${name}: the value stored at ts ${ts} is the seq it was published with`);
      let set = bySeries.get(name);
      if (!set) bySeries.set(name, (set = new Set()));
      set.add(seq);
    }
    return { rows, distinct, bySeries };
  } finally {
    db.close();
  }
}

/** `PRAGMA integrity_check` of a database no one writes to any more: 'ok', or what SQLite found. */
export function integrityCheck(databasePath: string): string {
  const db = new Database(databasePath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('PRAGMA integrity_check').pluck().all() as string[]).join('; ');
  } finally {
    db.close();
  }
}

export interface RowCounter {
  /** Rows now (of one series when given); 0 while the file or the schema does not exist yet. */
  count(): number;
  /** The newest reading's timestamp (of one series when given), or null. */
  latestTs(): number | null;
  /** Closes the reader: before a kill -9, so that the restarted daemon is the first to open the file and recover its WAL. */
  close(): void;
}

/**
 * A live row counter on the running daemon's WAL database (read-only, its own connection, reopened on demand): of one
 * series when given, else of every series but the realistic state's own history.
 */
export function rowCounter(databasePath: string, seriesName?: string): RowCounter {
  let db: Database.Database | null = null;
  const { where, params } = seriesScope(seriesName === undefined ? undefined : [seriesName]);
  const query = (sql: string): unknown => {
    try {
      db ??= new Database(databasePath, { readonly: true, fileMustExist: true });
      return db
        .prepare(`${sql} WHERE ${where}`)
        .pluck()
        .get(...params);
    } catch {
      return null; // not created yet, or the schema is not migrated yet
    }
  };
  return {
    count: () => (query('SELECT count(*) FROM readings') as number | null) ?? 0,
    latestTs: () => query('SELECT max(ts) FROM readings') as number | null,
    close() {
      db?.close();
      db = null;
    },
  };
}

export interface TopicRuleInput {
  filter: string;
  pattern: string;
}

/**
 * The configuration users run (./realisticState.ts): three forecasts whose trained models the test copies in with
 * `copyTrainedState(stateDir)`, Home Assistant discovery and HTTP on, and a persistent session (protocolVersion 5,
 * clean false, the default session expiry) unless a test overrides them.
 */
export function ingestDaemonConfig(
  url: string,
  clientId: string,
  stateDir: string,
  topics: TopicRuleInput[],
  extra: { mqtt?: Record<string, unknown>; http?: Record<string, unknown> } = {},
) {
  const config = realisticDaemonConfig({ url, clientId, stateDir, topics, mqtt: extra.mqtt });
  return extra.http ? { ...config, http: extra.http } : config;
}

/** The daemon's log lines the fault tests wait on (src/broker/connection.ts, src/ingest/subscription.ts). */
export const isConnected = (line: LogLine) => line.msg === 'connected to broker';
export const isConnectionLost = (line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('broker connection lost');
export const subscribedTo = (filters: string[]) => (line: LogLine) =>
  line.msg === 'subscribed' &&
  Array.isArray(line.filters) &&
  filters.every((filter) => (line.filters as string[]).some((granted) => granted.startsWith(`${filter} (qos 1)`)));

export interface PacedStream {
  /** PUBACKs received so far. */
  readonly acked: number;
  /** Stops issuing publishes and resolves when every issued one has completed (acked or failed). */
  stop(): Promise<BurstResult>;
}

/**
 * A sensor that publishes QoS 1 readings at a steady rate whatever happens to the acknowledgements (a real
 * sensor does not wait for the broker), seq from `firstSeq` up, until stopped.
 */
export function pacedStream(client: MqttClient, topic: string, base: number, perSecond: number, firstSeq = 1): PacedStream {
  const result: BurstResult = { attempted: 0, acked: new Set(), failed: new Map(), ms: 0 };
  const started = performance.now();
  const tickMs = 20;
  let due = 0;
  let inFlight = 0;
  let seq = firstSeq;
  const timer = setInterval(() => {
    // Catch up on ticks the event loop delivered late, so that the rate holds under load.
    due = ((performance.now() - started) / 1000) * perSecond - result.attempted;
    for (; due >= 1; due--) {
      const mine = seq++;
      inFlight++;
      result.attempted++;
      client.publish(topic, readingPayload(mine, base), { qos: 1 }, (error) => {
        inFlight--;
        if (error) result.failed.set(mine, error.message);
        else result.acked.add(mine);
        if (inFlight === 0) settled?.();
      });
    }
  }, tickMs);
  let settled: (() => void) | null = null;
  return {
    get acked() {
      return result.acked.size;
    },
    stop() {
      clearInterval(timer);
      return new Promise((resolve) => {
        const finish = () => {
          result.ms = performance.now() - started;
          resolve(result);
        };
        if (inFlight === 0) finish();
        else settled = finish;
      });
    },
  };
}
