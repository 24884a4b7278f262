// Stage 1 of FID/KID/IS: uint8 RGB images [N, 3, H, W] → the FID Inception network's input
// [N, 299, 299, 3] (NHWC, float32). Two conventions exist and they change the number (~1e-3
// relative in features), so every value computed records which one was used:
//
//   'pytorch-fid'  pytorch-fid: x = u8/255; bilinear resize to 299 with half-pixel centres
//                  (align_corners=False, no antialias): src = (dst + ½)·in/out − ½, clamped at 0;
//                  then 2x − 1.
//   'tf'           TF1 tools (TTUR, the ADM evaluator, torch-fidelity, clean-fid legacy_tensorflow):
//                  TF1 tf.image.resize_bilinear (align_corners=False): src = dst·in/out, no offset;
//                  then (p − 128)/128 on the 0..255 values.
//
// Bilinear resizing is separable, so it is done exactly as two small interpolation matrices:
// out = R_h · X · R_wᵀ per channel, with R [out, in] holding the two lerp weights of each row.
// (Both steps are affine with weights summing to 1, so normalising before or after resizing is equal.)
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../util/errors.js';

export const PREPROCESS_MODES = ['pytorch-fid', 'tf'] as const;
export type PreprocessMode = (typeof PREPROCESS_MODES)[number];

export const INCEPTION_SIZE = 299;

export function parsePreprocessMode(s: string): PreprocessMode {
  if ((PREPROCESS_MODES as readonly string[]).includes(s)) return s as PreprocessMode;
  throw new UserError(
    `--mode: '${s}' is not a preprocessing mode; choose pytorch-fid (pytorch-fid's half-pixel resize, 2x-1) or tf (TF1 resize, (p-128)/128 as the ADM evaluator)`,
  );
}

/** Source coordinate of output index `dst` for a resize from `inSize` to `outSize`. */
export function sourceCoord(mode: PreprocessMode, dst: number, inSize: number, outSize: number): number {
  const scale = inSize / outSize;
  if (mode === 'pytorch-fid') return Math.max((dst + 0.5) * scale - 0.5, 0); // PyTorch clamps negative sources to 0
  return dst * scale; // TF1 legacy
}

/** Interpolation matrix R [outSize, inSize] (row-major): row o has weight 1−λ at ⌊s⌋ and λ at min(⌊s⌋+1, in−1). */
export function resizeMatrix(mode: PreprocessMode, inSize: number, outSize: number): Float32Array {
  const R = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const s = sourceCoord(mode, o, inSize, outSize);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const lambda = s - i0;
    R[o * inSize + i0]! += 1 - lambda;
    R[o * inSize + i1]! += lambda;
  }
  return R;
}

/** value = a·u8 + b applied after the resize (affine, so order does not matter) */
function affine(mode: PreprocessMode): { a: number; b: number } {
  return mode === 'pytorch-fid' ? { a: 2 / 255, b: -1 } : { a: 1 / 128, b: -1 };
}

/**
 * uint8 RGB images [N, 3, H, W] (NCHW, values 0..255) → network input [N, 299, 299, 3] float32.
 * Returns a new tensor (caller disposes).
 */
export function preprocess(images: tf.Tensor4D, mode: PreprocessMode, size = INCEPTION_SIZE): tf.Tensor4D {
  const [n, c, h, w] = images.shape;
  if (c !== 3)
    throw new UserError(`images must have 3 channels (RGB) in NCHW layout, got shape [${images.shape.join(', ')}]`);
  return tf.tidy(() => {
    const { a, b } = affine(mode);
    const RwT = tf.tensor2d(resizeMatrix(mode, w, size), [size, w]).transpose(); // [W, S]
    const RhT = tf.tensor2d(resizeMatrix(mode, h, size), [size, h]).transpose(); // [H, S]
    const x = images.toFloat().reshape([n * c * h, w]); // [N·C·H, W]
    const t1 = tf.matMul(x, RwT).reshape([n * c, h, size]); // [N·C, H, Sw]
    const t2 = t1.transpose([0, 2, 1]).reshape([n * c * size, h]); // [N·C·Sw, H]
    const t3 = tf.matMul(t2, RhT).reshape([n, c, size, size]); // [N, C, Sw, Sh]
    const nhwc = t3.transpose([0, 3, 2, 1]) as tf.Tensor4D; // [N, Sh, Sw, C]
    return nhwc.mul(a).add(b) as tf.Tensor4D;
  });
}
