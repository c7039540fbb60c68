import { createHash, randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDirectory, writeFileDurably } from './fsync.js';

// Crash-safe model checkpoints (docs/reliability.md, "Model checkpoints"; safe paths: "Security"). Each save goes to a fresh `<epoch>-<rand>.tmp/`
// directory, is fsynced, renamed to its final name, and only then published through an atomically replaced
// `CURRENT` file. A reader therefore sees either the old or the new checkpoint, never a mix, and the loader checks
// every byte against the manifest before trusting it, falling back to older checkpoints when one is damaged.

export interface CheckpointContent {
  modelTopology: unknown;
  /** dtype as tfjs writes it (float32, int32, …). */
  weightSpecs: Array<{ name: string; shape: number[]; dtype: string }>;
  /** Concatenated weights in `weightSpecs` order, 4 bytes per element, platform byte order (as tfjs writes them). */
  weightData: ArrayBuffer;
  meta: Record<string, unknown>;
}

export interface CheckpointInfo {
  id: string;
  epoch: number;
  createdAt: string;
  meta: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  info: CheckpointInfo;
  content: CheckpointContent;
  /** How many candidates were skipped before this one; equals `rejected.length`. */
  fallbacks: number;
  rejected: Array<{ id: string; reason: string }>;
}

export interface CheckpointStoreOptions {
  /** How many verified checkpoints to keep after each save, the new one included. Default 2. */
  keep?: number;
  /** Test hook, called after each protocol step k = 1..5 of `save`; throwing from it simulates a crash there. */
  onStep?: (step: number) => void;
  /**
   * Checkpoints for which this returns true are never pruned, and do not count towards `keep` (e.g. the version an
   * operator pinned). Asked at each prune, so it may read state that changes (a pin table).
   */
  protect?: (info: CheckpointInfo) => boolean;
}

const SCHEMA_VERSION = 1;
const MODEL_FILE = 'model.json';
const WEIGHTS_FILE = 'weights.bin';
const MANIFEST_FILE = 'manifest.json';
const CURRENT_FILE = 'CURRENT';
const CURRENT_TEMP_FILE = 'CURRENT.tmp';
const TEMP_SUFFIX = '.tmp';
const CHECKPOINT_FILES = [MODEL_FILE, WEIGHTS_FILE] as const;

/** `<epoch, zero padded>-<random hex>`; anything else in the store directory is not a checkpoint. */
const CHECKPOINT_NAME = /^(\d{1,16})-([0-9a-f]{8,32})$/;
const EPOCH_DIGITS = 8;
const BYTES_PER_ELEMENT = 4;
const SUPPORTED_DTYPES = new Set(['float32', 'int32']);
// Reads of files whose size the manifest does not vouch for are bounded, so a damaged store cannot exhaust memory.
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
const MAX_CURRENT_BYTES = 4096;

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const FILE_MODE = 0o600;
const DIR_MODE = 0o700;

interface FileEntry {
  bytes: number;
  sha256: string;
}

interface Manifest {
  schemaVersion: 1;
  key: string;
  epoch: number;
  createdAt: string;
  files: Record<string, FileEntry>;
  meta: Record<string, unknown>;
}

/** A checkpoint that failed verification; the reason is meant for logs and the `ckpt_rejected` counter. */
class RejectedCheckpoint extends Error {
  constructor(
    reason: string,
    readonly code?: string,
  ) {
    super(reason);
  }
}

/** Thrown by `onStep`: the save stops where a crash would have stopped it, and nothing is cleaned up. */
class SimulatedCrash extends Error {
  constructor(readonly original: unknown) {
    super('checkpoint save interrupted by onStep');
  }
}

/**
 * One series' checkpoints, in `rootDir/<first 16 hex chars of sha256(key)>`. Saves and stale-temp removal made
 * through one instance are serialised; the store assumes a single writer process.
 */
