// Fused webgpu kernels for the op families of the DiT block that cost the most dispatches: LayerNorm
// (+ adaLN modulate) forward and backward, tanh-GELU forward and backward, and the softmax backward.
// Each is one TF.js WebGPU program (registered kernel, so it runs through the engine like any op and
// has a registered gradient where it is a forward op), replacing a chain of 4–18 small kernels. The
// math is the op sequence of src/models/blocks.ts and blockgrad.ts, in the same order per element;
// only the order of the row sums (mean, variance, softmax row dot) differs (a workgroup tree sum).
//   FpdmLnMod      x [N, T, D], shift, scale [N, D] → LN(x)·(1 + scale) + shift   (one workgroup per row)
//   FpdmLn         x [N, T, D] → LN(x)   (LayerNorm without affine, eps 1e-6)
//   FpdmLnModGrad  x, scale, dmod → dx = r·(dln − mean(dln) − ln·mean(dln·ln)), dln = dmod·(1 + scale)
//   FpdmGelu       x → x·σ(2u), u = √(2/π)(x + 0.044715x³)   (elementwise)
//   FpdmGeluGrad   h, dy → dy·(σ + 2h·σ(1 − σ)·√(2/π)(1 + 3·0.044715h²))
//   FpdmSoftmaxGrad p, dP [..., L] → p·(dP − Σ_L dP·p)   (one workgroup per row)
//   FpdmLnModGradRes as FpdmLnModGrad, plus a residual gradient: res + dx   (the block's dx1 = dy + dx)
//   FpdmGatedRes   x, a [N, T, D], g [N, D] → x + g·a   (the gated residual of adaLN-Zero; elementwise)
//   FpdmColDot     a, b [N, T, D] → Σ_T a·b  [N, D]     (gate and scale gradients; one thread per (n, d))
import * as tf from '@tensorflow/tfjs-core';
import { ACTIVATIONS, lit } from './gemm.js';

interface WebGPUProgramLike {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size?: boolean;
  getUserCode(): string;
}
interface WebGPUBackendLike {
  runWebGPUProgram(p: WebGPUProgramLike, inputs: tf.TensorInfo[], dtype: tf.DataType): tf.TensorInfo;
}

const ROW_WG = 128;
const EW_WG = 128;

/** Workgroup tree sum of `v` over the ROW_WG threads; every thread gets the total. */
const REDUCE_FN = (name: string, buf: string) => `
fn ${name}(v: f32, tid: i32) -> f32 {
  ${buf}[tid] = v;
  workgroupBarrier();
  for (var k = ${ROW_WG / 2}; k > 0; k = k >> 1u) {
    if (tid < k) { ${buf}[tid] = ${buf}[tid] + ${buf}[tid + k]; }
    workgroupBarrier();
  }
  let total = ${buf}[0];
  workgroupBarrier();
  return total;
}`;

function rowProgram(
  key: string,
  names: string[],
  outShape: number[],
  rows: number,
  body: string,
  extra = '',
): WebGPUProgramLike {
  return {
    variableNames: names,
    outputShape: outShape,
    shaderKey: key,
    dispatchLayout: { x: outShape.map((_, i) => i) },
    dispatch: [rows, 1, 1],
    workgroupSize: [ROW_WG, 1, 1],
    getUserCode: () => `
var<workgroup> buf0: array<f32, ${ROW_WG}>;
var<workgroup> buf1: array<f32, ${ROW_WG}>;
${REDUCE_FN('rowSum0', 'buf0')}
${REDUCE_FN('rowSum1', 'buf1')}
${extra}
fn main(index: i32) {
  let row0 = index / ${ROW_WG};
  let tid = i32(localId.x);
  ${body}
}`,
  };
}

/** LN statistics of row `row` of x (length D): mean and 1/√(var + eps), as tf.moments + rsqrt. */
const LN_STATS = `
  var s = 0.0;
  for (var c = tid; c < D; c = c + ${ROW_WG}) { s = s + x[base + c]; }
  let mean = rowSum0(s, tid) / f32(D);
  var q = 0.0;
  for (var c = tid; c < D; c = c + ${ROW_WG}) { let dv = x[base + c] - mean; q = q + dv * dv; }
  let r = inverseSqrt(rowSum1(q, tid) / f32(D) + ${lit(1e-6)});`;

