// A training step of DiT or FPDM without a gradient tape: forward, loss and backward as our own kernels
// dispatched directly (src/backends/webgpu/raw.ts) — the edges (edges.ts), every DiT block
// (dit-block.ts), FPDM's fixed-point step (fpdm-step.ts + the block), the loss (loss.ts) — in the order
// the tape would run them, with the intermediates each backward needs held here instead of by TF.js's
// engine (no customGrad clones, no autodiff bookkeeping: ≈ 10 host-side TF.js operations per step
// instead of several hundred). The values are those of src/training/loop.ts's taped step (the same
// functions, same gradients; sums in another order, so float32 rounding differs):
//
//   x_t = q_sample(x_0, t, ε); h = PatchEmbed(x_t) + pos; c = t_emb + y_emb
//   DiT   h → blocks → final → out
//   FPDM  h → blocks_pre (c_pp) → x_pre; inj = Linear(x_pre); z_0 = x_pre; n_ng iterations without
//         gradient; n_g iterations kept for backprop (the gradient reaches z_0 = x_pre only when n_ng = 0,
//         as the reference); → blocks_post (c_pp) → final (c_pp) → out
//   loss = mean_N(mse + vb) and ∂loss/∂out (loss.ts), then every backward in reverse order
//
// With gradCheckpoint each block (FPDM: each iteration) keeps only its input and is recomputed before
// its backward, as blockgrad.ts's checkpointed ops do.
//
// Loss scaling (mixed precision): with `lossScale` S the backward starts from S·∂loss/∂out, so every
// gradient returned is S times the true one (S a power of 2: exactly, barring overflow), and on the
// mixed-precision device the backward's large products (the blocks' MLP and projections, FPDM's
// projection) take f16 operands on the tensor cores — S keeps the small gradients inside f16's range.
// The optimizer divides by S (training/adamw.ts); the loop picks S (training/loss-scale.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { GaussianDiffusion, Timesteps } from '../../diffusion/process.js';
import { BLOCK_PARAM_NAMES, paramList, SAVED_ORDER, type BlockSaved, type Params } from '../../models/blocks.js';
import { PROJECTION_PARAM_NAMES } from '../../models/blockgrad.js';
import type { ModelConfig } from '../../models/config.js';
import { rawBlockBackward, rawBlockForward } from './dit-block.js';
import {
  byRole,
  edgeDims,
  EMBED_NAMES,
  FINAL_NAMES,
  rawAccumulate,
  rawEmbedBackward,
  rawEmbedForward,
  rawFinalBackward,
  rawFinalForward,
  rawLinearBackward,
  rawLinearForward,
  SAMPLE_VALUES,
  type EmbedParams,
  type FinalParams,
} from './edges.js';
import { rawInjectionProjection, rawProjectionBackward, rawProjectionForward } from './fpdm-step.js';
import { rawLossAndGradient } from './loss.js';
import type { RawKernels } from './raw.js';
import { invariant } from '../../util/errors.js';
import { rawRelativeResidual } from './residual.js';

/** What the step needs of a model: its config, parameters by state_dict name, and the pos_embed buffer. */
export interface StepModel {
  config: ModelConfig;
  params: Params;
  posEmbed: tf.Tensor;
}

export interface DirectStepInput {
  x0: tf.Tensor4D; // [N, C, H, W]
  noise: tf.Tensor4D; // ε, same shape
  t: Timesteps; // [N] indices into the process's tables
  y: tf.Tensor1D; // [N] int32 labels, dropped ones already the null class
  /** FPDM: S-JFB iterations without and with gradient (0 for DiT) */
  noGrad: number;
  withGrad: number;
  gradCheckpoint: boolean;
  /** FPDM: the relative residual of each with-gradient iteration, as a tensor */
  trackResiduals: boolean;
  /**
   * loss scaling: the gradients returned are S·∂loss/∂θ, and on the mixed-precision device the
   * backward's large products run in f16 (see the file header); absent: 1, all fp32
   */
  lossScale?: number;
}

export interface DirectStepResult {
  loss: tf.Scalar;
  /** ∂loss/∂θ by parameter name (every parameter) */
  grads: Map<string, tf.Tensor>;
  residuals?: tf.Tensor1D;
}

function savedTensors(s: BlockSaved): tf.Tensor[] {
  return [...SAVED_ORDER.map((k) => s[k]), ...(s.g ? [s.g] : [])];
}

/** Gradients by name; a name seen again is added into the first tensor (weight-tied blocks). */
class GradSink {
  readonly grads = new Map<string, tf.Tensor>();
  constructor(private readonly rk: RawKernels) {}

  put(name: string, g: tf.Tensor): void {
    const prev = this.grads.get(name);
    if (!prev) {
      this.grads.set(name, g);
      return;
    }
    if (prev === g) return; // added into already (the backward's `into`)
    rawAccumulate(this.rk, prev, g);
    g.dispose();
  }

