// AssemblyScript source of the fused LSTM kernel (WebAssembly with 128-bit SIMD).
//
// Built by `npm run build:fused-kernel` (src/model/fused/kernel/build.mjs) into lstmWasm.ts, which embeds the
// binary. The file is named .as and not .ts so that tsc, which compiles src/**/*.ts, leaves it alone.
//
// Memory is imported and owned by the TypeScript side (kernel.ts), which places every buffer; all pointers
// are byte offsets, all sizes and strides are counted in float32 elements.
//
// Layouts: the LSTM works time-major internally ([T, B, ...]) so that each step's rows are contiguous.
// Gates follow Keras: z = x·kernel + h·recurrentKernel + bias, split along the last axis into i, f, c, o.

// Activation codes, shared with activations.ts.
const LINEAR: i32 = 0;
const RELU: i32 = 1;
const TANH: i32 = 2;
const SIGMOID: i32 = 3;
const HARD_SIGMOID: i32 = 4;
const SOFTPLUS: i32 = 5;
const SOFTSIGN: i32 = 6;
const SELU: i32 = 7;
const ELU: i32 = 8;

const SELU_SCALE: f32 = 1.0507009873554804934193349852946;
const SELU_SCALE_ALPHA: f32 = 1.7580993408473768599402175208123;
// tfjs's softplus thresholds (tfjs-backend-cpu softplus): beyond them it returns x or exp(x).
const SOFTPLUS_THRESHOLD: f32 = -13.942385152878742; // log(float32 epsilon) + 2

// ---------------------------------------------------------------------------------------------------------
// Matrix product: C[m, n] (+)= sum_k A[m*sam + k*sak] * B[k*ldb + n].
// A takes any strides (so Aᵀ costs nothing); B rows and C rows are contiguous, which is what SIMD wants.
// The 4×8 register block keeps 8 accumulators, 2 B vectors and 1 broadcast in the 16 vector registers.
// ---------------------------------------------------------------------------------------------------------
export function gemm(M: i32, N: i32, K: i32, a: usize, sam: i32, sak: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: i32): void {
  // Long K (the weight gradients sum over every step and row): walk it in panels whose B rows stay in cache
  // while every block of C uses them, instead of streaming all of B once per row block.
  const panel = 256;
  if (K > panel && M > 4) {
    for (let k0 = 0; k0 < K; k0 += panel) {
      const k = min(panel, K - k0);
      gemmPanel(M, N, k, a + (<usize>k0 * <usize>sak << 2), sam, sak, b + (<usize>k0 * <usize>ldb << 2), ldb, c, ldc, k0 > 0 ? 1 : accumulate);
    }
  } else {
    gemmPanel(M, N, K, a, sam, sak, b, ldb, c, ldc, accumulate);
  }
}

function gemmPanel(M: i32, N: i32, K: i32, a: usize, sam: i32, sak: i32, b: usize, ldb: i32, c: usize, ldc: i32, accumulate: i32): void {
  const am = <usize>sam << 2;
  const ak = <usize>sak << 2;
  const bk = <usize>ldb << 2;
  const cm = <usize>ldc << 2;
  const N8 = N & ~7;
  const N4 = N & ~3;
  let m = 0;
  for (; m + 4 <= M; m += 4) {
    const a0 = a + <usize>m * am;
    const c0 = c + <usize>m * cm;
    let n = 0;
    for (; n < N8; n += 8) block4x8(K, a0, am, ak, b + (<usize>n << 2), bk, c0 + (<usize>n << 2), cm, accumulate);
    for (; n < N4; n += 4) block4x4(K, a0, am, ak, b + (<usize>n << 2), bk, c0 + (<usize>n << 2), cm, accumulate);
    for (; n < N; n++) {
      for (let r = 0; r < 4; r++) scalarCell(K, a0 + <usize>r * am, ak, b + (<usize>n << 2), bk, c0 + <usize>r * cm + (<usize>n << 2), accumulate);
    }
  }
  for (; m < M; m++) {
    const a0 = a + <usize>m * am;
    const c0 = c + <usize>m * cm;
    let n = 0;
    for (; n < N8; n += 8) block1x8(K, a0, ak, b + (<usize>n << 2), bk, c0 + (<usize>n << 2), accumulate);
    for (; n < N4; n += 4) block1x4(K, a0, ak, b + (<usize>n << 2), bk, c0 + (<usize>n << 2), accumulate);
    for (; n < N; n++) scalarCell(K, a0, ak, b + (<usize>n << 2), bk, c0 + (<usize>n << 2), accumulate);
  }
}

