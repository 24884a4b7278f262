// The DiT block (and FPDM's fixed-point step) as ONE differentiable op with a hand-written backward,
// so that training keeps only what the backward needs — optionally only the op's inputs (gradient
// checkpointing: the forward is recomputed in the backward pass).
//
// Why (measured with bench/memprofile.ts, DiT-S/2 width, wasm): TF.js autodiff saves, for every small op,
// the inputs/outputs its gradient is declared to need — Add, Sub and Reshape save their inputs only
// for their shapes, tanh-GELU alone kept ~13 copies of its [N, T, 4D] input, LayerNorm + modulate
// ~8 of [N, T, D] — and the engine frees saved tensors and intermediate gradients only after the
// WHOLE backward pass. Per block that was ~4× what PyTorch autograd keeps.
//
// The forward is blocks.ts `blockForward`, the one definition of the block (also the tests' oracle).
// Saved for the backward (shapes legend in src/util/shapes.ts; Dh = D/K; per token, in floats):
//   default     x (D), q/√Dh, k, v (3D), softmax probabilities P (K·T), merged heads (D), attention
//               output a (D), x1 (D), fc1 output h (4D), fc2 output m (D)         = 12·D + K·T
//   checkpoint  x and c only; everything above is recomputed from them in the backward
// Recomputed in the backward in both modes (elementwise, cheap): adaLN vectors from c, LayerNorm +
// modulate outputs from x and x1, GELU(h). Both modes run the same backward on the same values, so
// their gradients are bitwise equal. Saved tensors are released as soon as the op's backward has run.
//
// Backward of one block (⊙ elementwise, Σ_T sum over tokens, rows are tokens, W stored [out, in]):
//   out = x1 + g2 ⊙ m                  dm = dy ⊙ g2;  dg2 = Σ_T dy ⊙ m;  dx1 = dy
//   m = GELU(h)·W2ᵀ + b2               dgelu = dm·W2;  dW2 = dmᵀ·GELU(h);  db2 = Σ dm
//   GELU'(h) = σ + 2h·σ(1 − σ)·√(2/π)(1 + 3·0.044715h²), σ = σ(2u) = ½(1 + tanh u), u = √(2/π)(h + 0.044715h³)
//   h = mod2·W1ᵀ + b1                  dmod2 = dh·W1;  dW1 = dhᵀ·mod2;  db1 = Σ dh
//   mod2 = ln2 ⊙ (1 + s2) + sh2        dln2 = dmod2 ⊙ (1 + s2);  ds2 = Σ_T dmod2 ⊙ ln2;  dsh2 = Σ_T dmod2
//   ln2 = (x1 − μ)·r                   dx1 += r·(dln2 − mean_D(dln2) − ln2 ⊙ mean_D(dln2 ⊙ ln2))
//   x1 = x + g1 ⊙ a                    da = dx1 ⊙ g1;  dg1 = Σ_T dx1 ⊙ a;  dx = dx1
//   a = merged·Wpᵀ + bp                dmerged = da·Wp; …
//   o = P·v, P = softmax(S), S = qs·kᵀ dv = Pᵀ·do;  dP = do·vᵀ;  dS = P ⊙ (dP − Σ_last dP ⊙ P);
//                                      dqs = dS·k;  dk = dSᵀ·qs;  dq = dqs / √Dh
//   qkv = mod1·Wqkvᵀ + bqkv, mod1, ln1 as above; dx += LN backward
//   [sh1, s1, g1, sh2, s2, g2] = SiLU(c)·Waᵀ + ba    dWa = dadaᵀ·SiLU(c);  dc = (dada·Wa) ⊙ SiLU'(c)
import * as tf from '@tensorflow/tfjs-core';
import { blockKernels, fusedBlockKernels, gradientDepth, rawBlockKernels, tapeRecording } from '../backends/kernels.js';
import {
  BLOCK_PARAM_NAMES,
  SAVED_ORDER,
  blockForward,
  chain,
  ditBlock,
  geluTanh,
  geluTanhBackward,
  linear,
  lnModulate,
  matMul2d,
  paramList,
  silu,
  type BlockSaved,
  type Params,
} from './blocks.js';

