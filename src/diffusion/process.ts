// A Gaussian diffusion process: forward noising, the posterior, the model's reverse step and the
// DDPM / DDIM single-step updates, on float32 TF.js tensors with float64 host tables.
//
// Notation (see schedules.ts for the tables):
//   x_0 (xStart)   clean data        x_t (x)   noised data      ε (noise)   standard normal noise
//   v              v-prediction target  v = √ᾱ_t ε − √(1−ᾱ_t) x_0   (Salimans & Ho 2022)
//   t              index into THIS process (0 … T'−1); a respaced process calls its model with the
//                  ORIGINAL timestep timestepMap[t] (modelTimesteps()).
// Shapes: x, x_0, ε: [N, C, H, W]; a model output is [N, C, H, W], or [N, 2C, H, W] with learned variance
// (first C channels the ε / x_0 / v prediction, last C the variance interpolation values in [−1, 1]).
//
// Precision: every coefficient is looked up in float64 and rounded to float32 before it meets a
// tensor, and the arithmetic follows the reference's order of operations in float32, so results
// agree with the PyTorch reference to float32 rounding (the fixtures were made that way).
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../util/errors.js';
import { assertShape } from '../util/shapes.js';
import { respaceBetas, spaceTimesteps } from './respace.js';
import {
  enforceZeroTerminalSnr,
  namedBetas,
  scheduleTables,
  type ScheduleName,
  type ScheduleTables,
} from './schedules.js';

export type Parameterization = 'eps' | 'x0' | 'v';
export type VarianceType = 'learned-range' | 'fixed-small' | 'fixed-large';
/** 'hybrid' = mse + vb (improved DDPM §3.1: vb trains the variance only, the mean is frozen in it) */
export type LossType = 'mse' | 'hybrid';
/** weights of the v-prediction loss (an x_0-space MSE); 'p2' = SNR_t · √(1−ᾱ_t) as the reference */
export type VLossWeighting = 'p2' | 'snr' | 'sqrt-snr' | 'snr+1' | 'truncated-snr';

export interface DiffusionConfig {
  /** T of the original (training) process; the reference uses 1000 */
  diffusionSteps: number;
  schedule: ScheduleName;
  parameterization: Parameterization;
  variance: VarianceType;
  /** rescale the schedule to zero terminal SNR (requires parameterization 'v') */
  zeroTerminalSnr: boolean;
  /** '' (all steps), section counts such as '250' or '7,3', or 'ddimN' */
  respacing: string;
  loss: LossType;
  /** used only with parameterization 'v' */
  vWeighting: VLossWeighting;
}

/** The reference training process: 1000 linear steps, ε-prediction, learned-range variance, mse + vb. */
export const DEFAULT_DIFFUSION: DiffusionConfig = {
  diffusionSteps: 1000,
  schedule: 'linear',
  parameterization: 'eps',
  variance: 'learned-range',
  zeroTerminalSnr: false,
  respacing: '',
  loss: 'hybrid',
  vWeighting: 'p2',
};

/** Fills defaults and checks the cross-field rules (the boundary's job; nothing past here re-checks). */
export function diffusionConfig(partial: Partial<DiffusionConfig> = {}): DiffusionConfig {
  const c: DiffusionConfig = { ...DEFAULT_DIFFUSION, ...partial };
  if (c.zeroTerminalSnr && c.parameterization !== 'v') {
    throw new UserError(
      `diffusion: zeroTerminalSnr needs parameterization 'v' (got '${c.parameterization}'): with ᾱ = 0 at the last step, x_0 cannot be recovered from an ε prediction`,
    );
  }
  if (c.loss === 'hybrid' && c.variance !== 'learned-range') {
    throw new UserError(
      `diffusion: loss 'hybrid' (mse + vb) trains a learned variance; with variance '${c.variance}' use loss 'mse'`,
    );
  }
  if (c.loss === 'mse' && c.variance === 'learned-range') {
    throw new UserError(
      `diffusion: variance 'learned-range' is trained by the vb term; use loss 'hybrid' (or a fixed variance with loss 'mse')`,
    );
  }
  return c;
}