@inline function block4x8(K: i32, a: usize, am: usize, ak: usize, b: usize, bk: usize, c: usize, cm: usize, accumulate: i32): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  const am2 = am + am;
  const am3 = am2 + am;
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let s = v128.load32_splat(pa);
    c00 = f32x4.add(c00, f32x4.mul(s, b0));
    c01 = f32x4.add(c01, f32x4.mul(s, b1));
    s = v128.load32_splat(pa + am);
    c10 = f32x4.add(c10, f32x4.mul(s, b0));
    c11 = f32x4.add(c11, f32x4.mul(s, b1));
    s = v128.load32_splat(pa + am2);
    c20 = f32x4.add(c20, f32x4.mul(s, b0));
    c21 = f32x4.add(c21, f32x4.mul(s, b1));
    s = v128.load32_splat(pa + am3);
    c30 = f32x4.add(c30, f32x4.mul(s, b0));
    c31 = f32x4.add(c31, f32x4.mul(s, b1));
    pa += ak;
    pb += bk;
  }
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c + cm));
    c11 = f32x4.add(c11, v128.load(c + cm, 16));
    c20 = f32x4.add(c20, v128.load(c + cm * 2));
    c21 = f32x4.add(c21, v128.load(c + cm * 2, 16));
    c30 = f32x4.add(c30, v128.load(c + cm * 3));
    c31 = f32x4.add(c31, v128.load(c + cm * 3, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + cm, c10);
  v128.store(c + cm, c11, 16);
  v128.store(c + cm * 2, c20);
  v128.store(c + cm * 2, c21, 16);
  v128.store(c + cm * 3, c30);
  v128.store(c + cm * 3, c31, 16);
}

@inline function block4x4(K: i32, a: usize, am: usize, ak: usize, b: usize, bk: usize, c: usize, cm: usize, accumulate: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    const b0 = v128.load(pb);
    c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pa), b0));
    c1 = f32x4.add(c1, f32x4.mul(v128.load32_splat(pa + am), b0));
    c2 = f32x4.add(c2, f32x4.mul(v128.load32_splat(pa + am * 2), b0));
    c3 = f32x4.add(c3, f32x4.mul(v128.load32_splat(pa + am * 3), b0));
    pa += ak;
    pb += bk;
  }
  if (accumulate) {
    c0 = f32x4.add(c0, v128.load(c));
    c1 = f32x4.add(c1, v128.load(c + cm));
    c2 = f32x4.add(c2, v128.load(c + cm * 2));
    c3 = f32x4.add(c3, v128.load(c + cm * 3));
  }
  v128.store(c, c0);
  v128.store(c + cm, c1);
  v128.store(c + cm * 2, c2);
  v128.store(c + cm * 3, c3);
}

@inline function block1x8(K: i32, a: usize, ak: usize, b: usize, bk: usize, c: usize, accumulate: i32): void {
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    const s = v128.load32_splat(pa);
    c0 = f32x4.add(c0, f32x4.mul(s, v128.load(pb)));
    c1 = f32x4.add(c1, f32x4.mul(s, v128.load(pb, 16)));
    pa += ak;
    pb += bk;
  }
  if (accumulate) {
    c0 = f32x4.add(c0, v128.load(c));
    c1 = f32x4.add(c1, v128.load(c, 16));
  }
  v128.store(c, c0);
  v128.store(c, c1, 16);
}

