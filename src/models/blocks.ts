// Shared building blocks of DiT and FPDM, written against tfjs-core ops. Functional kernels
// (layerNorm, modulate, geluTanh) are separate from the wiring functions that read parameters by
// their PyTorch state_dict names (`${prefix}.attn.qkv.weight`, …). The DiT block is defined once
// (blockForward); blockgrad.ts wraps it in an op with a hand-written backward. Where a backend wants
// another formulation of the same values, the choice is in src/backends/kernels.ts, not here.
//
// Shapes (legend in src/util/shapes.ts): N batch, C channels, H/W latent size, P patch,
// T tokens = (H/P)·(W/P), D hidden, K heads, Dh = D/K, Co output channels.
// Callers run these inside tf.tidy; none of them keeps a tensor.
import * as tf from '@tensorflow/tfjs-core';
import { blockKernels, fusedBlockKernels, mergeHeads, rawBlockKernels, tapeRecording } from '../backends/kernels.js';

/** Parameters (and buffers) by state_dict name. Variables are tensors, so a ParamTree is one too. */
export type Params = ReadonlyMap<string, tf.Tensor>;

/** The parameter `name` of the tree (a missing one is a bug in the tree, not bad input). */
export function param(p: Params, name: string): tf.Tensor {
  const t = p.get(name);
  if (!t) throw new Error(`model parameter '${name}' is missing (a bug in the parameter tree)`);
  return t;
}

// ---- functional kernels -----------------------------------------------------------------------

/** LayerNorm over the last axis without affine parameters (PyTorch elementwise_affine=False). */
export function layerNorm(x: tf.Tensor, eps = 1e-6): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true); // biased variance, as PyTorch
  return tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
}

/** adaLN modulation: x·(1 + scale) + shift, with shift/scale per sample. x [N, T, D]; shift, scale [N, D]. */
export function modulate(x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D {
  const n = x.shape[0];
  const d = x.shape[2];
  return tf.add(tf.mul(x, tf.add(tf.reshape(scale, [n, 1, d]), 1)), tf.reshape(shift, [n, 1, d])); // [N, T, D]
}

/** modulate(layerNorm(x), shift, scale), fused where the backend has it (src/backends/kernels.ts). */
export function lnModulate(x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D {
  return fusedBlockKernels()?.lnModulate(x, shift, scale) ?? modulate(layerNorm(x) as tf.Tensor3D, shift, scale);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * Applies `ops` in sequence to x, disposing each intermediate as soon as the next exists (x itself is
 * kept), so an elementwise chain holds two buffers of x's size at a time instead of all of them.
 * (Under a gradient tape the ops save what their gradients need themselves, so disposing is safe.)
 */
export function chain(x: tf.Tensor, ...ops: Array<(t: tf.Tensor) => tf.Tensor>): tf.Tensor {
  let cur = x;
  for (const op of ops) {
    const next = op(cur);
    if (cur !== x) cur.dispose();
    cur = next;
  }
  return cur;
}

/**
 * σ(2u), u = √(2/π)(x + 0.044715x³): the sigmoid in geluTanh (also read by its backward), with x³ as
 * x·x·x, one intermediate at a time.
 */
function geluSigmoid(x: tf.Tensor): tf.Tensor {
  return chain(
    x,
    (t) => tf.mul(t, t),
    (t) => tf.mul(t, x),
    (t) => tf.mul(t, 0.044715),
    (t) => tf.add(x, t),
    (t) => tf.mul(t, 2 * SQRT_2_OVER_PI),
    (t) => tf.sigmoid(t),
  );
}

/**
 * GELU, tanh approximation (PyTorch `GELU(approximate="tanh")`): 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³),
 * computed as x·σ(2u) (the same function: ½(1 + tanh(u)) = σ(2u)) with x³ as x·x·x, because on the
 * wasm backend Tanh and Pow are plain loops and Sigmoid and Multiply are XNNPACK kernels (measured on
 * [128,16,256]: tanh 10 ms, sigmoid < 0.1 ms). Values agree with the tanh form to float rounding.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  const fused = fusedBlockKernels();
  if (fused) return fused.gelu(x);
  const sg = geluSigmoid(x);
  const out = tf.mul(x, sg);
  sg.dispose();
  return out;
}

/** dy ⊙ GELU_tanh'(h), elementwise: GELU'(h) = σ + 2h·σ(1 − σ)·√(2/π)(1 + 3·0.044715h²), σ = σ(2u). */
export function geluTanhBackward(h: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const fused = fusedBlockKernels();
  if (fused) return fused.geluBackward(h, dy);
  const sg = geluSigmoid(h); // σ(2u)
  // 2h·σ(1 − σ)·√(2/π)(1 + 3·0.044715h²)
  const inner = chain(
    h,
    (t) => tf.square(t),
    (t) => tf.mul(t, 3 * 0.044715),
    (t) => tf.add(t, 1),
    (t) => tf.mul(t, 2 * SQRT_2_OVER_PI),
    (t) => tf.mul(t, h),
  );
  const second = chain(
    sg,
    (t) => tf.sub(1, t),
    (t) => tf.mul(t, sg),
    (t) => tf.mul(t, inner),
  );
  inner.dispose();
  const grad = chain(
    sg,
    (t) => tf.add(t, second),
    (t) => tf.mul(dy, t),
  );
  tf.dispose([sg, second]);
  return grad;
}

/** SiLU(x) = x·σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/** a·b with optional transposes of 2-D operands, in the active backend's fastest form (src/backends/kernels.ts). */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  return blockKernels().matMul2d(a, b, transposeA, transposeB);
}

/** x·Wᵀ for x [M, in], W [out, in], with the gradients written through matMul2d (autodiff's use transposed operands). */
const matMulWt = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [x, w, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: matMul2d(x, w, false, true) as tf.Tensor, // [M, out]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      const g = dy as tf.Tensor2D; // [M, out]
      return [tf.matMul(g, ws), matMul2d(g, xs, true, false)]; // dx [M, in], dW [out, in]
    },
  };
});