/** FPDM's input projection parameters, before the block's, in the step op's input order. */
export const PROJECTION_PARAM_NAMES = [
  'block_fixed_point_projection_fc1.weight',
  'block_fixed_point_projection_fc1.bias',
  'block_fixed_point_projection_fc2.weight',
  'block_fixed_point_projection_fc2.bias',
] as const;

/** P ⊙ (dP − Σ_last dP ⊙ P): the softmax backward, two [N, K, T, T] buffers beside P at a time. */
function softmaxBackward(p: tf.Tensor, dP: tf.Tensor): tf.Tensor {
  const fused = fusedBlockKernels();
  if (fused) return fused.softmaxBackward(p, dP);
  const rowDot = chain(
    dP,
    (t) => tf.mul(t, p),
    (t) => tf.sum(t, -1, true),
  );
  const out = chain(
    dP,
    (t) => tf.sub(t, rowDot),
    (t) => tf.mul(p, t),
  );
  rowDot.dispose();
  return out;
}

/** Σ_T dy ⊙ h: the gradient of a per-sample gate g in x + g ⊙ h. dy, h [N, T, D] → [N, D]. */
function gateGrad(dy: tf.Tensor3D, h: tf.Tensor3D): tf.Tensor {
  const fused = fusedBlockKernels();
  if (fused) return fused.colDot(dy, h);
  return tf.tidy(() => tf.sum(tf.mul(dy, h), 1));
}

/** Backward of y = x·Wᵀ + b over the last axis. x [..., in], dy [..., out] → dx [..., in], dW [out, in], db [out]. */
function linearBackward(x: tf.Tensor, w: tf.Tensor, dy: tf.Tensor): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const inDim = x.shape[x.shape.length - 1]!;
  const outDim = w.shape[0]!;
  const x2 = tf.reshape(x, [-1, inDim]) as tf.Tensor2D; // [M, in]
  const dy2 = tf.reshape(dy, [-1, outDim]) as tf.Tensor2D; // [M, out]
  const dx = tf.reshape(tf.matMul(dy2, w as tf.Tensor2D), x.shape); // [..., in]
  const dw = matMul2d(dy2, x2, true, false); // [out, in]
  const db = tf.sum(dy2, 0); // [out]
  return [dx, dw, db];
}

/**
 * Backward of modulate(LayerNorm(x), shift, scale) given its output gradient. x, dmod [N, T, D];
 * scale [N, D] → dx [N, T, D] (plus `residual`, the gradient reaching x by the skip connection),
 * dshift [N, D], dscale [N, D].
 */
function lnModulateBackward(
  x: tf.Tensor3D,
  shift: tf.Tensor2D,
  scale: tf.Tensor2D,
  dmod: tf.Tensor3D,
  residual: tf.Tensor,
): { dx: tf.Tensor; dshift: tf.Tensor; dscale: tf.Tensor } {
  const fused = fusedBlockKernels();
  if (fused) return fused.lnModulateBackward(x, shift, scale, dmod, residual);
  const [n, , d] = x.shape;
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true);
    const r = tf.rsqrt(tf.add(variance, 1e-6)); // [N, T, 1] (layerNorm's eps)
    const ln = tf.mul(tf.sub(x, mean), r); // [N, T, D], as layerNorm computes it
    const dshift = tf.sum(dmod, 1); // [N, D]
    const dscale = tf.sum(tf.mul(dmod, ln), 1); // [N, D]
    const dln = tf.mul(dmod, tf.add(tf.reshape(scale, [n, 1, d]), 1)); // [N, T, D]
    const dx = tf.add(
      residual,
      tf.mul(r, tf.sub(tf.sub(dln, tf.mean(dln, -1, true)), tf.mul(ln, tf.mean(tf.mul(dln, ln), -1, true)))),
    );
    return { dx, dshift, dscale };
  });
}

