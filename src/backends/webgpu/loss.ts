// The training objective mean_N(mse + vb) (src/diffusion/losses.ts trainingLosses, learned-range
// variance, hybrid loss) and its gradient with respect to the model output, as 3 direct dispatches
// (src/backends/webgpu/raw.ts) instead of ≈ 60 TF.js kernels forward and ≈ 90 backward:
//   1. one thread per data element (n, c, h, w): its mse and vb contributions, and the gradient of the
//      batch-mean loss w.r.t. the mean channel (from mse) and the variance channel (from vb: the mean is
//      frozen there, as in the reference);
//   2–3. the sum of the contributions (gemm.ts partial sums, then one workgroup) / (N·C·H·W).
// Per-sample coefficients (float32 table lookups at t, as process.extract rounds them) come in one
// [N, 9] upload: the x̂_0 coefficients a, b (x̂_0 = a·x_t − b·out; for 'x0' a = 0, b = −1), the v-loss
// weight w, the posterior mean coefficients c1, c2, log β̃_t clipped (min), log β_t (max), t = 0, and
// the loss scale S the gradient is multiplied by (mixed precision's loss scaling; 1 without).
// Formulas and their op order follow losses.ts (normalKl, discretizedGaussianLogLikelihood with the tanh
// CDF, max(·, 1e-12) floors whose gradient flows where the value is ≥ the floor, as tf.maximum's).
import * as tf from '@tensorflow/tfjs-core';
import type { GaussianDiffusion, Timesteps } from '../../diffusion/process.js';
import { elementGroups, elementKernelWgsl, finishSumsWgsl, lit, partialSumsWgsl, REDUCE_PARTS, u } from './gemm.js';
import type { RawKernels } from './raw.js';

const K_CDF = Math.sqrt(2 / Math.PI);
/** values per sample in the coefficient table */
const COEFS = 9;

/**
 * WGSL: the reference's tanh approximation of Φ and its derivative. tanh as TF.js's webgpu kernel
 * computes it (sign(a)·(1 − e^(−2|a|))/(1 + e^(−2|a|))): the builtin overflows for large arguments, which
 * the decoder NLL reaches at t = 0 (its scale is tiny), and gave another loss there (measured on SwiftShader).
 */
const CDF = `
fn tanhS(a: f32) -> f32 {
  let e2x = exp(-2.0 * abs(a));
  return sign(a) * (1.0 - e2x) / (1.0 + e2x);
}
fn cdfA(x: f32) -> f32 {
  let cube = (x * x) * x;
  return 0.5 * (1.0 + tanhS(${lit(K_CDF)} * (x + ${lit(0.044715)} * cube)));
}
fn cdfAd(x: f32) -> f32 {
  let th = tanhS(${lit(K_CDF)} * (x + ${lit(0.044715)} * ((x * x) * x)));
  return 0.5 * (1.0 - th * th) * ${lit(K_CDF)} * (1.0 + ${lit(3 * 0.044715)} * x * x);
}`;

export interface LossInputsRaw {
  modelOutput: tf.Tensor4D; // [N, 2C, H, W]
  xStart: tf.Tensor4D; // [N, C, H, W]
  xT: tf.Tensor4D;
  noise: tf.Tensor4D;
  t: Timesteps;
}

/** Whether the kernel covers this process's objective (learned-range variance, hybrid loss). */
export function rawLossSupported(process: GaussianDiffusion): boolean {
  return process.config.variance === 'learned-range' && process.config.loss === 'hybrid';
}

/** The per-sample coefficient table [N, COEFS] (see the file header). */
function coefficients(process: GaussianDiffusion, t: Timesteps, lossScale: number): Float32Array {
  const tb = process.tables;
  const param = process.config.parameterization;
  const out = new Float32Array(t.length * COEFS);
  for (let i = 0; i < t.length; i++) {
    const k = t[i]!;
    const [a, b] =
      param === 'eps'
        ? [tb.sqrtRecipAlphasCumprod[k]!, tb.sqrtRecipm1AlphasCumprod[k]!]
        : param === 'v'
          ? [tb.sqrtAlphasCumprod[k]!, tb.sqrtOneMinusAlphasCumprod[k]!]
          : [0, -1];
    out.set(
      [
        a,
        b,
        param === 'v' ? process.vWeights[k]! : 1,
        tb.posteriorMeanCoef1[k]!,
        tb.posteriorMeanCoef2[k]!,
        tb.posteriorLogVarianceClipped[k]!,
        tb.logBetas[k]!,
        k === 0 ? 1 : 0,
        lossScale,
      ],
      i * COEFS,
    );
  }
  return out;
}

/**
 * The batch-mean training loss (a [] tensor) and its gradient w.r.t. the model output (as the model
 * output's shape, for a loss gradient of `lossScale`: 1, or S with loss scaling — the loss itself is
 * not scaled), new tensors owned by the caller.
 */