/** x + g ⊙ a with the gate g per sample (adaLN-Zero's gated residual). x, a [N, T, D], g [N, D] → [N, T, D]. */
export function gatedResidual(x: tf.Tensor3D, g: tf.Tensor2D, a: tf.Tensor3D): tf.Tensor3D {
  const fused = fusedBlockKernels();
  if (fused) return fused.gatedResidual(x, g, a);
  const [n, , d] = x.shape;
  return tf.add(x, tf.mul(tf.reshape(g, [n, 1, d]), a));
}

/** y = x·Wᵀ + b over the last axis, W stored [out, in] as PyTorch. x [..., in] → [..., out]. */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const outDim = w.shape[0]!;
  const x2 = x.rank === 2 ? (x as tf.Tensor2D) : (tf.reshape(x, [-1, inDim]) as tf.Tensor2D); // [M, in]
  // Not tf.fused.matMul on wasm: there (tfjs 4.22) fused matmul with transposeB + bias gave wrong
  // outputs (max abs err 0.4 on dit_tiny, measured), so the bias is a separate add; on webgpu the bias
  // is added in the matMul kernel (one dispatch fewer per layer; tests/backends/webgpu-block.test.ts).
  const fused = b ? fusedBlockKernels() : null;
  let y: tf.Tensor;
  if (fused && b)
    y = fused.linearBias(x2, w as tf.Tensor2D, b); // [M, out]
  else {
    y = matMulWt(x2, w); // [M, out]
    if (b) y = tf.add(y, b);
  }
  return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outDim]);
}

/** Linear layer read from the tree: `${name}.weight` [out, in], `${name}.bias` [out]. */
export function linearP(p: Params, name: string, x: tf.Tensor): tf.Tensor {
  return linear(x, param(p, `${name}.weight`), p.get(`${name}.bias`));
}

