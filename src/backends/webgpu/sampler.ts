// One sampling step's arithmetic (src/diffusion/process.ts pMeanVariance, then pSampleStep or ddimStep)
// as ONE direct dispatch (src/backends/webgpu/raw.ts) instead of ≈ 20 TF.js kernels: one thread per
// data element (n, c, h, w) reads the model output, x_t and the step's noise and writes x_{t−1}.
//
//   x̂_0  = a·x_t − b·out  (ε: a = 1/√ᾱ_t, b = √(1/ᾱ_t − 1); v: a = √ᾱ_t, b = √(1−ᾱ_t); x_0: out), clamped
//          to [−1, 1] with clipDenoised
//   DDPM  log σ² = f·log β_t + (1−f)·log β̃_t, f = (v + 1)/2 (learned range), or the fixed table's value
//         x_{t−1} = (c1·x̂_0 + c2·x_t) + (m·exp(½ log σ²))·z        (m = 0 where t = 0; no z: m = 0 for all)
//   DDIM  ε̂ = (a'·x_t − x̂_0)/b' (a' = 1/√ᾱ_t, b' = √(1/ᾱ_t − 1)), or √ᾱ_t·v + √(1−ᾱ_t)·x_t (process.ts
//         ddimEpsFromV: the reference's quirk); x_{t−1} = (x̂_0·√ᾱ_{t−1} + √(1 − ᾱ_{t−1} − σ²)·ε̂) + (m·σ)·z
//
// Per-sample coefficients (process.lookup: float64 tables at t rounded to float32, as process.extract)
// come in one [N, 7] upload; DDIM's σ and the two roots are computed on the host in float32, op by op
// as ddimStep's tensors compute them (Math.fround after each). Elementwise arithmetic follows the op
// order of process.ts, so values agree with its TF.js ops to float32 rounding (the device may fuse a
// multiply and an add, and its exp and sqrt are not correctly rounded).
import * as tf from '@tensorflow/tfjs-core';
import type { GaussianDiffusion, Timesteps } from '../../diffusion/process.js';
import { assertShape } from '../../util/shapes.js';
import { bufferType } from './edges.js';
import { elementGroups, elementKernelWgsl, lit, u, type Binding } from './gemm.js';
import type { RawKernels } from './raw.js';

/** One step of a sampler, as src/diffusion/samplers.ts runs it. */
export interface SamplerStepInput {
  kind: 'ddpm' | 'ddim';
  /** [N, C or 2C, H, W] the denoiser's output */
  modelOutput: tf.Tensor4D;
  /** [N, C, H, W] x_t */
  x: tf.Tensor4D;
  /** the process's timestep of each sample */
  t: Timesteps;
  /** [N, C, H, W] standard normal noise, or null where no sample gets any (as pSampleStep / ddimStep) */
  noise: tf.Tensor4D | null;
  clipDenoised: boolean;
  /** DDIM's η (ddpm: unused) */
  eta: number;
}

const COEFS = 7;

/** The per-sample coefficients (see the file header), or null where one is not finite (the TF.js ops then). */
function coefficients(process: GaussianDiffusion, inp: SamplerStepInput, epsFromV: boolean): Float32Array | null {
  const f = Math.fround;
  const tb = process.tables;
  const { t } = inp;
  const param = process.config.parameterization;
  const look = (table: Float64Array) => process.lookup(table, t);
  const zeros = new Float32Array(t.length);
  const [a, b] =
    param === 'eps'
      ? [look(tb.sqrtRecipAlphasCumprod), look(tb.sqrtRecipm1AlphasCumprod)]
      : param === 'v'
        ? [look(tb.sqrtAlphasCumprod), look(tb.sqrtOneMinusAlphasCumprod)]
        : [zeros, zeros];
  const mask = Float32Array.from(t, (k) => (k !== 0 && inp.noise !== null ? 1 : 0));
  let cols: Float32Array[];
  if (inp.kind === 'ddpm') {
    const learned = process.config.variance === 'learned-range';
    const logVar = learned ? look(tb.posteriorLogVarianceClipped) : look(process.fixedVariance().logVariance);
    cols = [
      a,
      b,
      look(tb.posteriorMeanCoef1),
      look(tb.posteriorMeanCoef2),
      logVar,
      learned ? look(tb.logBetas) : zeros,
      mask,
    ];
  } else {
    const [e1, e2] = epsFromV
      ? [look(tb.sqrtAlphasCumprod), look(tb.sqrtOneMinusAlphasCumprod)]
      : [look(tb.sqrtRecipAlphasCumprod), look(tb.sqrtRecipm1AlphasCumprod)];
    const ab = look(tb.alphasCumprod);
    const abp = look(tb.alphasCumprodPrev);
    const eta = f(inp.eta);
    const sigma = Float32Array.from(ab, (abi, i) => {
      const p = abp[i]!;
      return f(f(eta * f(Math.sqrt(f(f(1 - p) / f(1 - abi))))) * f(Math.sqrt(f(1 - f(abi / p)))));
    });
    cols = [
      a,
      b,
      e1,
      e2,
      abp.map((p) => f(Math.sqrt(p))),
      abp.map((p, i) => f(Math.sqrt(f(f(1 - p) - f(sigma[i]! * sigma[i]!))))),
      mask.map((m, i) => m * sigma[i]!),
    ];
  }
  const out = new Float32Array(t.length * COEFS);
  for (let i = 0; i < t.length; i++) {
    for (let j = 0; j < COEFS; j++) {
      const v = cols[j]![i]!;
      if (!Number.isFinite(v)) return null;
      out[i * COEFS + j] = v;
    }
  }
  return out;
}

