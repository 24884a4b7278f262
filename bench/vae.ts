// `node --import tsx bench/vae.ts [--backend webgpu|wasm|cpu] [--batch 4] [--latent 32] [--iters 3] [--tiny]`
//
// SD-VAE decode throughput on one backend: the real kl-f8 architecture (83,653,863 parameters, random
// weights of a trained network's scale: GroupNorm keeps activations normalised) decoding [B, 4, h, h]
// latents to [B, 3, 8h, 8h] images (256×256 at the default h = 32), decode + the uint8 quantisation of
// sample.py, timed after one warm-up pass. Prints images/s and seconds per batch as JSON. `--tiny` uses
// a small configuration (ch 32, ch_mult [1, 2], 1 res block) so CPU machines finish in seconds.
// Compute by formula: ≈ 311 GMAC per 256² image for the SD decoder (convolutions only).
// (No PyTorch side here: the bench suite's torch_ref.py is where a same-GPU comparison would go.)
import * as tf from '@tensorflow/tfjs-core';
import { activeBackend, initBackend, parseBackendChoice } from '../src/backends/index.js';
import { AutoencoderKL, quantizeToUint8 } from '../src/vae/autoencoder.js';
import { downFactor, SD_VAE_CONFIG, type VaeConfig } from '../src/vae/config.js';
import type { VaeWeights } from '../src/vae/layers.js';
import { countVaeParams, vaeParamSpecs } from '../src/vae/params.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

/** Random weights: convs N(0, 1/fan_in) in TF layout [kh, kw, in, out], norms γ = 1, β = 0, biases 0. */
function randomVae(c: VaeConfig): AutoencoderKL {
  const ws: VaeWeights = new Map();
  for (const s of vaeParamSpecs(c)) {
    if (s.shape.length === 4) {
      const [o, i, kh, kw] = s.shape as [number, number, number, number];
      ws.set(s.name, tf.randomNormal([kh, kw, i, o], 0, 1 / Math.sqrt(i * kh * kw), 'float32', 1));
    } else {
      ws.set(s.name, /\.norm[^.]*\.weight$|norm_out\.weight$|\.norm\.weight$/.test(s.name) ? tf.ones(s.shape) : tf.zeros(s.shape));
    }
  }
  return new AutoencoderKL(c, ws);
}

async function main(): Promise<void> {
  const backend = await initBackend(parseBackendChoice(arg('backend', 'auto')));
  const batch = Number(arg('batch', '4'));
  const h = Number(arg('latent', '32'));
  const iters = Number(arg('iters', '3'));
  const tiny = process.argv.includes('--tiny');
  const config: VaeConfig = tiny ? { ...SD_VAE_CONFIG, blockOutChannels: [32, 64], layersPerBlock: 1, normNumGroups: 8 } : SD_VAE_CONFIG;
  const vae = randomVae(config);
  const z = tf.randomNormal([batch, config.embedDim, h, h], 0, 1, 'float32', 2) as tf.Tensor4D;
  const pass = async (): Promise<number> => {
    const t0 = performance.now();
    const u8 = tf.tidy(() => quantizeToUint8(vae.decodeLatents(z)));
    await u8.data();
    u8.dispose();
    return (performance.now() - t0) / 1000;
  };
  await pass(); // warm-up (kernel compilation, weight upload)
  const times: number[] = [];
  for (let i = 0; i < iters; i++) times.push(await pass());
  const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  const side = h * downFactor(config);
  const info = activeBackend();
  process.stdout.write(JSON.stringify({
    what: 'vae decode + uint8 quantisation',
    config: tiny ? 'tiny (ch 32, [1,2], 1 res block)' : 'SD VAE kl-f8',
    params: countVaeParams(config).total,
    backend: backend.name,
    device: info.device ?? null,
    batch,
    image: `${side}x${side}`,
    secondsPerBatch: times,
    imagesPerSecond: batch / median,
  }, null, 2) + '\n');
  vae.dispose();
  z.dispose();
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
