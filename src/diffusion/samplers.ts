// Samplers as pure functions of a denoiser (k-diffusion style): (denoiser, x_T, process, options) → x_0.
//
// Notation: x_T (xT) the starting noise [N, C, H, W]; t runs over the process's (possibly respaced)
// indices T'−1 … 0; the denoiser receives the ORIGINAL timesteps timestepMap[t]; step i = T'−1−t
// (0 = first, noisiest). Noise comes from the host RNG (`Rng.normals`), so a seed gives the same
// samples on every backend (up to float32 rounding of the backend's kernels); no noise at t = 0.
//
//   ddpm   ancestral sampling (DDPM Algorithm 2; variance per the process: learned range or fixed)
//   ddim   DDIM (Song et al. 2021, eq. 12) with η: 0 deterministic, 1 ≈ DDPM's fixed-small variance
//
// On webgpu a step's update (pMeanVariance, then pSampleStep / ddimStep) is one direct dispatch of the
// same arithmetic (src/backends/kernels.ts directSamplerStep), the model's forward too: with ≈ 20 TF.js
// kernels per step at ≈ 130 µs of host time each, the update alone cost more host time than the forward.
//
// With FPDM_SAMPLE_DRAW_AHEAD=1 (sampleDrawAheadOn), noise of DRAW_AHEAD_MIN_VALUES values or more per
// step is drawn on a worker thread (the training loop's, src/training/draw-ahead.ts) from a copy of the
// generator's state while this thread records the step's denoiser call, and the generator is then put
// in the state the copy reached: the same numbers as drawing here. At 256 px and batch 32 that is 131,072
// normals per step, 4–7 ms of this thread's time (measured on a CPU machine of this project), where
// FPDM-S/2's sampling with reuse is bound by the host's recording on the GPU machine (GPU 4.8 ms of a
// 10.9 ms call, results/bench/NOTES.md §20).
//
// Memory: each step's math runs in tf.tidy; the denoiser's output and the previous x are disposed
// as soon as the next x exists, so tf.memory().numTensors is flat across a pass. The caller owns
// x_T (never disposed here) and the returned x_0 (and the final denoiser state).
import * as tf from '@tensorflow/tfjs-core';
import { directSamplerStep } from '../backends/kernels.js';
import { DRAW_AHEAD_MIN_VALUES, DrawAhead } from '../training/draw-ahead.js';
import { UserError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { numel } from '../util/shapes.js';
import type { Denoiser } from './denoiser.js';
import type { GaussianDiffusion } from './process.js';

export type SamplerName = 'ddpm' | 'ddim';
export const SAMPLER_NAMES: readonly SamplerName[] = ['ddpm', 'ddim'];

export interface StepInfo {
  /** 0 = first (noisiest) step */
  step: number;
  steps: number;
  /** index in the sampling process */
  t: number;
  /** original timestep given to the denoiser */
  tOriginal: number;
  /** milliseconds this step took (denoiser + update, forced to completion by an asynchronous read of x) */
  ms: number;
  /** whatever the denoiser reported (block evaluations, iterations, residuals, …) */
  denoiser: Record<string, number | number[]>;
}

export interface SampleOptions<S = unknown> {
  /** class labels [N] (int32), or null for an unconditional model */
  y: tf.Tensor1D | null;
  /** host RNG for the per-step noise */
  rng: Rng;
  /** clamp x̂_0 to [−1, 1] (the reference samples with this off) */
  clipDenoised?: boolean;
  /** DDIM η (ignored by ddpm); default 0 */
  eta?: number;
  /** initial denoiser state (e.g. none: FPDM starts its iteration from the pre-block output) */
  initialState?: S;
  /** called after each step, once the new x exists (and has been computed: the step is timed) */
  onStep?: (i: number, info: StepInfo) => void;
}

export interface SampleResult<S = unknown> {
  x0: tf.Tensor4D; // [N, C, H, W]
  /** the denoiser's state after the last step (caller disposes its tensors) */
  state?: S;
  steps: number;
  /** total milliseconds of the pass */
  ms: number;
}

export type Sampler = <S>(
  denoiser: Denoiser<S>,
  xT: tf.Tensor4D,
  process: GaussianDiffusion,
  options: SampleOptions<S>,
) => Promise<SampleResult<S>>;

/** The worker that draws the samplers' noise ahead: one per process, started at its first use. */
let noiseWorker: DrawAhead | null = null;

/**
 * Whether the samplers draw large noise on the worker (the file header): only where the environment variable
 * FPDM_SAMPLE_DRAW_AHEAD is 1 until it is measured on the GPU machine (results/bench/NOTES.md §20); the same
 * numbers either way.
 */
export function sampleDrawAheadOn(): boolean {
  return process.env.FPDM_SAMPLE_DRAW_AHEAD === '1';
}

/** `count` standard normals from `rng`: the worker's, where `ahead` asked for them from rng's present state. */
async function stepNoise(rng: Rng, count: number, ahead: DrawAhead | null): Promise<Float32Array> {
  const drawn = ahead ? await ahead.take(rng, 0, count, 1) : null;
  if (!drawn) return rng.normals(count);
  rng.load(drawn.state);
  return drawn.noise;
}

async function runLoop<S>(
  kind: SamplerName,
  denoiser: Denoiser<S>,
  xT: tf.Tensor4D,
  process: GaussianDiffusion,
  options: SampleOptions<S>,
): Promise<SampleResult<S>> {
  if (xT.rank !== 4) throw new UserError(`sampler: x_T must be [N, C, H, W], got rank ${xT.rank}`);
  const N = xT.shape[0];
  if (options.y && options.y.shape[0] !== N)
    throw new UserError(`sampler: ${options.y.shape[0]} labels for a batch of ${N}`);
  const eta = options.eta ?? 0;
  if (kind === 'ddim' && !(eta >= 0)) throw new UserError(`ddim: eta must be >= 0, got ${eta}`);
  const clipDenoised = options.clipDenoised ?? false;
  const steps = process.numTimesteps;
  const direct = directSamplerStep(process);
  const count = numel(xT.shape);
  const ahead = count >= DRAW_AHEAD_MIN_VALUES && sampleDrawAheadOn() ? (noiseWorker ??= new DrawAhead()) : null;
  const start = performance.now();
  let x: tf.Tensor4D = xT;
  let state = options.initialState;
  try {
    for (let i = 0; i < steps; i++) {
      const stepStart = performance.now();
      const tIndex = steps - 1 - i;
      const t = new Array<number>(N).fill(tIndex);
      const tModel = process.modelTimesteps(t); // [N]
      // 2. (started first) Noise from the host RNG, only where the update uses it (never at t = 0): on the
      // worker while the model call is recorded
      const needsNoise = tIndex !== 0 && (kind === 'ddpm' || eta > 0);
      if (needsNoise) ahead?.request(options.rng, 0, count, 1);
      // 1. The model call, outside tidy: its state may hold tensors that must outlive this step.
      let res;
      try {
        res = await denoiser(x, tModel, options.y, { step: i, steps, state });
      } finally {
        tModel.dispose();
      }
      state = res.state;
      const values = needsNoise ? await stepNoise(options.rng, count, ahead) : null;
      const next = tf.tidy(() => {
        const noise = values ? tf.tensor4d(values, x.shape) : null;
        // 3. The update: one direct dispatch where the backend has it (webgpu), else the process's ops.
        const fused = direct?.({ kind, modelOutput: res.out, x, t, noise, clipDenoised, eta });
        if (fused) return fused;
        const mv = process.pMeanVariance(res.out, x, t, { clipDenoised });
        return kind === 'ddpm' ? process.pSampleStep(mv, t, noise) : process.ddimStep(mv, x, t, eta, noise);
      });
      res.out.dispose();
      if (x !== xT) x.dispose();
      x = next;
      if (options.onStep) {
        await x.data(); // time the step to completion on asynchronous backends (an asynchronous read: webgpu has no synchronous one under Node)
        options.onStep(i, {
          step: i,
          steps,
          t: tIndex,
          tOriginal: process.timestepMap[tIndex]!,
          ms: performance.now() - stepStart,
          denoiser: res.info ?? {},
        });
      }
    }
  } catch (e) {
    if (x !== xT) x.dispose();
    throw e;
  }
  // A zero-step process cannot exist (T' >= 2), so x is a new tensor here.
  return { x0: x, state, steps, ms: performance.now() - start };
}

/** DDPM ancestral sampling over every step of `process` (respace the process to take fewer). */
export function sampleDdpm<S>(
  denoiser: Denoiser<S>,
  xT: tf.Tensor4D,
  process: GaussianDiffusion,
  options: SampleOptions<S>,
): Promise<SampleResult<S>> {
  return runLoop('ddpm', denoiser, xT, process, options);
}

/** DDIM sampling with options.eta (default 0) over every step of `process`. */
export function sampleDdim<S>(
  denoiser: Denoiser<S>,
  xT: tf.Tensor4D,
  process: GaussianDiffusion,
  options: SampleOptions<S>,
): Promise<SampleResult<S>> {
  return runLoop('ddim', denoiser, xT, process, options);
}

/** The samplers by name (one registry). */
export const SAMPLERS: Record<SamplerName, Sampler> = { ddpm: sampleDdpm, ddim: sampleDdim };
