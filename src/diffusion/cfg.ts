// Classifier-free guidance (Ho & Salimans 2022) as a denoiser wrapper: the conditional and the
// unconditional (null label = numClasses) predictions come from ONE batched call of 2N, then
//   guided = uncond + s · (cond − uncond).
//
// channels 'all' (default): guidance on every predicted channel (the mean prediction AND, with a
//   learned variance, the variance channels).
// channels 'first3' (reference DiT compatibility, `forward_with_cfg`): guidance on the first 3
//   channels only — a leftover from DiT's 4-channel latents where `eps, rest = out[:, :3], out[:, 3:]`
//   guides 3 of the 4 ε channels — and every other channel taken from the conditional half.
//
// The inner denoiser sees the 2N batch (x twice, labels then null labels, t twice) and its own
// state for that batch; ctx.step/steps pass through unchanged. Shapes: x [N, C, H, W] → out
// [N, C', H, W] where C' is whatever the model outputs. On webgpu the doubling of the batch and the
// guidance are one direct dispatch each (src/backends/kernels.ts directCfgKernels: the same values).

import * as tf from '@tensorflow/tfjs-core';
import { directCfgKernels } from '../backends/kernels.js';
import { UserError } from '../util/errors.js';
import type { Denoiser } from './denoiser.js';

export type CfgChannels = 'all' | 'first3';

export interface CfgOptions {
  /** guidance scale s; 1 = plain conditional sampling (the wrapper then still runs both halves) */
  scale: number;
  /** number of real classes; the null label is this index (the label embedder's extra row) */
  numClasses: number;
  channels?: CfgChannels;
}

export function withCfg<S>(inner: Denoiser<S>, opts: CfgOptions): Denoiser<S> {
  const channels = opts.channels ?? 'all';
  if (!(opts.scale >= 0) || !Number.isFinite(opts.scale))
    throw new UserError(`cfg scale must be a finite number >= 0, got ${opts.scale}`);
  if (!Number.isInteger(opts.numClasses) || opts.numClasses < 1)
    throw new UserError(`cfg needs the model's number of classes (>= 1), got ${opts.numClasses}`);
  return async (x, t, y, ctx) => {
    if (y === null)
      throw new UserError(
        'classifier-free guidance needs class labels (y); sample without --cfg for an unconditional model',
      );
    const N = x.shape[0];
    const direct = directCfgKernels();
    const { x2, t2, y2 } = direct?.inputs(x, t, y, opts.numClasses) ?? {
      x2: tf.concat([x, x], 0) as tf.Tensor4D, // [2N, C, H, W]
      t2: tf.concat([t, t], 0) as tf.Tensor1D, // [2N]
      y2: tf.tidy(() => tf.concat([tf.cast(y, 'int32'), tf.fill([N], opts.numClasses, 'int32')], 0) as tf.Tensor1D), // [2N]
    };
    let res;
    try {
      res = await inner(x2, t2, y2, ctx);
    } finally {
      tf.dispose([x2, t2, y2]);
    }
    if (direct) {
      const out = direct.combine(res.out, opts.scale, channels);
      res.out.dispose();
      return { out, state: res.state, info: res.info };
    }
    const out = tf.tidy(() => {
      const [cond, uncond] = tf.split(res.out, 2, 0) as [tf.Tensor4D, tf.Tensor4D]; // [N, C', H, W] each
      const guide = (c: tf.Tensor4D, u: tf.Tensor4D) => tf.add(u, tf.mul(opts.scale, tf.sub(c, u))) as tf.Tensor4D;
      if (channels === 'all') return guide(cond, uncond);
      const C = cond.shape[1];
      if (C <= 3) return guide(cond, uncond);
      const [c3, cRest] = tf.split(cond, [3, C - 3], 1) as [tf.Tensor4D, tf.Tensor4D];
      const [u3] = tf.split(uncond, [3, C - 3], 1) as [tf.Tensor4D, tf.Tensor4D];
      return tf.concat([guide(c3, u3), cRest], 1) as tf.Tensor4D;
    });
    res.out.dispose();
    return { out, state: res.state, info: res.info };
  };
}
