/**
 * The Store (./store.ts) on one SQLite file: the edge's store, and the default. Its `db` stays reachable for what is
 * SQLite's own business (retention in small transactions, the readiness probe, quick_check, the write meter).
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { openDatabase, type Db } from './database.js';
import { DeadLetterStore } from './deadLetters.js';
import { IssuedForecastStore } from './issuedForecasts.js';
import { ModelPinStore } from './modelPins.js';
import { ModelVersionStore } from './modelVersions.js';
import { OutboxStore } from './outbox.js';
import { PublishedForecastStore } from './publishedForecasts.js';
import { ReadingStore } from './readings.js';
import { SeriesCatalog } from './seriesCatalog.js';
import type { RefusalReport, Store } from './store.js';

export interface SqliteStoreOptions {
  path: string;
  synchronous: Config['storage']['synchronous'];
  /** Read-only (the CLI's readers): no migration, no quarantine, and the file must exist. */
  readonly?: boolean;
  log?: Logger;
  clock?: () => number;
  /** The outbox's cap (publish.outbox.maxPending). */
  outboxMaxPending?: number;
  /** Keeps rejected messages (ingest.deadLetter, when enabled). */
  deadLetter?: Config['ingest']['deadLetter'];
  /** Told about each stored record that does not validate (left out, never cast). */
  onRefused?: RefusalReport;
}

export interface SqliteStore extends Store {
  readonly db: Db;
  readonly path: string;
  /** Where a corrupt database was moved at open (an empty one took its place); null when none was. */
  readonly quarantinedAs: string | null;
}

/**
 * Opens (and, unless read-only, creates and migrates) the database. Each repository prepares its statements when it
 * is first used, so a read-only reader of an older database never touches a table it does not read.
 */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  const clock = options.clock ?? Date.now;
  const { db, quarantined } = openDatabase({ path: options.path, synchronous: options.synchronous, readonly: options.readonly, log: options.log });
  const onRefused = options.onRefused ?? (() => undefined);
  const once = <T>(make: () => T): (() => T) => {
    let made: { value: T } | null = null;
    return () => (made ??= { value: make() }).value;
  };
  const readings = once(() => new ReadingStore(db));
  const versions = once(() => new ModelVersionStore(db, onRefused));
  const issued = once(() => new IssuedForecastStore(db));
  const published = once(() => new PublishedForecastStore(db, onRefused));
  const outbox = once(() => new OutboxStore(db, { maxPending: options.outboxMaxPending ?? 10_000, clock }));
  const pins = once(() => new ModelPinStore(db));
  const deadLetters = once(() => (options.deadLetter?.enabled ? new DeadLetterStore(db, options.deadLetter, clock()) : null));
  const catalog = once(() => new SeriesCatalog(db));
  return {
    db,
    path: options.path,
    quarantinedAs: quarantined,
    get readings() {
      return readings();
    },
    get versions() {
      return versions();
    },
    get issued() {
      return issued();
    },
    get published() {
      return published();
    },
    get outbox() {
      return outbox();
    },
    get pins() {
      return pins();
    },
    get deadLetters() {
      return deadLetters();
    },
    get catalog() {
      return catalog();
    },
    transaction: (work) => db.transaction(work)(),
    close: () => db.close(),
  };
}