/** Host timestep indices, one per batch element. */
export type Timesteps = ArrayLike<number>;

export interface MeanVariance {
  mean: tf.Tensor4D; // [N, C, H, W]
  variance: tf.Tensor4D; // [N, C, H, W]
  logVariance: tf.Tensor4D; // [N, C, H, W]
  predXstart: tf.Tensor4D; // [N, C, H, W]
  /** the mean part of the model output (ε, x_0 or v) */
  modelOutput: tf.Tensor4D; // [N, C, H, W]
}

export class GaussianDiffusion {
  readonly config: DiffusionConfig;
  readonly tables: ScheduleTables;
  /** respaced index → original timestep */
  readonly timestepMap: Int32Array;
  /** T' of this (possibly respaced) process */
  readonly numTimesteps: number;
  readonly originalNumSteps: number;
  /** loss weights of the v-prediction loss, per timestep */
  readonly vWeights: Float64Array;
  /** log-variance pair of the 'fixed-large' variance: (β̃_1, β_1, β_2, …) (reference quirk at t = 0) */
  private readonly fixedLarge: { variance: Float64Array; logVariance: Float64Array };

  constructor(config: DiffusionConfig) {
    this.config = config;
    let betas = namedBetas(config.schedule, config.diffusionSteps);
    if (config.zeroTerminalSnr) betas = enforceZeroTerminalSnr(betas);
    // The reference always goes through SpacedDiffusion, even with every step kept: the betas are
    // rebuilt from ᾱ ratios, which moves them by a few ulps. Reproduced on purpose.
    const keep = spaceTimesteps(config.diffusionSteps, config.respacing);
    const spaced = respaceBetas(betas, keep);
    this.timestepMap = spaced.timestepMap;
    this.tables = scheduleTables(spaced.betas);
    this.numTimesteps = this.tables.T;
    this.originalNumSteps = config.diffusionSteps;
    const { snr, sqrtOneMinusAlphasCumprod: s1 } = this.tables;
    this.vWeights = snr.map((s, i) => {
      switch (config.vWeighting) {
        case 'p2':
          return s * s1[i]!; // reference: snrs · √(1−ᾱ) (Choi et al. 2022 "P2" in spirit)
        case 'snr':
          return s;
        case 'sqrt-snr':
          return Math.sqrt(s);
        case 'snr+1':
          return s + 1;
        case 'truncated-snr':
          return Math.max(s, 1);
      }
    });
    const pv = this.tables.posteriorVariance;
    const large = this.tables.betas.map((b, i) => (i === 0 ? pv[1]! : b));
    this.fixedLarge = { variance: large, logVariance: large.map(Math.log) };
  }

  /** The same process with another respacing (e.g. the 1000-step training process → 20 sampling steps). */
  respaced(respacing: string): GaussianDiffusion {
    return new GaussianDiffusion({ ...this.config, respacing });
  }

  /** Original timesteps for the model, as float32 [N] (integer values). */
  modelTimesteps(t: Timesteps): tf.Tensor1D {
    return tf.tensor1d(
      Float32Array.from(t, (i) => this.timestepMap[i]!),
      'float32',
    );
  }

