// DiT (Peebles & Xie 2023) as the FPDM reference code builds it: patch embedding + fixed 2-D sin-cos
// position embedding, timestep and label embedders summed into c, `depth` adaLN-Zero blocks, final
// layer, unpatchify. Reads top to bottom like the reference's `DiT.forward`. (webgpu, outside a gradient
// tape: the edges before the first block and after the last run as direct dispatches of the same values,
// src/backends/kernels.ts directEdgeKernels.)
import * as tf from '@tensorflow/tfjs-core';
import { directEdgeKernels } from '../backends/kernels.js';
import type { Rng } from '../util/rng.js';
import { outChannels, type DiTConfig } from './config.js';
import { finalLayer, labelEmbedder, patchEmbed, timestepEmbedder, unpatchify, type Params } from './blocks.js';
import { disposeTree, initParams, makePosEmbed, type ParamTree } from './params.js';
import { ditBlockOp } from './blockgrad.js';
import {
  checkInputs,
  sampleDropMask,
  type DiffusionModel,
  type ForwardOptions,
  type ForwardResult,
  type TrainingPlan,
} from './model.js';

export class DiT implements DiffusionModel {
  readonly posEmbed: tf.Tensor3D; // [1, T, D] buffer
  private readonly tree: Map<string, tf.Tensor>;

  constructor(
    readonly config: DiTConfig,
    readonly params: ParamTree,
  ) {
    this.posEmbed = makePosEmbed(config);
    this.tree = new Map<string, tf.Tensor>(params);
  }

  /** A fresh model with the reference initialisation drawn from `rng`. */
  static init(config: DiTConfig, rng: Rng): DiT {
    return new DiT(config, initParams(config, rng));
  }

  /** opts.gradCheckpoint: keep only each block's input for backprop (recomputed there); other options are FPDM's. */
  forward(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, opts: ForwardOptions = {}): ForwardResult {
    checkInputs(this.config, x, t, y);
    const c = this.config;
    const p: Params = this.tree;
    const out = tf.tidy(() => {
      const direct = directEdgeKernels();
      let h: tf.Tensor3D;
      let cond: tf.Tensor2D;
      if (direct) ({ h, c: cond } = direct.embed(this, x, t, y, false));
      else {
        h = tf.add(patchEmbed(p, x, c.patchSize), this.posEmbed) as tf.Tensor3D; // [N, T, D]
        cond = tf.add(timestepEmbedder(p, t), labelEmbedder(p, y)) as tf.Tensor2D; // [N, D]
      }
      for (let i = 0; i < c.depth; i++)
        h = ditBlockOp(p, `blocks.${i}`, h, cond, c.numHeads, opts.gradCheckpoint === true); // [N, T, D]
      if (direct) return direct.final(this, h, cond); // [N, Co, H, W]
      const o = finalLayer(p, h, cond); // [N, T, P·P·Co]
      return unpatchify(o, c.patchSize, outChannels(c)); // [N, Co, H, W]
    });
    return { out };
  }

  /** forward, as a promise (DiT reads nothing from the device). */
  async forwardAsync(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    opts: ForwardOptions = {},
  ): Promise<ForwardResult> {
    return this.forward(x, t, y, opts);
  }

  /** A DiT has no fixed-point state: nothing to run without gradient. */
  noGradState(): undefined {
    return undefined;
  }

  sampleTrainingPlan(rng: Rng, batchSize: number): TrainingPlan {
    return { noGrad: 0, withGrad: 0, dropMask: sampleDropMask(rng, batchSize, this.config.classDropoutProb) };
  }

  blockEvaluations(): number {
    return this.config.depth;
  }

  dispose(): void {
    disposeTree(this.params);
    this.posEmbed.dispose();
  }
}
