// Small DiT / FPDM configs and models with every parameter random, shared by the webgpu suites that
// compare our direct-dispatch kernels with the TF.js ops (the reference init zeroes adaLN and the final
// layer, which would hide most of what they compute).
import * as tf from '@tensorflow/tfjs-core';
import { setKernelOptions } from '../../src/backends/kernels.js';
import { trainingLossMean } from '../../src/diffusion/losses.js';
import type { GaussianDiffusion, Timesteps } from '../../src/diffusion/process.js';
import { createModel, type AnyModel } from '../../src/models/index.js';
import { ditPreset, fpdmFrom, validateConfig, type FPDMOptions, type ModelConfig } from '../../src/models/config.js';
import { randomTensor } from '../helpers.js';

/** 8×8 latents of 3 channels, patch 2 (16 tokens), d 64, 2 heads; 5 classes + the null class */
export const TINY_TRUNK = validateConfig({
  ...ditPreset('DiT-S/2', { inputSize: 8, inChannels: 3, numClasses: 5, classDropoutProb: 0.1 }),
  hiddenSize: 64,
  numHeads: 2,
  depth: 2,
});

/** FPDM on TINY_TRUNK with S-JFB draws of at most 2 + 2 iterations */
export function tinyFpdm(o: FPDMOptions): ModelConfig {
  return fpdmFrom(TINY_TRUNK, { noGradIters: [0, 2], withGradIters: [1, 2], ...o });
}

/** A model of `cfg` with every parameter N(0, 1/fan-in) (vectors N(0, 0.01)), drawn from `seed`. */
export function randomModel(cfg: ModelConfig, seed: string): AnyModel {
  const m = createModel(cfg, seed);
  for (const [name, v] of m.params) {
    const fanIn = v.shape.length >= 2 ? v.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const r = randomTensor(`${seed}/${name}`, v.shape, v.shape.length >= 2 ? 1 / Math.sqrt(fanIn) : 0.1);
    (v as tf.Variable).assign(r);
    r.dispose();
  }
  return m;
}

/**
 * The taped training step the direct one replaces (tf.variableGrads over the model's forward and the
 * loss, TF.js ops only: the direct dispatches switched off meanwhile), as the training loop's other
 * branch computes it: the loss, every gradient by parameter name, FPDM's residuals. New tensors.
 */
export function tapedStep(
  model: AnyModel,
  process: GaussianDiffusion,
  inp: {
    x0: tf.Tensor4D;
    noise: tf.Tensor4D;
    t: Timesteps;
    y: tf.Tensor1D;
    noGrad: number;
    withGrad: number;
    ckpt: boolean;
  },
): { loss: tf.Scalar; grads: Map<string, tf.Tensor>; residuals?: tf.Tensor } {
  const prev = setKernelOptions({ rawBlock: false });
  try {
    const { x0, noise, t, y } = inp;
    const xT = process.qSample(x0, t, noise);
    const tModel = process.modelTimesteps(t);
    const state = model.noGradState(xT, tModel, y, inp.noGrad);
    let residuals: tf.Tensor | undefined;
    const ref = tf.variableGrads(() => {
      const r = model.forward(xT, tModel, y, {
        state,
        iters: inp.withGrad,
        trackResiduals: true,
        gradCheckpoint: inp.ckpt,
      });
      if (r.state) tf.dispose(r.state.z);
      if (r.residuals) residuals = tf.keep(r.residuals);
      return trainingLossMean(process, { modelOutput: r.out, xStart: x0, xT, noise, t });
    }, [...model.params.values()]);
    if (state) tf.dispose(state.z);
    tf.dispose([xT, tModel]);
    const byVar = new Map([...model.params].map(([name, v]) => [v.name, name]));
    const grads = new Map(Object.entries(ref.grads).map(([vn, g]) => [byVar.get(vn)!, g as tf.Tensor]));
    return { loss: ref.value, grads, ...(residuals ? { residuals } : {}) };
  } finally {
    setKernelOptions(prev);
  }
}