  /** The gradients of `names` so far (for a backward to add into), or undefined until all have one. */
  existing(prefix: string, names: readonly string[]): tf.Tensor[] | undefined {
    const gs = names.map((n) => this.grads.get(prefix ? `${prefix}.${n}` : n));
    return gs.every((g) => g !== undefined) ? (gs as tf.Tensor[]) : undefined;
  }

  putAll(prefix: string, names: readonly string[], gs: tf.Tensor[]): void {
    names.forEach((n, i) => this.put(prefix ? `${prefix}.${n}` : n, gs[i]!));
  }
}

/** A running sum of [N, D] conditioning gradients (null until the first). */
class Sum {
  value: tf.Tensor | null = null;
  constructor(private readonly rk: RawKernels) {}
  add(g: tf.Tensor): void {
    if (!this.value) this.value = g;
    else {
      rawAccumulate(this.rk, this.value, g);
      g.dispose();
    }
  }
}

/** One DiT block kept for its backward: its saved intermediates, or with checkpointing its input only. */
type KeptBlock = { s: BlockSaved } | { x: tf.Tensor3D };

/** Runs one block forward; keeps what its backward needs; returns its output. */
function blockForward(
  rk: RawKernels,
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
  ckpt: boolean,
  kept: KeptBlock[],
): tf.Tensor3D {
  if (ckpt) {
    // the backward recomputes the intermediates: none are kept (scratch buffers of the block's plan)
    kept.push({ x });
    return rawBlockForward(rk, x, c, w, heads, false).out;
  }
  const { out, s } = rawBlockForward(rk, x, c, w, heads);
  kept.push({ s });
  return out;
}

/** The backward of a kept block: its input gradient (dy is disposed; so is everything the block kept). */
function blockBackward(
  rk: RawKernels,
  k: KeptBlock,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
  dy: tf.Tensor3D,
  prefix: string,
  sink: GradSink,
  dc: Sum,
  precision: 'fp32' | 'mixed',
): tf.Tensor3D {
  let s: BlockSaved;
  if ('s' in k) s = k.s;
  else {
    const re = rawBlockForward(rk, k.x, c, w, heads);
    re.out.dispose();
    s = re.s;
  }
  const [dx, dcb, ...dw] = rawBlockBackward(rk, s, c, w, dy, heads, precision);
  dy.dispose();
  tf.dispose(savedTensors(s));
  dc.add(dcb!);
  sink.putAll(prefix, BLOCK_PARAM_NAMES, dw);
  return dx as tf.Tensor3D;
}

/** One FPDM iteration kept for backprop: its input z, and fc1's output and the block's intermediates (without checkpointing). */
interface KeptIter {
  z: tf.Tensor3D;
  p1?: tf.Tensor3D;
  s?: BlockSaved;
}

/** The training step (see the file header); every tensor it returns is new and owned by the caller. */
export function rawTrainingStep(
  rk: RawKernels,
  model: StepModel,
  process: GaussianDiffusion,
  inp: DirectStepInput,
): DirectStepResult {
  return rawTrainingStepForward(rk, model, process, inp).finish(inp.lossScale);
}

/** A training step whose forward is recorded; the rest waits for the loss scale. */
export interface DirectStepForward {
  /**
   * The loss, its gradient (× `lossScale` where given, and then the backward's large products at the
   * device's forward precision, as DirectStepInput.lossScale) and the backward: the step's result.
   */
  finish(lossScale?: number): DirectStepResult;
  /** Drops what the forward holds (the step is not taken). */
  abandon(): void;
}

/**
 * The forward of rawTrainingStep (embedders, blocks, FPDM's iterations, final layer), recorded now; the
 * loss and the backward when `finish` is called. Nothing here depends on the loss scale, so the training
 * loop can record the next step's forward behind the current step's update before it reads the current
 * step's loss (whose overflow sets the next scale). The input tensors stay the caller's.
 */
