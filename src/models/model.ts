// The interface DiT and FPDM both implement, the model inputs, and label dropout. A model is a
// function of its inputs and an explicit fixed-point state: nothing about a previous call is kept
// inside the model object (solution reuse passes `state` in and gets it back).
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { assertShape } from '../util/shapes.js';
import type { ModelConfig } from './config.js';
import type { ParamTree } from './params.js';
import type { SolveReport, SolverOptions } from './solver.js';

/** FPDM's fixed-point state after the iterations (before the post blocks). Owned by the caller. */
export interface FixedPointState {
  z: tf.Tensor3D; // [N, T, D]
}

export interface ForwardOptions {
  /** FPDM: number of fixed-point iterations (shorthand for `solver: {kind: 'fixed', iters}`) */
  iters?: number;
  /** FPDM: solver (fixed count, residual tolerance, Anderson); overrides `iters`. Synchronous forward: fixed only */
  solver?: SolverOptions;
  /** FPDM: start the iteration from this state (solution reuse; S-JFB's no-grad result) instead of x_pre */
  state?: FixedPointState;
  /**
   * FPDM: compute per-iteration residuals with the fixed solver. forwardAsync reads them (one host read
   * per forward) into solve.residuals (default true); the synchronous forward never reads the device and
   * returns them as the tensor `residuals` (default false)
   */
  trackResiduals?: boolean;
  /**
   * Gradient checkpointing (DiT and FPDM): under a gradient tape, keep only each transformer block's
   * (FPDM: each fixed-point step's) inputs and recompute its forward in the backward pass. Same
   * outputs and gradients (models/blockgrad.ts); less memory, one more forward of the blocks per step.
   */
  gradCheckpoint?: boolean;
}

export interface ForwardResult {
  out: tf.Tensor4D; // [N, Co, H, W], Co = C·(learnSigma ? 2 : 1)
  /** FPDM only: the state reached (for reuse at the next sampling step); the caller disposes it */
  state?: FixedPointState;
  /** FPDM only: iterations used and residuals (solve.residuals is empty from the synchronous forward) */
  solve?: SolveReport;
  /** FPDM, synchronous forward with trackResiduals: [iterations] relative residuals; the caller disposes it */
  residuals?: tf.Tensor1D;
}

/** What a training step draws once per batch (S-JFB iteration counts and the label-dropout mask). */
export interface TrainingPlan {
  /** iterations run without gradient before the graph starts (0 for DiT) */
  noGrad: number;
  /** iterations unrolled for backprop (0 for DiT) */
  withGrad: number;
  /** 1 where the label is replaced by the null class */
  dropMask: Uint8Array;
}

export interface DiffusionModel {
  readonly config: ModelConfig;
  /** trainable parameters by PyTorch state_dict name */
  readonly params: ParamTree;
  /**
   * x [N, C, H, W] float32, t [N] float32 timesteps, y [N] int32 labels (numClasses = null class).
   * Returned tensors belong to the caller; nothing else is kept.
   * Synchronous and free of host reads (usable inside tf.variableGrads, and on webgpu): FPDM supports
   * only the fixed solver here and returns tracked residuals as a tensor; asking it for the tolerance or
   * Anderson solver throws an Error naming forwardAsync.
   */
  forward(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, opts?: ForwardOptions): ForwardResult;
  /**
   * The same model call with every solver (fixed, tolerance, Anderson) and residuals read as numbers
   * into solve.residuals (asynchronously: `await .data()`); same inputs, outputs and ownership as forward.
   */
  forwardAsync(x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D, opts?: ForwardOptions): Promise<ForwardResult>;
  /**
   * S-JFB's no-gradient part (FPDM: pre blocks and `n` iterations outside any tape; call it outside
   * tf.variableGrads): the state to pass to the with-gradient forward, or undefined when there is none
   * (n = 0; always for DiT, whose training plan draws n = 0).
   */
  noGradState(
    x: tf.Tensor4D,
    t: tf.Tensor1D,
    y: tf.Tensor1D,
    n: number,
    state?: FixedPointState,
  ): FixedPointState | undefined;
  /** Draws the per-batch training randomness from `rng`: iteration counts (FPDM), then the label-drop mask. */
  sampleTrainingPlan(rng: Rng, batchSize: number): TrainingPlan;
  /** Block evaluations one forward costs (DiT: depth; FPDM: pre + iterations + post). */
  blockEvaluations(iterations?: number): number;
  dispose(): void;
}

/** Checks the inputs of forward against the config (cheap, at the public entry). */
export function checkInputs(c: ModelConfig, x: tf.Tensor4D, t: tf.Tensor1D, y: tf.Tensor1D): void {
  assertShape('x', x.shape, [-1, c.inChannels, c.inputSize, c.inputSize]);
  assertShape('t', t.shape, [x.shape[0]]);
  assertShape('y', y.shape, [x.shape[0]]);
}

/** Label-dropout mask: each label independently with probability p (uniform draws from rng, in order). */
export function sampleDropMask(rng: Rng, batchSize: number, p: number): Uint8Array {
  const mask = new Uint8Array(batchSize);
  if (p <= 0) return mask;
  for (let i = 0; i < batchSize; i++) mask[i] = rng.uniform() < p ? 1 : 0;
  return mask;
}

/** Labels with the masked ones replaced by the null class (index numClasses), as the reference's LabelEmbedder.token_drop. */
export function applyLabelDrop(y: Int32Array, mask: Uint8Array, numClasses: number): Int32Array {
  if (mask.length !== y.length) throw new Error(`applyLabelDrop: ${y.length} labels but a mask of ${mask.length}`);
  return Int32Array.from(y, (v, i) => (mask[i] ? numClasses : v));
}

/** Checks labels are in 0..numClasses (numClasses = null class, valid only when the table has that row). */
export function checkLabels(c: ModelConfig, y: ArrayLike<number>): void {
  const maxLabel = c.classDropoutProb > 0 ? c.numClasses : c.numClasses - 1;
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (!Number.isInteger(v) || v < 0 || v > maxLabel) {
      throw new UserError(
        `label y[${i}] = ${v} is out of range: expected an integer in 0..${maxLabel}${c.classDropoutProb > 0 ? ` (${c.numClasses} is the null class)` : ''}`,
      );
    }
  }
}
