// The AutoencoderKL's building blocks (ldm `ldm/modules/diffusionmodules/model.py`), as pure functions
// of NHWC activations and a weight map. Inside the VAE activations are NHWC because TF.js convolutions
// are; the public entry points (autoencoder.ts) take and return NCHW.
//
//   GroupNorm(G, C, eps 1e-6, affine)   swish(x) = x·σ(x)
//   ResnetBlock  h = conv2(swish(norm2(conv1(swish(norm1(x))))));  out = shortcut(x) + h
//   AttnBlock    one head of width C over all H·W positions: softmax(q kᵀ · C^-½) v, proj_out, + x
//   Downsample   zero-pad right and bottom by 1, conv 3×3 stride 2 no padding (ldm's asymmetric pad)
//   Upsample     nearest ×2, conv 3×3 padding 1
import * as tf from '@tensorflow/tfjs-core';

export const GROUPNORM_EPS = 1e-6;

/**
 * Weights by ldm state_dict name. Conv weights are stored in TF.js layout [kh, kw, in, out]
 * (converted once at load from PyTorch's [out, in, kh, kw]); norms and biases are [C].
 */
export type VaeWeights = Map<string, tf.Tensor>;

function w<R extends tf.Rank>(ws: VaeWeights, name: string): tf.Tensor<R> {
  const t = ws.get(name);
  if (!t) throw new Error(`VAE weight '${name}' was not loaded`); // load.ts checks every name first: a bug if reached
  return t as tf.Tensor<R>;
}

/** Conv2d with bias. k×k with 'same' padding (3×3, padding 1) or 1×1; stride 1. */
export function conv(ws: VaeWeights, name: string, x: tf.Tensor4D): tf.Tensor4D {
  return tf.fused.conv2d({
    x,
    filter: w<tf.Rank.R4>(ws, `${name}.weight`),
    bias: w<tf.Rank.R1>(ws, `${name}.bias`),
    strides: 1,
    pad: 'same',
  }); // [N, H, W, Cout]
}

/** GroupNorm over (H, W, C/G) of each group, then the per-channel affine. */
export function groupNorm(ws: VaeWeights, name: string, x: tf.Tensor4D, groups: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, wd, c] = x.shape;
    const g = x.reshape([n, h * wd, groups, c / groups]); // [N, HW, G, C/G]
    const { mean, variance } = tf.moments(g, [1, 3], true); // [N, 1, G, 1]
    const normed = g
      .sub(mean)
      .mul(tf.rsqrt(variance.add(GROUPNORM_EPS)))
      .reshape([n, h, wd, c]); // [N, H, W, C]
    return normed.mul(w(ws, `${name}.weight`)).add(w(ws, `${name}.bias`)) as tf.Tensor4D;
  });
}

export function swish(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => x.mul(tf.sigmoid(x)));
}

/** ResnetBlock (no time embedding, dropout 0): [N, H, W, Cin] → [N, H, W, Cout]. */
export function resnetBlock(ws: VaeWeights, p: string, x: tf.Tensor4D, groups: number): tf.Tensor4D {
  return tf.tidy(() => {
    let h = conv(ws, `${p}.conv1`, swish(groupNorm(ws, `${p}.norm1`, x, groups))); // [N, H, W, Cout]
    h = conv(ws, `${p}.conv2`, swish(groupNorm(ws, `${p}.norm2`, h, groups))); // [N, H, W, Cout]
    const skip = ws.has(`${p}.nin_shortcut.weight`) ? conv(ws, `${p}.nin_shortcut`, x) : x; // [N, H, W, Cout]
    return skip.add(h);
  });
}

/** AttnBlock: single-head self-attention over the T = H·W positions, width C, plus the residual. */
export function attnBlock(ws: VaeWeights, p: string, x: tf.Tensor4D, groups: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, wd, c] = x.shape;
    const hn = groupNorm(ws, `${p}.norm`, x, groups); // [N, H, W, C]
    const q = conv(ws, `${p}.q`, hn).reshape([n, h * wd, c]) as tf.Tensor3D; // [N, T, C]
    const k = conv(ws, `${p}.k`, hn).reshape([n, h * wd, c]) as tf.Tensor3D; // [N, T, C]
    const v = conv(ws, `${p}.v`, hn).reshape([n, h * wd, c]) as tf.Tensor3D; // [N, T, C]
    const att = tf.softmax(tf.matMul(q, k, false, true).mul(c ** -0.5)); // [N, T, T] softmax over keys
    const o = tf.matMul(att, v).reshape([n, h, wd, c]) as tf.Tensor4D; // [N, H, W, C]
    return x.add(conv(ws, `${p}.proj_out`, o));
  });
}

/** Downsample: pad (0,1,0,1) with zeros, 3×3 conv stride 2 → [N, H/2, W/2, C] (H, W even). */
export function downsample(ws: VaeWeights, p: string, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const padded = tf.pad(x, [
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ]); // [N, H+1, W+1, C]
    return tf.fused.conv2d({
      x: padded,
      filter: w<tf.Rank.R4>(ws, `${p}.conv.weight`),
      bias: w<tf.Rank.R1>(ws, `${p}.conv.bias`),
      strides: 2,
      pad: 'valid',
    });
  });
}

/** Upsample: nearest ×2 (source index ⌊i/2⌋, as torch's interpolate 'nearest'), 3×3 conv → [N, 2H, 2W, C]. */
export function upsample(ws: VaeWeights, p: string, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, wd] = x.shape;
    const up = tf.image.resizeNearestNeighbor(x, [2 * h, 2 * wd], false, false); // [N, 2H, 2W, C]
    return conv(ws, `${p}.conv`, up);
  });
}