/**
 * Backward of one block from its saved (or recomputed) intermediates. dy [N, T, D] →
 * [dx, dc, ...dW in BLOCK_PARAM_NAMES order].
 */
function blockBackward(s: BlockSaved, c: tf.Tensor2D, w: tf.Tensor[], dy: tf.Tensor3D, heads: number): tf.Tensor[] {
  const raw = rawBlockKernels();
  if (raw) return raw.backward(s, c, w, dy, heads);
  const [wa, ba, wqkv, , wp, , w1, , w2] = w as tf.Tensor[];
  const [n, t, d] = s.x.shape;
  const dh = d / heads;
  // stages in their own tidies (as the forward), so the transient of the backward is one stage's
  return tf.tidy(() => {
    const sc = silu(c); // [N, D]
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = tf.split(
      linear(sc, wa!, ba),
      6,
      1,
    ) as tf.Tensor2D[];
    // out = x1 + gateMlp ⊙ m
    const dGateMlp = gateGrad(dy, s.m);
    // m = GELU(h)·W2ᵀ + b2, h = mod2·W1ᵀ + b1
    const [dhid, dw2, db2] = tf.tidy(() => {
      const dm = tf.mul(dy, tf.reshape(gateMlp!, [n, 1, d]));
      const [dg, dw2, db2] = linearBackward(geluTanh(s.h), w2!, dm);
      return [geluTanhBackward(s.h, dg), dw2, db2];
    });
    const [dmod2, dw1, db1] = tf.tidy(() => linearBackward(lnModulate(s.x1, shiftMlp!, scaleMlp!), w1!, dhid!));
    const ln2 = lnModulateBackward(s.x1, shiftMlp!, scaleMlp!, dmod2 as tf.Tensor3D, dy);
    const dx1 = ln2.dx as tf.Tensor3D; // dy + the LN backward
    // x1 = x + gateMsa ⊙ a, a = merged·Wpᵀ + bp
    const dGateMsa = gateGrad(dx1, s.a);
    const [dmerged, dwp, dbp] = tf.tidy(() =>
      linearBackward(s.merged, wp!, tf.mul(dx1, tf.reshape(gateMsa!, [n, 1, d]))),
    );
    // attention core
    const dqkv = tf.tidy(() => {
      const dO = tf.transpose(tf.reshape(dmerged!, [n, t, heads, dh]), [0, 2, 1, 3]) as tf.Tensor4D; // [N, K, T, Dh]
      const dv = tf.matMul(s.p, dO, true, false); // [N, K, T, Dh]
      const dP = tf.matMul(dO, s.v, false, true); // [N, K, T, T]
      const dS = softmaxBackward(s.p, dP); // [N, K, T, T]
      dP.dispose();
      const dq = tf.mul(tf.matMul(dS, s.k), 1 / Math.sqrt(dh)); // [N, K, T, Dh]
      const dk = tf.matMul(dS, s.qs, true, false); // [N, K, T, Dh]
      return blockKernels().joinHeads(dq as tf.Tensor4D, dk as tf.Tensor4D, dv as tf.Tensor4D); // [N, T, 3D]
    });
    const [dmod1, dwqkv, dbqkv] = tf.tidy(() => linearBackward(lnModulate(s.x, shiftMsa!, scaleMsa!), wqkv!, dqkv));
    const ln1 = lnModulateBackward(s.x, shiftMsa!, scaleMsa!, dmod1 as tf.Tensor3D, dx1);
    const dx = ln1.dx; // dx1 + the LN backward
    // adaLN: [shift1, scale1, gate1, shift2, scale2, gate2] = SiLU(c)·Waᵀ + ba
    const dada = tf.concat([ln1.dshift, ln1.dscale, dGateMsa, ln2.dshift, ln2.dscale, dGateMlp], 1); // [N, 6D]
    const [dsc, dwa, dba] = linearBackward(sc, wa!, dada);
    const sig = tf.sigmoid(c);
    const dc = tf.mul(dsc, tf.mul(sig, tf.add(1, tf.mul(c, tf.sub(1, sig))))); // SiLU'(c) = σ(1 + c(1 − σ))
    return [dx, dc, dwa, dba, dwqkv!, dbqkv!, dwp!, dbp!, dw1!, db1!, dw2!, db2!];
  });
}

