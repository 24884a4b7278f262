// Training losses, per sample (reference: GaussianDiffusion.training_losses with LossType.MSE).
//
// Notation: x_0 (xStart), x_t (xT), ε (noise), t (indices into the process), q = the true posterior
// q(x_{t−1} | x_t, x_0), p = the model's p(x_{t−1} | x_t). Shapes: images [N, C, H, W]; terms [N].
//
//   mse   eps: mean‖ε − ε̂‖²; x0: mean‖x_0 − x̂_0‖²;
//         v:   mean(w_t ‖x_0 − x̂_0(v̂)‖²) with w_t from vWeighting ('p2': SNR_t √(1−ᾱ_t)) — the
//              reference trains v-prediction through an x_0-space loss, reproduced as is
//   vb    (hybrid, learned variance; improved DDPM §3.1) KL(q ‖ p) in bits for t > 0 and the discretised
//         decoder NLL in bits for t = 0 (DDPM eq. 5's L_{t−1} and L_0), computed with the mean part of
//         the model output frozen (a constant copy) so that vb trains only the variance
//   loss  mse + vb
import * as tf from '@tensorflow/tfjs-core';
import { directLossMean } from '../backends/kernels.js';
import { assertShape } from '../util/shapes.js';
import type { GaussianDiffusion, Timesteps } from './process.js';

const LN2 = Math.log(2.0);

/** Identity in the forward pass, zero gradient in the backward pass (PyTorch's `.detach()`). */
export const stopGradient = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as <T extends tf.Tensor>(x: T) => T;

/** KL(N(μ1, e^{l1}) ‖ N(μ2, e^{l2})), elementwise, in nats (the reference's term order). */
export function normalKl(mean1: tf.Tensor, logvar1: tf.Tensor, mean2: tf.Tensor, logvar2: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.mul(
      0.5,
      tf.add(
        tf.add(tf.sub(tf.add(-1.0, logvar2), logvar1), tf.exp(tf.sub(logvar1, logvar2))),
        tf.mul(tf.square(tf.sub(mean1, mean2)), tf.exp(tf.neg(logvar2))),
      ),
    ),
  );
}

/** Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715 x³))), the reference's fast normal CDF. */
export function approxStandardNormalCdf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const cube = tf.mul(tf.mul(x, x), x);
    return tf.mul(0.5, tf.add(1.0, tf.tanh(tf.mul(Math.sqrt(2.0 / Math.PI), tf.add(x, tf.mul(0.044715, cube))))));
  });
}

/**
 * log-likelihood (nats, elementwise) of data x in [−1, 1] quantised to 256 levels under
 * N(means, e^{2·logScales}) (DDPM §3.3): the mass of the bin [x − 1/255, x + 1/255], with the
 * outermost bins extended to ±∞ (x < −0.999 / x > 0.999). Probabilities are floored at 1e-12.
 */
export function discretizedGaussianLogLikelihood(x: tf.Tensor, means: tf.Tensor, logScales: tf.Tensor): tf.Tensor {
  assertShape('log-likelihood means', means.shape, x.shape);
  assertShape('log-likelihood log scales', logScales.shape, x.shape);
  return tf.tidy(() => {
    const centered = tf.sub(x, means);
    const invStdv = tf.exp(tf.neg(logScales));
    const cdfPlus = approxStandardNormalCdf(tf.mul(invStdv, tf.add(centered, 1.0 / 255.0)));
    const cdfMin = approxStandardNormalCdf(tf.mul(invStdv, tf.sub(centered, 1.0 / 255.0)));
    const logCdfPlus = tf.log(tf.maximum(cdfPlus, 1e-12));
    const logOneMinusCdfMin = tf.log(tf.maximum(tf.sub(1.0, cdfMin), 1e-12));
    const logCdfDelta = tf.log(tf.maximum(tf.sub(cdfPlus, cdfMin), 1e-12));
    return tf.where(tf.less(x, -0.999), logCdfPlus, tf.where(tf.greater(x, 0.999), logOneMinusCdfMin, logCdfDelta));
  });
}

function meanFlat(x: tf.Tensor): tf.Tensor1D {
  return tf.mean(x, [1, 2, 3]) as tf.Tensor1D; // [N]
}

/**
 * The variational-bound term in bits per dimension for each sample (reference: _vb_terms_bpd with
 * clip_denoised = False): KL(q ‖ p) where t > 0, decoder NLL where t = 0.
 */
