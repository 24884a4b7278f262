// Shared building blocks of DiT and FPDM, written against tfjs-core ops. Functional kernels
// (layerNorm, modulate, geluTanh, attention core) are separate from the wiring functions that read
// parameters by their PyTorch state_dict names (`${prefix}.attn.qkv.weight`, …).
//
// Shapes (legend in src/util/shapes.ts): N batch, C channels, H/W latent size, P patch,
// T tokens = (H/P)·(W/P), D hidden, K heads, Dh = D/K, Co output channels.
// Callers run these inside tf.tidy; none of them keeps a tensor.
import * as tf from '@tensorflow/tfjs-core';

/** Parameters (and buffers) by state_dict name. Variables are tensors, so a ParamTree is one too. */
export type Params = ReadonlyMap<string, tf.Tensor>;

function param(p: Params, name: string): tf.Tensor {
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

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
/**
 * GELU, tanh approximation (PyTorch `GELU(approximate="tanh")`): 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³),
 * computed as x·σ(2u) (the same function: ½(1 + tanh(u)) = σ(2u)) with x³ as x·x·x, because on the
 * wasm backend Tanh and Pow are plain loops and Sigmoid and Multiply are XNNPACK kernels (measured on
 * [128,16,256]: tanh 10 ms, sigmoid < 0.1 ms). Values agree with the tanh form to float rounding.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(geluInner2(x)));
}

/** 2u = 2√(2/π)(x + 0.044715x³), the sigmoid's argument in geluTanh. */
function geluInner2(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), 2 * SQRT_2_OVER_PI);
}

/** SiLU(x) = x·σ(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * a·b with optional transposes of 2-D operands. On the wasm backend (tfjs 4.22) a 2-D matMul with a
 * transposed operand leaves XNNPACK for a loop about 10× slower (measured on one core:
 * [2048,64]·[256,64]ᵀ 25 ms, the same after an explicit transpose 2.5 ms; aᵀ·b 39 ms vs 7 ms), so
 * there the transpose is made explicit, on the smaller operand. Other backends fold it into the kernel.
 */
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  if ((!transposeA && !transposeB) || tf.getBackend() !== 'wasm') return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => {
    if (transposeA && transposeB) return tf.transpose(tf.matMul(b, a)); // aᵀbᵀ = (ba)ᵀ
    if (transposeA) return a.size <= b.size ? tf.matMul(tf.transpose(a), b) : tf.transpose(tf.matMul(tf.transpose(b), a)); // aᵀb = (bᵀa)ᵀ
    return b.size <= a.size ? tf.matMul(a, tf.transpose(b)) : tf.transpose(tf.matMul(b, tf.transpose(a))); // abᵀ = (baᵀ)ᵀ
  }) as tf.Tensor2D;
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

/** y = x·Wᵀ + b over the last axis, W stored [out, in] as PyTorch. x [..., in] → [..., out]. */
export function linear(x: tf.Tensor, w: tf.Tensor, b?: tf.Tensor): tf.Tensor {
  const inDim = x.shape[x.shape.length - 1]!;
  const outDim = w.shape[0]!;
  const x2 = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, inDim]) as tf.Tensor2D; // [M, in]
  // Not tf.fused.matMul: on the wasm backend (tfjs 4.22) fused matmul with transposeB + bias gave
  // wrong outputs (max abs err 0.4 on dit_tiny, measured), so the bias is a separate add.
  let y: tf.Tensor = matMulWt(x2, w); // [M, out]
  if (b) y = tf.add(y, b);
  return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), outDim]);
}

/** Linear layer read from the tree: `${name}.weight` [out, in], `${name}.bias` [out]. */
export function linearP(p: Params, name: string, x: tf.Tensor): tf.Tensor {
  return linear(x, param(p, `${name}.weight`), p.get(`${name}.bias`));
}

// ---- embedders ----------------------------------------------------------------------------------

/** Frequencies exp(−ln(maxPeriod)·i/half), i = 0..half−1, as the reference computes them (float32). */
export function timestepFrequencies(dim: number, maxPeriod = 10000): Float32Array {
  const half = Math.floor(dim / 2);
  const f = new Float32Array(half);
  for (let i = 0; i < half; i++) f[i] = Math.exp((-Math.log(maxPeriod) * i) / half);
  return f;
}