/** Releases the tensors an op saved once its backward has run (a first-order gradient: the tape is then discarded). */
function releaseSaved(saved: tf.Tensor[]): void {
  if (gradientDepth() === 0) tf.dispose(saved);
}

/**
 * DiT block (adaLN-Zero) as one op: forward blocks.ts blockForward, a hand-written backward, and
 * with `checkpoint` only x and c kept for it. x [N, T, D], c [N, D] → [N, T, D]. Where no tape records
 * (sampling, S-JFB's no-grad iterations) the forward runs alone (blocks.ts ditBlock, the same values):
 * the op's customGrad would save nothing there, yet it is one more engine kernel per block with its
 * own host bookkeeping.
 */
export function ditBlockOp(
  p: Params,
  prefix: string,
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  heads: number,
  checkpoint = false,
): tf.Tensor3D {
  if (!tapeRecording()) return ditBlock(p, prefix, x, c, heads);
  const w = paramList(p, prefix, BLOCK_PARAM_NAMES);
  // the weights are read from `w` in the backward, not saved: they are variables, alive and unchanged
  // until the optimizer step (and saving clones would copy them on backends whose clone copies, e.g. wasm)
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xi, ci] = args as [tf.Tensor3D, tf.Tensor2D];
    const { out, s } = blockForward(xi, ci, w, heads);
    save(checkpoint ? [xi, ci] : [ci, ...SAVED_ORDER.map((k) => s[k])]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads = tf.tidy(() => {
          if (checkpoint) {
            const [xs, cs] = saved as [tf.Tensor3D, tf.Tensor2D];
            return blockBackward(blockForward(xs, cs, w, heads).s, cs, w, dy as tf.Tensor3D, heads);
          }
          const st = Object.fromEntries(SAVED_ORDER.map((k, i) => [k, saved[1 + i]!])) as unknown as BlockSaved;
          return blockBackward(st, saved[0] as tf.Tensor2D, w, dy as tf.Tensor3D, heads);
        });
        releaseSaved(saved);
        return grads;
      },
    };
  });
  return op(x, c, ...w) as tf.Tensor3D;
}

const N_PROJ = PROJECTION_PARAM_NAMES.length;

/**
 * FPDM's fixed-point step, forward — the one definition (the op below and the tests' oracle run it):
 * u = fc2(GELU_tanh(fc1([z, inj]))), out = Block_fp(u, c). w: PROJECTION_PARAM_NAMES then the block's
 * BLOCK_PARAM_NAMES. z, inj [N, T, D], c [N, D] → out [N, T, D], with the fc1 output p1 [N, T, 2D]
 * and the block's intermediates for the backward. (webgpu: the projection on our own kernels, as the
 * block, where no tape records.)
 */
function stepForward(
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
): { out: tf.Tensor3D; p1: tf.Tensor3D; s: BlockSaved } {
  const raw = rawBlockKernels();
  const { p1, u } =
    raw && !tapeRecording()
      ? raw.projectionForward(z, inj, w.slice(0, N_PROJ))
      : tf.tidy(() => {
          const p1 = linear(tf.concat([z, inj], 2), w[0]!, w[1]) as tf.Tensor3D; // [N, T, 2D]
          return { p1, u: linear(geluTanh(p1), w[2]!, w[3]) as tf.Tensor3D }; // [N, T, D]
        });
  const { out, s } = blockForward(u, c, w.slice(N_PROJ), heads);
  return { out, p1, s };
}

/** The parameters of FPDM's fixed-point step in stepForward's order. */
function stepParams(p: Params): tf.Tensor[] {
  return [...paramList(p, '', PROJECTION_PARAM_NAMES), ...paramList(p, 'block_fixed_point', BLOCK_PARAM_NAMES)];
}

