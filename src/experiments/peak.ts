// Peak memory of one representative step, measured with the metrics package's probe
// (measureMemory, method 'profile': live TF.js tensor bytes after every kernel, absolute):
//   training  one complete optimizer step of a fresh model at the run's batch size with the LARGEST
//             S-JFB draw (max no-grad and max with-grad iterations): weights, AdamW moments and EMA
//             copy (all alive, as in training), activations kept for backprop, gradients, update
//   sampling  one forward of the denoiser at the sampling batch size with the most iterations any
//             step of the pass uses (×2 batch under CFG): the region's peak plus the weights' bytes
// Backend scratch space and allocator slack are not tensor bytes and are not counted (see
// src/metrics/memory.ts); the backend's own pool is recorded as a tag where it reports one.
import * as tf from '@tensorflow/tfjs-core';
import { trainingLosses } from '../diffusion/losses.js';
import { createDiffusion, type DiffusionConfig } from '../diffusion/process.js';
import { measureMemory } from '../metrics/memory.js';
import { createModel, type AnyModel, type ModelConfig } from '../models/index.js';
import { AdamW, type AdamWConfig } from '../training/adamw.js';
import { Ema } from '../training/ema.js';
import { Rng } from '../util/rng.js';

export interface Peak {
  bytes: number;
  backendPoolBytes: number | null;
}

export async function peakTrainStep(
  cfg: ModelConfig,
  diffusion: DiffusionConfig,
  batch: number,
  optimizer: Partial<AdamWConfig>,
  gradCheckpoint = false,
): Promise<Peak> {
  const process = createDiffusion(diffusion);
  const rng = new Rng('peak/train');
  const [C, H] = [cfg.inChannels, cfg.inputSize];
  const { memory } = await measureMemory(async () => {
    const model = createModel(cfg, 'peak');
    const opt = new AdamW(model.params, optimizer);
    const ema = new Ema(model.params, 0.9999);
    try {
      const tIdx = Array.from({ length: batch }, () => rng.int(0, process.numTimesteps - 1));
      const x0 = tf.tensor4d(rng.normals(batch * C * H * H), [batch, C, H, H]);
      const noise = tf.tensor4d(rng.normals(batch * C * H * H), [batch, C, H, H]);
      const xT = process.qSample(x0, tIdx, noise);
      const tModel = process.modelTimesteps(tIdx);
      const y = tf.zeros([batch], 'int32') as tf.Tensor1D;
      const state = model.noGradState(xT, tModel, y, cfg.kind === 'fpdm' ? cfg.noGradIters[1] : 0);
      const byVar = new Map([...model.params].map(([name, v]) => [v.name, name]));
      const { value, grads } = tf.variableGrads(() => {
        const r = model.forward(
          xT,
          tModel,
          y,
          cfg.kind === 'fpdm'
            ? { state, iters: cfg.withGradIters[1], trackResiduals: false, gradCheckpoint }
            : { gradCheckpoint },
        );
        if (r.state) tf.dispose(r.state.z);
        return tf.mean(
          trainingLosses(process, { modelOutput: r.out, xStart: x0, xT, noise, t: tIdx }).loss,
        ) as tf.Scalar;
      }, [...model.params.values()]);
      await opt.step(new Map(Object.entries(grads).map(([vn, g]) => [byVar.get(vn)!, g])));
      ema.update();
      tf.dispose([value, ...Object.values(grads), x0, noise, xT, tModel, y, ...(state ? [state.z] : [])]);
    } finally {
      opt.dispose();
      ema.dispose();
      model.dispose();
    }
  });
  return { bytes: memory.peakTensorBytes - memory.startTensorBytes, backendPoolBytes: memory.backendPoolBytes ?? null };
}

export async function peakSampleStep(
  model: AnyModel,
  batch: number,
  iters: number,
  cfgGuided: boolean,
  numTimesteps: number,
): Promise<Peak> {
  const c = model.config;
  const n = batch * (cfgGuided ? 2 : 1);
  const rng = new Rng('peak/sample');
  const { memory } = await measureMemory(() => {
    const x = tf.tensor4d(rng.normals(n * c.inChannels * c.inputSize * c.inputSize), [
      n,
      c.inChannels,
      c.inputSize,
      c.inputSize,
    ]);
    const t = tf.fill([n], numTimesteps - 1, 'float32') as tf.Tensor1D;
    const y = tf.zeros([n], 'int32') as tf.Tensor1D;
    const r = model.forward(x, t, y, c.kind === 'fpdm' ? { iters: Math.max(1, iters), trackResiduals: false } : {});
    tf.dispose([x, t, y, r.out, ...(r.state ? [r.state.z] : [])]);
  });
  // the weights are alive before the region: add their bytes to the region's peak (not the absolute
  // peak, which would also count unrelated tensors alive in this process)
  let weightBytes = 0;
  for (const v of model.params.values()) weightBytes += v.size * 4;
  return { bytes: memory.peakRegionBytes + weightBytes, backendPoolBytes: memory.backendPoolBytes ?? null };
}
