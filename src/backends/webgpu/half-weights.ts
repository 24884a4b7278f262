// f16 copies of weights for the products of a forward without save at mixed precision (sampling, S-JFB's
// no-gradient iterations), so that the tensor-core matmuls read their B operand as f16 (half the bytes, no
// conversion while staging) instead of rounding the f32 weights to f16 in every workgroup's staging: the
// same f16 values, so the products are unchanged. A copy lives in a scratch buffer of its own (per kernel
// family and weight) and is converted again only when another weight tensor or a new model forward comes:
// weights written in place keep their tensor, so the key holds an `epoch`, the data of a tensor that is new
// per model forward (the block's c, FPDM's injection), as the block's adaLN reuse does (dit-block.ts
// sameAda). The iterations of an FPDM solve then convert their block's weights once per solve.
//
// On by default (measured in the model's sampling pass, halfWeightsOn); the environment variable
// FPDM_MIXED_WEIGHTS16 (0 off, 1 on; recorded in the bench's header) sets it for comparing the two.
import type * as tf from '@tensorflow/tfjs-core';
import type { Arg, Plan } from './plan.js';
import type { RawKernels } from './raw.js';
import { UserError } from '../../util/errors.js';

/**
 * Whether the DiT block's LN + modulate output (and, without save, the attention's merged heads) are
 * written in f16 at mixed precision: the values the products that read them round them to, so the products
 * are unchanged. Yes by default — measured on the H200 in the model's sampling pass, interleaved in one
 * process (`results/bench/2026-12-01-webgpu-xl-sample-ab-act16.md`): GPU 76.5 against 77.7 ms per
 * FPDM-XL/2 call (fc1 13.56 / 14.34, proj 5.09 / 5.32), 61.1 against 62.2 per DiT-XL/2 call, the same x_0
 * bit for bit. FPDM_MIXED_ACT16 (0 off, 1 on; recorded in the bench's header) sets it for comparing the two.
 */
export function act16On(): boolean {
  const v = process.env.FPDM_MIXED_ACT16;
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new UserError(`FPDM_MIXED_ACT16=${v}: expected 1 (activations in f16) or 0`);
}

/**
 * Whether forwards without save read f16 copies of their weights where the same ones come back: yes by
 * default — measured as act16On's: GPU 75.6 against 76.5 ms per FPDM-XL/2 call with the f16 activations
 * (qkv 12.10 / 12.60, fc1z 8.49 / 8.78; the copies 0.03 ms each, once per solve), DiT-XL/2 unchanged (it
 * never converts). FPDM_MIXED_WEIGHTS16 (0 off, 1 on; recorded in the bench's header) sets it.
 */
export function halfWeightsOn(): boolean {
  const v = process.env.FPDM_MIXED_WEIGHTS16;
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new UserError(`FPDM_MIXED_WEIGHTS16=${v}: expected 1 (f16 weight copies) or 0`);
}

/** Per RawKernels, per copy's name: the weight and epoch it last saw, and whether its copy holds them. */
const seen = new WeakMap<RawKernels, Map<string, { w: object; epoch: object; converted: boolean }>>();

/**
 * The f16 copy of weight `w` for a product of `p`, as the binding `name` (f16) to read it through as
 * `f32(name[index])`, where the same weight comes back within one epoch: on the first call with (w, epoch)
 * null (the product reads the f32 weight; a DiT's blocks, each once per forward, never pay for a copy), on
 * the second the conversion is pushed onto `p` (before the product) into a scratch buffer named after the
 * plan's kernels and `name`, and later calls read that copy. `name` keys the bookkeeping across plans, so
 * each call site has its own (the block's WQKV16 … W216, FPDM's projection W1H and W2H).
 */
export function halfWeight(rk: RawKernels, p: Plan, name: string, w: tf.Tensor, epoch: object): Arg | null {
  let byName = seen.get(rk);
  if (!byName) seen.set(rk, (byName = new Map()));
  const last = byName.get(name);
  if (!last || last.w !== w.dataId || last.epoch !== epoch) {
    byName.set(name, { w: w.dataId, epoch, converted: false });
    return null;
  }
  const buffer = p.scratch(`w16.${name}`, Math.ceil(w.size / 2));
  if (!last.converted) {
    p.elements(
      `w16.${name}`,
      [
        ['W', rk.buffer(w)],
        ['W16', buffer, true, 'f16'],
      ],
      w.size,
      'W16[idx] = f16(W[idx]);',
    );
    last.converted = true;
  }
  return [name, buffer, false, 'f16'];
}

/** A product's weight operand: its binding and the WGSL expression that reads it at an index. */
export interface WeightOperand {
  arg: Arg;
  at: (index: string) => string;
}

/**
 * Weight `w` as a product's B operand: its f16 copy (halfWeight, binding `copy`) where `half` and the copy
 * exists, else the f32 weight itself, bound as `name`.
 */
export function weightOperand(
  rk: RawKernels,
  p: Plan,
  name: string,
  copy: string,
  w: tf.Tensor,
  epoch: object,
  half: boolean,
): WeightOperand {
  const arg = half ? halfWeight(rk, p, copy, w, epoch) : null;
  return arg
    ? { arg, at: (index) => `f32(${copy}[${index}])` }
    : { arg: [name, rk.buffer(w)], at: (index) => `${name}[${index}]` };
}