// ---- embedders ----------------------------------------------------------------------------------

/** Frequencies exp(−ln(maxPeriod)·i/half), i = 0..half−1, as the reference computes them (float32). */
function timestepFrequencies(dim: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.exp((-Math.log(maxPeriod) * i) / half);
  return f;
}

/** Sinusoidal timestep embedding [cos(t·f), sin(t·f)]. t [N] float → [N, dim] (dim even). */
function timestepEmbedding(t: tf.Tensor1D, dim = 256, maxPeriod = 10000): tf.Tensor2D {
  const freqs = tf.tensor2d(timestepFrequencies(dim, maxPeriod), [1, dim / 2]); // [1, dim/2]
  const args = tf.mul(tf.reshape(tf.cast(t, 'float32'), [-1, 1]), freqs); // [N, dim/2]
  return tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D; // [N, dim]
}

/** TimestepEmbedder: sinusoidal 256 → Linear → SiLU → Linear. t [N] → [N, D]. */
export function timestepEmbedder(p: Params, t: tf.Tensor1D): tf.Tensor2D {
  const e = timestepEmbedding(t, 256); // [N, 256]
  const h = silu(linearP(p, 't_embedder.mlp.0', e)); // [N, D]
  return linearP(p, 't_embedder.mlp.2', h) as tf.Tensor2D; // [N, D]
}

/** LabelEmbedder: a row of the table per label (the last row, index numClasses, is the null class). y [N] int32 → [N, D]. */
export function labelEmbedder(p: Params, y: tf.Tensor1D): tf.Tensor2D {
  return tf.gather(param(p, 'y_embedder.embedding_table.weight'), tf.cast(y, 'int32')) as tf.Tensor2D;
}

/**
 * Fixed 2-D sin-cos position embedding as MAE/DiT build it: for a grid of g×g tokens (row-major),
 * the first D/2 channels encode the column coordinate w, the last D/2 the row coordinate h; each half is
 * [sin(pos·ω), cos(pos·ω)] with ω_i = 1/10000^(i/(D/4)), i < D/4. Returns [T, D] (T = g²), float32.
 * (The reference meshes (w, h) and puts grid[0] = w first; we reproduce that order.)
 */
export function posEmbed2d(dim: number, gridSize: number): Float32Array {
  const quarter = dim / 4;
  const out = new Float32Array(gridSize * gridSize * dim);
  const omega = new Float64Array(quarter);
  for (let i = 0; i < quarter; i++) omega[i] = 1 / 10000 ** (i / quarter);
  for (let h = 0; h < gridSize; h++) {
    for (let w = 0; w < gridSize; w++) {
      const row = (h * gridSize + w) * dim;
      for (let i = 0; i < quarter; i++) {
        out[row + i] = Math.sin(w * omega[i]!);
        out[row + quarter + i] = Math.cos(w * omega[i]!);
        out[row + 2 * quarter + i] = Math.sin(h * omega[i]!);
        out[row + 3 * quarter + i] = Math.cos(h * omega[i]!);
      }
    }
  }
  return out;
}

/**
 * Patch embedding = Conv2d(C, D, kernel=P, stride=P) as patchify + matmul. The conv weight [D, C, P, P]
 * flattened to [D, C·P·P] in (c, kh, kw) order is exactly PyTorch's memory order, so no copy is needed.
 * x [N, C, H, W] → tokens [N, T, D], token index = row·(W/P) + column.
 */