@inline function block1x4(K: i32, a: usize, ak: usize, b: usize, bk: usize, c: usize, accumulate: i32): void {
  let c0 = f32x4.splat(0);
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    c0 = f32x4.add(c0, f32x4.mul(v128.load32_splat(pa), v128.load(pb)));
    pa += ak;
    pb += bk;
  }
  if (accumulate) c0 = f32x4.add(c0, v128.load(c));
  v128.store(c, c0);
}

function scalarCell(K: i32, a: usize, ak: usize, b: usize, bk: usize, c: usize, accumulate: i32): void {
  let sum: f32 = 0;
  let pa = a;
  let pb = b;
  for (let k = 0; k < K; k++) {
    sum += load<f32>(pa) * load<f32>(pb);
    pa += ak;
    pb += bk;
  }
  store<f32>(c, accumulate ? load<f32>(c) + sum : sum);
}

// ---------------------------------------------------------------------------------------------------------
// Layout helpers.
// ---------------------------------------------------------------------------------------------------------

/** n floats from src to dst (no overlap). Short rows are the common case, where memory.copy's call costs more. */
@inline function copyFloats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, v128.load(src + o));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, load<f32>(src + o));
  }
}

/** dst[j, i, :] = src[i, j, :] for src of shape [rows, cols, inner] (swaps the two leading axes). */
export function swapLeadingAxes(src: usize, dst: usize, rows: i32, cols: i32, inner: i32): void {
  const bytes = <usize>inner << 2;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      copyFloats(dst + (<usize>j * <usize>rows + <usize>i) * bytes, src + (<usize>i * <usize>cols + <usize>j) * bytes, inner);
    }
  }
}

/** dst[c, r] = src[r, c] for src [rows, cols]; dst rows are ldd elements long (ldd >= rows, padding untouched). */
export function transpose(src: usize, dst: usize, rows: i32, cols: i32, ldd: i32): void {
  for (let r = 0; r < rows; r++) {
    const s = src + (<usize>r * <usize>cols << 2);
    for (let c = 0; c < cols; c++) store<f32>(dst + ((<usize>c * <usize>ldd + <usize>r) << 2), load<f32>(s + (<usize>c << 2)));
  }
}

/** Copies `count` rows of `cols` elements between buffers whose rows are srcStride / dstStride elements apart. */
export function copyRows(src: usize, srcStride: i32, dst: usize, dstStride: i32, count: i32, cols: i32): void {
  for (let r = 0; r < count; r++) copyFloats(dst + (<usize>r * <usize>dstStride << 2), src + (<usize>r * <usize>srcStride << 2), cols);
}

// ---------------------------------------------------------------------------------------------------------
// Activations: vector forms for the hot ones (sigmoid, tanh, hardSigmoid, relu, linear), lane by lane for the
// rest. Derivatives are written in terms of the activation's output y, which is all the forward pass keeps.
// ---------------------------------------------------------------------------------------------------------

// exp(x) in the Cephes manner: 2^n · p(r), x = n·ln2 + r; ~1 ulp on [-87, 88]. n is rounded by adding
// 1.5·2^23, which leaves n in the low mantissa bits: no float→int conversion needed for 2^n.
@inline function expV(input: v128): v128 {
  const x0 = f32x4.pmax(f32x4.pmin(input, f32x4.splat(88.3762626647949)), f32x4.splat(-87.33654475));
  const shifted = f32x4.add(f32x4.mul(x0, f32x4.splat(1.44269504088896341)), f32x4.splat(12582912.0));
  const n = f32x4.sub(shifted, f32x4.splat(12582912.0));
  let x = f32x4.sub(x0, f32x4.mul(n, f32x4.splat(0.693359375)));
  x = f32x4.sub(x, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  const z = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(f32x4.splat(1.9875691500e-4), x), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, x), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, x), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, x), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, x), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(p, z), x), f32x4.splat(1));
  // bits(shifted) = 0x4B400000 + n, so (bits - 0x4B400000 + 127) << 23 is 2^n as a float.
  const pow2n = i32x4.shl(i32x4.add(shifted, i32x4.splat(127 - 0x4B400000)), 23);
  return f32x4.mul(p, pow2n);
}

