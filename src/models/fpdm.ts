// FPDM (Bai & Melas-Kyriazi 2024): a DiT trunk whose middle is one weight-tied block iterated to a
// fixed point.
//
//   h      = PatchEmbed(x) + pos                           [N, T, D]
//   c      = t_emb + y_emb;  c_pp = c (prePostTimestepConditioning) or y_emb
//   x_pre  = blocks_pre(h, c_pp)                          [N, T, D]
//   inj    = block_pre_projection(x_pre)                  [N, T, D]   (input injection)
//   z_0    = x_pre, or the state passed in (solution reuse / S-JFB's no-grad result)
//   z_k+1  = Block_fp(fc2(GELU_tanh(fc1([z_k, inj]))), c) fc1: 2D→2D, fc2: 2D→D; Block_fp always sees c
//   out    = unpatchify(final(blocks_post(z*, c_pp), c_pp))
//
// S-JFB training in TF.js: there is no stop_gradient and ops are taped only inside a gradient scope, so
// the no-grad iterations run OUTSIDE tf.variableGrads (no graph, memory flat in their number):
//
//   const plan = model.sampleTrainingPlan(rng, N);                    // n_ng, n_g, label-drop mask
//   const yd = tf.tensor1d(applyLabelDrop(labels, plan.dropMask, cfg.numClasses), 'int32'); // same labels in both passes
//   const state = model.noGradState(x, t, yd, plan.noGrad);          // undefined when n_ng = 0
//   const { value, grads } = tf.variableGrads(() => {
//     const { out, state: s } = model.forward(x, t, yd, { state, iters: plan.withGrad, trackResiduals: false });
//     tf.dispose(s?.z);
//     return lossOf(out);
//   });
//   state?.z.dispose();
//
// As in the reference, with n_ng = 0 the with-grad iterations start from x_pre inside the graph (the
// gradient also flows through z_0); with n_ng > 0 they start from the detached no-grad result.
//
// webgpu, outside a gradient tape: the embedders, block_pre_projection and the final layer run as direct
// dispatches of the same values (src/backends/kernels.ts directEdgeKernels), as the blocks do.
import * as tf from '@tensorflow/tfjs-core';
import { directEdgeKernels } from '../backends/kernels.js';
import type { Rng } from '../util/rng.js';
import { assertShape } from '../util/shapes.js';
import { outChannels, type FPDMConfig } from './config.js';
import {
  finalLayer,
  labelEmbedder,
  linearP,
  param,
  patchEmbed,
  timestepEmbedder,
  unpatchify,
  type Params,
} from './blocks.js';
import { disposeTree, initParams, makePosEmbed, type ParamTree } from './params.js';
import {
  checkInputs,
  sampleDropMask,
  type DiffusionModel,
  type FixedPointState,
  type ForwardOptions,
  type ForwardResult,
  type TrainingPlan,
} from './model.js';
import { ditBlockOp, fixedPointStepOp } from './blockgrad.js';
import { solveFixedPoint, solveFixedPointAsync, type SolverOptions } from './solver.js';

/** What the trunk before the fixed-point block produces. All owned by the caller. */
export interface PreResult {
  xPre: tf.Tensor3D; // [N, T, D] output of the pre blocks (z_0 without reuse)
  inj: tf.Tensor3D; // [N, T, D] input injection
  c: tf.Tensor2D; // [N, D] t_emb + y_emb (fixed-point block conditioning)
  cPP: tf.Tensor2D; // [N, D] pre/post/final conditioning
}

export class FPDM implements DiffusionModel {
  readonly posEmbed: tf.Tensor3D; // [1, T, D] buffer
  private readonly tree: Map<string, tf.Tensor>;

  constructor(
    readonly config: FPDMConfig,
    readonly params: ParamTree,
  ) {
    this.posEmbed = makePosEmbed(config);
    this.tree = new Map<string, tf.Tensor>(params);
  }