export function patchEmbed(p: Params, x: tf.Tensor4D, patch: number): tf.Tensor3D {
  const [n, c, hgt, wid] = x.shape;
  const h = hgt / patch;
  const w = wid / patch;
  const weight = param(p, 'x_embedder.proj.weight');
  const d = weight.shape[0]!;
  const patches = tf.reshape(
    tf.transpose(tf.reshape(x, [n, c, h, patch, w, patch]), [0, 2, 4, 1, 3, 5]), // [N, h, w, C, P, P]
    [n * h * w, c * patch * patch],
  ); // [N·T, C·P·P]
  const y = linear(patches, tf.reshape(weight, [d, c * patch * patch]), param(p, 'x_embedder.proj.bias')); // [N·T, D]
  return tf.reshape(y, [n, h * w, d]); // [N, T, D]
}

/** Inverse of patchify for the final layer's output. x [N, T, P·P·Co] → [N, Co, H, W] (channel fastest, as the reference). */
export function unpatchify(x: tf.Tensor3D, patch: number, outChannels: number): tf.Tensor4D {
  const [n, t] = x.shape;
  const g = Math.round(Math.sqrt(t));
  const y = tf.transpose(tf.reshape(x, [n, g, g, patch, patch, outChannels]), [0, 5, 1, 3, 2, 4]); // [N, Co, h, P, w, P]
  return tf.reshape(y, [n, outChannels, g * patch, g * patch]); // [N, Co, H, W]
}

// ---- the DiT block ------------------------------------------------------------------------------

/** The adaLN modulation vectors: Linear(SiLU(c)) split into `k` chunks. c [N, D] → k × [N, D]. */
export function adaLN(p: Params, prefix: string, c: tf.Tensor2D, k: number): tf.Tensor2D[] {
  const m = linearP(p, `${prefix}.adaLN_modulation.1`, silu(c)); // [N, k·D]
  return tf.split(m, k, 1) as tf.Tensor2D[];
}

/** A block's parameters in the order blockForward reads them (each a weight then its bias). */
export const BLOCK_PARAM_NAMES = [
  'adaLN_modulation.1.weight',
  'adaLN_modulation.1.bias',
  'attn.qkv.weight',
  'attn.qkv.bias',
  'attn.proj.weight',
  'attn.proj.bias',
  'mlp.fc1.weight',
  'mlp.fc1.bias',
  'mlp.fc2.weight',
  'mlp.fc2.bias',
] as const;

/** The parameters `${prefix}.${name}` (or `name` when prefix is empty) for `names`, in order. */
export function paramList(p: Params, prefix: string, names: readonly string[]): tf.Tensor[] {
  return names.map((n) => param(p, prefix ? `${prefix}.${n}` : n));
}

/** The intermediates of a block's forward that its backward (src/models/blockgrad.ts) reads. */
export interface BlockSaved {
  x: tf.Tensor3D; // [N, T, D]
  qs: tf.Tensor4D; // [N, K, T, Dh] q / √Dh
  k: tf.Tensor4D; // [N, K, T, Dh]
  v: tf.Tensor4D; // [N, K, T, Dh]
  p: tf.Tensor4D; // [N, K, T, T] softmax probabilities
  merged: tf.Tensor3D; // [N, T, D] heads merged (proj input)
  a: tf.Tensor3D; // [N, T, D] attention output (after proj)
  x1: tf.Tensor3D; // [N, T, D]
  h: tf.Tensor3D; // [N, T, 4D] fc1 output (GELU input)
  m: tf.Tensor3D; // [N, T, D] fc2 output
  /**
   * webgpu at mixed precision only (src/backends/webgpu/dit-block.ts): GELU(h) rounded to f16, two values
   * per float32 element ([N·T·4D / 2]), written by fc1 and read by fc2 and fc2's weight gradient
   */
  g?: tf.Tensor;
}
export const SAVED_ORDER = ['x', 'qs', 'k', 'v', 'p', 'merged', 'a', 'x1', 'h', 'm'] as const;