/** FPDM's fixed-point step as plain (autodiff) ops, stepForward's output only. z, inj [N, T, D], c [N, D] → [N, T, D]. */
export function fixedPointStep(
  p: Params,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  c: tf.Tensor2D,
  heads: number,
): tf.Tensor3D {
  const w = stepParams(p);
  // webgpu, no tape: stepForward's kernels without p1 and the block's intermediates (nothing reads them)
  const raw = rawBlockKernels();
  if (raw && !tapeRecording()) {
    const u = raw.projectionOutput(z, inj, w.slice(0, N_PROJ));
    try {
      return raw.forwardOutput(u, c, w.slice(N_PROJ), heads);
    } finally {
      u.dispose();
    }
  }
  return tf.tidy(() => stepForward(z, inj, c, w, heads).out);
}

/**
 * FPDM's fixed-point step as one op: stepForward (the same forward as fixedPointStep), a hand-written
 * backward; with `checkpoint` only z, inj and c are kept. z, inj [N, T, D], c [N, D] → [N, T, D]. Where
 * no tape records, fixedPointStep alone (see ditBlockOp).
 */
export function fixedPointStepOp(
  p: Params,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  c: tf.Tensor2D,
  heads: number,
  checkpoint = false,
): tf.Tensor3D {
  if (!tapeRecording()) return fixedPointStep(p, z, inj, c, heads);
  const forward = (zi: tf.Tensor3D, ii: tf.Tensor3D, ci: tf.Tensor2D, wi: tf.Tensor[]) =>
    stepForward(zi, ii, ci, wi, heads);
  const backward = (
    zs: tf.Tensor3D,
    is: tf.Tensor3D,
    p1: tf.Tensor3D,
    s: BlockSaved,
    ci: tf.Tensor2D,
    wi: tf.Tensor[],
    dy: tf.Tensor3D,
  ): tf.Tensor[] => {
    const [du, dc, ...dwBlock] = blockBackward(s, ci, wi.slice(N_PROJ), dy, heads);
    const raw = rawBlockKernels();
    if (raw) {
      const [dz, dinj, dw1, db1, dw2, db2] = raw.projectionBackward(zs, is, p1, du as tf.Tensor3D, wi.slice(0, N_PROJ));
      return [dz!, dinj!, dc!, dw1!, db1!, dw2!, db2!, ...dwBlock];
    }
    const cat = tf.concat([zs, is], 2) as tf.Tensor3D; // [N, T, 2D]
    const [dp1, dw2, db2] = tf.tidy(() => {
      const [dgp, dw2, db2] = linearBackward(geluTanh(p1), wi[2]!, du!);
      return [geluTanhBackward(p1, dgp), dw2, db2];
    });
    const [dcat, dw1, db1] = linearBackward(cat, wi[0]!, dp1!);
    const [dz, dinj] = tf.split(dcat, 2, 2);
    return [dz!, dinj!, dc!, dw1, db1, dw2!, db2!, ...dwBlock];
  };
  const w = stepParams(p); // read in the backward, not saved (see ditBlockOp)
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [zi, ii, ci] = args as [tf.Tensor3D, tf.Tensor3D, tf.Tensor2D];
    const { out, p1, s } = forward(zi, ii, ci, w);
    // the concat [z, inj] is rebuilt from z and inj (kept anyway) rather than saved
    save(checkpoint ? [zi, ii, ci] : [zi, ii, ci, p1, ...SAVED_ORDER.map((k) => s[k])]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads = tf.tidy(() => {
          const [zs, is, cs] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor2D];
          if (checkpoint) {
            const re = forward(zs, is, cs, w);
            return backward(zs, is, re.p1, re.s, cs, w, dy as tf.Tensor3D);
          }
          const st = Object.fromEntries(SAVED_ORDER.map((k, i) => [k, saved[4 + i]!])) as unknown as BlockSaved;
          return backward(zs, is, saved[3] as tf.Tensor3D, st, cs, w, dy as tf.Tensor3D);
        });
        releaseSaved(saved);
        return grads;
      },
    };
  });
  return op(z, inj, c, ...w) as tf.Tensor3D;
}