export class CheckpointStore {
  readonly dir: string;
  private readonly keep: number;
  private readonly onStep: ((step: number) => void) | undefined;
  private readonly protect: ((info: CheckpointInfo) => boolean) | undefined;
  private writeQueue: Promise<unknown> = Promise.resolve();

  constructor(
    rootDir: string,
    private readonly key: string,
    options: CheckpointStoreOptions = {},
  ) {
    if (typeof key !== 'string') throw new TypeError('checkpoint key must be a string');
    const keep = options.keep ?? 2;
    if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`keep must be an integer >= 1, got ${keep}`);
    this.keep = keep;
    this.onStep = options.onStep;
    this.protect = options.protect;
    const root = path.resolve(rootDir);
    this.dir = childPath(root, createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16));
  }

  /** Writes a new checkpoint and makes it current. Rejects (and leaves the previous one current) on any failure. */
  save(content: CheckpointContent, epoch: number): Promise<CheckpointInfo> {
    return this.serialised(() => this.saveNow(content, epoch));
  }

  /**
   * The checkpoint `CURRENT` names, or, when that one is missing or damaged, the newest checkpoint that verifies
   * (by creation time, then epoch). Null when there is none. Damaged content never throws; it lands in `rejected`.
   */
  async loadLatest(): Promise<LoadedCheckpoint | null> {
    const rejected: Array<{ id: string; reason: string }> = [];
    const tried = new Set<string>();
    const current = await this.readCurrent();
    if (current === null) return null; // no store directory
    if (current.reason !== undefined) rejected.push({ id: CURRENT_FILE, reason: current.reason });
    const candidates = [...(current.id === undefined ? [] : [current.id]), ...(await this.list()).map((info) => info.id)];
    for (const id of candidates) {
      if (tried.has(id)) continue;
      tried.add(id);
      try {
        const { info, content } = await this.verify(id);
        return { info, content, fallbacks: rejected.length, rejected };
      } catch (err) {
        if (!(err instanceof RejectedCheckpoint)) throw err;
        rejected.push({ id, reason: err.message });
      }
    }
    return null;
  }

  /**
   * The newest checkpoint whose meta.version is `version` and that verifies exactly as `loadLatest` verifies;
   * damaged ones of that version land in `rejected`. Null when none of that version verifies (or there is no store).
   */
  async loadVersion(version: string): Promise<LoadedCheckpoint | null> {
    const rejected: Array<{ id: string; reason: string }> = [];
    for (const info of await this.list()) {
      if (info.meta.version !== version) continue;
      const loaded = await this.loadById(info.id);
      if (loaded.content) return { info: loaded.info, content: loaded.content, fallbacks: rejected.length, rejected };
      rejected.push({ id: info.id, reason: loaded.reason });
    }
    return null;
  }

  /** One checkpoint by id, fully verified; `{reason}` when it is missing or damaged. */
  async loadById(
    id: string,
  ): Promise<{ info: CheckpointInfo; content: CheckpointContent } | { info?: undefined; content?: undefined; reason: string }> {
    if (!CHECKPOINT_NAME.test(id)) return { reason: `not a checkpoint id: ${JSON.stringify(id.slice(0, 64))}` };
    try {
      return await this.verify(id);
    } catch (err) {
      if (!(err instanceof RejectedCheckpoint)) throw err;
      return { reason: err.message };
    }
  }

  /** Every complete (renamed) checkpoint directory, verified or not, newest first. Unreadable manifests give `createdAt: ''`. */
  async list(): Promise<CheckpointInfo[]> {
    const names = await this.entries();
    if (names === null) return [];
    const infos: CheckpointInfo[] = [];
    for (const entry of names) {
      if (!entry.isDirectory() || !CHECKPOINT_NAME.test(entry.name)) continue;
      const epoch = epochOf(entry.name);
      let createdAt = '';
      let meta: Record<string, unknown> = {};
      try {
        const manifest = await this.readManifest(entry.name);
        createdAt = manifest.createdAt;
        meta = manifest.meta;
      } catch (err) {
        if (!(err instanceof RejectedCheckpoint)) throw err;
      }
      infos.push({ id: entry.name, epoch, createdAt, meta });
    }
    return infos.sort(newestFirst);
  }

  /** Deletes `*.tmp` files and directories that a crash left behind. Call at startup. Returns how many were removed. */
  removeStaleTemp(): Promise<number> {
    return this.serialised(async () => {
      const names = await this.entries();
      if (names === null) return 0;
      let removed = 0;
      for (const entry of names) {
        if (!entry.name.endsWith(TEMP_SUFFIX)) continue;
        await rm(childPath(this.dir, entry.name), { recursive: true, force: true });
        removed++;
      }
      if (removed > 0) await fsyncDirectory(this.dir);
      return removed;
    });
  }

  private serialised<T>(task: () => Promise<T>): Promise<T> {
    const run = this.writeQueue.then(task, task);
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  private step(k: number): void {
    if (!this.onStep) return;
    try {
      this.onStep(k);
    } catch (err) {
      throw new SimulatedCrash(err);
    }
  }

  private async saveNow(content: CheckpointContent, epoch: number): Promise<CheckpointInfo> {
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
    const weights = new Uint8Array(content.weightData);
    const modelJson = JSON.stringify({ modelTopology: content.modelTopology, weightSpecs: content.weightSpecs });
    const metaJson = JSON.stringify(content.meta);
    if (modelJson === undefined || metaJson === undefined || !isPlainObject(content.meta)) {
      throw new TypeError('modelTopology, weightSpecs and meta must be JSON-serialisable (meta an object)');
    }
    // Refuse now what the loader would reject later: a checkpoint that cannot load must not become CURRENT.
    const problem = checkWeights(content.weightSpecs, content.weightData);
    if (problem) throw new Error(`refusing to save checkpoint: ${problem}`);

    await this.ensureStoreDir();
    const id = `${String(epoch).padStart(EPOCH_DIGITS, '0')}-${randomBytes(4).toString('hex')}`;
    const tempDir = childPath(this.dir, id + TEMP_SUFFIX);
    const finalDir = childPath(this.dir, id);
    let renamed = false;
    let published = false;
    try {
      // Step 1: payload files, each fsynced, in a directory no reader looks at.
      await mkdir(tempDir, { mode: DIR_MODE });
      const modelBytes = Buffer.from(modelJson, 'utf8');
      await writeFileDurably(childPath(tempDir, MODEL_FILE), modelBytes, { exclusive: true, mode: FILE_MODE });
      await writeFileDurably(childPath(tempDir, WEIGHTS_FILE), weights, { exclusive: true, mode: FILE_MODE });
      this.step(1);

      // Step 2: the manifest that vouches for them, then the directory's entries.
      const createdAt = new Date().toISOString();
      const manifest: Manifest = {
        schemaVersion: SCHEMA_VERSION,
        key: this.key,
        epoch,
        createdAt,
        files: { [MODEL_FILE]: describe(modelBytes), [WEIGHTS_FILE]: describe(weights) },
        meta: JSON.parse(metaJson) as Record<string, unknown>,
      };
      await writeFileDurably(childPath(tempDir, MANIFEST_FILE), JSON.stringify(manifest), { exclusive: true, mode: FILE_MODE });
      await fsyncDirectory(tempDir);
      this.step(2);

      // Step 3: the checkpoint appears under its final name, complete.
      await rename(tempDir, finalDir);
      renamed = true;
      await fsyncDirectory(this.dir);
      this.step(3);

      // Step 4: publish it. rename(2) replaces CURRENT atomically; readers see the old name or the new one.
      const currentTemp = childPath(this.dir, CURRENT_TEMP_FILE);
      await writeFileDurably(currentTemp, `${id}\n`, { mode: FILE_MODE });
      await rename(currentTemp, childPath(this.dir, CURRENT_FILE));
      published = true;
      await fsyncDirectory(this.dir);
      this.step(4);

      // Step 5: only now is it safe to delete older checkpoints.
      try {
        await this.prune(id);
      } catch (err) {
        throw new Error(`checkpoint ${id} was saved and is current, but pruning older checkpoints failed`, { cause: err });
      }
      this.step(5);
      return { id, epoch, createdAt, meta: manifest.meta };
    } catch (err) {
      if (err instanceof SimulatedCrash) throw err.original;
      // A real failure (ENOSPC, EIO...): tidy up what no reader can use; the previous CURRENT is untouched.
      if (!renamed) await rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
      // Complete but never made current (CURRENT.tmp found no room): a save that failed must not leave a checkpoint
      // the loader could fall back to, nor hold the space. Renamed out of sight first, as prune does.
      else if (!published)
        await rename(finalDir, tempDir)
          .then(() => rm(tempDir, { recursive: true, force: true }))
          .catch(() => undefined);
      await rm(childPath(this.dir, CURRENT_TEMP_FILE), { force: true }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Keeps `currentId` plus the newest verified others up to `keep`, and every protected one; everything else goes,
   * damaged ones included.
   */
  private async prune(currentId: string): Promise<void> {
    const kept = new Set([currentId]);
    const doomed: string[] = [];
    for (const info of await this.list()) {
      const { id } = info;
      if (kept.has(id)) continue;
      if (this.protect?.(info)) continue;
      if (kept.size < this.keep && (await this.verifies(id))) kept.add(id);
      else doomed.push(id);
    }
    if (doomed.length === 0) return;
    // Renaming first takes each one out of the loader's sight atomically; a crash mid-delete leaves only *.tmp.
    const trash: string[] = [];
    for (const id of doomed) {
      const target = childPath(this.dir, `${id}.pruned${TEMP_SUFFIX}`);
      await rename(childPath(this.dir, id), target);
      trash.push(target);
    }
    await fsyncDirectory(this.dir);
    for (const target of trash) await rm(target, { recursive: true, force: true });
  }

  private async verifies(id: string): Promise<boolean> {
    try {
      await this.verify(id);
      return true;
    } catch (err) {
      if (err instanceof RejectedCheckpoint) return false;
      throw err;
    }
  }

  /** Full verification of one checkpoint; throws RejectedCheckpoint with the first problem found. */
  private async verify(id: string): Promise<{ info: CheckpointInfo; content: CheckpointContent }> {
    const manifest = await this.readManifest(id);
    const files = new Map<string, Buffer>();
    for (const name of CHECKPOINT_FILES) {
      const expected = manifest.files[name];
      const data = await readBounded(childPath(childPath(this.dir, id), name), expected.bytes, name);
      if (data.byteLength !== expected.bytes) {
        throw new RejectedCheckpoint(`${name}: manifest says ${expected.bytes} bytes, file has ${data.byteLength}`);
      }
      if (sha256(data) !== expected.sha256) throw new RejectedCheckpoint(`${name}: sha256 mismatch`);
      files.set(name, data);
    }

    let model: unknown;
    try {
      model = JSON.parse(files.get(MODEL_FILE)!.toString('utf8'));
    } catch (err) {
      throw new RejectedCheckpoint(`${MODEL_FILE}: invalid JSON (${(err as Error).message})`);
    }
    if (!isPlainObject(model) || !('modelTopology' in model)) throw new RejectedCheckpoint(`${MODEL_FILE}: no modelTopology`);
    const specs = model.weightSpecs;
    const specProblem = checkSpecs(specs);
    if (specProblem) throw new RejectedCheckpoint(`${MODEL_FILE}: ${specProblem}`);

    // A copy, so the ArrayBuffer starts at offset 0 (Float32Array views need 4-byte alignment) and is not pooled.
    const raw = files.get(WEIGHTS_FILE)!;
    const weightData = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength) as ArrayBuffer;
    const weightsProblem = checkWeights(specs as CheckpointContent['weightSpecs'], weightData);
    if (weightsProblem) throw new RejectedCheckpoint(`${WEIGHTS_FILE}: ${weightsProblem}`);

    return {
      info: { id, epoch: manifest.epoch, createdAt: manifest.createdAt, meta: manifest.meta },
      content: {
        modelTopology: model.modelTopology,
        weightSpecs: specs as CheckpointContent['weightSpecs'],
        weightData,
        meta: manifest.meta,
      },
    };
  }

  private async readManifest(id: string): Promise<Manifest> {
    const text = (await readBounded(childPath(childPath(this.dir, id), MANIFEST_FILE), MAX_MANIFEST_BYTES, MANIFEST_FILE)).toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new RejectedCheckpoint(`${MANIFEST_FILE}: invalid JSON (${(err as Error).message})`);
    }
    const problem = checkManifest(parsed, this.key, epochOf(id));
    if (problem) throw new RejectedCheckpoint(`${MANIFEST_FILE}: ${problem}`);
    return parsed as Manifest;
  }

  /** `{id}` when CURRENT names a checkpoint, `{reason}` when it is unusable, `{}` when absent, null without a store. */
  private async readCurrent(): Promise<{ id?: string; reason?: string } | null> {
    if ((await this.entries()) === null) return null;
    let text: string;
    try {
      text = (await readBounded(childPath(this.dir, CURRENT_FILE), MAX_CURRENT_BYTES, CURRENT_FILE)).toString('utf8');
    } catch (err) {
      if (!(err instanceof RejectedCheckpoint)) throw err;
      // Absent CURRENT is normal before the first save completes step 4; anything else is worth reporting.
      return err.code === 'ENOENT' ? {} : { reason: err.message };
    }
    const id = text.trim();
    if (!CHECKPOINT_NAME.test(id)) return { reason: `${CURRENT_FILE}: does not name a checkpoint (${JSON.stringify(id.slice(0, 64))})` };
    return { id };
  }

  /** The store directory's entries, or null when it does not exist. */
  private async entries(): Promise<Dirent[] | null> {
    try {
      return await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Creates the store directory, fsyncing each parent whose entries changed so the path itself survives power loss. */
  private async ensureStoreDir(): Promise<void> {
    const firstCreated = await mkdir(this.dir, { recursive: true, mode: DIR_MODE });
    if (firstCreated === undefined) return;
    for (let dir = this.dir; ; dir = path.dirname(dir)) {
      await fsyncDirectory(path.dirname(dir));
      if (dir === firstCreated || path.dirname(dir) === dir) break;
    }
  }
}

/**
 * Joins a single path component onto `base`, refusing anything that could leave it (defence in depth, docs/reliability.md "Security": names
 * here are generated or pattern-checked, so a failure is a programming error).
 */
function childPath(base: string, name: string): string {
  if (name === '' || name.startsWith('.') || /[/\\\0]/.test(name) || name.includes('..')) {
    throw new Error(`unsafe path component ${JSON.stringify(name)}`);
  }
  const resolved = path.resolve(base, name);
  if (!resolved.startsWith(base + path.sep)) throw new Error(`path ${JSON.stringify(name)} escapes ${base}`);
  return resolved;
}

/** Reads a regular file without following symlinks, refusing more than `maxBytes`. I/O problems become rejections. */
async function readBounded(filePath: string, maxBytes: number, label: string): Promise<Buffer> {
  let handle;
  try {
    handle = await open(filePath, constants.O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new RejectedCheckpoint(`${label}: cannot open (${code ?? (err as Error).message})`, code);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new RejectedCheckpoint(`${label}: not a regular file`);
    if (stat.size > maxBytes) throw new RejectedCheckpoint(`${label}: ${stat.size} bytes, more than the ${maxBytes} expected`);
    return await handle.readFile();
  } catch (err) {
    if (err instanceof RejectedCheckpoint) throw err;
    throw new RejectedCheckpoint(`${label}: read failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  } finally {
    await handle.close();
  }
}

function epochOf(id: string): number {
  return Number(CHECKPOINT_NAME.exec(id)![1]);
}

// Creation time first: every retrain counts its epochs from 1 again, so an old run's epoch 30 is not newer than
// a new run's epoch 5. The epoch breaks ties within one millisecond.
function newestFirst(a: CheckpointInfo, b: CheckpointInfo): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1; // ISO 8601 UTC sorts as text
  if (a.epoch !== b.epoch) return b.epoch - a.epoch;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function describe(data: Uint8Array): FileEntry {
  return { bytes: data.byteLength, sha256: sha256(data) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkManifest(value: unknown, key: string, epoch: number): string | undefined {
  if (!isPlainObject(value)) return 'not an object';
  if (value.schemaVersion !== SCHEMA_VERSION) return `unsupported schemaVersion ${JSON.stringify(value.schemaVersion)}`;
  if (value.key !== key) return 'written for a different key';
  if (value.epoch !== epoch) return `epoch ${JSON.stringify(value.epoch)} does not match the directory name`;
  if (typeof value.createdAt !== 'string' || Number.isNaN(Date.parse(value.createdAt))) return 'invalid createdAt';
  if (!isPlainObject(value.meta)) return 'meta is not an object';
  const files = value.files;
  if (!isPlainObject(files)) return 'files is not an object';
  const names = Object.keys(files).sort();
  if (names.join('\0') !== [...CHECKPOINT_FILES].sort().join('\0')) return `lists files ${JSON.stringify(names)}`;
  for (const name of names) {
    const entry = files[name];
    if (!isPlainObject(entry) || !Number.isSafeInteger(entry.bytes) || (entry.bytes as number) < 0) return `${name}: invalid byte count`;
    if (typeof entry.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(entry.sha256)) return `${name}: invalid sha256`;
  }
  return undefined;
}

function checkSpecs(specs: unknown): string | undefined {
  if (!Array.isArray(specs)) return 'weightSpecs is not an array';
  for (const [i, spec] of specs.entries()) {
    if (!isPlainObject(spec) || typeof spec.name !== 'string') return `weightSpecs[${i}] has no name`;
    if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return `weightSpecs[${i}] ("${spec.name}") has an invalid shape`;
    }
    if (typeof spec.dtype !== 'string' || !SUPPORTED_DTYPES.has(spec.dtype)) {
      return `weightSpecs[${i}] ("${spec.name}") has unsupported dtype ${JSON.stringify(spec.dtype)}`;
    }
  }
  return undefined;
}

/** Shapes must account for every byte, and every float32 must be finite. Returns the first problem, if any. */
function checkWeights(specs: CheckpointContent['weightSpecs'], weightData: ArrayBuffer): string | undefined {
  const specProblem = checkSpecs(specs);
  if (specProblem) return specProblem;
  if (!(weightData instanceof ArrayBuffer)) return 'weightData is not an ArrayBuffer';
  const expectedBytes = specs.reduce((sum, spec) => sum + spec.shape.reduce((n, d) => n * d, 1) * BYTES_PER_ELEMENT, 0);
  if (expectedBytes !== weightData.byteLength) {
    return `weightSpecs describe ${expectedBytes} bytes, weight data has ${weightData.byteLength}`;
  }
  let offset = 0;
  for (const spec of specs) {
    const count = spec.shape.reduce((n, d) => n * d, 1);
    if (spec.dtype === 'float32') {
      const values = new Float32Array(weightData, offset, count);
      for (let i = 0; i < count; i++) {
        if (!Number.isFinite(values[i])) return `non-finite float32 ${values[i]} at index ${i} of "${spec.name}"`;
      }
    }
    offset += count * BYTES_PER_ELEMENT;
  }
  return undefined;
}
