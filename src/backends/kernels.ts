// Backend-specific kernel choices of the model code, in one place. The model math (src/models/) is
// written once against tfjs-core ops; where a backend runs one formulation of the same values much
// faster than another, the choice is made here, by backend name, and nowhere in the model files.
// Fused implementations (webgpu) are asked for here too; null means the portable TF.js op sequence
// (wasm, cpu, tensorflow, or webgpu with the fused kernels switched off for a comparison).
//
//   matMul2d    2-D matMul with optional transposes (wasm: the transpose made explicit)
//   splitHeads  qkv [N, T, 3D] → q, k, v [N, K, T, Dh] (wasm: split + 4-D transposes)
//   joinHeads   the inverse (the backward of splitHeads)
//
// Every variant computes the same values (the same float32 results: transposes and reshapes move
// numbers, they do not round them). The record is keyed by tf.getBackend(); a backend without an
// entry uses `generic`. Also here: the one read of the engine's private state the models need.
import * as tf from '@tensorflow/tfjs-core';
import { webgpuOptimizerKernels, type FusedOptimizerKernels } from './webgpu/optimizer.js';
import * as webgpuBlock from './webgpu/block.js';
import { rawKernels, type RawKernels } from './webgpu/raw.js';
import { rawBlockBackward, rawBlockForward } from './webgpu/dit-block.js';
import { rawRelativeResidual, rawRelativeResidualInto } from './webgpu/residual.js';
import { injectionProjectionFor, rawProjectionBackward, rawProjectionForward } from './webgpu/fpdm-step.js';
import {
  byRole,
  edgeDims,
  EMBED_NAMES,
  FINAL_NAMES,
  rawEmbedModel,
  rawFinalForward,
  rawLinearForward,
} from './webgpu/edges.js';
import { rawLossAndGradient, rawLossSupported, type LossInputsRaw } from './webgpu/loss.js';
import { rawCfgCombine, rawCfgInputs, rawSamplerStep, type SamplerStepInput } from './webgpu/sampler.js';
import {
  rawTrainingStep,
  rawTrainingStepForward,
  type DirectStepForward,
  type DirectStepInput,
  type DirectStepResult,
  type StepModel,
} from './webgpu/train-step.js';
import type { GaussianDiffusion } from '../diffusion/process.js';
import type { BlockSaved } from '../models/blocks.js';

type Heads = [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];

export interface BlockKernels {
  /** a·b with optional transposes of 2-D operands. a [M, K] (or [K, M] with transposeA), b likewise → [M, N] */
  matMul2d(a: tf.Tensor2D, b: tf.Tensor2D, transposeA?: boolean, transposeB?: boolean): tf.Tensor2D;
  /** qkv [N, T, 3D] (timm's layout: q, k, v, each heads-major) → q, k, v each [N, K, T, Dh] */
  splitHeads(qkv: tf.Tensor3D, heads: number): Heads;
  /** the inverse of splitHeads (its backward): q, k, v each [N, K, T, Dh] → [N, T, 3D] */
  joinHeads(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor3D;
}

/** [N, K, T, Dh] → [N, T, D] (heads side by side), the inverse of one part of splitHeads. */
export function mergeHeads(o: tf.Tensor4D): tf.Tensor3D {
  const [n, k, t, dh] = o.shape;
  return tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [n, t, k * dh]);
}

/**
 * Other backends: transposes folded into the matMul kernel, and one 5-D transpose + unstack for the
 * heads (fewer kernels for a dispatch-bound GPU backend: the split form of `wasm` made WebGPU training
 * of DiT-S/2 ~25 % slower, measured on an H100).
 */
const generic: BlockKernels = {
  matMul2d: (a, b, transposeA = false, transposeB = false) => tf.matMul(a, b, transposeA, transposeB),
  splitHeads(qkv, heads) {
    const [n, t, d3] = qkv.shape;
    const dh = d3 / 3 / heads;
    return tf.unstack(tf.transpose(tf.reshape(qkv, [n, t, 3, heads, dh]), [2, 0, 3, 1, 4]), 0) as Heads;
  },
  joinHeads(q, k, v) {
    const [n, heads, t, dh] = q.shape;
    return tf.reshape(tf.transpose(tf.stack([q, k, v]), [1, 3, 0, 2, 4]), [n, t, 3 * heads * dh]);
  },
};