/**
 * THE DiT block with adaLN-Zero conditioning — the one definition that the model forward, the
 * hand-written backward (blockgrad.ts) and the tests' autodiff oracle all run:
 *   [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] = Linear(SiLU(c))
 *   x1  = x + gate_msa · Attn(modulate(LN(x), shift_msa, scale_msa))      Attn: timm Attention, qkv bias
 *   out = x1 + gate_mlp · MLP(modulate(LN(x1), shift_mlp, scale_mlp))     MLP: fc1 → tanh-GELU → fc2
 * w: the block's parameters in BLOCK_PARAM_NAMES order. x [N, T, D], c [N, D] → out [N, T, D] and the
 * intermediates of BlockSaved. Differentiable by TF.js autodiff as well.
 */
export function blockForward(
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
): { out: tf.Tensor3D; s: BlockSaved } {
  const [wa, ba, wqkv, bqkv, wp, bp, w1, b1, w2, b2] = w as [
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
    tf.Tensor,
  ];
  // webgpu: our own kernels, dispatched directly (not differentiable by autodiff: not under a recording tape)
  const raw = rawBlockKernels();
  if (raw && !tapeRecording()) return raw.forward(x, c, w, heads);
  const d = x.shape[2];
  const dh = d / heads;
  const kernels = blockKernels();
  // each stage in its own tidy, so only what later stages (and the backward) read outlives it
  return tf.tidy(() => {
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = tf.split(
      linear(silu(c), wa, ba),
      6,
      1,
    ) as tf.Tensor2D[]; // 6 × [N, D]
    // attention: all heads in one batched matMul
    const [qs, k, v] = tf.tidy(() => {
      const mod1 = lnModulate(x, shiftMsa!, scaleMsa!); // [N, T, D]
      const [q, k, v] = kernels.splitHeads(linear(mod1, wqkv, bqkv) as tf.Tensor3D, heads); // each [N, K, T, Dh]
      return [tf.mul(q, 1 / Math.sqrt(dh)) as tf.Tensor4D, k, v];
    });
    const p = tf.tidy(() => tf.softmax(tf.matMul(qs, k, false, true), -1) as tf.Tensor4D); // [N, K, T, T]
    const merged = tf.tidy(() => mergeHeads(tf.matMul(p, v) as tf.Tensor4D)); // [N, T, D]
    const a = linear(merged, wp, bp) as tf.Tensor3D; // [N, T, D]
    const x1 = gatedResidual(x, gateMsa!, a);
    // MLP
    const h = tf.tidy(() => linear(lnModulate(x1, shiftMlp!, scaleMlp!), w1, b1) as tf.Tensor3D); // [N, T, 4D]
    const m = tf.tidy(() => linear(geluTanh(h), w2, b2) as tf.Tensor3D); // [N, T, D]
    const out = gatedResidual(x1, gateMlp!, m);
    return { out, s: { x, qs, k, v, p, merged, a, x1, h, m } };
  });
}

/** The DiT block read from the tree at `prefix` (blockForward's output only). x [N, T, D], c [N, D] → [N, T, D]. */
export function ditBlock(p: Params, prefix: string, x: tf.Tensor3D, c: tf.Tensor2D, heads: number): tf.Tensor3D {
  const w = paramList(p, prefix, BLOCK_PARAM_NAMES);
  // webgpu, no tape: the same kernels without the saved intermediates (nothing here reads them)
  const raw = rawBlockKernels();
  if (raw && !tapeRecording()) return raw.forwardOutput(x, c, w, heads);
  return tf.tidy(() => blockForward(x, c, w, heads).out);
}

/** Final layer: modulate(LN(x), shift, scale) → Linear to P·P·Co. x [N, T, D], c [N, D] → [N, T, P·P·Co]. */
export function finalLayer(p: Params, x: tf.Tensor3D, c: tf.Tensor2D): tf.Tensor3D {
  const [shift, scale] = adaLN(p, 'final_layer', c, 2) as [tf.Tensor2D, tf.Tensor2D];
  return linearP(p, 'final_layer.linear', lnModulate(x, shift, scale)) as tf.Tensor3D;
}