  static init(config: FPDMConfig, rng: Rng): FPDM {
    return new FPDM(config, initParams(config, rng));
  }

  /** Iterations when none are given: the largest S-JFB total, noGrad max + withGrad max. */
  defaultIterations(): number {
    return this.config.noGradIters[1] + this.config.withGradIters[1];
  }

  /** Embedders and pre blocks. x [N, C, H, W], t [N], y [N] → PreResult. */
  pre(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, gradCheckpoint = false): PreResult {
    const cfg = this.config;
    const p: Params = this.tree;
    return tf.tidy(() => {
      const direct = directEdgeKernels();
      let h: tf.Tensor3D;
      let c: tf.Tensor2D;
      let yEmb: tf.Tensor2D | undefined;
      if (direct) ({ h, c, yEmb } = direct.embed(this, x, t, y, !cfg.prePostTimestepConditioning));
      else {
        h = tf.add(patchEmbed(p, x, cfg.patchSize), this.posEmbed) as tf.Tensor3D; // [N, T, D]
        const tEmb = timestepEmbedder(p, t); // [N, D]
        yEmb = labelEmbedder(p, y); // [N, D]
        c = tf.add(tEmb, yEmb) as tf.Tensor2D; // [N, D]
      }
      const cPP = cfg.prePostTimestepConditioning ? c : yEmb!;
      for (let i = 0; i < cfg.preDepth; i++) h = ditBlockOp(p, `blocks_pre.${i}`, h, cPP, cfg.numHeads, gradCheckpoint);
      const inj = direct
        ? direct.linear(h, param(p, 'block_pre_projection.weight'), param(p, 'block_pre_projection.bias'))
        : (linearP(p, 'block_pre_projection', h) as tf.Tensor3D); // [N, T, D]
      return { xPre: h, inj, c, cPP };
    });
  }

  /**
   * One fixed-point iteration: Block_fp(fc2(GELU_tanh(fc1([z, inj]))), c), as one op (blockgrad.ts;
   * `gradCheckpoint`: only z, inj, c kept for backprop). z, inj [N, T, D], c [N, D] → [N, T, D].
   */
  step(z: tf.Tensor3D, inj: tf.Tensor3D, c: tf.Tensor2D, gradCheckpoint = false): tf.Tensor3D {
    return fixedPointStepOp(this.tree, z, inj, c, this.config.numHeads, gradCheckpoint);
  }

  /** Post blocks, final layer, unpatchify. z [N, T, D], cPP [N, D] → [N, Co, H, W]. */
  post(z: tf.Tensor3D, cPP: tf.Tensor2D, gradCheckpoint = false): tf.Tensor4D {
    const cfg = this.config;
    const p: Params = this.tree;
    return tf.tidy(() => {
      let h = z;
      for (let i = 0; i < cfg.postDepth; i++)
        h = ditBlockOp(p, `blocks_post.${i}`, h, cPP, cfg.numHeads, gradCheckpoint);
      const direct = directEdgeKernels();
      if (direct) return direct.final(this, h, cPP); // [N, Co, H, W]
      return unpatchify(finalLayer(p, h, cPP), cfg.patchSize, outChannels(cfg)); // [N, Co, H, W]
    });
  }

  /**
   * Synchronous forward, no host reads: the fixed solver only (`iters`, or `solver: {kind: 'fixed'}`);
   * with `trackResiduals: true` the residuals come back as the tensor `residuals` (the caller disposes
   * it), solve.residuals stays empty. The tolerance and Anderson solvers throw: use forwardAsync.
   */
  forward(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, opts: ForwardOptions = {}): ForwardResult {
    const solver = this.solverOf(opts);
    if (solver.kind !== 'fixed') {
      throw new Error(
        `FPDM.forward: the '${solver.kind}' solver reads residuals on the host every iteration, which cannot be done synchronously (webgpu under Node); use FPDM.forwardAsync`,
      );
    }
    const pre = this.preFor(x, t, y, opts);
    const ckpt = opts.gradCheckpoint === true;
    try {
      const { z, report, residuals } = solveFixedPoint(
        (zk) => this.step(zk, pre.inj, pre.c, ckpt),
        opts.state?.z ?? pre.xPre,
        solver,
        { trackResiduals: opts.trackResiduals === true },
      );
      const out = this.post(z, pre.cPP, ckpt);
      return { out, state: { z }, solve: report, ...(residuals ? { residuals } : {}) };
    } finally {
      tf.dispose([pre.xPre, pre.inj, pre.c, pre.cPP]);
    }
  }

