// The AutoencoderKL decoder (ldm `Decoder`, diffusers `vae.Decoder`): conv_in from z channels, the mid
// block, then the levels from the deepest (ldm `up.{L-1}`) to the first (`up.0`), each R+1
// ResnetBlocks and an upsample except at level 0, GroupNorm, swish, conv_out. No tanh (tanh_out False).
// NHWC inside; B_i = blockOutChannels[i], R = layersPerBlock.
import * as tf from '@tensorflow/tfjs-core';
import type { VaeConfig } from './config.js';
import { attnBlock, conv, groupNorm, resnetBlock, swish, upsample, type VaeWeights } from './layers.js';

/** [N, h, w, z] (after post_quant_conv) → [N, h·2^(L-1), w·2^(L-1), Cout] image (about [-1, 1], unclamped). */
export function decoderForward(ws: VaeWeights, c: VaeConfig, z: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const G = c.normNumGroups;
    const L = c.blockOutChannels.length;
    let h = conv(ws, 'decoder.conv_in', z); // [N, h, w, B_{L-1}]
    h = resnetBlock(ws, 'decoder.mid.block_1', h, G);
    h = attnBlock(ws, 'decoder.mid.attn_1', h, G);
    h = resnetBlock(ws, 'decoder.mid.block_2', h, G);
    for (let i = L - 1; i >= 0; i--) {
      for (let j = 0; j <= c.layersPerBlock; j++) h = resnetBlock(ws, `decoder.up.${i}.block.${j}`, h, G); // [N, ·, ·, Bi]
      if (i > 0) h = upsample(ws, `decoder.up.${i}.upsample`, h); // spatial ×2
    }
    return conv(ws, 'decoder.conv_out', swish(groupNorm(ws, 'decoder.norm_out', h, G))); // [N, H, W, Cout]
  });
}