/**
 * wasm (tfjs 4.22):
 * - a 2-D matMul with a transposed operand leaves XNNPACK for a loop about 10× slower (measured on one
 *   core: [2048,64]·[256,64]ᵀ 25 ms, the same after an explicit transpose 2.5 ms; aᵀ·b 39 ms vs 7 ms),
 *   so the transpose is made explicit, on the smaller operand;
 * - the 5-D transpose of [N, T, 3, K, Dh] is a generic loop about 40× slower than a split on the last
 *   axis and three 4-D transposes (measured: 27 ms vs 3 × 0.6 ms at N=128, T=16, D=64).
 */
const wasm: BlockKernels = {
  matMul2d(a, b, transposeA = false, transposeB = false) {
    if (!transposeA && !transposeB) return tf.matMul(a, b);
    return tf.tidy(() => {
      if (transposeA && transposeB) return tf.transpose(tf.matMul(b, a)); // aᵀbᵀ = (ba)ᵀ
      if (transposeA)
        return a.size <= b.size ? tf.matMul(tf.transpose(a), b) : tf.transpose(tf.matMul(tf.transpose(b), a)); // aᵀb = (bᵀa)ᵀ
      return b.size <= a.size ? tf.matMul(a, tf.transpose(b)) : tf.transpose(tf.matMul(b, tf.transpose(a))); // abᵀ = (baᵀ)ᵀ
    }) as tf.Tensor2D;
  },
  splitHeads(qkv, heads) {
    const [n, t, d3] = qkv.shape;
    const dh = d3 / 3 / heads;
    return tf.split(qkv, 3, 2).map((part) => tf.transpose(tf.reshape(part, [n, t, heads, dh]), [0, 2, 1, 3])) as Heads;
  },
  joinHeads: (q, k, v) => tf.concat([q, k, v].map(mergeHeads), 2),
};

const BY_BACKEND: Readonly<Record<string, BlockKernels>> = { wasm };

/** The kernel choices of the active backend. */
export function blockKernels(): BlockKernels {
  return BY_BACKEND[tf.getBackend()] ?? generic;
}

/**
 * The engine's gradient depth (> 0 while a gradient tape is recording, e.g. inside a customGrad's
 * backward of a higher-order gradient). Private engine state of tfjs-core 4.x, read here only.
 */
export function gradientDepth(): number {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth;
}

export interface KernelOptions {
  /** fused AdamW + EMA update (webgpu only); default on */
  fusedOptimizer: boolean;
  /** fused block kernels: LayerNorm + modulate, GELU, softmax backward (webgpu only); default on */
  fusedBlock: boolean;
  /**
   * with fusedBlock: also the bias add in the matMul kernel, the gated residual x + g ⊙ a, the gate and
   * scale gradients Σ_T a ⊙ b and the residual add in the LN backward as single kernels; default on
   */
  fusedEpilogue: boolean;
  /** with fusedEpilogue: the bias add in the matMul kernel (_FusedMatMul); default on */
  fusedBias: boolean;
  /**
   * the whole DiT block, forward and backward, as our own WGSL kernels dispatched directly
   * (src/backends/webgpu/dit-block.ts; webgpu only); default on
   */
  rawBlock: boolean;
  /**
   * with rawBlock: the whole training step (edges, blocks, FPDM's iterations, loss, every backward) on
   * those kernels without TF.js's gradient tape (src/backends/webgpu/train-step.ts); default on
   */
  directStep: boolean;
}

const options: KernelOptions = {
  fusedOptimizer: true,
  fusedBlock: true,
  fusedEpilogue: true,
  fusedBias: true,
  rawBlock: true,
  directStep: true,
};

/** Switches kernel choices (the bench measures with and without); returns the previous options. */
export function setKernelOptions(o: Partial<KernelOptions>): KernelOptions {
  const prev = { ...options };
  Object.assign(options, o);
  return prev;
}

export function kernelOptions(): KernelOptions {
  return { ...options };
}