export function rawTrainingStepForward(
  rk: RawKernels,
  model: StepModel,
  process: GaussianDiffusion,
  inp: Omit<DirectStepInput, 'lossScale'>,
): DirectStepForward {
  const cfg = model.config;
  const p = model.params;
  const N = inp.x0.shape[0];
  const z = edgeDims(cfg, p, N);
  const heads = cfg.numHeads;
  const ckpt = inp.gradCheckpoint;
  const tb = process.tables;
  const sv = new Float32Array(N * SAMPLE_VALUES);
  for (let i = 0; i < N; i++) {
    const k = inp.t[i]!;
    sv.set([tb.sqrtAlphasCumprod[k]!, tb.sqrtOneMinusAlphasCumprod[k]!, process.timestepMap[k]!], i * SAMPLE_VALUES);
  }
  const svT = rk.upload(sv, [N, SAMPLE_VALUES]) as tf.Tensor2D;
  const ew = byRole(p, EMBED_NAMES);
  const fw = byRole(p, FINAL_NAMES);
  const fpdm = cfg.kind === 'fpdm';
  const splitCond = fpdm && !cfg.prePostTimestepConditioning;
  const emb = rawEmbedForward(
    rk,
    z,
    { x0: inp.x0, noise: inp.noise, sv: svT, y: inp.y, pos: model.posEmbed },
    ew,
    splitCond,
  );
  const c = emb.c;
  const cPP = splitCond ? emb.yEmb! : c; // pre/post/final conditioning
  const sink = new GradSink(rk);
  const dC = new Sum(rk); // at c
  const dCPP = new Sum(rk); // at cPP (the same Sum as dC unless split)
  const dPP = splitCond ? dCPP : dC;
  const residuals: tf.Scalar[] = [];

  // ---- forward ------------------------------------------------------------------------------------
  const blocks = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({
      prefix: `${prefix}.${i}`,
      w: paramList(p, `${prefix}.${i}`, BLOCK_PARAM_NAMES),
    }));
  const trunk1 = fpdm ? blocks('blocks_pre', cfg.preDepth) : blocks('blocks', cfg.depth);
  const trunk2 = fpdm ? blocks('blocks_post', cfg.postDepth) : [];
  const kept1: KeptBlock[] = [];
  const kept2: KeptBlock[] = [];
  // the device starts while the blocks are recorded: a submit now, and after the first block (or, with
  // FPDM_SUBMIT_RAMP, after a first command buffer of that many dispatches and then of twice as many each)
  const ramp = rk.rampSubmits();
  let h = emb.h0;
  trunk1.forEach((b, i) => {
    h = blockForward(rk, h, cPP, b.w, heads, ckpt, kept1);
    if (i === 0 && !ramp) rk.flush();
  });
  // FPDM's middle
  const wProj = fpdm ? paramList(p, '', PROJECTION_PARAM_NAMES) : [];
  const wFix = fpdm ? paramList(p, 'block_fixed_point', BLOCK_PARAM_NAMES) : [];
  const wPre = fpdm ? [p.get('block_pre_projection.weight')!, p.get('block_pre_projection.bias')!] : [];
  let xPre: tf.Tensor3D | null = null;
  let inj: tf.Tensor3D | null = null;
  let injP: tf.Tensor3D | null = null; // fc1's inj half + bias, once per step (rawInjectionProjection)
  const iters: KeptIter[] = [];
  const step = (zi: tf.Tensor3D) => {
    const { p1, u } = rawProjectionForward(rk, zi, inj!, wProj, injP!);
    const { out, s } = rawBlockForward(rk, u, c, wFix, heads);
    return { out, p1, s };
  };
  if (fpdm) {
    xPre = h;
    inj = rawLinearForward(rk, xPre, wPre[0]!, wPre[1]!);
    injP = rawInjectionProjection(rk, inj, wProj);
    // an iteration whose intermediates nobody reads (the no-gradient ones; with checkpointing all of
    // them: the backward recomputes): fc1's output and the block's in scratch buffers, only u and z new
    const unsaved = (zi: tf.Tensor3D) => {
      const { u } = rawProjectionForward(rk, zi, inj!, wProj, injP!, false);
      const { out } = rawBlockForward(rk, u, c, wFix, heads, false);
      u.dispose();
      return out;
    };
    let zk = xPre;
    for (let k = 0; k < inp.noGrad; k++) {
      const out = unsaved(zk);
      if (zk !== xPre) zk.dispose();
      zk = out;
    }
    for (let k = 0; k < inp.withGrad; k++) {
      let out: tf.Tensor3D;
      if (ckpt) {
        out = unsaved(zk);
        iters.push({ z: zk });
      } else {
        const kept = step(zk);
        out = kept.out;
        iters.push({ z: zk, p1: kept.p1, s: kept.s });
      }
      if (inp.trackResiduals) residuals.push(rawRelativeResidual(rk, out, zk));
      zk = out;
    }
    // z_0 = x_pre itself reaches the post blocks (no iterations at all): a second reference, disposed apart
    h = zk === xPre ? (tf.clone(xPre) as tf.Tensor3D) : zk;
    for (const b of trunk2) h = blockForward(rk, h, cPP, b.w, heads, ckpt, kept2);
  }
  const out = rawFinalForward(rk, z, h, cPP, fw);
  // the whole forward submitted: recorded ahead of the previous step's read (the training loop), the
  // device runs it while the host waits
  rk.flush();
  let done = false;
  const abandon = (): void => {
    if (done) return;
    done = true;
    const held = new Set<tf.Tensor>([out, h, c, cPP, emb.xT, svT, ...residuals]);
    for (const k of [...kept1, ...kept2]) for (const t of 's' in k ? savedTensors(k.s) : [k.x]) held.add(t);
    for (const it of iters)
      for (const t of [it.z, ...(it.p1 ? [it.p1] : []), ...(it.s ? savedTensors(it.s) : [])]) held.add(t);
    for (const t of [xPre, inj, injP]) if (t) held.add(t);
    tf.dispose([...held]);
  };
  const finish = (lossScale?: number): DirectStepResult => {
    invariant(!done, 'rawTrainingStepForward: the step was finished or abandoned already');
    done = true;
    const bwd = lossScale !== undefined ? rk.forwardPrecision : 'fp32'; // the backward's large products
    const { loss, grad } = rawLossAndGradient(
      rk,
      process,
      {
        modelOutput: out,
        xStart: inp.x0,
        xT: emb.xT,
        noise: inp.noise,
        t: inp.t,
      },
      lossScale ?? 1,
    );
    out.dispose();

    // ---- backward -----------------------------------------------------------------------------------
    const fin = rawFinalBackward(rk, z, h, cPP, fw, grad);
    grad.dispose();
    h.dispose(); // the last block's (or iteration's) output
    for (const k of Object.keys(FINAL_NAMES) as Array<keyof FinalParams>) sink.put(FINAL_NAMES[k], fin.grads[k]);
    dPP.add(fin.dc);
    let dh = fin.dh;
    const backTrunk = (bs: typeof trunk1, kept: KeptBlock[]) => {
      for (let i = bs.length - 1; i >= 0; i--)
        dh = blockBackward(rk, kept[i]!, cPP, bs[i]!.w, heads, dh, bs[i]!.prefix, sink, dPP, bwd);
    };
    if (fpdm) {
      backTrunk(trunk2, kept2);
      // dh is now ∂loss/∂z at the last iterate
      const dInj = new Sum(rk);
      for (let k = iters.length - 1; k >= 0; k--) {
        const it = iters[k]!;
        let p1 = it.p1;
        let s = it.s;
        if (!p1 || !s) {
          const re = step(it.z); // checkpointed: recomputed from its input
          re.out.dispose();
          ({ p1, s } = re);
        }
        // the weight-tied gradients after the first iteration's: added into by the backward kernels
        const intoB = sink.existing('block_fixed_point', BLOCK_PARAM_NAMES);
        const intoP = sink.existing('', PROJECTION_PARAM_NAMES);
        const [du, dcb, ...dwb] = rawBlockBackward(rk, s, c, wFix, dh, heads, bwd, intoB);
        const [dz, dinj, ...dwp] = rawProjectionBackward(rk, it.z, inj!, p1, du as tf.Tensor3D, wProj, bwd, intoP);
        tf.dispose([dh, du!, p1, ...savedTensors(s)]);
        if (it.z !== xPre) it.z.dispose();
        dC.add(dcb!);
        dInj.add(dinj!);
        sink.putAll('block_fixed_point', BLOCK_PARAM_NAMES, dwb);
        sink.putAll('', PROJECTION_PARAM_NAMES, dwp);
        dh = dz as tf.Tensor3D;
      }
      injP!.dispose();
      // the gradient at z_0 reaches x_pre only when z_0 is x_pre (no iterations without gradient)
      const fromZ0 = inp.noGrad === 0 ? dh : null;
      if (!fromZ0) dh.dispose();
      const dyInj = dInj.value ?? tf.zerosLike(inj!); // no iteration with gradient: inj gets none
      const [dxPre, dwPre, dbPre] = rawLinearBackward(rk, xPre!, wPre[0]!, dyInj, fromZ0, bwd);
      tf.dispose([dyInj, inj!, xPre!, ...(fromZ0 ? [fromZ0] : [])]);
      sink.put('block_pre_projection.weight', dwPre);
      sink.put('block_pre_projection.bias', dbPre);
      dh = dxPre;
    }
    backTrunk(trunk1, kept1);
    const dc = dC.value ?? tf.zerosLike(c); // FPDM with c_pp = y_emb and no iteration with gradient: c gets none
    const ge = rawEmbedBackward(rk, z, { xT: emb.xT, sv: svT, y: inp.y }, ew, dh, dc, splitCond ? dCPP.value : null);
    for (const k of Object.keys(EMBED_NAMES) as Array<keyof EmbedParams>) sink.put(EMBED_NAMES[k], ge[k]);
    tf.dispose([dh, dc, ...(splitCond ? [dCPP.value!, cPP] : []), c, emb.xT, svT]);
    const res = residuals.length > 0 ? (tf.stack(residuals) as tf.Tensor1D) : undefined;
    tf.dispose(residuals);
    return { loss, grads: sink.grads, ...(res ? { residuals: res } : {}) };
  };
  return { finish, abandon };
}