@inline function sigmoidV(x: v128): v128 {
  return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), expV(f32x4.neg(x))));
}

// tanh as Eigen/TensorFlow compute it for float: a 13/6 rational approximation, exact to a few ulp.
@inline function tanhV(input: v128): v128 {
  const x = f32x4.pmax(f32x4.pmin(input, f32x4.splat(7.90531110763549805)), f32x4.splat(-7.90531110763549805));
  const x2 = f32x4.mul(x, x);
  let p = f32x4.add(f32x4.mul(x2, f32x4.splat(-2.76076847742355e-16)), f32x4.splat(2.00018790482477e-13));
  p = f32x4.add(f32x4.mul(p, x2), f32x4.splat(-8.60467152213735e-11));
  p = f32x4.add(f32x4.mul(p, x2), f32x4.splat(5.12229709037114e-8));
  p = f32x4.add(f32x4.mul(p, x2), f32x4.splat(1.48572235717979e-5));
  p = f32x4.add(f32x4.mul(p, x2), f32x4.splat(6.37261928875436e-4));
  p = f32x4.add(f32x4.mul(p, x2), f32x4.splat(4.89352455891786e-3));
  p = f32x4.mul(p, x);
  let q = f32x4.add(f32x4.mul(x2, f32x4.splat(1.19825839466702e-6)), f32x4.splat(1.18534705686654e-4));
  q = f32x4.add(f32x4.mul(q, x2), f32x4.splat(2.26843463243900e-3));
  q = f32x4.add(f32x4.mul(q, x2), f32x4.splat(4.89352518554385e-3));
  const tiny = f32x4.lt(f32x4.abs(input), f32x4.splat(0.0004));
  return v128.bitselect(input, f32x4.div(p, q), tiny);
}

function tanhS(input: f32): f32 {
  return f32x4.extract_lane(tanhV(f32x4.splat(input)), 0);
}

function sigmoidS(x: f32): f32 {
  return f32x4.extract_lane(sigmoidV(f32x4.splat(x)), 0);
}

function activateS(code: i32, x: f32): f32 {
  switch (code) {
    case RELU: return x > 0 ? x : 0;
    case TANH: return tanhS(x);
    case SIGMOID: return sigmoidS(x);
    case HARD_SIGMOID: {
      const y: f32 = <f32>0.2 * x + <f32>0.5;
      return y < 0 ? 0 : y > 1 ? 1 : y;
    }
    case SOFTPLUS: {
      if (x > -SOFTPLUS_THRESHOLD) return x;
      if (x < SOFTPLUS_THRESHOLD) return Mathf.exp(x);
      return Mathf.log(Mathf.exp(x) + 1);
    }
    case SOFTSIGN: return x / (Mathf.abs(x) + 1);
    case SELU: return x > 0 ? SELU_SCALE * x : SELU_SCALE_ALPHA * (Mathf.exp(x) - 1);
    case ELU: return x >= 0 ? x : Mathf.exp(x) - 1;
    default: return x;
  }
}

@inline function activateV(code: i32, x: v128): v128 {
  switch (code) {
    case LINEAR: return x;
    case TANH: return tanhV(x);
    case SIGMOID: return sigmoidV(x);
    case RELU: return f32x4.pmax(x, f32x4.splat(0));
    case HARD_SIGMOID: return f32x4.pmax(f32x4.pmin(f32x4.add(f32x4.mul(f32x4.splat(0.2), x), f32x4.splat(0.5)), f32x4.splat(1)), f32x4.splat(0));
    default: {
      let y = x;
      y = f32x4.replace_lane(y, 0, activateS(code, f32x4.extract_lane(x, 0)));
      y = f32x4.replace_lane(y, 1, activateS(code, f32x4.extract_lane(x, 1)));
      y = f32x4.replace_lane(y, 2, activateS(code, f32x4.extract_lane(x, 2)));
      y = f32x4.replace_lane(y, 3, activateS(code, f32x4.extract_lane(x, 3)));
      return y;
    }
  }
}

