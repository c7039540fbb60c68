import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CheckpointStore, type CheckpointContent } from '../../src/model/checkpoint.js';

const scratch: string[] = [];
after(() => {
  for (const dir of scratch) fs.rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forecastd-ckpt-'));
  scratch.push(dir);
  return dir;
}

/** A small LSTM-shaped model whose weights are a function of `seed`, so checkpoints are told apart by content. */
function content(seed: number): CheckpointContent {
  const weightSpecs = [
    { name: 'lstm/kernel', shape: [4, 32], dtype: 'float32' },
    { name: 'lstm/bias', shape: [32], dtype: 'float32' },
    { name: 'step', shape: [1], dtype: 'int32' },
  ];
  const weightData = new ArrayBuffer((4 * 32 + 32 + 1) * 4);
  const floats = new Float32Array(weightData, 0, 4 * 32 + 32);
  for (let i = 0; i < floats.length; i++) floats[i] = Math.sin(seed * 1000 + i) * 0.5;
  new Int32Array(weightData, floats.byteLength, 1)[0] = seed;
  return {
    modelTopology: { class_name: 'Sequential', config: { name: `model-${seed}`, layers: [{ class_name: 'LSTM', config: { units: 8 } }] } },
    weightSpecs,
    weightData,
    meta: { seed, featureNames: ['temp', 'hour_sin'], scaler: { mean: [20.5, 0], std: [3.25, 0.7] }, losses: [0.5, 0.25] },
  };
}

function assertSameContent(actual: CheckpointContent, expected: CheckpointContent): void {
  assert.ok(Buffer.from(actual.weightData).equals(Buffer.from(expected.weightData)), 'weight bytes differ');
  assert.deepEqual(actual.modelTopology, expected.modelTopology);
  assert.deepEqual(actual.weightSpecs, expected.weightSpecs);
  assert.deepEqual(actual.meta, expected.meta);
}

function currentOf(store: CheckpointStore): string {
  return fs.readFileSync(path.join(store.dir, 'CURRENT'), 'utf8').trim();
}

function tempEntries(store: CheckpointStore): string[] {
  return fs.existsSync(store.dir) ? fs.readdirSync(store.dir).filter((name) => name.endsWith('.tmp')) : [];
}

function checkpointDirs(store: CheckpointStore): string[] {
  return fs
    .readdirSync(store.dir)
    .filter((name) => /^\d+-[0-9a-f]+$/.test(name))
    .sort();
}

function flipByte(file: string, offset: number): void {
  const bytes = fs.readFileSync(file);
  bytes[offset] ^= 0xff;
  fs.writeFileSync(file, bytes);
}

/** Saves epochs 1 and 2 with seeds 1 and 2; returns the store and the id of epoch 2's checkpoint. */
async function twoCheckpoints(): Promise<{ store: CheckpointStore; firstId: string; secondId: string }> {
  const store = new CheckpointStore(freshDir(), 'sensors/s1');
  const first = await store.save(content(1), 1);
  const second = await store.save(content(2), 2);
  return { store, firstId: first.id, secondId: second.id };
}

/** Loads, expecting `secondId` to be rejected for `reason` and epoch 1 to be served instead. */
async function assertFallsBackToFirst(store: CheckpointStore, secondId: string, reason: RegExp): Promise<void> {
  const loaded = await store.loadLatest();
  assert.ok(loaded, 'expected the previous checkpoint to load');
  assert.equal(loaded.info.epoch, 1);
  assertSameContent(loaded.content, content(1));
  assert.equal(loaded.fallbacks, 1);
  assert.equal(loaded.rejected.length, 1);
  assert.equal(loaded.rejected[0].id, secondId);
  assert.match(loaded.rejected[0].reason, reason);
}

describe('CheckpointStore', () => {
  it('round-trips topology, specs, meta and the exact weight bytes', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1');
    const saved = content(7);
    const info = await store.save(saved, 3);
    assert.equal(info.epoch, 3);
    assert.match(info.id, /^00000003-[0-9a-f]{8}$/);
    assert.ok(!Number.isNaN(Date.parse(info.createdAt)));

    const loaded = await store.loadLatest();
    assert.ok(loaded);
    assert.deepEqual(loaded.info, info);
    assert.equal(loaded.fallbacks, 0);
    assert.deepEqual(loaded.rejected, []);
    assertSameContent(loaded.content, saved);
    assert.equal(new Int32Array(loaded.content.weightData, (4 * 32 + 32) * 4, 1)[0], 7);
  });

  it('writes the manifest described in docs/reliability.md, "Model checkpoints"', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1');
    const info = await store.save(content(1), 1);
    const ckptDir = path.join(store.dir, info.id);
    const manifest = JSON.parse(fs.readFileSync(path.join(ckptDir, 'manifest.json'), 'utf8'));
    assert.equal(manifest.schemaVersion, 1);
    assert.equal(manifest.key, 'sensors/s1');
    assert.equal(manifest.epoch, 1);
    assert.equal(manifest.createdAt, info.createdAt);
    assert.deepEqual(Object.keys(manifest.files).sort(), ['model.json', 'weights.bin']);
    for (const name of ['model.json', 'weights.bin']) {
      const bytes = fs.readFileSync(path.join(ckptDir, name));
      assert.equal(manifest.files[name].bytes, bytes.byteLength);
      assert.equal(manifest.files[name].sha256, createHash('sha256').update(bytes).digest('hex'));
    }
    assert.deepEqual(manifest.meta, content(1).meta);
  });

  it('points CURRENT at each newly saved checkpoint', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1');
    for (const epoch of [1, 2, 3]) {
      const info = await store.save(content(epoch), epoch);
      assert.equal(currentOf(store), info.id);
    }
    assert.deepEqual(tempEntries(store), []);
  });

  it('keeps only the 2 newest checkpoints by default', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1');
    const ids: string[] = [];
    for (const epoch of [1, 2, 3, 4]) ids.push((await store.save(content(epoch), epoch)).id);
    assert.deepEqual(checkpointDirs(store), [ids[2], ids[3]]);
    assert.deepEqual(
      (await store.list()).map((info) => info.epoch),
      [4, 3],
    );
    assert.deepEqual(tempEntries(store), []);
  });

  it('honours keep and always keeps the checkpoint it just made current', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1', { keep: 1 });
    await store.save(content(5), 5);
    // A lower epoch (a retrain that restarted its count) must not be pruned away in favour of the old one.
    const info = await store.save(content(1), 1);
    assert.deepEqual(checkpointDirs(store), [info.id]);
    assert.equal((await store.loadLatest())?.info.id, info.id);
  });

  it('lists newest first by creation time, so a retrain that restarts at epoch 1 is newer than an old epoch 30', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1', { keep: 10 });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
    const oldRun = await store.save(content(1), 30);
    await pause();
    const newRunFirst = await store.save(content(2), 1);
    await pause();
    const newRunSecond = await store.save(content(3), 2);
    const listed = await store.list();
    assert.deepEqual(
      listed.map((info) => info.id),
      [newRunSecond.id, newRunFirst.id, oldRun.id],
    );
    assert.deepEqual(listed[0].meta, content(3).meta);
  });

  describe('a crash after each protocol step', () => {
    for (const step of [1, 2, 3, 4, 5]) {
      it(`after step ${step} leaves the previous checkpoint loadable and no *.tmp after removeStaleTemp()`, async () => {
        const root = freshDir();
        const previous = await new CheckpointStore(root, 'sensors/s1').save(content(1), 1);
        const crashing = new CheckpointStore(root, 'sensors/s1', {
          onStep: (k) => {
            if (k === step) throw new Error(`simulated crash after step ${k}`);
          },
        });
        await assert.rejects(crashing.save(content(2), 2), { message: `simulated crash after step ${step}` });

        const restarted = new CheckpointStore(root, 'sensors/s1');
        assert.equal(await restarted.removeStaleTemp(), step <= 2 ? 1 : 0);
        assert.deepEqual(tempEntries(restarted), []);

        const loaded = await restarted.loadLatest();
        assert.ok(loaded);
        assert.equal(loaded.fallbacks, 0);
        // Until CURRENT is replaced (step 4) the previous checkpoint is the committed one; afterwards the new one is.
        assert.equal(loaded.info.epoch, step <= 3 ? 1 : 2);
        assertSameContent(loaded.content, content(step <= 3 ? 1 : 2));

        // The previous checkpoint itself must still be intact: take the new one away and load again.
        for (const name of checkpointDirs(restarted)) {
          if (name !== previous.id) fs.rmSync(path.join(restarted.dir, name), { recursive: true });
        }
        const fallback = await restarted.loadLatest();
        assert.equal(fallback?.info.id, previous.id);
        assertSameContent(fallback.content, content(1));
      });
    }
  });

  describe('SIGKILL during save (separate process)', () => {
    const moduleUrl = new URL('../../src/model/checkpoint.js', import.meta.url).href;
    for (const step of [1, 2, 3, 4, 5]) {
      it(`killed after step ${step}: the store still loads a complete checkpoint`, async () => {
        const root = freshDir();
        await new CheckpointStore(root, 'sensors/s1').save(content(1), 1);
        const script = `
          const { CheckpointStore } = await import(${JSON.stringify(moduleUrl)});
          const store = new CheckpointStore(${JSON.stringify(root)}, 'sensors/s1', {
            onStep: (k) => { if (k === ${step}) process.kill(process.pid, 'SIGKILL'); },
          });
          await store.save({ modelTopology: {}, weightSpecs: [{ name: 'w', shape: [2], dtype: 'float32' }],
                             weightData: new Float32Array([1, 2]).buffer, meta: {} }, 2);
          process.exit(0);`;
        const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
        assert.equal(child.signal, 'SIGKILL', child.stderr);

        const restarted = new CheckpointStore(root, 'sensors/s1');
        await restarted.removeStaleTemp();
        assert.deepEqual(tempEntries(restarted), []);
        const loaded = await restarted.loadLatest();
        assert.ok(loaded);
        assert.deepEqual(loaded.rejected, []);
        assert.equal(loaded.info.epoch, step <= 3 ? 1 : 2);
      });
    }
  });

  it('rejects a truncated weights.bin and serves the previous checkpoint', async () => {
    const { store, secondId } = await twoCheckpoints();
    const weights = path.join(store.dir, secondId, 'weights.bin');
    fs.truncateSync(weights, fs.statSync(weights).size - 100);
    await assertFallsBackToFirst(store, secondId, /weights\.bin: manifest says \d+ bytes, file has \d+/);
  });

  it('rejects a flipped byte in weights.bin by sha256', async () => {
    const { store, secondId } = await twoCheckpoints();
    flipByte(path.join(store.dir, secondId, 'weights.bin'), 17);
    await assertFallsBackToFirst(store, secondId, /weights\.bin: sha256 mismatch/);
  });

  it('rejects a flipped byte in model.json by sha256', async () => {
    const { store, secondId } = await twoCheckpoints();
    flipByte(path.join(store.dir, secondId, 'model.json'), 5);
    await assertFallsBackToFirst(store, secondId, /model\.json: sha256 mismatch/);
  });

  for (const name of ['weights.bin', 'model.json', 'manifest.json']) {
    it(`rejects a checkpoint whose ${name} was deleted`, async () => {
      const { store, secondId } = await twoCheckpoints();
      fs.rmSync(path.join(store.dir, secondId, name));
      await assertFallsBackToFirst(store, secondId, new RegExp(`${name.replace('.', '\\.')}: cannot open \\(ENOENT\\)`));
    });
  }

  it('rejects a NaN weight even when the manifest matches it', async () => {
    const { store, secondId } = await twoCheckpoints();
    const ckptDir = path.join(store.dir, secondId);
    const weights = fs.readFileSync(path.join(ckptDir, 'weights.bin'));
    weights.writeFloatLE(Number.NaN, 4 * 10);
    fs.writeFileSync(path.join(ckptDir, 'weights.bin'), weights);
    const manifestPath = path.join(ckptDir, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
    manifest.files['weights.bin'] = { bytes: weights.byteLength, sha256: createHash('sha256').update(weights).digest('hex') };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest));
    await assertFallsBackToFirst(store, secondId, /non-finite float32 NaN at index 10 of "lstm\/kernel"/);
  });

  it('rejects weights whose length disagrees with the shapes, even with a matching manifest', async () => {
    const { store, secondId } = await twoCheckpoints();
    const ckptDir = path.join(store.dir, secondId);
    const weights = Buffer.concat([fs.readFileSync(path.join(ckptDir, 'weights.bin')), Buffer.alloc(4)]);
    fs.writeFileSync(path.join(ckptDir, 'weights.bin'), weights);
    const manifestPath = path.join(ckptDir, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
    manifest.files['weights.bin'] = { bytes: weights.byteLength, sha256: createHash('sha256').update(weights).digest('hex') };
    fs.writeFileSync(manifestPath, JSON.stringify(manifest));
    await assertFallsBackToFirst(store, secondId, /weightSpecs describe 644 bytes, weight data has 648/);
  });

  it('does not follow a symlinked weights.bin', async () => {
    const { store, secondId } = await twoCheckpoints();
    const weights = path.join(store.dir, secondId, 'weights.bin');
    const elsewhere = path.join(freshDir(), 'weights.bin');
    fs.renameSync(weights, elsewhere);
    fs.symlinkSync(elsewhere, weights);
    await assertFallsBackToFirst(store, secondId, /weights\.bin: cannot open \(ELOOP\)/);
  });

  it('falls back to the newest good checkpoint when CURRENT names a missing directory', async () => {
    const { store, secondId } = await twoCheckpoints();
    fs.writeFileSync(path.join(store.dir, 'CURRENT'), '00000099-deadbeef\n');
    const loaded = await store.loadLatest();
    assert.ok(loaded);
    assert.equal(loaded.info.id, secondId);
    assertSameContent(loaded.content, content(2));
    assert.equal(loaded.fallbacks, 1);
    assert.equal(loaded.rejected[0].id, '00000099-deadbeef');
    assert.match(loaded.rejected[0].reason, /manifest\.json: cannot open \(ENOENT\)/);
  });

  it('ignores a CURRENT that does not name a checkpoint, such as a path', async () => {
    const { store, secondId } = await twoCheckpoints();
    fs.writeFileSync(path.join(store.dir, 'CURRENT'), '../../../etc\n');
    const loaded = await store.loadLatest();
    assert.equal(loaded?.info.id, secondId);
    assert.equal(loaded?.rejected[0].id, 'CURRENT');
    assert.match(loaded.rejected[0].reason, /does not name a checkpoint/);
  });

  it('returns null when every checkpoint is corrupt', async () => {
    const { store, firstId, secondId } = await twoCheckpoints();
    flipByte(path.join(store.dir, firstId, 'weights.bin'), 0);
    fs.truncateSync(path.join(store.dir, secondId, 'model.json'), 3);
    assert.equal(await store.loadLatest(), null);
    assert.equal((await store.list()).length, 2, 'corrupt checkpoints are still listed');
  });

  it('returns null / [] / 0 for a store directory that does not exist', async () => {
    const store = new CheckpointStore(path.join(freshDir(), 'absent'), 'sensors/s1');
    assert.equal(await store.loadLatest(), null);
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.removeStaleTemp(), 0);
    assert.equal(fs.existsSync(store.dir), false);
  });

  it('removes stray *.tmp files and directories, and nothing else', async () => {
    const { store, firstId, secondId } = await twoCheckpoints();
    fs.mkdirSync(path.join(store.dir, '00000003-0badc0de.tmp'));
    fs.writeFileSync(path.join(store.dir, '00000003-0badc0de.tmp', 'model.json'), '{');
    fs.writeFileSync(path.join(store.dir, 'CURRENT.tmp'), firstId);
    assert.equal(await store.removeStaleTemp(), 2);
    assert.deepEqual(tempEntries(store), []);
    assert.deepEqual(checkpointDirs(store), [firstId, secondId].sort());
    assert.equal(currentOf(store), secondId);
  });

  it('refuses to save weights that cannot be loaded back, leaving CURRENT alone', async () => {
    const { store, secondId } = await twoCheckpoints();
    const nan = content(3);
    new Float32Array(nan.weightData)[0] = Number.NaN;
    await assert.rejects(store.save(nan, 3), /non-finite float32/);
    const short = { ...content(3), weightData: new ArrayBuffer(8) };
    await assert.rejects(store.save(short, 3), /weightSpecs describe 644 bytes, weight data has 8/);
    await assert.rejects(store.save(content(3), -1), RangeError);
    assert.equal(currentOf(store), secondId);
    assert.deepEqual(tempEntries(store), []);
  });

  it('fsyncs files and directories during a save', async () => {
    const store = new CheckpointStore(freshDir(), 'sensors/s1');
    await store.save(content(1), 1);
    // FileHandle.sync() is fsync(2); the prototype is shared by every handle fs/promises returns.
    const handle = await open(path.join(store.dir, 'CURRENT'), 'r');
    const proto = Object.getPrototypeOf(handle) as { sync: () => Promise<void> };
    await handle.close();
    const original = proto.sync;
    let syncs = 0;
    proto.sync = function (this: unknown) {
      syncs++;
      return original.call(this);
    };
    try {
      await store.save(content(2), 2);
    } finally {
      proto.sync = original;
    }
    // model.json, weights.bin, manifest.json, the .tmp dir, the store dir after rename, CURRENT.tmp, the store dir again.
    assert.ok(syncs >= 7, `expected at least 7 fsyncs, saw ${syncs}`);
  });

  it('keeps keys like ../../etc/passwd inside rootDir', async () => {
    const outer = freshDir();
    const root = path.join(outer, 'ckpt');
    for (const key of ['../../etc/passwd', 'sensors/../../etc/passwd', 'sensors/%2e%2e/x', '/etc/passwd', '..', 'a\0b', '']) {
      const store = new CheckpointStore(root, key);
      assert.equal(path.dirname(store.dir), root);
      assert.match(path.basename(store.dir), /^[0-9a-f]{16}$/);
      const info = await store.save(content(1), 1);
      assert.equal((await store.loadLatest())?.info.id, info.id);
    }
    const outside: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (full !== root && !full.startsWith(root + path.sep)) outside.push(full);
        if (entry.isDirectory()) walk(full);
      }
    };
    walk(outer);
    assert.deepEqual(outside, []);
    assert.equal(fs.readdirSync(root).length, 7, 'one store directory per key');
    assert.equal(fs.existsSync(path.join(outer, 'etc')), false);
  });

  it('does not load another key’s checkpoint copied into its directory', async () => {
    const root = freshDir();
    const other = new CheckpointStore(root, 'sensors/other');
    const info = await other.save(content(1), 1);
    const store = new CheckpointStore(root, 'sensors/s1');
    fs.cpSync(other.dir, store.dir, { recursive: true });
    const loaded = await store.loadLatest();
    assert.equal(loaded, null);
    assert.ok((await store.list()).some((listed) => listed.id === info.id));
  });
});
