/**
 * The fused LSTM kernel: one WebAssembly instance per thread (lstm.as, embedded in lstmWasm.ts), the memory it
 * works in, and the whole-sequence forward and backward passes on plain Float32Arrays.
 *
 * Nothing here knows about TensorFlow.js: fusedLstm.ts moves tensors in and out. Buffers live in the module's
 * own memory, placed by a small first-fit allocator; a `LstmSequenceState` holds what one layer's training
 * forward pass keeps for its backward pass, everything else is scratch shared by all layers of the thread
 * (each call runs to completion before the next starts, so sharing is safe).
 */
import { LSTM_KERNEL_WASM_BASE64 } from './kernel/lstmWasm.js';

interface KernelExports {
  gemm(
    M: number,
    N: number,
    K: number,
    a: number,
    sam: number,
    sak: number,
    b: number,
    ldb: number,
    c: number,
    ldc: number,
    accumulate: number,
  ): void;
  swapLeadingAxes(src: number, dst: number, rows: number, cols: number, inner: number): void;
  transpose(src: number, dst: number, rows: number, cols: number, ldd: number): void;
  copyRows(src: number, srcStride: number, dst: number, dstStride: number, count: number, cols: number): void;
  activate(code: number, src: number, dst: number, n: number): void;
  lstmForward(
    T: number,
    B: number,
    I: number,
    U: number,
    x: number,
    kernel: number,
    recurrent: number,
    bias: number,
    gates: number,
    cell: number,
    hidden: number,
    actCell: number,
    act: number,
    recAct: number,
    keep: number,
    keepHidden: number,
  ): void;
  lstmBackward(
    T: number,
    B: number,
    I: number,
    U: number,
    x: number,
    recurrent: number,
    gates: number,
    cell: number,
    hidden: number,
    actCell: number,
    dOut: number,
    sequence: number,
    dz: number,
    dh: number,
    dc: number,
    recurrentT: number,
    dKernel: number,
    dRecurrent: number,
    dBias: number,
    act: number,
    recAct: number,
  ): void;
  inputGradient(rows: number, I: number, U: number, kernel: number, kernelT: number, ldx: number, dz: number, dx: number): void;
}

const PAGE = 65_536;
/** The module's static data (libm tables) sits below this; buffers start here. */
const HEAP_START = PAGE;
const ALIGN = 16;
const F32 = 4;

const alignUp = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

/** First-fit allocator over the module's memory, with coalescing; grows the memory when nothing fits. */
class Heap {
  private readonly free: { start: number; size: number }[] = [];
  private readonly used = new Map<number, number>();
  private top = HEAP_START;

  constructor(private readonly memory: WebAssembly.Memory) {}

  alloc(bytes: number): number {
    const size = alignUp(Math.max(bytes, ALIGN));
    const index = this.free.findIndex((block) => block.size >= size);
    if (index >= 0) {
      const block = this.free[index];
      const start = block.start;
      if (block.size === size) this.free.splice(index, 1);
      else {
        block.start += size;
        block.size -= size;
      }
      this.used.set(start, size);
      return start;
    }
    const start = this.top;
    const end = start + size;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      // Grow by at least half again, so that a growing batch size does not grow the memory step by step.
      const pages = Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE / 2));
      this.memory.grow(pages);
    }
    this.top = end;
    this.used.set(start, size);
    return start;
  }

  release(start: number): void {
    const size = this.used.get(start);
    if (size === undefined) return;
    this.used.delete(start);
    let index = this.free.findIndex((block) => block.start > start);
    if (index < 0) index = this.free.length;
    this.free.splice(index, 0, { start, size });
    // Merge with the next and the previous free block, then give a trailing block back to `top`.
    const next = this.free[index + 1];
    const current = this.free[index];
    if (next && current.start + current.size === next.start) {
      current.size += next.size;
      this.free.splice(index + 1, 1);
    }
    const previous = this.free[index - 1];
    if (previous && previous.start + previous.size === current.start) {
      previous.size += current.size;
      this.free.splice(index, 1);
    }
    const last = this.free.at(-1);
    if (last && last.start + last.size === this.top) {
      this.top = last.start;
      this.free.pop();
    }
  }

  get bytesInUse(): number {
    let total = 0;
    for (const size of this.used.values()) total += size;
    return total;
  }
}

/** Named float32 buffers carved out of one allocation. */
class Region<K extends string> {
  readonly offsets = {} as Record<K, number>;
  readonly start: number;

  constructor(
    private readonly heap: Heap,
    sizes: Record<K, number>,
  ) {
    let bytes = 0;
    const relative = {} as Record<K, number>;
    for (const key of Object.keys(sizes) as K[]) {
      relative[key] = bytes;
      bytes += alignUp(sizes[key] * F32);
    }
    this.start = heap.alloc(bytes);
    for (const key of Object.keys(sizes) as K[]) this.offsets[key] = this.start + relative[key];
  }

  release(): void {
    this.heap.release(this.start);
  }
}

export interface LstmShape {
  /** Time steps. */
  steps: number;
  batch: number;
  /** Input features. */
  inputs: number;
  units: number;
}

