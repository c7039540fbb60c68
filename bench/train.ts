/**
 * Training and inference speed of the reference model (issue 7), for the stock tfjs LSTM and the fused one,
 * against PyTorch with one thread on the same shapes in the same run.
 *
 *   npm run bench:train                  table
 *   npm run bench:train -- --json        table, then one JSON object as the last line
 *   options: --n=4096 --epochs=3 --variants=fused-wasm,fused-cpu,stock-wasm --no-torch
 *
 * Model: Sequential LSTM(32, returnSequences) → LSTM(32) → Dense(24), built by forecastd's own model builder;
 * windows of 24 steps × 7 features, batch 64, Adam, MSE, N windows. Training speed is the median of the timed
 * epochs after one warm-up epoch. Inference builds each input from a Float32Array, as the forecaster does.
 * The PyTorch peer is bench/torch_peer.py, run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 when Debian's
 * python3-torch imports; the bench installs nothing.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { LayersModel, Tensor } from '@tensorflow/tfjs';
import { withFusedLstm } from '../src/model/fused/index.js';
import { dense, lstm, sequential } from '../src/model/sequential.js';

const STEPS = 24;
const FEATURES = 7;
const HORIZON = 24;
const UNITS = 32;
const BATCH = 64;
const SEED = 42;
const LEARNING_RATE = 1e-3;
const PREDICT_CALLS = 300;

/** Multiply-adds ×2, forward of both LSTMs and the Dense; training ≈ 3× forward (forward, two backward products). */
const FORWARD_FLOPS = 2 * STEPS * 4 * UNITS * (FEATURES + UNITS) + 2 * STEPS * 4 * UNITS * (2 * UNITS) + 2 * UNITS * HORIZON;
const TRAIN_FLOPS_PER_SAMPLE = 3 * FORWARD_FLOPS;

type VariantName = 'stock-wasm' | 'fused-wasm' | 'fused-cpu';
const VARIANTS: Record<VariantName, { label: string; backend: 'wasm' | 'cpu'; fused: boolean; key: string }> = {
  'stock-wasm': { label: 'tfjs stock LSTM, wasm', backend: 'wasm', fused: false, key: 'stock_wasm' },
  'fused-wasm': { label: 'fused LSTM, wasm', backend: 'wasm', fused: true, key: 'fused_wasm' },
  'fused-cpu': { label: 'fused LSTM, cpu backend', backend: 'cpu', fused: true, key: 'fused_cpu' },
};

interface Options {
  json: boolean;
  n: number;
  epochs: number;
  variants: VariantName[];
  torch: boolean;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { json: false, n: 4096, epochs: 3, variants: ['fused-wasm', 'fused-cpu', 'stock-wasm'], torch: true };
  for (const arg of argv) {
    const [key, value] = arg.split('=', 2);
    if (key === '--json') options.json = true;
    else if (key === '--no-torch') options.torch = false;
    else if (key === '--n') options.n = Number(value);
    else if (key === '--epochs') options.epochs = Number(value);
    else if (key === '--variants') options.variants = value.split(',') as VariantName[];
    else throw new Error(`unknown option ${arg} (known: --json --n=N --epochs=E --variants=${Object.keys(VARIANTS).join(',')} --no-torch)`);
  }
  for (const variant of options.variants) if (!(variant in VARIANTS)) throw new Error(`unknown variant ${variant}`);
  if (!Number.isInteger(options.n) || options.n < BATCH) throw new Error('--n must be an integer >= 64');
  if (!Number.isInteger(options.epochs) || options.epochs < 1) throw new Error('--epochs must be a positive integer');
  return options;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Windows of a noisy daily cycle with calendar-like covariates: learnable, so losses can be compared. */
function makeData(n: number) {
  let state = SEED;
  const noise = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const length = n + STEPS + HORIZON;
  const series = Float32Array.from({ length }, (_, t) => Math.sin((2 * Math.PI * t) / 24) + 0.3 * Math.sin((2 * Math.PI * t) / 168) + 0.2 * noise());
  const covariates = (t: number) => [
    Math.sin((2 * Math.PI * t) / 24),
    Math.cos((2 * Math.PI * t) / 24),
    Math.sin((2 * Math.PI * t) / 168),
    Math.cos((2 * Math.PI * t) / 168),
    0.5 * noise(),
    0.5 * noise(),
  ];
  const inputs = new Float32Array(n * STEPS * FEATURES);
  const targets = new Float32Array(n * HORIZON);
  for (let w = 0; w < n; w++) {
    for (let s = 0; s < STEPS; s++) inputs.set([series[w + s], ...covariates(w + s)], (w * STEPS + s) * FEATURES);
    for (let h = 0; h < HORIZON; h++) targets[w * HORIZON + h] = series[w + STEPS + h] - series[w + STEPS - 1];
  }
  return { inputs, targets };
}

function buildModel(fused: boolean): LayersModel {
  const stock = sequential([lstm(UNITS, { returnSequences: true, inputShape: [STEPS, FEATURES] }), lstm(UNITS), dense(HORIZON)]).build(tf, {
    seed: SEED,
  });
  if (!fused) return stock;
  const model = withFusedLstm(tf, stock);
  stock.dispose();
  return model;
}

/** Wall-clock and CPU-time figures: on a busy machine the CPU time of this process is the steadier one. */
interface Measurement {
  trainSps: number;
  trainCpuSps: number;
  finalLoss: number;
  b1Ms: number;
  b1CpuMs: number;
  b256Wps: number;
  b256CpuWps: number;
}

const cpuSeconds = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** Median wall-clock and CPU seconds of one call. */
function timed(fn: () => void, calls: number): { wall: number; cpu: number } {
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < calls; i++) {
    const [start, startCpu] = [performance.now(), cpuSeconds()];
    fn();
    walls.push((performance.now() - start) / 1000);
    cpus.push(cpuSeconds() - startCpu);
  }
  return { wall: median(walls), cpu: median(cpus) };
}