/** The fused optimizer kernels for the active backend, or null where the TF.js op sequence is used. */
export function fusedOptimizerKernels(): FusedOptimizerKernels | null {
  if (!options.fusedOptimizer || tf.getBackend() !== 'webgpu') return null;
  return webgpuOptimizerKernels();
}

/**
 * Fused forms of the block's elementwise and row-wise op families (the same values up to the order
 * of row sums). The model code calls these where they exist and its TF.js op sequence otherwise.
 */
export interface FusedBlockKernels {
  /** modulate(LayerNorm(x), shift, scale): x [N, T, D], shift, scale [N, D] */
  lnModulate(x: tf.Tensor3D, shift: tf.Tensor2D, scale: tf.Tensor2D): tf.Tensor3D;
  /** LayerNorm without affine parameters, eps 1e-6, of x [N, T, D] */
  layerNorm(x: tf.Tensor3D): tf.Tensor3D;
  /** the backward of lnModulate given its output gradient */
  lnModulateBackward(
    x: tf.Tensor3D,
    shift: tf.Tensor2D,
    scale: tf.Tensor2D,
    dmod: tf.Tensor3D,
    residual?: tf.Tensor,
  ): { dx: tf.Tensor; dshift: tf.Tensor; dscale: tf.Tensor };
  /** tanh-GELU (as x·σ(2u)) and its backward dy ⊙ GELU'(h) */
  gelu(x: tf.Tensor): tf.Tensor;
  geluBackward(h: tf.Tensor, dy: tf.Tensor): tf.Tensor;
  /** P ⊙ (dP − Σ_last dP ⊙ P) */
  softmaxBackward(p: tf.Tensor, dP: tf.Tensor): tf.Tensor;
  /** x + g ⊙ a, g per sample: x, a [N, T, D], g [N, D] */
  gatedResidual(x: tf.Tensor3D, g: tf.Tensor2D, a: tf.Tensor3D): tf.Tensor3D;
  /** Σ_T a ⊙ b: a, b [N, T, D] → [N, D] */
  colDot(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor2D;
  /** x·Wᵀ + b with the bias added in the matMul kernel: x [M, in], W [out, in], b [out] */
  linearBias(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor): tf.Tensor2D;
}

const webgpuFusedBlock: FusedBlockKernels = {
  lnModulate: webgpuBlock.lnModulate,
  layerNorm: webgpuBlock.layerNorm3d,
  lnModulateBackward: webgpuBlock.lnModulateBackward,
  gelu: webgpuBlock.gelu,
  geluBackward: webgpuBlock.geluBackward,
  softmaxBackward: webgpuBlock.softmaxBackward,
  gatedResidual: webgpuBlock.gatedResidual,
  colDot: webgpuBlock.colDot,
  linearBias: webgpuBlock.linearBias,
};

/** The fused kernels of the first round only (fusedEpilogue off): the others as their TF.js op sequences. */
const webgpuFusedBlockNoEpilogue: FusedBlockKernels = {
  ...webgpuFusedBlock,
  lnModulateBackward: (x, shift, scale, dmod, residual) => {
    const r = webgpuBlock.lnModulateBackwardUnfused(x, shift, scale, dmod);
    if (!residual) return r;
    const dx = tf.add(residual, r.dx);
    r.dx.dispose();
    return { ...r, dx };
  },
  gatedResidual: (x, g, a) => tf.tidy(() => tf.add(x, tf.mul(tf.reshape(g, [g.shape[0], 1, g.shape[1]]), a))),
  colDot: (a, b) => tf.tidy(() => tf.sum(tf.mul(a, b), 1)),
  linearBias: (x, w, b) => tf.tidy(() => tf.add(tf.matMul(x, w, false, true), b)),
};

/** The epilogue fusions without the bias in the matMul kernel (matMul, then add). */
const webgpuFusedBlockNoBias: FusedBlockKernels = {
  ...webgpuFusedBlock,
  linearBias: webgpuFusedBlockNoEpilogue.linearBias,
};

/** The fused block kernels of the active backend, or null where the TF.js op sequence is used. */
export function fusedBlockKernels(): FusedBlockKernels | null {
  if (!options.fusedBlock || tf.getBackend() !== 'webgpu') return null;
  webgpuBlock.registerWebgpuBlockKernels();
  if (!options.fusedEpilogue) return webgpuFusedBlockNoEpilogue;
  return options.fusedBias ? webgpuFusedBlock : webgpuFusedBlockNoBias;
}

/**
 * Whether a gradient tape records the ops run now at the outermost level (TF.js autodiff of plain
 * ops). Inside a customGrad's forward or a kernel the depth counters say so too, but nothing is taped
 * there. Private engine state of tfjs-core 4.x, read here only.
 */
export function tapeRecording(): boolean {
  const st = (tf.engine() as unknown as { state: { gradientDepth: number; kernelDepth: number } }).state;
  return st.gradientDepth > 0 && st.kernelDepth === 0;
}

/** The DiT block as one forward and one backward of our own kernels (the same values as blockForward / blockBackward). */
export interface RawBlockKernels {
  forward(x: tf.Tensor3D, c: tf.Tensor2D, w: tf.Tensor[], heads: number): { out: tf.Tensor3D; s: BlockSaved };
  backward(s: BlockSaved, c: tf.Tensor2D, w: tf.Tensor[], dy: tf.Tensor3D, heads: number): tf.Tensor[];
  /** FPDM's step projection u = fc2(GELU(fc1([z, inj]))): p1 (fc1's output, saved) and u; w = [W1, b1, W2, b2] */
  projectionForward(z: tf.Tensor3D, inj: tf.Tensor3D, w: tf.Tensor[]): { p1: tf.Tensor3D; u: tf.Tensor3D };
  /** its backward: [dz, dinj, dW1, db1, dW2, db2] */
  projectionBackward(z: tf.Tensor3D, inj: tf.Tensor3D, p1: tf.Tensor3D, du: tf.Tensor3D, w: tf.Tensor[]): tf.Tensor[];
  /** forward's output alone, no intermediates kept (nothing will run the backward: sampling, no-gradient iterations) */
  forwardOutput(x: tf.Tensor3D, c: tf.Tensor2D, w: tf.Tensor[], heads: number): tf.Tensor3D;
  /** projectionForward's u alone (p1 not kept) */
  projectionOutput(z: tf.Tensor3D, inj: tf.Tensor3D, w: tf.Tensor[]): tf.Tensor3D;
}

/** rawBlockKernels' record, made once per direct-dispatch runtime (it is asked for at every block call). */
let rawBlockRecord: { rk: RawKernels; kernels: RawBlockKernels } | null = null;

/** The direct-dispatch block kernels of the active backend, or null where the TF.js ops (fused or not) run. */
export function rawBlockKernels(): RawBlockKernels | null {
  if (!options.rawBlock) return null;
  const rk = rawKernels();
  if (!rk) return null;
  if (rawBlockRecord?.rk !== rk) rawBlockRecord = { rk, kernels: rawBlockKernelsOf(rk) };
  return rawBlockRecord.kernels;
}

function rawBlockKernelsOf(rk: RawKernels): RawBlockKernels {
  return {
    forward: (x, c, w, heads) => rawBlockForward(rk, x, c, w, heads),
    backward: (s, c, w, dy, heads) => rawBlockBackward(rk, s, c, w, dy, heads),
    // fc1's injection half once per solve (the same inj tensor comes back every iteration)
    projectionForward: (z, inj, w) => rawProjectionForward(rk, z, inj, w, injectionProjectionFor(rk, inj, w)),
    projectionBackward: (z, inj, p1, du, w) => rawProjectionBackward(rk, z, inj, p1, du, w),
    forwardOutput: (x, c, w, heads) => rawBlockForward(rk, x, c, w, heads, false).out,
    projectionOutput: (z, inj, w) => rawProjectionForward(rk, z, inj, w, injectionProjectionFor(rk, inj, w), false).u,
  };
}

/** What the model's edges read of a model: its config, parameters by state_dict name, and the pos_embed buffer. */
export type EdgeModel = StepModel;

/**
 * The model's edges as direct dispatches (src/backends/webgpu/edges.ts: the same values as blocks.ts
 * patchEmbed + pos, timestepEmbedder, labelEmbedder, finalLayer + unpatchify, linear). Every tensor
 * returned is new and owned by the caller.
 */
export interface DirectEdgeKernels {
  /**
   * x [N, C, H, W], t [N] (the model's timesteps), y [N] labels → h = PatchEmbed(x) + pos [N, T, D],
   * c = t_emb + y_emb [N, D], and y_emb [N, D] alone with `withYEmb`
   */
  embed(
    m: EdgeModel,
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    withYEmb: boolean,
  ): { h: tf.Tensor3D; c: tf.Tensor2D; yEmb?: tf.Tensor2D };
  /** the final layer and unpatchify: h [N, T, D], c [N, D] → [N, Co, H, W] */
  final(m: EdgeModel, h: tf.Tensor3D, c: tf.Tensor2D): tf.Tensor4D;
  /** x·Wᵀ + b over the last axis: x [N, T, in], W [out, in], b [out] → [N, T, out] */
  linear(x: tf.Tensor3D, w: tf.Tensor, b: tf.Tensor): tf.Tensor3D;
}

/**
 * The model forward's edges as direct dispatches where the backend has them (webgpu with the
 * direct-dispatch kernels on) and no gradient tape records (they are not differentiable by autodiff);
 * else null (the caller's TF.js ops).
 */
export function directEdgeKernels(): DirectEdgeKernels | null {
  if (!options.rawBlock || tapeRecording()) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return {
    embed(m, x, t, y, withYEmb) {
      const yi = y.dtype === 'int32' ? y : tf.cast(y, 'int32'); // the kernel reads int32 labels
      const z = edgeDims(m.config, m.params, x.shape[0]);
      const e = rawEmbedModel(rk, z, { x, ts: t, y: yi, pos: m.posEmbed }, byRole(m.params, EMBED_NAMES), withYEmb);
      if (yi !== y) yi.dispose();
      return { h: e.h0, c: e.c, ...(e.yEmb ? { yEmb: e.yEmb } : {}) };
    },
    final: (m, h, c) =>
      rawFinalForward(rk, edgeDims(m.config, m.params, h.shape[0]), h, c, byRole(m.params, FINAL_NAMES)),
    linear: (x, w, b) => rawLinearForward(rk, x, w, b),
  };
}

/**
 * ‖next − prev‖ / (‖prev‖ + 1e-12) as two direct dispatches where the backend has them (webgpu with the
 * direct-dispatch kernels on), else null (the caller's TF.js ops).
 */
export function relativeResidualKernel(next: tf.Tensor, prev: tf.Tensor): tf.Scalar | null {
  if (!options.rawBlock) return null;
  const rk = rawKernels();
  return rk ? rawRelativeResidual(rk, next, prev) : null;
}

/** A solver's relative residuals recorded one by one into a vector on the device. */
export interface ResidualVector {
  /** [count] float32, owned by the caller; element k holds what record(k, …) computed */
  vector: tf.Tensor1D;
  /** ‖next − prev‖ / (‖prev‖ + 1e-12) into element k */
  record(k: number, next: tf.Tensor, prev: tf.Tensor): void;
}

/**
 * A vector of `count` residuals filled by direct dispatches (no TF.js kernel to stack them) where the
 * backend has them (webgpu with the direct-dispatch kernels on), else null (the caller's scalars and stack).
 */
export function residualVectorKernel(count: number): ResidualVector | null {
  if (!options.rawBlock || count < 1) return null;
  const rk = rawKernels();
  if (!rk) return null;
  const vector = rk.output([count]).tensor as tf.Tensor1D;
  return { vector, record: (k, next, prev) => rawRelativeResidualInto(rk, next, prev, vector, k) };
}

/**
 * The batch-mean training loss of `process` as one op whose gradient w.r.t. the model output comes from
 * the same direct dispatches (src/backends/webgpu/loss.ts), where the backend has them and the objective
 * is covered (learned-range variance, hybrid loss); else null (the caller's TF.js ops).
 */
export function directLossMean(process: GaussianDiffusion): ((inp: LossInputsRaw) => tf.Scalar) | null {
  if (!options.rawBlock || !rawLossSupported(process)) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return (inp) => {
    const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [mo, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
      const { loss, grad } = rawLossAndGradient(rk, process, { ...inp, modelOutput: mo });
      save([grad]);
      return { value: loss, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(saved[0]!, dy) };
    });
    return op(inp.modelOutput) as tf.Scalar;
  };
}

