// AutoencoderKL (ldm `ldm/models/autoencoder.py`, diffusers `AutoencoderKL`): the encoder with
// quant_conv giving the moments of a diagonal Gaussian posterior, and post_quant_conv with the decoder.
// Public tensors are NCHW, as everywhere in this tool:
//   encodeMoments  x [N, C, H, W] in [-1, 1] → moments [N, 2E, h, w]
//   posterior      moments → mean, logvar (clamped to [-30, 20] as the reference), std = exp(logvar/2)
//   decode         z [N, E, h, w] → x̂ [N, C, H, W] (unclamped)
// The diffusion model sees latent = sample · scalingFactor and is decoded from latent / scalingFactor.
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../util/errors.js';
import { assertShape } from '../util/shapes.js';
import { downFactor, type VaeConfig } from './config.js';
import { decoderForward } from './decoder.js';
import { encoderForward } from './encoder.js';
import { conv, type VaeWeights } from './layers.js';
import { countVae, type VaeParamCount } from './params.js';

/** ldm DiagonalGaussianDistribution: logvar = clamp(logvar, -30, 20). */
export const LOGVAR_CLAMP: [number, number] = [-30, 20];

export interface Posterior {
  mean: tf.Tensor4D; // [N, E, h, w]
  logvar: tf.Tensor4D; // [N, E, h, w], clamped
  std: tf.Tensor4D; // [N, E, h, w] = exp(logvar / 2)
}

/** Splits moments [N, 2E, h, w] into the posterior (mean = first E channels), logvar clamped. */
export function posterior(moments: tf.Tensor4D): Posterior {
  return tf.tidy(() => {
    const [mean, rawLogvar] = tf.split(moments, 2, 1) as [tf.Tensor4D, tf.Tensor4D];
    const logvar = tf.clipByValue(rawLogvar, LOGVAR_CLAMP[0], LOGVAR_CLAMP[1]);
    return { mean, logvar, std: tf.exp(logvar.mul(0.5)) as tf.Tensor4D };
  });
}

/** One posterior draw: mean + std · eps (eps ~ N(0, I), [N, E, h, w]). */
export function samplePosterior(p: Posterior, eps: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => p.mean.add(p.std.mul(eps)));
}

/**
 * Images as the reference's sample.py saves them: clamp(127.5·x + 128, 0, 255) cast to uint8 (the cast
 * truncates, i.e. round-half-up of 127.5·(x+1)), NCHW → NHWC. Returns int32 values in 0..255.
 */
export function quantizeToUint8(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(
    () =>
      tf
        .floor(tf.clipByValue(x.mul(127.5).add(128), 0, 255))
        .transpose([0, 2, 3, 1])
        .toInt() as tf.Tensor4D,
  ); // [N, H, W, C]
}

export class AutoencoderKL {
  constructor(
    readonly config: VaeConfig,
    private readonly weights: VaeWeights,
  ) {}

  /** Exact parameter count of the loaded tree (every tensor is a parameter; there are no buffers). */
  paramCount(): VaeParamCount {
    // conv weights are stored [kh, kw, in, out]; the count is layout-independent
    return countVae([...this.weights].map(([name, t]) => ({ name, shape: t.shape })));
  }

  /** x [N, C, H, W] → moments [N, 2E, H/f, W/f] (f = 2^(L-1)); H and W must be multiples of f. */
  encodeMoments(x: tf.Tensor4D): tf.Tensor4D {
    const c = this.config;
    const f = downFactor(c);
    assertShape('VAE input x', x.shape, [-1, c.inChannels, -1, -1]);
    if (x.shape[2] % f !== 0 || x.shape[3] % f !== 0)
      throw new UserError(
        `VAE input x has shape [${x.shape.join(', ')}]: H and W must be multiples of ${f} (the VAE downsamples ${f}×)`,
      );
    return tf.tidy(() => {
      const h = encoderForward(this.weights, c, x.transpose([0, 2, 3, 1])); // [N, h, w, 2z]
      return conv(this.weights, 'quant_conv', h).transpose([0, 3, 1, 2]) as tf.Tensor4D; // [N, 2E, h, w]
    });
  }

  encode(x: tf.Tensor4D): Posterior {
    const m = this.encodeMoments(x);
    try {
      return posterior(m);
    } finally {
      m.dispose();
    }
  }

  /** z [N, E, h, w] (unscaled: latent / scalingFactor) → image [N, C, h·f, w·f]. */
  decode(z: tf.Tensor4D): tf.Tensor4D {
    assertShape('VAE input z', z.shape, [-1, this.config.embedDim, -1, -1]);
    return tf.tidy(() => {
      const h = conv(this.weights, 'post_quant_conv', z.transpose([0, 2, 3, 1])); // [N, h, w, z]
      return decoderForward(this.weights, this.config, h).transpose([0, 3, 1, 2]) as tf.Tensor4D; // [N, C, H, W]
    });
  }

  /** Diffusion latents [N, E, h, w] (already ×scalingFactor) → images [N, C, H, W]. */
  decodeLatents(latents: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.decode(latents.div(this.config.scalingFactor) as tf.Tensor4D));
  }

  dispose(): void {
    tf.dispose([...this.weights.values()]);
    this.weights.clear();
  }
}