/** dy/dx from y, matching the gradients tfjs defines for each activation. */
function derivativeS(code: i32, y: f32): f32 {
  switch (code) {
    case RELU: return y > 0 ? 1 : 0;
    case TANH: return 1 - y * y;
    case SIGMOID: return y * (1 - y);
    case HARD_SIGMOID: return y > 0 && y < 1 ? <f32>0.2 : 0;
    case SOFTPLUS: return 1 - Mathf.exp(-y);
    case SOFTSIGN: {
      const d: f32 = 1 - Mathf.abs(y);
      return d * d;
    }
    case SELU: return y > 0 ? SELU_SCALE : y + SELU_SCALE_ALPHA;
    case ELU: return y > 0 ? 1 : y + 1;
    default: return 1;
  }
}

@inline function derivativeV(code: i32, y: v128): v128 {
  switch (code) {
    case LINEAR: return f32x4.splat(1);
    case TANH: return f32x4.sub(f32x4.splat(1), f32x4.mul(y, y));
    case SIGMOID: return f32x4.mul(y, f32x4.sub(f32x4.splat(1), y));
    case RELU: return v128.and(f32x4.gt(y, f32x4.splat(0)), f32x4.splat(1));
    case HARD_SIGMOID: return v128.and(v128.and(f32x4.gt(y, f32x4.splat(0)), f32x4.lt(y, f32x4.splat(1))), f32x4.splat(0.2));
    default: {
      let d = y;
      d = f32x4.replace_lane(d, 0, derivativeS(code, f32x4.extract_lane(y, 0)));
      d = f32x4.replace_lane(d, 1, derivativeS(code, f32x4.extract_lane(y, 1)));
      d = f32x4.replace_lane(d, 2, derivativeS(code, f32x4.extract_lane(y, 2)));
      d = f32x4.replace_lane(d, 3, derivativeS(code, f32x4.extract_lane(y, 3)));
      return d;
    }
  }
}

/** dst[i] = activation(src[i]) for n elements (src may equal dst). */
export function activate(code: i32, src: usize, dst: usize, n: i32): void {
  // One loop per activation, two vectors per iteration: the polynomials are long dependency chains, and two
  // independent ones keep the vector units busy.
  let i = 0;
  switch (code) {
    case SIGMOID: {
      for (; i + 8 <= n; i += 8) {
        const o = <usize>i << 2;
        const a = sigmoidV(v128.load(src + o));
        const b = sigmoidV(v128.load(src + o, 16));
        v128.store(dst + o, a);
        v128.store(dst + o, b, 16);
      }
      break;
    }
    case TANH: {
      for (; i + 8 <= n; i += 8) {
        const o = <usize>i << 2;
        const a = tanhV(v128.load(src + o));
        const b = tanhV(v128.load(src + o, 16));
        v128.store(dst + o, a);
        v128.store(dst + o, b, 16);
      }
      break;
    }
    case LINEAR: {
      if (src != dst) memory.copy(dst, src, <usize>n << 2);
      return;
    }
  }
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, activateV(code, v128.load(src + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, activateS(code, load<f32>(src + o)));
  }
}