export type { SamplerStepInput };

/**
 * A sampling step's arithmetic (process.ts pMeanVariance, then pSampleStep or ddimStep) as one direct
 * dispatch (src/backends/webgpu/sampler.ts: the same values to float32 rounding) where the backend has
 * the direct-dispatch kernels (webgpu with rawBlock on), else null (the caller's TF.js ops). The
 * function returns x_{t−1} (a new tensor), or null for a step it does not take (a coefficient that is
 * not finite: the TF.js ops then).
 */
export function directSamplerStep(process: GaussianDiffusion): ((inp: SamplerStepInput) => tf.Tensor4D | null) | null {
  if (!options.rawBlock) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return (inp) => rawSamplerStep(rk, process, inp);
}

/** Classifier-free guidance's two elementwise pieces as direct dispatches (the same values). */
export interface DirectCfgKernels {
  /**
   * x [N, C, H, W], t [N], y [N] → x twice [2N, C, H, W], t twice [2N], the labels then `nullLabel` [2N]
   * (int32); null where the TF.js ops must do it (labels not int32)
   */
  inputs(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    nullLabel: number,
  ): { x2: tf.Tensor4D; t2: tf.Tensor1D; y2: tf.Tensor1D } | null;
  /** out [2N, C', H, W] (conditional half first) → uncond + s·(cond − uncond) [N, C', H, W] */
  combine(out: tf.Tensor4D, scale: number, channels: 'all' | 'first3'): tf.Tensor4D;
}

