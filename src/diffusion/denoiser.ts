// The one interface between diffusion and any model. Diffusion never names a model: the runner wraps
// a model (DiT, FPDM, …) into a Denoiser closure, and samplers only call that.
import type * as tf from '@tensorflow/tfjs-core';

export interface DenoiserContext<S> {
  /** sampling step, 0 = the first (noisiest) */
  step: number;
  /** number of sampling steps in this pass */
  steps: number;
  /**
   * Iteration state carried from the previous step (FPDM solution reuse); undefined at step 0.
   * The denoiser owns the tensors in its state: when it returns a new state it disposes what it no
   * longer needs; the sampler only passes the state along and hands the last one back to its caller.
   */
  state?: S;
}

export interface DenoiserResult<S> {
  /** the raw model output: ε / x_0 / v, plus the variance channels when learned: [N, C or 2C, H, W] */
  out: tf.Tensor4D;
  state?: S;
  /** what this call spent or measured, e.g. { blockEvals, iters, residual } (forwarded to onStep) */
  info?: Record<string, number | number[]>;
}

/**
 * x: [N, C, H, W] at the current step; t: [N] ORIGINAL timesteps (float32 holding integers, already
 * mapped through a respaced process's timestepMap); y: [N] int32 class labels or null.
 * FPDM's per-step iteration count and solution reuse live in the closure and its state, never as
 * special cases in a sampler. The returned `out` is owned by the caller (the sampler disposes it).
 * A denoiser may return a promise (a model whose solver reads residuals on the host must do so
 * asynchronously: the webgpu backend cannot read synchronously under Node); samplers await it.
 */
export type Denoiser<S = unknown> = (
  x: tf.Tensor4D /* [N, C, H, W] */,
  t: tf.Tensor1D /* [N] original timesteps */,
  y: tf.Tensor1D | null /* [N] labels */,
  ctx: DenoiserContext<S>,
) => DenoiserResult<S> | Promise<DenoiserResult<S>>;