/**
 * x_{t−1} from the model output as one dispatch (a new tensor owned by the caller), or null where a
 * coefficient is not finite (the caller's TF.js ops handle that step). Shapes as pMeanVariance checks.
 */
export function rawSamplerStep(rk: RawKernels, process: GaussianDiffusion, inp: SamplerStepInput): tf.Tensor4D | null {
  const { x, modelOutput, noise, kind } = inp;
  const [N, C, H, W] = x.shape;
  if (inp.t.length !== N) throw new Error(`sampler step: batch of ${N} but ${inp.t.length} timesteps`);
  assertShape('model output', modelOutput.shape, [N, process.modelOutputChannels(C), H, W]);
  if (noise) assertShape('sampler step noise', noise.shape, x.shape);
  else if ((kind === 'ddpm' || inp.eta !== 0) && Array.from(inp.t).some((k) => k !== 0))
    throw new Error(`sampler step (${kind}): noise is needed where t != 0`);
  const epsFromV = kind === 'ddim' && process.ddimEpsFromV(inp.t);
  const coef = coefficients(process, inp, epsFromV);
  if (!coef) return null;
  const param = process.config.parameterization;
  const learned = process.config.variance === 'learned-range';
  const chw = C * H * W;
  const count = N * chw;
  const predX = param === 'x0' ? 'out' : 'cf[0] * xt - cf[1] * out';
  const noiseTerm = noise ? ` + cf[6] * NOISE[idx]` : '';
  const update =
    kind === 'ddpm'
      ? `
  let mean = cf[2] * px + cf[3] * xt;${
    learned
      ? `
  let frac = (MO[idx + (n + 1u) * ${u(chw)}] + 1.0) / 2.0;
  let lv = frac * cf[5] + (1.0 - frac) * cf[4];`
      : `
  let lv = cf[4];`
  }
  OUT[idx] = mean${noise ? ` + (cf[6] * exp(0.5 * lv)) * NOISE[idx]` : ''};`
      : `
  let eps = ${epsFromV ? 'cf[2] * out + cf[3] * xt' : '(cf[2] * xt - px) / cf[3]'};
  OUT[idx] = (px * cf[4] + cf[5] * eps)${noiseTerm};`;
  const variant = [kind, param, learned ? 'learned' : 'fixed'];
  if (kind === 'ddim') variant.push(epsFromV ? 'epsv' : 'epsx0');
  if (inp.clipDenoised) variant.push('clip');
  if (noise) variant.push('noise');
  const bindings: Binding[] = [
    { name: 'MO' },
    { name: 'X' },
    ...(noise ? [{ name: 'NOISE' }] : []),
    { name: 'COEF' },
    { name: 'OUT', write: true },
  ];
  const kernel = rk.kernel(`sampler.step:${N},${C},${H},${W}:${variant.join(',')}`, () =>
    elementKernelWgsl(
      bindings,
      count,
      `
  let n = idx / ${u(chw)};
  var cf: array<f32, ${COEFS}>;
  for (var q = 0u; q < ${u(COEFS)}; q = q + 1u) { cf[q] = COEF[n * ${u(COEFS)} + q]; }
  // the mean channel (the first C of 2C with a learned variance)
  let out = MO[idx${learned ? ` + n * ${u(chw)}` : ''}];
  let xt = X[idx];
  var px = ${predX};${inp.clipDenoised ? '\n  px = clamp(px, -1.0, 1.0);' : ''}${update}`,
    ),
  );
  const coefT = tf.tensor2d(coef, [N, COEFS]);
  const y = rk.output([N, C, H, W]);
  const inputs = [modelOutput, x, ...(noise ? [noise] : []), coefT];
  rk.run(
    [{ kernel, buffers: [...inputs.map((e) => rk.buffer(e)), y.buffer], groups: elementGroups(count) }],
    [...inputs, y.tensor],
  );
  coefT.dispose(); // released after the pending submit (it is marked as used by it)
  return y.tensor as tf.Tensor4D;
}