export function vbTermsBpd(
  process: GaussianDiffusion,
  modelOutput: tf.Tensor4D,
  xStart: tf.Tensor4D,
  xT: tf.Tensor4D,
  t: Timesteps,
): tf.Tensor1D {
  return tf.tidy(() => {
    const q = process.qPosteriorMeanVariance(xStart, xT, t);
    const p = process.pMeanVariance(modelOutput, xT, t, { clipDenoised: false });
    const kl = tf.div(meanFlat(normalKl(q.mean, q.logVarianceClipped, p.mean, p.logVariance)), LN2);
    const decoderNll = tf.div(
      meanFlat(tf.neg(discretizedGaussianLogLikelihood(xStart, p.mean, tf.mul(0.5, p.logVariance)))),
      LN2,
    );
    const isZero = tf.tensor1d(
      Array.from(t, (k) => k === 0),
      'bool',
    );
    return tf.where(isZero, decoderNll, kl) as tf.Tensor1D; // [N]
  });
}

export interface LossInputs {
  /** raw model output at (x_t, original timesteps): [N, C or 2C, H, W] */
  modelOutput: tf.Tensor4D;
  xStart: tf.Tensor4D; // [N, C, H, W]
  /** q_sample(x_0, t, noise), as the model saw it */
  xT: tf.Tensor4D; // [N, C, H, W]
  noise: tf.Tensor4D; // [N, C, H, W]
  t: Timesteps;
}

export interface LossTerms {
  mse: tf.Tensor1D; // [N]
  /** present with loss 'hybrid' */
  vb?: tf.Tensor1D; // [N]
  loss: tf.Tensor1D; // [N]
}

/**
 * Per-sample training losses (differentiable w.r.t. modelOutput; average `loss` over the batch for
 * the objective). The model call is the caller's: x_t = process.qSample(x_0, t, ε), then
 * model(x_t, process.modelTimesteps(t), y).
 */
export function trainingLosses(process: GaussianDiffusion, inp: LossInputs): LossTerms {
  const { modelOutput, xStart, xT, noise, t } = inp;
  const [N, C, H, W] = xStart.shape;
  assertShape('loss x_t', xT.shape, [N, C, H, W]);
  assertShape('loss noise', noise.shape, [N, C, H, W]);
  assertShape('loss model output', modelOutput.shape, [N, process.modelOutputChannels(C), H, W]);
  return tf.tidy(() => {
    const cfg = process.config;
    let out = modelOutput; // [N, C, H, W] after the split below
    let vb: tf.Tensor1D | undefined;
    if (cfg.variance === 'learned-range') {
      const [mean, varValues] = tf.split(modelOutput, 2, 1) as [tf.Tensor4D, tf.Tensor4D];
      out = mean;
      // Learn the variance through vb without letting vb move the mean prediction.
      const frozen = tf.concat([stopGradient(mean), varValues], 1) as tf.Tensor4D; // [N, 2C, H, W]
      if (cfg.loss === 'hybrid') vb = vbTermsBpd(process, frozen, xStart, xT, t);
    }
    let mse: tf.Tensor1D;
    if (cfg.parameterization === 'v') {
      const predX0 = process.predictXstartFromV(xT, t, out);
      const w = process.extract(process.vWeights, t); // [N, 1, 1, 1]
      mse = meanFlat(tf.mul(w, tf.square(tf.sub(xStart, predX0))));
    } else {
      const target = cfg.parameterization === 'eps' ? noise : xStart;
      mse = meanFlat(tf.square(tf.sub(target, out)));
    }
    const loss = vb ? (tf.add(mse, vb) as tf.Tensor1D) : mse;
    return vb ? { mse, vb, loss } : { mse, loss };
  });
}

/**
 * mean_N(trainingLosses(…).loss), the training objective, differentiable w.r.t. modelOutput: on our
 * direct-dispatch kernels where the backend has them (webgpu; src/backends/webgpu/loss.ts, the same
 * values to float32 rounding and a hand-derived gradient), else these TF.js ops.
 */
export function trainingLossMean(process: GaussianDiffusion, inp: LossInputs): tf.Scalar {
  const direct = directLossMean(process);
  if (direct) return direct(inp);
  return tf.tidy(() => tf.mean(trainingLosses(process, inp).loss) as tf.Scalar);
}