/**
 * src/diffusion/cfg.ts's batch doubling and guidance as one direct dispatch each
 * (src/backends/webgpu/sampler.ts) where the backend has the direct-dispatch kernels, else null.
 */
export function directCfgKernels(): DirectCfgKernels | null {
  if (!options.rawBlock) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return {
    inputs: (x, t, y, nullLabel) => rawCfgInputs(rk, x, t, y, nullLabel),
    combine: (out, scale, channels) => rawCfgCombine(rk, out, scale, channels),
  };
}

export type { DirectStepForward, DirectStepInput, DirectStepResult, StepModel };

/**
 * The training step's forward, loss and backward without a gradient tape, as direct dispatches
 * (src/backends/webgpu/train-step.ts: the same loss and gradients as the taped step), where the backend
 * has them and the objective is covered (webgpu, learned-range variance, hybrid loss); else null (the
 * caller's tf.variableGrads).
 */
/**
 * A new tensor of `values`: on webgpu written straight into its device buffer where nothing is recorded
 * but unsubmitted (RawKernels.upload: the training loop's inputs at the start of a step), else tf.tensor.
 */
export function hostTensor(
  values: Float32Array | Int32Array,
  shape: number[],
  dtype: 'float32' | 'int32' = 'float32',
): tf.Tensor {
  const rk = rawKernels();
  return rk ? rk.upload(values, shape, dtype) : tf.tensor(values, shape, dtype);
}

export function directTrainingStep(
  process: GaussianDiffusion,
  model: StepModel,
): ((inp: DirectStepInput) => DirectStepResult) | null {
  if (!options.rawBlock || !options.directStep || !rawLossSupported(process)) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return (inp) => rawTrainingStep(rk, model, process, inp);
}

/**
 * directTrainingStep in two parts (train-step.ts rawTrainingStepForward): the forward recorded now, the
 * loss and backward at `finish(lossScale)`; null where directTrainingStep is.
 */
export function directTrainingStepForward(
  process: GaussianDiffusion,
  model: StepModel,
): ((inp: Omit<DirectStepInput, 'lossScale'>) => DirectStepForward) | null {
  if (!options.rawBlock || !options.directStep || !rawLossSupported(process)) return null;
  const rk = rawKernels();
  if (!rk) return null;
  return (inp) => rawTrainingStepForward(rk, model, process, inp);
}
