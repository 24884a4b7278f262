// The AutoencoderKL encoder (ldm `Encoder`, diffusers `vae.Encoder`), read top to bottom as the
// reference's forward: conv_in, L levels of ResnetBlocks (+ downsample but at the last level), the mid
// block (ResnetBlock, AttnBlock, ResnetBlock), GroupNorm, swish, conv_out to 2·z channels (double_z).
// NHWC inside; B_i = blockOutChannels[i], R = layersPerBlock.
import * as tf from '@tensorflow/tfjs-core';
import type { VaeConfig } from './config.js';
import { attnBlock, conv, downsample, groupNorm, resnetBlock, swish, type VaeWeights } from './layers.js';

/** [N, H, W, C] image in [-1, 1] → [N, H/2^(L-1), W/2^(L-1), 2z] encoder output (before quant_conv). */
export function encoderForward(ws: VaeWeights, c: VaeConfig, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const G = c.normNumGroups;
    const L = c.blockOutChannels.length;
    let h = conv(ws, 'encoder.conv_in', x); // [N, H, W, B0]
    for (let i = 0; i < L; i++) {
      for (let j = 0; j < c.layersPerBlock; j++) h = resnetBlock(ws, `encoder.down.${i}.block.${j}`, h, G); // [N, H/2^i, W/2^i, Bi]
      if (i < L - 1) h = downsample(ws, `encoder.down.${i}.downsample`, h); // [N, H/2^(i+1), W/2^(i+1), Bi]
    }
    h = resnetBlock(ws, 'encoder.mid.block_1', h, G); // [N, h, w, B_{L-1}]
    h = attnBlock(ws, 'encoder.mid.attn_1', h, G);
    h = resnetBlock(ws, 'encoder.mid.block_2', h, G);
    return conv(ws, 'encoder.conv_out', swish(groupNorm(ws, 'encoder.norm_out', h, G))); // [N, h, w, 2z]
  });
}