export interface LstmWeights {
  /** [inputs, 4·units], Keras layout, gates i, f, c, o. */
  kernel: Float32Array;
  /** [units, 4·units]. */
  recurrent: Float32Array;
  /** [4·units], or null without bias. */
  bias: Float32Array | null;
}

export interface LstmOptions {
  activation: number;
  recurrentActivation: number;
  returnSequences: boolean;
}

export interface LstmGradients {
  /** [batch, steps, inputs], or null when not asked for. */
  input: Float32Array | null;
  kernel: Float32Array;
  recurrent: Float32Array;
  bias: Float32Array | null;
}

type StateKey = 'x' | 'kernel' | 'recurrent' | 'bias' | 'gates' | 'cell' | 'hidden' | 'actCell';

const sameShape = (a: LstmShape, b: LstmShape) => a.steps === b.steps && a.batch === b.batch && a.inputs === b.inputs && a.units === b.units;

/**
 * What one layer's training forward pass keeps for its backward pass, in the module's memory. Reused across
 * batches of the same shape; `release()` gives the memory back (the layer calls it from dispose()).
 */
export class LstmSequenceState {
  private region: Region<StateKey> | null = null;
  private shape: LstmShape | null = null;
  private options: LstmOptions | null = null;
  /** Bumped by every forward pass: a backward pass checks that the state is still the one it needs. */
  generation = 0;

  constructor(private readonly kernel: LstmKernel) {}

  /** Runs the forward pass, keeping every step; returns h for every step or the last one (batch-major). */
  forward(shape: LstmShape, input: Float32Array, weights: LstmWeights, options: LstmOptions): Float32Array {
    const { steps: T, batch: B, inputs: I, units: U } = shape;
    const G = 4 * U;
    if (!this.region || !this.shape || !sameShape(this.shape, shape)) {
      this.region?.release();
      this.region = this.kernel.region<StateKey>({
        x: T * B * I,
        kernel: I * G,
        recurrent: U * G,
        bias: G,
        gates: T * B * G,
        cell: (T + 1) * B * U,
        hidden: (T + 1) * B * U,
        actCell: T * B * U,
      });
      this.shape = { ...shape };
    }
    this.options = { ...options };
    this.generation++;
    const at = this.region.offsets;
    const k = this.kernel;
    const { staging } = k.scratch({ staging: T * B * Math.max(I, U) });
    k.writeTimeMajor(input, at.x, B, T, I, staging);
    k.write(weights.kernel, at.kernel);
    k.write(weights.recurrent, at.recurrent);
    if (weights.bias) k.write(weights.bias, at.bias);
    k.exports.lstmForward(
      T,
      B,
      I,
      U,
      at.x,
      at.kernel,
      at.recurrent,
      weights.bias ? at.bias : 0,
      at.gates,
      at.cell,
      at.hidden,
      at.actCell,
      options.activation,
      options.recurrentActivation,
      1,
      1,
    );
    return options.returnSequences ? k.readBatchMajor(at.hidden + B * U * F32, T, B, U, staging) : k.read(at.hidden + T * B * U * F32, B * U);
  }

  /** Gradients from the output gradient (same layout as the forward's output). */
  backward(outputGradient: Float32Array, withBias: boolean, wantInputGradient: boolean): LstmGradients {
    if (!this.region || !this.shape || !this.options) throw new Error('LSTM backward pass without a forward pass');
    const { steps: T, batch: B, inputs: I, units: U } = this.shape;
    const G = 4 * U;
    const paddedInputs = Math.ceil(I / 4) * 4;
    const k = this.kernel;
    const scratch = k.scratch({
      dOut: T * B * Math.max(U, I),
      staging: Math.max(T * B * U, T * B * I),
      dz: T * B * G,
      dh: B * U,
      dc: B * U,
      recurrentT: G * U,
      kernelT: G * paddedInputs,
      dx: T * B * paddedInputs,
      dKernel: I * G,
      dRecurrent: U * G,
      dBias: G,
    });
    const at = this.region.offsets;
    const sequence = this.options.returnSequences;
    if (sequence) k.writeTimeMajor(outputGradient, scratch.dOut, B, T, U, scratch.staging);
    else k.write(outputGradient, scratch.dOut);
    k.exports.lstmBackward(
      T,
      B,
      I,
      U,
      at.x,
      at.recurrent,
      at.gates,
      at.cell,
      at.hidden,
      at.actCell,
      scratch.dOut,
      sequence ? 1 : 0,
      scratch.dz,
      scratch.dh,
      scratch.dc,
      scratch.recurrentT,
      scratch.dKernel,
      scratch.dRecurrent,
      withBias ? scratch.dBias : 0,
      this.options.activation,
      this.options.recurrentActivation,
    );
    let input: Float32Array | null = null;
    if (wantInputGradient) {
      k.exports.inputGradient(T * B, I, U, at.kernel, scratch.kernelT, paddedInputs, scratch.dz, scratch.dx);
      // [T, B, paddedInputs] → [T, B, inputs] → [B, T, inputs]; dOut is free by now.
      k.exports.copyRows(scratch.dx, paddedInputs, scratch.staging, I, T * B, I);
      input = k.readBatchMajor(scratch.staging, T, B, I, scratch.dOut);
    }
    return {
      input,
      kernel: k.read(scratch.dKernel, I * G),
      recurrent: k.read(scratch.dRecurrent, U * G),
      bias: withBias ? k.read(scratch.dBias, G) : null,
    };
  }