async function measure(variant: VariantName, data: ReturnType<typeof makeData>, options: Options, log: (line: string) => void): Promise<Measurement> {
  const { backend, fused, label } = VARIANTS[variant];
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not start`);
  await tf.ready();
  const model = buildModel(fused);
  model.compile({ optimizer: tf.train.adam(LEARNING_RATE), loss: 'meanSquaredError' });
  const xs = tf.tensor3d(data.inputs, [options.n, STEPS, FEATURES]);
  const ys = tf.tensor2d(data.targets, [options.n, HORIZON]);
  const epochWall: number[] = [];
  const epochCpu: number[] = [];
  let finalLoss = NaN;
  try {
    for (let epoch = 0; epoch <= options.epochs; epoch++) {
      const [start, startCpu] = [performance.now(), cpuSeconds()];
      const history = await model.fit(xs, ys, { epochs: 1, batchSize: BATCH, shuffle: true, verbose: 0 });
      const [wall, cpu] = [(performance.now() - start) / 1000, cpuSeconds() - startCpu];
      finalLoss = history.history.loss[0] as number;
      if (epoch > 0) {
        epochWall.push(wall);
        epochCpu.push(cpu);
      }
      log(
        `  ${label}: ${epoch === 0 ? 'warm-up epoch' : `epoch ${epoch}`} ${wall.toFixed(2)} s (cpu ${cpu.toFixed(2)} s), ${Math.round(options.n / wall)} samples/s, loss ${finalLoss.toFixed(4)}`,
      );
    }

    const windowSize = STEPS * FEATURES;
    // As the forecaster does it: an input tensor from a Float32Array, one predict() call, read back, all in tidy.
    const predict = (first: number, count: number) =>
      tf.tidy(() => {
        const input = tf.tensor3d(data.inputs.subarray(first * windowSize, (first + count) * windowSize), [count, STEPS, FEATURES]);
        (model.predict(input, { batchSize: count }) as Tensor).dataSync();
      });
    const tensorsBefore = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) predict(i, 1);
    let call = 0;
    const one = timed(() => predict(call++ % options.n, 1), PREDICT_CALLS);
    const count = Math.min(256, options.n);
    predict(0, count);
    const many = timed(() => predict(0, count), 10);
    if (tf.memory().numTensors !== tensorsBefore) throw new Error(`${label}: predict leaked ${tf.memory().numTensors - tensorsBefore} tensors`);
    return {
      trainSps: options.n / median(epochWall),
      trainCpuSps: options.n / median(epochCpu),
      finalLoss,
      b1Ms: one.wall * 1000,
      b1CpuMs: one.cpu * 1000,
      b256Wps: count / many.wall,
      b256CpuWps: count / many.cpu,
    };
  } finally {
    tf.dispose([xs, ys]);
    model.dispose();
  }
}

interface TorchResult {
  torch: string;
  blas: string;
  threads: number;
  train_sps: number;
  train_cpu_sps: number;
  b1_ms: number;
  b1_cpu_ms: number;
  b256_wps: number;
  b256_cpu_wps: number;
  python: string;
}

/** The PyTorch peer, or why it is absent. Debian's python3 first: a pyenv or venv python may lack torch. */
function runTorch(options: Options): TorchResult | { absent: string } {
  const script = fileURLToPath(new URL('../../bench/torch_peer.py', import.meta.url));
  const args = JSON.stringify({
    n: options.n,
    steps: STEPS,
    features: FEATURES,
    horizon: HORIZON,
    units: UNITS,
    batch: BATCH,
    epochs: options.epochs,
  });
  const reasons: string[] = [];
  for (const python of ['/usr/bin/python3', 'python3']) {
    const run = spawnSync(python, [script, args], {
      encoding: 'utf8',
      timeout: 600_000,
      env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    });
    if (run.error) {
      reasons.push(`${python}: ${run.error.message}`);
      continue;
    }
    const last = run.stdout.trim().split('\n').at(-1) ?? '';
    if (run.status === 0) return { ...(JSON.parse(last) as Omit<TorchResult, 'python'>), python };
    reasons.push(`${python}: ${run.status === 3 ? 'torch is not importable' : `exit ${run.status}: ${run.stderr.trim().split('\n').at(-1)}`}`);
  }
  return { absent: reasons.join('; ') };
}

const format = (value: number | null, digits = 0) =>
  value === null || !Number.isFinite(value) ? '—' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (value: number | null) => (value === null ? '—' : `${value.toFixed(2)}x`);

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const log = (line: string) => process.stdout.write(`${line}\n`);
  log(
    `bench:train — LSTM(${UNITS}, returnSequences) → LSTM(${UNITS}) → Dense(${HORIZON}); windows ${STEPS}×${FEATURES}, batch ${BATCH}, Adam, MSE, N = ${options.n}, median of ${options.epochs} epoch(s) after a warm-up`,
  );
  log(`${(TRAIN_FLOPS_PER_SAMPLE / 1e6).toFixed(2)} MFLOP per training sample; node ${process.version}, tfjs ${tf.version.tfjs}`);

  let torch: TorchResult | null = null;
  if (options.torch) {
    log('PyTorch peer (1 thread) ...');
    const result = runTorch(options);
    if ('absent' in result) log(`  PyTorch peer absent (${result.absent}); to compare: apt-get install -y python3-torch libopenblas0-pthread`);
    else {
      torch = result;
      log(`  torch ${result.torch} via ${result.python}, BLAS ${result.blas}, ${result.threads} thread(s)`);
      if (result.blas !== 'openblas')
        log(`  warning: torch runs on ${result.blas} BLAS here, about 3x slower than with OpenBLAS: ratios flatter tfjs`);
    }
  } else log('PyTorch peer skipped (--no-torch)');

  const data = makeData(options.n);
  const results: Partial<Record<VariantName, Measurement>> = {};
  for (const variant of options.variants) {
    log(`${VARIANTS[variant].label} ...`);
    results[variant] = await measure(variant, data, options, log);
  }

  const rows: Array<[string, Measurement]> = [];
  if (torch) {
    rows.push([
      `PyTorch ${torch.torch}, 1 thread, ${torch.blas}`,
      {
        trainSps: torch.train_sps,
        trainCpuSps: torch.train_cpu_sps,
        finalLoss: NaN,
        b1Ms: torch.b1_ms,
        b1CpuMs: torch.b1_cpu_ms,
        b256Wps: torch.b256_wps,
        b256CpuWps: torch.b256_cpu_wps,
      },
    ]);
  }
  for (const variant of options.variants) rows.push([VARIANTS[variant].label, results[variant]!]);
  const peer = rows.find(([label]) => label.startsWith('PyTorch'))?.[1];
  /** Speed relative to PyTorch: >1 is faster; for latencies, PyTorch's ms over ours. */
  const speedup = (ours: number, theirs: number | undefined, latency = false) =>
    theirs === undefined ? null : latency ? theirs / ours : ours / theirs;

  const printTable = (title: string, pick: (m: Measurement) => { sps: number; b1: number; b256: number }) => {
    const header = [
      'implementation',
      'train samples/s',
      'x torch',
      'GFLOP/s',
      'batch-1 ms',
      'x torch',
      'batch-256 windows/s',
      'x torch',
      'final loss',
    ];
    const table = rows.map(([label, m]) => {
      const ours = pick(m);
      const theirs = peer ? pick(peer) : undefined;
      return [
        label,
        format(ours.sps),
        ratio(speedup(ours.sps, theirs?.sps)),
        format((ours.sps * TRAIN_FLOPS_PER_SAMPLE) / 1e9, 1),
        format(ours.b1, 2),
        ratio(speedup(ours.b1, theirs?.b1, true)),
        format(ours.b256),
        ratio(speedup(ours.b256, theirs?.b256)),
        Number.isFinite(m.finalLoss) ? m.finalLoss.toFixed(4) : '—',
      ];
    });
    const widths = header.map((cell, column) => Math.max(cell.length, ...table.map((row) => row[column].length)));
    const line = (cells: string[]) =>
      `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join(' | ')} |`;
    log('');
    log(title);
    log(line(header));
    log(`|${widths.map((width, column) => (column === 0 ? '-'.repeat(width + 2) : `${'-'.repeat(width + 1)}:`)).join('|')}|`);
    for (const row of table) log(line(row));
  };
  printTable('Wall clock:', (m) => ({ sps: m.trainSps, b1: m.b1Ms, b256: m.b256Wps }));
  printTable('CPU time of the process (steadier when other work shares the cores):', (m) => ({
    sps: m.trainCpuSps,
    b1: m.b1CpuMs,
    b256: m.b256CpuWps,
  }));
  log('');
  log(torch ? 'x torch: speed relative to PyTorch (>1: faster; for batch-1 latency, PyTorch ms / ours).' : 'PyTorch absent: no ratios.');
  log(`Physical limit: ~90 GFLOP/s per core for large float32 matmuls = ~${format(90e9 / TRAIN_FLOPS_PER_SAMPLE)} samples/s.`);

  if (options.json) {
    const summary: Record<string, unknown> = {
      n: options.n,
      epochs: options.epochs,
      batch: BATCH,
      train_mflop_per_sample: TRAIN_FLOPS_PER_SAMPLE / 1e6,
      torch_version: torch?.torch ?? null,
      torch_blas: torch?.blas ?? null,
      torch_sps: torch?.train_sps ?? null,
      torch_cpu_sps: torch?.train_cpu_sps ?? null,
      torch_b1_ms: torch?.b1_ms ?? null,
      torch_b1_cpu_ms: torch?.b1_cpu_ms ?? null,
      torch_b256_wps: torch?.b256_wps ?? null,
      torch_b256_cpu_wps: torch?.b256_cpu_wps ?? null,
    };
    for (const variant of Object.keys(VARIANTS) as VariantName[]) {
      const key = VARIANTS[variant].key;
      const m = results[variant];
      summary[`${key}_sps`] = m?.trainSps ?? null;
      summary[`${key}_cpu_sps`] = m?.trainCpuSps ?? null;
      summary[`${key}_b1_ms`] = m?.b1Ms ?? null;
      summary[`${key}_b1_cpu_ms`] = m?.b1CpuMs ?? null;
      summary[`${key}_b256_wps`] = m?.b256Wps ?? null;
      summary[`${key}_b256_cpu_wps`] = m?.b256CpuWps ?? null;
      summary[`${key}_final_loss`] = m?.finalLoss ?? null;
      summary[`${key}_vs_torch`] = m && torch ? m.trainSps / torch.train_sps : null;
      summary[`${key}_cpu_vs_torch`] = m && torch ? m.trainCpuSps / torch.train_cpu_sps : null;
      summary[`${key}_b1_vs_torch`] = m && torch ? torch.b1_ms / m.b1Ms : null;
      summary[`${key}_b256_vs_torch`] = m && torch ? m.b256Wps / torch.b256_wps : null;
    }
    log(JSON.stringify(summary));
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench:train: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