  /** Looks up a float64 table at t and rounds to float32: [N] values (each t checked against the range). */
  lookup(table: Float64Array, t: Timesteps): Float32Array {
    const n = t.length;
    const vals = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const k = t[i]!;
      if (!Number.isInteger(k) || k < 0 || k >= this.numTimesteps) {
        throw new UserError(`timestep ${k} is outside this process's range 0..${this.numTimesteps - 1}`);
      }
      vals[i] = table[k]!;
    }
    return vals;
  }

  /** lookup(table, t) shaped [N, 1, 1, 1] for broadcasting. */
  extract(table: Float64Array, t: Timesteps): tf.Tensor4D {
    return tf.tensor4d(this.lookup(table, t), [t.length, 1, 1, 1]);
  }

  /**
   * extract(table, t) broadcast to `shape` [N, C, H, W], as a product with ones: tf.broadcastTo of the
   * small host-made [N, 1, 1, 1] tensor runs TF.js's Tile on the CPU even on webgpu and uploads the
   * result (measured on the GPU machine: ≈ 3 s of host time over a short bench run, the largest host
   * cost of training and sampling steps). The ones are a Fill kernel (tf.ones would upload a host
   * array). The values are the same (a product with 1 is exact).
   */
  extractFull(table: Float64Array, t: Timesteps, shape: number[]): tf.Tensor4D {
    return tf.tidy(() => tf.mul(this.extract(table, t), tf.fill(shape, 1)) as tf.Tensor4D);
  }

  private checkBatch(what: string, x: tf.Tensor, t: Timesteps): void {
    if (x.rank !== 4) throw new UserError(`${what}: expected an NCHW tensor, got rank ${x.rank}`);
    if (x.shape[0] !== t.length) throw new UserError(`${what}: batch of ${x.shape[0]} but ${t.length} timesteps`);
  }

  /** q(x_t | x_0) sample: √ᾱ_t x_0 + √(1−ᾱ_t) ε  (DDPM eq. 4). */
  qSample(xStart: tf.Tensor4D, t: Timesteps, noise: tf.Tensor4D): tf.Tensor4D {
    this.checkBatch('qSample x_0', xStart, t);
    assertShape('qSample noise', noise.shape, xStart.shape);
    return tf.tidy(() => {
      const a = this.extract(this.tables.sqrtAlphasCumprod, t);
      const b = this.extract(this.tables.sqrtOneMinusAlphasCumprod, t);
      return tf.add(tf.mul(a, xStart), tf.mul(b, noise)) as tf.Tensor4D; // [N, C, H, W]
    });
  }

  /** q(x_{t−1} | x_t, x_0) = N(c1·x_0 + c2·x_t, β̃_t)  (DDPM eqs. 6–7). */
  qPosteriorMeanVariance(
    xStart: tf.Tensor4D,
    xT: tf.Tensor4D,
    t: Timesteps,
  ): { mean: tf.Tensor4D; variance: tf.Tensor4D; logVarianceClipped: tf.Tensor4D } {
    return tf.tidy(() => {
      const c1 = this.extract(this.tables.posteriorMeanCoef1, t);
      const c2 = this.extract(this.tables.posteriorMeanCoef2, t);
      const mean = tf.add(tf.mul(c1, xStart), tf.mul(c2, xT)) as tf.Tensor4D; // [N, C, H, W]
      return {
        mean,
        variance: this.extractFull(this.tables.posteriorVariance, t, xT.shape),
        logVarianceClipped: this.extractFull(this.tables.posteriorLogVarianceClipped, t, xT.shape),
      };
    });
  }

  /** x_0 from ε: x_0 = x_t/√ᾱ_t − √(1/ᾱ_t − 1) ε  (DDPM eq. 4 solved for x_0). */
  predictXstartFromEps(xT: tf.Tensor4D, t: Timesteps, eps: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(
      () =>
        tf.sub(
          tf.mul(this.extract(this.tables.sqrtRecipAlphasCumprod, t), xT),
          tf.mul(this.extract(this.tables.sqrtRecipm1AlphasCumprod, t), eps),
        ) as tf.Tensor4D,
    );
  }

  /** x_0 from v: x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v. */
  predictXstartFromV(xT: tf.Tensor4D, t: Timesteps, v: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(
      () =>
        tf.sub(
          tf.mul(this.extract(this.tables.sqrtAlphasCumprod, t), xT),
          tf.mul(this.extract(this.tables.sqrtOneMinusAlphasCumprod, t), v),
        ) as tf.Tensor4D,
    );
  }

  /** ε from x_0: (x_t/√ᾱ_t − x_0) / √(1/ᾱ_t − 1). */
  predictEpsFromXstart(xT: tf.Tensor4D, t: Timesteps, predXstart: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(
      () =>
        tf.div(
          tf.sub(tf.mul(this.extract(this.tables.sqrtRecipAlphasCumprod, t), xT), predXstart),
          this.extract(this.tables.sqrtRecipm1AlphasCumprod, t),
        ) as tf.Tensor4D,
    );
  }

  /** ε from v: √ᾱ_t v + √(1−ᾱ_t) x_t (finite even where ᾱ_t = 0). */
  predictEpsFromV(xT: tf.Tensor4D, t: Timesteps, v: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(
      () =>
        tf.add(
          tf.mul(this.extract(this.tables.sqrtAlphasCumprod, t), v),
          tf.mul(this.extract(this.tables.sqrtOneMinusAlphasCumprod, t), xT),
        ) as tf.Tensor4D,
    );
  }

  /** Number of channels the model must output for `dataChannels` data channels. */
  modelOutputChannels(dataChannels: number): number {
    return this.config.variance === 'learned-range' ? 2 * dataChannels : dataChannels;
  }

  /** The tables of a fixed variance: β̃_t (fixed-small) or β_t with β̃_1 at t = 0 (fixed-large). */
  fixedVariance(): { variance: Float64Array; logVariance: Float64Array } {
    return this.config.variance === 'fixed-large'
      ? this.fixedLarge
      : { variance: this.tables.posteriorVariance, logVariance: this.tables.posteriorLogVarianceClipped };
  }

  /**
   * Whether ddimStep takes ε̂ from the model's v rather than from x̂_0: v-prediction with some element
   * of the batch where ᾱ_t = 0 (the reference's `.any()` check; see ddimStep).
   */
  ddimEpsFromV(t: Timesteps): boolean {
    return (
      this.config.parameterization === 'v' &&
      Array.from(t).some((k) => !Number.isFinite(this.tables.sqrtRecipAlphasCumprod[k]!))
    );
  }

  /**
   * p(x_{t−1} | x_t) from a model output (reference: p_mean_variance).
   * 1. Variance: learned range (improved DDPM eq. 15) log σ² = f·log β_t + (1−f)·log β̃_t with
   *    f = (v+1)/2, or fixed small (β̃_t) / fixed large (β_t, with β̃_1 at t = 0).
   * 2. x_0 prediction from ε (eq. 4 inverted), x_0 directly, or v; optionally clamped to [−1, 1].
   * 3. Mean = posterior mean μ̃_t(x̂_0, x_t) (DDPM eq. 7).
   */
  pMeanVariance(
    modelOutput: tf.Tensor4D,
    x: tf.Tensor4D,
    t: Timesteps,
    opts: { clipDenoised: boolean; denoisedFn?: (x0: tf.Tensor4D) => tf.Tensor4D },
  ): MeanVariance {
    this.checkBatch('pMeanVariance x', x, t);
    const [N, C, H, W] = x.shape;
    assertShape('model output', modelOutput.shape, [N, this.modelOutputChannels(C), H, W]);
    return tf.tidy(() => {
      let out: tf.Tensor4D; // [N, C, H, W]
      let variance: tf.Tensor4D;
      let logVariance: tf.Tensor4D;
      if (this.config.variance === 'learned-range') {
        const [mean, varValues] = tf.split(modelOutput, 2, 1) as [tf.Tensor4D, tf.Tensor4D];
        out = mean;
        const minLog = this.extract(this.tables.posteriorLogVarianceClipped, t);
        const maxLog = this.extract(this.tables.logBetas, t);
        const frac = tf.div(tf.add(varValues, 1), 2); // [N, C, H, W], [−1, 1] → [0, 1]
        logVariance = tf.add(tf.mul(frac, maxLog), tf.mul(tf.sub(1, frac), minLog)) as tf.Tensor4D;
        variance = tf.exp(logVariance);
      } else {
        out = modelOutput;
        const pair = this.fixedVariance();
        variance = this.extractFull(pair.variance, t, x.shape);
        logVariance = this.extractFull(pair.logVariance, t, x.shape);
      }
      let predXstart =
        this.config.parameterization === 'eps'
          ? this.predictXstartFromEps(x, t, out)
          : this.config.parameterization === 'v'
            ? this.predictXstartFromV(x, t, out)
            : out;
      if (opts.denoisedFn) predXstart = opts.denoisedFn(predXstart);
      if (opts.clipDenoised) predXstart = tf.clipByValue(predXstart, -1, 1);
      const { mean } = this.qPosteriorMeanVariance(predXstart, x, t);
      return { mean, variance, logVariance, predXstart, modelOutput: out };
    });
  }

  /**
   * One ancestral DDPM step (DDPM Algorithm 2 line 4): x_{t−1} = μ + σ z, with z = 0 where t = 0.
   * `noise` is [N, C, H, W] (from the host RNG) or null when no element needs it.
   */
  pSampleStep(mv: MeanVariance, t: Timesteps, noise: tf.Tensor4D | null): tf.Tensor4D {
    return tf.tidy(() => {
      if (noise === null) {
        if (Array.from(t).some((k) => k !== 0)) throw new Error('pSampleStep: noise is needed where t != 0');
        return tf.clone(mv.mean);
      }
      const mask = tf.tensor4d(
        Float32Array.from(t, (k) => (k !== 0 ? 1 : 0)),
        [t.length, 1, 1, 1],
      );
      return tf.add(mv.mean, tf.mul(tf.mul(mask, tf.exp(tf.mul(0.5, mv.logVariance))), noise)) as tf.Tensor4D;
    });
  }

  /**
   * One DDIM step (Song et al. 2021, eq. 12):
   *   x_{t−1} = √ᾱ_{t−1} x̂_0 + √(1 − ᾱ_{t−1} − σ_t²) ε̂ + σ_t z,
   *   σ_t = η √((1−ᾱ_{t−1})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t−1})  (eq. 16), z = 0 where t = 0.
   * ε̂ is re-derived from x̂_0 (so clipping carries over), except for v-prediction when some element
   * of the batch sits where ᾱ_t = 0: then the reference takes ε̂ = √ᾱ v + √(1−ᾱ) x_t for the WHOLE
   * batch (its check is `.any()`); reproduced on purpose.
   */
  ddimStep(mv: MeanVariance, x: tf.Tensor4D, t: Timesteps, eta: number, noise: tf.Tensor4D | null): tf.Tensor4D {
    return tf.tidy(() => {
      const eps = this.ddimEpsFromV(t)
        ? this.predictEpsFromV(x, t, mv.modelOutput)
        : this.predictEpsFromXstart(x, t, mv.predXstart);
      const alphaBar = this.extract(this.tables.alphasCumprod, t);
      const alphaBarPrev = this.extract(this.tables.alphasCumprodPrev, t);
      const sigma = tf.mul(
        tf.mul(eta, tf.sqrt(tf.div(tf.sub(1, alphaBarPrev), tf.sub(1, alphaBar)))),
        tf.sqrt(tf.sub(1, tf.div(alphaBar, alphaBarPrev))),
      ); // [N, 1, 1, 1]
      const meanPred = tf.add(
        tf.mul(mv.predXstart, tf.sqrt(alphaBarPrev)),
        tf.mul(tf.sqrt(tf.sub(tf.sub(1, alphaBarPrev), tf.square(sigma))), eps),
      ) as tf.Tensor4D;
      if (noise === null) {
        if (eta !== 0 && Array.from(t).some((k) => k !== 0))
          throw new Error('ddimStep: noise is needed where eta > 0 and t != 0');
        return meanPred;
      }
      const mask = tf.tensor4d(
        Float32Array.from(t, (k) => (k !== 0 ? 1 : 0)),
        [t.length, 1, 1, 1],
      );
      return tf.add(meanPred, tf.mul(tf.mul(mask, sigma), noise)) as tf.Tensor4D;
    });
  }
}

/** Builds a process from a (partial) config, validated. */
export function createDiffusion(partial: Partial<DiffusionConfig> = {}): GaussianDiffusion {
  return new GaussianDiffusion(diffusionConfig(partial));
}