  /**
   * Forward with any solver (fixed, tolerance, Anderson); residuals (tracked by default with the fixed
   * solver) are read asynchronously into solve.residuals. Same numerics as forward.
   */
  async forwardAsync(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    opts: ForwardOptions = {},
  ): Promise<ForwardResult> {
    const solver = this.solverOf(opts);
    const pre = this.preFor(x, t, y, opts);
    try {
      const { z, report } = await solveFixedPointAsync(
        (zk) => this.step(zk, pre.inj, pre.c),
        opts.state?.z ?? pre.xPre,
        solver,
        { trackResiduals: opts.trackResiduals },
      );
      const out = this.post(z, pre.cPP);
      return { out, state: { z }, solve: report };
    } finally {
      tf.dispose([pre.xPre, pre.inj, pre.c, pre.cPP]);
    }
  }

  private solverOf(opts: ForwardOptions): SolverOptions {
    return opts.solver ?? { kind: 'fixed', iters: opts.iters ?? this.defaultIterations() };
  }

  /** Input checks and the pre blocks, with the passed state's shape checked (the caller disposes the result). */
  private preFor(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, opts: ForwardOptions): PreResult {
    checkInputs(this.config, x, t, y);
    const pre = this.pre(x, t, y, opts.gradCheckpoint === true);
    if (opts.state) {
      try {
        assertShape('state.z (the fixed-point state passed in)', opts.state.z.shape, pre.xPre.shape);
      } catch (e) {
        tf.dispose([pre.xPre, pre.inj, pre.c, pre.cPP]);
        throw e;
      }
    }
    return pre;
  }

  /**
   * S-JFB's no-grad part: pre blocks, then `n` iterations from x_pre, with no gradient tape (call it
   * outside tf.variableGrads). Returns the state to pass as `opts.state` to the with-grad forward, or
   * undefined when n = 0 (then the with-grad forward starts from x_pre inside the graph, as the reference).
   */
  noGradState(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    n: number,
    state?: FixedPointState,
  ): FixedPointState | undefined {
    if (n === 0 && !state) return undefined;
    checkInputs(this.config, x, t, y);
    const pre = this.pre(x, t, y);
    const { z } = solveFixedPoint(
      (zk) => this.step(zk, pre.inj, pre.c),
      state?.z ?? pre.xPre,
      { kind: 'fixed', iters: n },
      { trackResiduals: false },
    );
    tf.dispose([pre.xPre, pre.inj, pre.c, pre.cPP]);
    return { z };
  }

  sampleTrainingPlan(rng: Rng, batchSize: number): TrainingPlan {
    const [a, b] = this.config.noGradIters;
    const [c, d] = this.config.withGradIters;
    const noGrad = rng.int(a, b);
    const withGrad = rng.int(c, d);
    return { noGrad, withGrad, dropMask: sampleDropMask(rng, batchSize, this.config.classDropoutProb) };
  }

  /** pre + iterations + post (the fc1/fc2 projection is not a block: see flops.ts for its cost). */
  blockEvaluations(iterations = this.defaultIterations()): number {
    return this.config.preDepth + iterations + this.config.postDepth;
  }

  dispose(): void {
    disposeTree(this.params);
    this.posEmbed.dispose();
  }
}