/** Sinusoidal timestep embedding [cos(t·f), sin(t·f)]. t [N] float → [N, dim] (dim even). */
export function timestepEmbedding(t: tf.Tensor1D, dim = 256, maxPeriod = 10000): tf.Tensor2D {
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

// ---- transformer parts --------------------------------------------------------------------------

/**
 * Multi-head self-attention (timm `Attention` with qkv bias): all heads in one batched matMul.
 * x [N, T, D] → [N, T, D].
 */
export function attention(p: Params, prefix: string, x: tf.Tensor3D, heads: number): tf.Tensor3D {
  const dh = x.shape[2] / heads;
  const [q, k, v] = splitHeads(linearP(p, `${prefix}.qkv`, x) as tf.Tensor3D, heads); // each [N, K, T, Dh]
  const scores = tf.matMul(tf.mul(q, 1 / Math.sqrt(dh)), k, false, true); // [N, K, T, T]
  const attn = tf.softmax(scores, -1);
  const o = tf.matMul(attn, v); // [N, K, T, Dh]
  return linearP(p, `${prefix}.proj`, mergeHeads(o as tf.Tensor4D)) as tf.Tensor3D;
}

/**
 * qkv [N, T, 3D] (timm's layout: q, k, v, each heads-major) → q, k, v each [N, K, T, Dh]. On wasm: a
 * split on the last axis and three 4-D transposes, since there the 5-D transpose of [N, T, 3, K, Dh]
 * is a generic loop about 40× slower (measured: 27 ms vs 3 × 0.6 ms at N=128, T=16, D=64). Elsewhere
 * one 5-D transpose and an unstack: fewer kernels for a dispatch-bound GPU backend (the split form
 * made WebGPU training of DiT-S/2 ~25 % slower, measured on an H100).
 */
export function splitHeads(qkv: tf.Tensor3D, heads: number): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
  const [n, t, d3] = qkv.shape;
  const dh = d3 / 3 / heads;
  if (tf.getBackend() === 'wasm') {
    return tf.split(qkv, 3, 2).map((part) => tf.transpose(tf.reshape(part, [n, t, heads, dh]), [0, 2, 1, 3])) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  }
  return tf.unstack(tf.transpose(tf.reshape(qkv, [n, t, 3, heads, dh]), [2, 0, 3, 1, 4]), 0) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
}

/** The inverse of splitHeads (its backward): q, k, v gradients each [N, K, T, Dh] → [N, T, 3D]. */
export function joinHeads(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor3D {
  const [n, heads, t, dh] = q.shape;
  if (tf.getBackend() === 'wasm') return tf.concat([q, k, v].map(mergeHeads), 2);
  return tf.reshape(tf.transpose(tf.stack([q, k, v]), [1, 3, 0, 2, 4]), [n, t, 3 * heads * dh]);
}

/** [N, K, T, Dh] → [N, T, D] (heads side by side), the inverse of one part of splitHeads. */
export function mergeHeads(o: tf.Tensor4D): tf.Tensor3D {
  const [n, k, t, dh] = o.shape;
  return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [n, t, k * dh]);
}

/** Mlp (fc1 → tanh-GELU → fc2). x [N, T, D] → [N, T, D]. */
export function mlp(p: Params, prefix: string, x: tf.Tensor3D): tf.Tensor3D {
  return linearP(p, `${prefix}.fc2`, geluTanh(linearP(p, `${prefix}.fc1`, x))) as tf.Tensor3D;
}

/** The adaLN modulation vectors: Linear(SiLU(c)) split into `k` chunks. c [N, D] → k × [N, D]. */
export function adaLN(p: Params, prefix: string, c: tf.Tensor2D, k: number): tf.Tensor2D[] {
  const m = linearP(p, `${prefix}.adaLN_modulation.1`, silu(c)); // [N, k·D]
  return tf.split(m, k, 1) as tf.Tensor2D[];
}

/**
 * DiT block with adaLN-Zero conditioning:
 *   x += gate_msa · Attn(modulate(LN(x), shift_msa, scale_msa))
 *   x += gate_mlp · MLP(modulate(LN(x), shift_mlp, scale_mlp))
 * x [N, T, D], c [N, D] → [N, T, D].
 */
export function ditBlock(p: Params, prefix: string, x: tf.Tensor3D, c: tf.Tensor2D, heads: number): tf.Tensor3D {
  const [n, , d] = x.shape;
  const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = adaLN(p, prefix, c, 6) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const a = attention(p, `${prefix}.attn`, modulate(layerNorm(x) as tf.Tensor3D, shiftMsa, scaleMsa), heads); // [N, T, D]
  const x1 = tf.add(x, tf.mul(tf.reshape(gateMsa, [n, 1, d]), a)) as tf.Tensor3D;
  const m = mlp(p, `${prefix}.mlp`, modulate(layerNorm(x1) as tf.Tensor3D, shiftMlp, scaleMlp)); // [N, T, D]
  return tf.add(x1, tf.mul(tf.reshape(gateMlp, [n, 1, d]), m)) as tf.Tensor3D;
}

/** Final layer: modulate(LN(x), shift, scale) → Linear to P·P·Co. x [N, T, D], c [N, D] → [N, T, P·P·Co]. */
export function finalLayer(p: Params, x: tf.Tensor3D, c: tf.Tensor2D): tf.Tensor3D {
  const [shift, scale] = adaLN(p, 'final_layer', c, 2) as [tf.Tensor2D, tf.Tensor2D];
  return linearP(p, 'final_layer.linear', modulate(layerNorm(x) as tf.Tensor3D, shift, scale)) as tf.Tensor3D;
}