// ---------------------------------------------------------------------------------------------------------
// LSTM forward over a whole sequence.
//   x       [T, B, I]   input, time-major
//   kernel  [I, 4U], recurrent [U, 4U], bias [4U] (bias = 0: no bias)
//   gates   [T, B, 4U]  out: activated gates i, f, g, o of every step (the backward pass reads them)
//   cell    [T+1, B, U] out: c_t in slot t+1; slot 0 holds c_0 (zeros, written here)
//   hidden  [T+1, B, U] out: h_t in slot t+1; slot 0 holds h_0 (zeros, written here)
//   actCell [T, B, U]   out: activation(c_t)
// keep = 0 (inference): gates, cell slots and actCell are reused for every step, hidden still gets every step
// only when keepHidden = 1 (the whole sequence is returned); otherwise the last h lands in slot 1.
// ---------------------------------------------------------------------------------------------------------
export function lstmForward(
  T: i32, B: i32, I: i32, U: i32,
  x: usize, kernel: usize, recurrent: usize, bias: usize,
  gates: usize, cell: usize, hidden: usize, actCell: usize,
  act: i32, recAct: i32, keep: i32, keepHidden: i32,
): void {
  const G = U << 2;
  const gateStep: usize = keep ? <usize>B * <usize>G << 2 : 0;
  const stateStep: usize = <usize>B * <usize>U << 2;
  const cellStep: usize = keep ? stateStep : 0;
  const hiddenStep: usize = keep || keepHidden ? stateStep : 0;

  memory.fill(cell, 0, stateStep);
  memory.fill(hidden, 0, stateStep);

  // Input projection of all kept steps at once (inference projects step by step into one slot).
  if (keep) projectInput(T * B, I, G, x, kernel, bias, gates);

  for (let t = 0; t < T; t++) {
    const z = gates + <usize>t * gateStep;
    if (!keep) projectInput(B, I, G, x + (<usize>t * <usize>B * <usize>I << 2), kernel, bias, z);
    const hPrev = hidden + <usize>t * hiddenStep;
    const cPrev = cell + <usize>t * cellStep;
    const cNext = cell + (keep ? <usize>(t + 1) * cellStep : stateStep);
    const hNext = hidden + (keep || keepHidden ? <usize>(t + 1) * hiddenStep : stateStep);
    const ac = actCell + <usize>t * cellStep;
    if (t > 0) gemm(B, G, U, hPrev, U, 1, recurrent, G, z, G, 1);
    for (let b = 0; b < B; b++) {
      const zRow = z + (<usize>b * <usize>G << 2);
      const sRow = <usize>b * <usize>U << 2;
      gateForward(U, zRow, cPrev + sRow, cNext + sRow, ac + sRow, hNext + sRow, act, recAct);
    }
    if (!keep) {
      // Inference reuses two slots: move c_t and h_t to slot 0, where the next step reads them.
      memory.copy(cell, cNext, stateStep);
      if (!keepHidden) memory.copy(hidden, hNext, stateStep);
    }
  }
}

function projectInput(rows: i32, I: i32, G: i32, x: usize, kernel: usize, bias: usize, out: usize): void {
  if (bias) {
    const bytes = <usize>G << 2;
    for (let r = 0; r < rows; r++) copyFloats(out + <usize>r * bytes, bias, G);
    gemm(rows, G, I, x, I, 1, kernel, G, out, G, 1);
  } else {
    gemm(rows, G, I, x, I, 1, kernel, G, out, G, 0);
  }
}

/**
 * One row of one step, from pre-activations z = [i f g o] (overwritten with the activated gates):
 *   c = f ⊙ c_prev + i ⊙ g,  a = activation(c),  h = o ⊙ a.
 * All four gates of four units per iteration: five independent activations give the vector units work in
 * parallel, where one activation at a time is a long dependency chain.
 */