/**
 * Classifier-free guidance's batch (src/diffusion/cfg.ts withCfg) as one dispatch: x [N, C, H, W] →
 * [2N, C, H, W] (x twice), t [N] → [2N] (twice, in t's own element type), y [N] int32 → [2N] (the
 * labels, then the null label). New tensors owned by the caller; null where y is not int32 (the TF.js
 * ops then, which cast it).
 */
export function rawCfgInputs(
  rk: RawKernels,
  x: tf.Tensor4D,
  t: tf.Tensor1D,
  y: tf.Tensor1D,
  nullLabel: number,
): { x2: tf.Tensor4D; t2: tf.Tensor1D; y2: tf.Tensor1D } | null {
  const tType = t.dtype === 'float32' ? 'f32' : t.dtype === 'int32' ? 'i32' : null;
  // a float32 tensor over an int32 buffer (TF.js's Cast relabels): the TF.js ops, as for labels not int32
  if (y.dtype !== 'int32' || tType === null || bufferType(t) !== tType) return null;
  const [N, C, H, W] = x.shape;
  if (t.shape[0] !== N || y.shape[0] !== N)
    throw new Error(`cfg: ${t.shape[0]} timesteps and ${y.shape[0]} labels for a batch of ${N}`);
  const count = 2 * N * C * H * W;
  const kernel = rk.kernel(`sampler.cfgin:${N},${C * H * W},${tType},${nullLabel}`, () =>
    elementKernelWgsl(
      [
        { name: 'X' },
        { name: 'T', type: tType },
        { name: 'Y', type: 'i32' },
        { name: 'X2', write: true },
        { name: 'T2', write: true, type: tType },
        { name: 'Y2', write: true, type: 'i32' },
      ],
      count,
      `
  X2[idx] = X[idx % ${u(count / 2)}];
  if (idx < ${u(2 * N)}) {
    T2[idx] = T[idx % ${u(N)}];
    Y2[idx] = select(${nullLabel}i, Y[idx % ${u(N)}], idx < ${u(N)});
  }`,
    ),
  );
  const x2 = rk.output([2 * N, C, H, W]);
  const t2 = rk.output([2 * N], tType === 'i32' ? 'int32' : 'float32');
  const y2 = rk.output([2 * N], 'int32');
  rk.run(
    [
      {
        kernel,
        buffers: [rk.buffer(x), rk.buffer(t), rk.buffer(y), x2.buffer, t2.buffer, y2.buffer],
        groups: elementGroups(count),
      },
    ],
    [x, t, y, x2.tensor, t2.tensor, y2.tensor],
  );
  return { x2: x2.tensor as tf.Tensor4D, t2: t2.tensor as tf.Tensor1D, y2: y2.tensor as tf.Tensor1D };
}

/**
 * Classifier-free guidance's combination (src/diffusion/cfg.ts withCfg) as one dispatch: out [2N, C', H, W]
 * (conditional half first) → uncond + s·(cond − uncond) [N, C', H, W], on every channel ('all') or on
 * the first 3 with the conditional half's other channels ('first3'). A new tensor owned by the caller.
 */
export function rawCfgCombine(
  rk: RawKernels,
  out: tf.Tensor4D,
  scale: number,
  channels: 'all' | 'first3',
): tf.Tensor4D {
  const [N2, C, H, W] = out.shape;
  const N = N2 / 2;
  const hw = H * W;
  const chw = C * hw;
  const count = N * chw;
  const guideAll = channels === 'all' || C <= 3; // as withCfg: 'first3' of at most 3 channels guides them all
  const kernel = rk.kernel(`sampler.cfgmix:${N},${C},${hw},${lit(scale)},${guideAll ? 'all' : 'first3'}`, () =>
    elementKernelWgsl(
      [{ name: 'O' }, { name: 'G', write: true }],
      count,
      `
  let c = O[idx];
  let un = O[idx + ${u(count)}];
  let g = un + ${lit(scale)} * (c - un);
  G[idx] = ${guideAll ? 'g' : `select(c, g, (idx % ${u(chw)}) / ${u(hw)} < 3u)`};`,
    ),
  );
  const g = rk.output([N, C, H, W]);
  rk.run([{ kernel, buffers: [rk.buffer(out), g.buffer], groups: elementGroups(count) }], [out, g.tensor]);
  return g.tensor as tf.Tensor4D;
}
