// Stages 1+2 run over a whole image set in batches: uint8 images [N, 3, H, W] → preprocess (mode) →
// FID Inception → host Float32Arrays. The result records the preprocessing mode it was made with.
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../util/errors.js';
import type { FidInception } from './inception.js';
import { preprocess, type PreprocessMode } from './preprocess.js';

export interface FeatureSet {
  /** [N, 2048] pool3 features, row-major */
  features: Float32Array;
  n: number;
  dim: number;
  mode: PreprocessMode;
  /** [N, 64] / [N, 192] / [N, 768] block spatial means, when asked for */
  block0?: Float32Array;
  block1?: Float32Array;
  block2?: Float32Array;
  /** [N, 1008] fc logits, when asked for */
  logits?: Float32Array;
}

export interface ExtractOptions {
  mode: PreprocessMode;
  /** images per forward pass (default 50, as pytorch-fid) */
  batch?: number;
  blocks?: boolean;
  logits?: boolean;
  /** called after each batch with the number of images done */
  onProgress?: (done: number, total: number) => void;
}

/** Runs `net` over uint8 RGB images `pixels` of shape [N, 3, H, W] (NCHW, row-major). */
export async function extractFeatures(
  net: FidInception,
  pixels: Uint8Array,
  shape: readonly [number, number, number, number],
  opts: ExtractOptions,
): Promise<FeatureSet> {
  const [n, c, h, w] = shape;
  if (c !== 3) throw new UserError(`images must be RGB with 3 channels (NCHW), got shape [${shape.join(', ')}]`);
  if (pixels.length !== n * c * h * w)
    throw new UserError(
      `image data holds ${pixels.length} values, expected ${n * c * h * w} for [${shape.join(', ')}]`,
    );
  const batch = opts.batch ?? 50;
  if (!Number.isInteger(batch) || batch < 1) throw new UserError(`--batch must be a positive integer, got ${batch}`);
  const per = c * h * w;
  const out: FeatureSet = { features: new Float32Array(n * 2048), n, dim: 2048, mode: opts.mode };
  if (opts.blocks) {
    out.block0 = new Float32Array(n * 64);
    out.block1 = new Float32Array(n * 192);
    out.block2 = new Float32Array(n * 768);
  }
  if (opts.logits) out.logits = new Float32Array(n * 1008);
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const res = tf.tidy(() => {
      const x = tf.tensor4d(pixels.subarray(s * per, (s + b) * per), [b, c, h, w], 'int32'); // [B, 3, H, W]
      const inp = preprocess(x, opts.mode); // [B, 299, 299, 3]
      return net.forward(inp, { blocks: opts.blocks, logits: opts.logits });
    });
    try {
      out.features.set((await res.pool3.data()) as Float32Array, s * 2048);
      if (opts.blocks) {
        out.block0!.set((await res.block0!.data()) as Float32Array, s * 64);
        out.block1!.set((await res.block1!.data()) as Float32Array, s * 192);
        out.block2!.set((await res.block2!.data()) as Float32Array, s * 768);
      }
      if (opts.logits) out.logits!.set((await res.logits!.data()) as Float32Array, s * 1008);
    } finally {
      tf.dispose(
        [res.pool3, res.block0, res.block1, res.block2, res.logits].filter((t): t is tf.Tensor2D => t !== undefined),
      );
    }
    opts.onProgress?.(s + b, n);
  }
  return out;
}