function gateForward(U: i32, zRow: usize, cPrev: usize, cNext: usize, ac: usize, hNext: usize, act: i32, recAct: i32): void {
  const fOff = <usize>U << 2;
  const gOff = <usize>(U << 1) << 2;
  const oOff = <usize>(3 * U) << 2;
  let j = 0;
  if (act == TANH && recAct == SIGMOID) {
    // Keras's default pair, spelled out so that nothing is dispatched per vector.
    for (; j + 4 <= U; j += 4) {
      const p = <usize>j << 2;
      const i = sigmoidV(v128.load(zRow + p));
      const f = sigmoidV(v128.load(zRow + fOff + p));
      const g = tanhV(v128.load(zRow + gOff + p));
      const o = sigmoidV(v128.load(zRow + oOff + p));
      const c = f32x4.add(f32x4.mul(f, v128.load(cPrev + p)), f32x4.mul(i, g));
      const a = tanhV(c);
      v128.store(zRow + p, i);
      v128.store(zRow + fOff + p, f);
      v128.store(zRow + gOff + p, g);
      v128.store(zRow + oOff + p, o);
      v128.store(cNext + p, c);
      v128.store(ac + p, a);
      v128.store(hNext + p, f32x4.mul(o, a));
    }
  } else {
    for (; j + 4 <= U; j += 4) {
      const p = <usize>j << 2;
      const i = activateV(recAct, v128.load(zRow + p));
      const f = activateV(recAct, v128.load(zRow + fOff + p));
      const g = activateV(act, v128.load(zRow + gOff + p));
      const o = activateV(recAct, v128.load(zRow + oOff + p));
      const c = f32x4.add(f32x4.mul(f, v128.load(cPrev + p)), f32x4.mul(i, g));
      const a = activateV(act, c);
      v128.store(zRow + p, i);
      v128.store(zRow + fOff + p, f);
      v128.store(zRow + gOff + p, g);
      v128.store(zRow + oOff + p, o);
      v128.store(cNext + p, c);
      v128.store(ac + p, a);
      v128.store(hNext + p, f32x4.mul(o, a));
    }
  }
  for (; j < U; j++) {
    const p = <usize>j << 2;
    const i = activateS(recAct, load<f32>(zRow + p));
    const f = activateS(recAct, load<f32>(zRow + fOff + p));
    const g = activateS(act, load<f32>(zRow + gOff + p));
    const o = activateS(recAct, load<f32>(zRow + oOff + p));
    const c = f * load<f32>(cPrev + p) + i * g;
    const a = activateS(act, c);
    store<f32>(zRow + p, i);
    store<f32>(zRow + fOff + p, f);
    store<f32>(zRow + gOff + p, g);
    store<f32>(zRow + oOff + p, o);
    store<f32>(cNext + p, c);
    store<f32>(ac + p, a);
    store<f32>(hNext + p, o * a);
  }
}

// ---------------------------------------------------------------------------------------------------------
// LSTM backward (backpropagation through time) from what lstmForward kept with keep = 1.
//   dOut      [T, B, U] when sequence = 1, else [B, U] (gradient of the last h only)
//   dz        [T, B, 4U] scratch: pre-activation gate gradients of every step
//   dh, dc    [B, U] scratch
//   recurrentT [4U, U] scratch for recurrentᵀ
//   dKernel [I, 4U], dRecurrent [U, 4U], dBias [4U] (dBias = 0: no bias): out, overwritten
// The input gradient is a separate call (inputGradient) so that it can write a padded layout.
// ---------------------------------------------------------------------------------------------------------
export function lstmBackward(
  T: i32, B: i32, I: i32, U: i32,
  x: usize, recurrent: usize,
  gates: usize, cell: usize, hidden: usize, actCell: usize,
  dOut: usize, sequence: i32,
  dz: usize, dh: usize, dc: usize, recurrentT: usize,
  dKernel: usize, dRecurrent: usize, dBias: usize,
  act: i32, recAct: i32,
): void {
  const G = U << 2;
  const stateStep: usize = <usize>B * <usize>U << 2;
  const gateStep: usize = <usize>B * <usize>G << 2;
  transpose(recurrent, recurrentT, U, G, U);
  memory.fill(dh, 0, stateStep);
  memory.fill(dc, 0, stateStep);
  for (let t = T - 1; t >= 0; t--) {
    if (sequence) addInto(dh, dOut + <usize>t * stateStep, B * U);
    else if (t == T - 1) addInto(dh, dOut, B * U);
    const g = gates + <usize>t * gateStep;
    const dzt = dz + <usize>t * gateStep;
    for (let b = 0; b < B; b++) {
      const s = <usize>b * <usize>U << 2;
      const r = <usize>b * <usize>G << 2;
      gateGradients(U, g + r, cell + <usize>t * stateStep + s, actCell + <usize>t * stateStep + s, dh + s, dc + s, dzt + r, act, recAct);
    }
    if (t > 0) gemm(B, U, G, dzt, G, 1, recurrentT, U, dh, U, 0);
  }
  // Weight gradients summed over all steps and rows, each in one product.
  gemm(I, G, T * B, x, 1, I, dz, G, dKernel, G, 0);
  if (T > 1) gemm(U, G, (T - 1) * B, hidden + stateStep, 1, U, dz + gateStep, G, dRecurrent, G, 0);
  else memory.fill(dRecurrent, 0, <usize>U * <usize>G << 2);
  if (dBias) columnSums(T * B, G, dz, dBias);
}