  release(): void {
    this.region?.release();
    this.region = null;
    this.shape = null;
  }
}

export class LstmKernel {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  private readonly heap: Heap;
  private scratchRegion: Region<string> | null = null;
  private scratchBytes = 0;

  constructor() {
    this.memory = new WebAssembly.Memory({ initial: 2 });
    const module = new WebAssembly.Module(Buffer.from(LSTM_KERNEL_WASM_BASE64, 'base64'));
    const instance = new WebAssembly.Instance(module, { env: { memory: this.memory } });
    this.exports = instance.exports as unknown as KernelExports;
    this.heap = new Heap(this.memory);
  }

  get bytesInUse(): number {
    return this.heap.bytesInUse;
  }

  /** Bytes held for layers' backward passes, i.e. in use apart from the shared scratch. */
  get retainedBytes(): number {
    return this.heap.bytesInUse - (this.scratchRegion ? alignUp(this.scratchBytes) : 0);
  }

  region<K extends string>(sizes: Record<K, number>): Region<K> {
    return new Region(this.heap, sizes);
  }

  /** Scratch buffers valid until the next scratch() call; one allocation that only grows. */
  scratch<K extends string>(sizes: Record<K, number>): Record<K, number> {
    let bytes = 0;
    const relative = {} as Record<K, number>;
    for (const key of Object.keys(sizes) as K[]) {
      relative[key] = bytes;
      bytes += alignUp(sizes[key] * F32);
    }
    if (!this.scratchRegion || this.scratchBytes < bytes) {
      this.scratchRegion?.release();
      this.scratchRegion = new Region(this.heap, { all: bytes / F32 });
      this.scratchBytes = bytes;
    }
    const start = this.scratchRegion.start;
    const offsets = {} as Record<K, number>;
    for (const key of Object.keys(sizes) as K[]) offsets[key] = start + relative[key];
    return offsets;
  }

  /** A fresh view: growing the memory detaches the old buffer. */
  private view(): Float32Array {
    return new Float32Array(this.memory.buffer);
  }

  write(values: Float32Array, at: number): void {
    this.view().set(values, at / F32);
  }

  /** A copy, since tfjs's cpu backend keeps the array it is given. */
  read(at: number, length: number): Float32Array {
    return this.view().slice(at / F32, at / F32 + length);
  }

  /** values [rows, cols, inner] (batch-major) → memory at `at` as [cols, rows, inner] (time-major), via `staging`. */
  writeTimeMajor(values: Float32Array, at: number, rows: number, cols: number, inner: number, staging: number): void {
    this.write(values, staging);
    this.exports.swapLeadingAxes(staging, at, rows, cols, inner);
  }

  /** Memory at `at` as [steps, batch, inner] (time-major) → a new array [batch, steps, inner], via `staging`. */
  readBatchMajor(at: number, steps: number, batch: number, inner: number, staging: number): Float32Array {
    this.exports.swapLeadingAxes(at, staging, steps, batch, inner);
    return this.read(staging, steps * batch * inner);
  }

  /**
   * Forward pass that keeps nothing: predict() and any call outside a gradient tape. Needs O(batch·units)
   * memory per step instead of the training pass's O(steps·batch·units).
   */
  infer(shape: LstmShape, input: Float32Array, weights: LstmWeights, options: LstmOptions): Float32Array {
    const { steps: T, batch: B, inputs: I, units: U } = shape;
    const G = 4 * U;
    const hiddenSlots = options.returnSequences ? T + 1 : 2;
    const at = this.scratch({
      x: T * B * I,
      kernel: I * G,
      recurrent: U * G,
      bias: G,
      gates: B * G,
      cell: 2 * B * U,
      hidden: hiddenSlots * B * U,
      actCell: B * U,
      staging: Math.max(T * B * I, T * B * U),
    });
    this.writeTimeMajor(input, at.x, B, T, I, at.staging);
    this.write(weights.kernel, at.kernel);
    this.write(weights.recurrent, at.recurrent);
    if (weights.bias) this.write(weights.bias, at.bias);
    this.exports.lstmForward(
      T,
      B,
      I,
      U,
      at.x,
      at.kernel,
      at.recurrent,
      weights.bias ? at.bias : 0,
      at.gates,
      at.cell,
      at.hidden,
      at.actCell,
      options.activation,
      options.recurrentActivation,
      0,
      options.returnSequences ? 1 : 0,
    );
    if (!options.returnSequences) return this.read(at.hidden + B * U * F32, B * U);
    return this.readBatchMajor(at.hidden + B * U * F32, T, B, U, at.staging);
  }
}

let threadKernel: LstmKernel | null = null;

/** The kernel of this thread (worker threads each get their own instance and memory). */
export function lstmKernel(): LstmKernel {
  return (threadKernel ??= new LstmKernel());
}