/** Header of a [N, T, D] row kernel: rows past the end (a reshaped dispatch) compute row R−1 and write nothing. */
const ROW_HEAD = `
  let D = uniforms.xShape[2];
  let T = uniforms.xShape[1];
  let R = uniforms.xShape[0] * T;
  let valid = row0 < R;
  let row = min(row0, R - 1);
  let n = row / T;
  let base = row * D;`;

function lnModProgram(shape: number[], withMod: boolean): WebGPUProgramLike {
  const [n, t] = shape as [number, number, number];
  const write = withMod
    ? 'result[base + c] = ((x[base + c] - mean) * r) * (scale[n * D + c] + 1.0) + shift[n * D + c];'
    : 'result[base + c] = (x[base + c] - mean) * r;';
  return rowProgram(
    withMod ? 'fpdmLnMod' : 'fpdmLn',
    withMod ? ['x', 'shift', 'scale'] : ['x'],
    shape,
    n * t,
    `${ROW_HEAD}${LN_STATS}
  if (valid) { for (var c = tid; c < D; c = c + ${ROW_WG}) { ${write} } }`,
  );
}

function lnModGradProgram(shape: number[], withRes = false): WebGPUProgramLike {
  const [n, t] = shape as [number, number, number];
  const out = withRes ? 'res[base + c] + r * ((dln - ma) - ln * mb)' : 'r * ((dln - ma) - ln * mb)';
  return rowProgram(
    withRes ? 'fpdmLnModGradRes' : 'fpdmLnModGrad',
    withRes ? ['x', 'scale', 'dmod', 'res'] : ['x', 'scale', 'dmod'],
    shape,
    n * t,
    `${ROW_HEAD}${LN_STATS}
  var a = 0.0;
  var b = 0.0;
  for (var c = tid; c < D; c = c + ${ROW_WG}) {
    let ln = (x[base + c] - mean) * r;
    let dln = dmod[base + c] * (scale[n * D + c] + 1.0);
    a = a + dln;
    b = b + dln * ln;
  }
  let ma = rowSum0(a, tid) / f32(D);
  let mb = rowSum1(b, tid) / f32(D);
  if (valid) {
    for (var c = tid; c < D; c = c + ${ROW_WG}) {
      let ln = (x[base + c] - mean) * r;
      let dln = dmod[base + c] * (scale[n * D + c] + 1.0);
      result[base + c] = ${out};
    }
  }`,
  );
}

function softmaxGradProgram(shape: number[]): WebGPUProgramLike {
  const L = shape[shape.length - 1]!;
  const rows = shape.reduce((a, b) => a * b, 1) / L;
  const prog = rowProgram(
    'fpdmSoftmaxGrad',
    ['p', 'dp'],
    shape,
    rows,
    `
  let L = uniforms.outShape[${shape.length - 1}];
  let R = uniforms.size / L;
  let valid = row0 < R;
  let base = min(row0, R - 1) * L;
  var s = 0.0;
  for (var c = tid; c < L; c = c + ${ROW_WG}) { s = s + dp[base + c] * p[base + c]; }
  let dot = rowSum0(s, tid);
  if (valid) { for (var c = tid; c < L; c = c + ${ROW_WG}) { result[base + c] = p[base + c] * (dp[base + c] - dot); } }`,
  );
  prog.size = true;
  return prog;
}

function elementwise(key: string, names: string[], shape: number[], expr: string, helpers = ''): WebGPUProgramLike {
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    variableNames: names,
    outputShape: shape,
    shaderKey: key,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / EW_WG), 1, 1],
    workgroupSize: [EW_WG, 1, 1],
    size: true,
    getUserCode: () => `${helpers}
fn main(index: i32) {
  if (index < uniforms.size) {
    ${expr}
  }
}`,
  };
}

// GELU and its gradient: gemm.ts ACTIVATIONS (blocks.ts's op order: σ(2u) as ((x·x)·x)·0.044715, + x,
// ·2√(2/π), sigmoid; the gradient as geluTanhBackward), shared with the direct-dispatch kernels
function geluProgram(shape: number[]): WebGPUProgramLike {
  return elementwise('fpdmGelu', ['x'], shape, 'result[index] = gelu(x[index]);', ACTIVATIONS);
}

function geluGradProgram(shape: number[]): WebGPUProgramLike {
  return elementwise('fpdmGeluGrad', ['h', 'dy'], shape, 'result[index] = geluGrad(h[index], dy[index]);', ACTIVATIONS);
}