export function rawLossAndGradient(
  rk: RawKernels,
  process: GaussianDiffusion,
  inp: LossInputsRaw,
  lossScale = 1,
): { loss: tf.Scalar; grad: tf.Tensor4D } {
  const [N, C, H, W] = inp.xStart.shape;
  const hw = H * W;
  const count = N * C * hw;
  const param = process.config.parameterization;
  const coef = tf.tensor2d(coefficients(process, inp.t, lossScale), [N, COEFS]);
  const grad = rk.output(inp.modelOutput.shape);
  const loss = rk.output([]);
  const contrib = rk.scratch('loss.contrib', count);
  const parts = rk.scratch('loss.parts', REDUCE_PARTS);
  const inv = 1 / count;
  const mseTerm =
    param === 'v'
      ? `let predM = cf[0] * xt - cf[1] * out;
  let d = x0 - predM;
  let mse = cf[2] * (d * d);
  let gmean = 2.0 * cf[2] * d * cf[1];`
      : `let e = ${param === 'eps' ? 'eps' : 'x0'} - out;
  let mse = e * e;
  let gmean = -2.0 * e;`;
  const key = `loss.elements:${N},${C},${H},${W},${param}`;
  const elements = rk.kernel(key, () =>
    elementKernelWgsl(
      [
        { name: 'MO' },
        { name: 'X0' },
        { name: 'XT' },
        { name: 'NOISE' },
        { name: 'COEF' },
        { name: 'GRAD', write: true },
        { name: 'CONTRIB', write: true },
      ],
      count,
      `
  let n = idx / ${u(C * hw)};
  let rem = idx % ${u(C * hw)};
  let c = rem / ${u(hw)};
  let p = rem % ${u(hw)};
  let mi = (n * ${u(2 * C)} + c) * ${u(hw)} + p;
  let vi = mi + ${u(C * hw)};
  var cf: array<f32, ${COEFS}>;
  for (var q = 0u; q < ${u(COEFS)}; q = q + 1u) { cf[q] = COEF[n * ${u(COEFS)} + q]; }
  let out = MO[mi];
  let x0 = X0[idx];
  let xt = XT[idx];
  let eps = NOISE[idx];
  ${mseTerm}
  // vb with the mean frozen: p's mean from x̂_0(out), q's from x_0
  let predX0 = cf[0] * xt - cf[1] * out;
  let pMean = cf[3] * predX0 + cf[4] * xt;
  let qMean = cf[3] * x0 + cf[4] * xt;
  let frac = (MO[vi] + 1.0) / 2.0;
  let logVar = frac * cf[6] + (1.0 - frac) * cf[5];
  var vb = 0.0;
  var dvb = 0.0; // d vb / d logVar
  if (cf[7] == 0.0) {
    let dm = qMean - pMean;
    vb = 0.5 * ((((-1.0 + logVar) - cf[5]) + exp(cf[5] - logVar)) + (dm * dm) * exp(-logVar));
    dvb = 0.5 * ((1.0 - exp(cf[5] - logVar)) - (dm * dm) * exp(-logVar));
  } else {
    // decoder NLL, log scale s = logVar / 2; dll = d log-likelihood / d s (the CDF arguments are e^(−s)·u)
    let centered = x0 - pMean;
    let invStdv = exp(-(0.5 * logVar));
    let plusIn = invStdv * (centered + ${lit(1 / 255)});
    let minIn = invStdv * (centered - ${lit(1 / 255)});
    let cdfPlus = cdfA(plusIn);
    let cdfMin = cdfA(minIn);
    var ll = 0.0;
    var dll = 0.0;
    if (x0 < ${lit(-0.999)}) {
      ll = log(max(cdfPlus, ${lit(1e-12)}));
      if (cdfPlus >= ${lit(1e-12)}) { dll = -cdfAd(plusIn) * plusIn / cdfPlus; }
    } else if (x0 > ${lit(0.999)}) {
      let om = 1.0 - cdfMin;
      ll = log(max(om, ${lit(1e-12)}));
      if (om >= ${lit(1e-12)}) { dll = cdfAd(minIn) * minIn / om; }
    } else {
      let delta = cdfPlus - cdfMin;
      ll = log(max(delta, ${lit(1e-12)}));
      if (delta >= ${lit(1e-12)}) { dll = (minIn * cdfAd(minIn) - plusIn * cdfAd(plusIn)) / delta; }
    }
    vb = -ll;
    dvb = -0.5 * dll;
  }
  CONTRIB[idx] = mse + vb / ${lit(Math.LN2)};
  // × S (cf[8]: 1 without loss scaling, then exactly the unscaled values)
  GRAD[mi] = gmean * (${lit(inv)} * cf[8]);
  GRAD[vi] = dvb * (0.5 * (cf[6] - cf[5])) * (${lit(inv / Math.LN2)} * cf[8]);`,
      CDF,
    ),
  );
  const sums = rk.kernel(`loss.sums:${count}`, () =>
    partialSumsWgsl([{ name: 'A' }, { name: 'PARTS', write: true }], count, ['A[e]']),
  );
  const finish = rk.kernel(`loss.finish:${count}`, () =>
    finishSumsWgsl([{ name: 'PARTS' }, { name: 'OUT', write: true }], 1, `OUT[0] = total0 * ${lit(inv)};`),
  );
  const inputs = [inp.modelOutput, inp.xStart, inp.xT, inp.noise, coef];
  rk.run(
    [
      {
        kernel: elements,
        buffers: [...inputs.map((x) => rk.buffer(x)), grad.buffer, contrib],
        groups: elementGroups(count),
      },
      { kernel: sums, buffers: [contrib, parts], groups: [REDUCE_PARTS, 1, 1] },
      { kernel: finish, buffers: [parts, loss.buffer], groups: [1, 1, 1] },
    ],
    [...inputs, grad.tensor, loss.tensor],
  );
  coef.dispose(); // released after the pending submit (it is marked as used by it)
  return { loss: loss.tensor as tf.Scalar, grad: grad.tensor as tf.Tensor4D };
}