/** dx [T*B, ldx] = dz [T*B, 4U] · kernelᵀ; kernelT [4U, ldx] is kernelᵀ padded with zero columns to ldx. */
export function inputGradient(rows: i32, I: i32, U: i32, kernel: usize, kernelT: usize, ldx: i32, dz: usize, dx: usize): void {
  const G = U << 2;
  memory.fill(kernelT, 0, <usize>G * <usize>ldx << 2);
  transpose(kernel, kernelT, I, G, ldx);
  gemm(rows, ldx, G, dz, G, 1, kernelT, ldx, dx, ldx, 0);
}

@inline function addInto(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

function columnSums(rows: i32, cols: i32, src: usize, dst: usize): void {
  memory.fill(dst, 0, <usize>cols << 2);
  const rowBytes = <usize>cols << 2;
  for (let r = 0; r < rows; r++) addInto(dst, src + <usize>r * rowBytes, cols);
}

/**
 * One row of one step: from dh (gradient of h_t) and dc (gradient of c_t from step t+1) to the four
 * pre-activation gate gradients; dc becomes the gradient of c_{t-1}.
 *   h = o·a(c), c = f·c_prev + i·g  →  dc += dh·o·a'(c); do = dh·a(c); di = dc·g; df = dc·c_prev; dg = dc·i
 */
function gateGradients(U: i32, gRow: usize, cPrev: usize, ac: usize, dh: usize, dc: usize, dzRow: usize, act: i32, recAct: i32): void {
  const fOff = <usize>U << 2;
  const gOff = <usize>(U << 1) << 2;
  const oOff = <usize>(3 * U) << 2;
  let j = 0;
  for (; j + 4 <= U; j += 4) {
    const p = <usize>j << 2;
    const i = v128.load(gRow + p);
    const f = v128.load(gRow + fOff + p);
    const g = v128.load(gRow + gOff + p);
    const o = v128.load(gRow + oOff + p);
    const a = v128.load(ac + p);
    const h = v128.load(dh + p);
    const c = f32x4.add(v128.load(dc + p), f32x4.mul(f32x4.mul(h, o), derivativeV(act, a)));
    v128.store(dzRow + p, f32x4.mul(f32x4.mul(c, g), derivativeV(recAct, i)));
    v128.store(dzRow + fOff + p, f32x4.mul(f32x4.mul(c, v128.load(cPrev + p)), derivativeV(recAct, f)));
    v128.store(dzRow + gOff + p, f32x4.mul(f32x4.mul(c, i), derivativeV(act, g)));
    v128.store(dzRow + oOff + p, f32x4.mul(f32x4.mul(h, a), derivativeV(recAct, o)));
    v128.store(dc + p, f32x4.mul(c, f));
  }
  for (; j < U; j++) {
    const p = <usize>j << 2;
    const i = load<f32>(gRow + p);
    const f = load<f32>(gRow + fOff + p);
    const g = load<f32>(gRow + gOff + p);
    const o = load<f32>(gRow + oOff + p);
    const a = load<f32>(ac + p);
    const h = load<f32>(dh + p);
    const c = load<f32>(dc + p) + h * o * derivativeS(act, a);
    store<f32>(dzRow + p, c * g * derivativeS(recAct, i));
    store<f32>(dzRow + fOff + p, c * load<f32>(cPrev + p) * derivativeS(recAct, f));
    store<f32>(dzRow + gOff + p, c * i * derivativeS(act, g));
    store<f32>(dzRow + oOff + p, h * a * derivativeS(recAct, o));
    store<f32>(dc + p, c * f);
  }
}