function gatedResProgram(shape: number[]): WebGPUProgramLike {
  // blocks.ts: tf.add(x, tf.mul(reshape(g, [N, 1, D]), a))
  return elementwise(
    'fpdmGatedRes',
    ['x', 'g', 'a'],
    shape,
    `let D = uniforms.xShape[2];
    let TD = uniforms.xShape[1] * D;
    let gv = g[(index / TD) * D + index % D];
    let ga = gv * a[index];
    result[index] = x[index] + ga;`,
  );
}

function colDotProgram(shape: number[]): WebGPUProgramLike {
  const [n, , d] = shape as [number, number, number];
  return elementwise(
    'fpdmColDot',
    ['a', 'b'],
    [n, d],
    `let D = uniforms.aShape[2];
    let T = uniforms.aShape[1];
    let base = (index / D) * T * D + index % D;
    var s = 0.0;
    for (var t = 0; t < T; t = t + 1) { let i = base + t * D; s = s + a[i] * b[i]; }
    result[index] = s;`,
  );
}

let registered = false;

/** Registers the kernels (webgpu) and the gradients of the forward ones, once. */
export function registerWebgpuBlockKernels(): void {
  if (registered) return;
  registered = true;
  const run = (backend: unknown, prog: WebGPUProgramLike, inputs: tf.TensorInfo[]): tf.TensorInfo =>
    (backend as WebGPUBackendLike).runWebGPUProgram(prog, inputs, 'float32');
  const kernel = (name: string, f: (inputs: Record<string, tf.TensorInfo>, backend: unknown) => tf.TensorInfo) =>
    tf.registerKernel({
      kernelName: name,
      backendName: 'webgpu',
      kernelFunc: ({ inputs, backend }) => f(inputs as unknown as Record<string, tf.TensorInfo>, backend),
    });
  kernel('FpdmLnMod', (i, b) => run(b, lnModProgram(i.x!.shape, true), [i.x!, i.shift!, i.scale!]));
  kernel('FpdmLn', (i, b) => run(b, lnModProgram(i.x!.shape, false), [i.x!]));
  kernel('FpdmLnModGrad', (i, b) => run(b, lnModGradProgram(i.x!.shape), [i.x!, i.scale!, i.dmod!]));
  kernel('FpdmLnModGradRes', (i, b) => run(b, lnModGradProgram(i.x!.shape, true), [i.x!, i.scale!, i.dmod!, i.res!]));
  kernel('FpdmGatedRes', (i, b) => run(b, gatedResProgram(i.x!.shape), [i.x!, i.g!, i.a!]));
  kernel('FpdmColDot', (i, b) => run(b, colDotProgram(i.a!.shape), [i.a!, i.b!]));
  kernel('FpdmGelu', (i, b) => run(b, geluProgram(i.x!.shape), [i.x!]));
  kernel('FpdmGeluGrad', (i, b) => run(b, geluGradProgram(i.h!.shape), [i.h!, i.dy!]));
  kernel('FpdmSoftmaxGrad', (i, b) => run(b, softmaxGradProgram(i.p!.shape), [i.p!, i.dp!]));
  tf.registerGradient({
    kernelName: 'FpdmLnMod',
    inputsToSave: ['x', 'shift', 'scale'],
    gradFunc: (dy, saved) => {
      // each gradient on its own: the engine runs each closure in its own tidy
      const [x, , scale] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
      return {
        x: () => tf.engine().runKernel('FpdmLnModGrad', { x, scale, dmod: dy as tf.Tensor }) as tf.Tensor,
        shift: () => tf.sum(dy as tf.Tensor, 1),
        scale: () => colDot(dy as tf.Tensor3D, layerNorm3d(x)),
      };
    },
  });
  tf.registerGradient({
    kernelName: 'FpdmLn',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor3D];
      const [n, , d] = x.shape;
      return {
        x: () =>
          tf.tidy(
            () =>
              tf
                .engine()
                .runKernel('FpdmLnModGrad', { x, scale: tf.zeros([n, d]), dmod: dy as tf.Tensor }) as tf.Tensor,
          ),
      };
    },
  });
  tf.registerGradient({
    kernelName: 'FpdmGatedRes',
    inputsToSave: ['g', 'a'],
    gradFunc: (dy, saved) => {
      const [g, a] = saved as [tf.Tensor2D, tf.Tensor3D];
      const [n, , d] = a.shape;
      return {
        x: () => tf.clone(dy as tf.Tensor),
        g: () => colDot(dy as tf.Tensor3D, a),
        a: () => tf.mul(dy as tf.Tensor, tf.reshape(g, [n, 1, d])),
      };
    },
  });
  tf.registerGradient({
    kernelName: 'FpdmGelu',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => geluBackward(saved[0]!, dy as tf.Tensor) }),
  });
}

export function lnModulate(x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D {
  return tf.engine().runKernel('FpdmLnMod', { x, shift, scale }) as tf.Tensor3D;
}

export function layerNorm3d(x: tf.Tensor3D): tf.Tensor3D {
  return tf.engine().runKernel('FpdmLn', { x }) as tf.Tensor3D;
}

/**
 * dx, dshift = Σ_T dmod, dscale = Σ_T dmod ⊙ LN(x) of modulate(LN(x), shift, scale); with `residual`,
 * dx is residual + dx (one kernel).
 */
export function lnModulateBackward(
  x: tf.Tensor3D,
  _shift: tf.Tensor2D,
  scale: tf.Tensor2D,
  dmod: tf.Tensor3D,
  residual?: tf.Tensor,
): { dx: tf.Tensor; dshift: tf.Tensor; dscale: tf.Tensor } {
  return tf.tidy(() => {
    const dx = residual
      ? (tf.engine().runKernel('FpdmLnModGradRes', { x, scale, dmod, res: residual }) as tf.Tensor)
      : (tf.engine().runKernel('FpdmLnModGrad', { x, scale, dmod }) as tf.Tensor);
    const ln = layerNorm3d(x);
    const dscale = colDot(dmod, ln);
    const dshift = tf.sum(dmod, 1);
    return { dx, dshift, dscale };
  });
}

export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('FpdmGelu', { x }) as tf.Tensor;
}

export function geluBackward(h: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('FpdmGeluGrad', { h, dy }) as tf.Tensor;
}

export function softmaxBackward(p: tf.Tensor, dP: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('FpdmSoftmaxGrad', { p, dp: dP }) as tf.Tensor;
}

/** x + g ⊙ a with g per sample: x, a [N, T, D], g [N, D] → [N, T, D]. */
export function gatedResidual(x: tf.Tensor3D, g: tf.Tensor2D, a: tf.Tensor3D): tf.Tensor3D {
  return tf.engine().runKernel('FpdmGatedRes', { x, g, a }) as tf.Tensor3D;
}

/** Σ_T a ⊙ b: a, b [N, T, D] → [N, D]. */
export function colDot(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor2D {
  return tf.engine().runKernel('FpdmColDot', { a, b }) as tf.Tensor2D;
}

/**
 * x·Wᵀ + b in one matMul kernel with the bias in its epilogue (TF.js's _FusedMatMul). x [M, in],
 * W [out, in], b [out]. Run as the bare kernel where no gradient tape records it (sampling, and inside
 * the block ops, whose backward is hand-written): tf.fused.matMul's wrapper (a customGrad, reshapes to
 * 3-D) cost more host time than the separate add it saves (measured: DiT-S/2 sampling 102 → 129 ms per
 * call). Under a recording tape (autodiff of the embedders and the final layer) tf.fused.matMul, for
 * its gradient.
 */
export function linearBias(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor): tf.Tensor2D {
  const st = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  if (st.gradientDepth > 0 && st.kernelDepth === 0)
    return tf.fused.matMul({ a: x, b: w, transposeB: true, bias: b }) as tf.Tensor2D;
  const attrs = { transposeA: false, transposeB: true, activation: 'linear', leakyreluAlpha: 0.2 };
  return tf
    .engine()
    .runKernel('_FusedMatMul', { a: x, b: w, bias: b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** lnModulateBackward as in the first round of fused kernels: dscale as a multiply and a sum, no residual. */
export function lnModulateBackwardUnfused(
  x: tf.Tensor3D,
  _shift: tf.Tensor2D,
  scale: tf.Tensor2D,
  dmod: tf.Tensor3D,
): { dx: tf.Tensor; dshift: tf.Tensor; dscale: tf.Tensor } {
  return tf.tidy(() => {
    const dx = tf.engine().runKernel('FpdmLnModGrad', { x, scale, dmod }) as tf.Tensor;
    const dscale = tf.sum(tf.mul(dmod, layerNorm3d(x)), 1);
    return { dx, dshift: tf.sum(dmod, 1), dscale };
  });
}
