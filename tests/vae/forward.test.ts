// The AutoencoderKL against the reference's float64 outputs (vae_tiny.io), on every test backend
// (cpu and wasm; FPDM_TEST_BACKENDS=webgpu on a GPU machine): posterior moments, mean, clamped logvar,
// std, sample = mean + std·eps, the stored latent (×0.18215), decode(z), recon = decode(latent/0.18215),
// the logvar clamp on extreme moments, and the uint8 quantisation of sample.py. Tolerance: every value
// within 1e-4 absolute or 1e-4 relative (the fixtures' suggestion for float32).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { toFloat32 } from '../../src/io/tensor.js';
import { posterior, quantizeToUint8, samplePosterior } from '../../src/vae/autoencoder.js';
import { loadVae } from '../../src/vae/load.js';
import { TEST_BACKENDS, useBackend } from '../helpers.js';
import { ref, vaeFixture, vaeIo, worstAbsOrRel } from './helpers.js';

function input(name: string): tf.Tensor4D {
  const t = vaeIo().get(name)!;
  return tf.tensor4d(toFloat32(t), t.shape as [number, number, number, number]);
}

/** Compares an output with the reference; reads asynchronously (webgpu under Node has no synchronous read). */
async function close(name: string, got: tf.Tensor, want = ref(name)): Promise<number> {
  const r = worstAbsOrRel(await got.data(), want);
  assert.equal(r.failures, 0, `${name}: ${r.failures} values outside 1e-4 abs/rel (max abs ${r.maxAbs})`);
  return r.maxAbs;
}

for (const backend of TEST_BACKENDS) {
  test(`vae_tiny on ${backend}: encode, posterior, sample, latent, decode, recon and the logvar clamp match the reference`, async () => {
    await useBackend(backend);
    const { vae } = loadVae(vaeFixture('vae_tiny.ldm.safetensors'), { config: vaeFixture('vae_tiny.config.json') });
    const before = tf.memory().numTensors;
    const errs: Record<string, number> = {};
    // every output is kept until it is read (asynchronously), then all are disposed together
    const outs: Record<string, tf.Tensor> = {};
    tf.tidy(() => {
      const moments = vae.encodeMoments(input('x'));
      const p = posterior(moments);
      const sample = samplePosterior(p, input('eps'));
      const latent = sample.mul(vae.config.scalingFactor) as tf.Tensor4D;
      const g = posterior(input('gauss.moments'));
      Object.assign(outs, {
        moments,
        mean: p.mean,
        logvar: p.logvar,
        std: p.std,
        sample,
        latent,
        dec: vae.decode(input('z')),
        recon: vae.decodeLatents(latent),
        'gauss.logvar': g.logvar,
        'gauss.std': g.std,
        'gauss.sample': samplePosterior(g, input('gauss.eps')),
      });
      for (const t of Object.values(outs)) tf.keep(t);
    });
    for (const [name, t] of Object.entries(outs)) errs[name] = await close(name, t);
    tf.dispose(Object.values(outs));
    assert.equal(tf.memory().numTensors, before, 'encode/decode leave no tensors behind');
    vae.dispose();
    process.stdout.write(`# ${backend} max abs errors: ${JSON.stringify(errs)}\n`);
  });
}

test('quantisation as sample.py: clamp(127.5x + 128, 0, 255) truncated, NHWC; equals dec_u8 but for float32 edge flips', async () => {
  await useBackend('cpu');
  // analytic: round-half-up of 127.5(x+1), clamped
  const x = tf.tensor4d([-2, -1, -0.999, 0, 0.5, 0.99999, 1, 3], [1, 1, 2, 4]);
  assert.deepEqual([...(await quantizeToUint8(x).data())], [0, 0, 0, 128, 191, 255, 255, 255]);
  const u8 = await quantizeToUint8(input('dec')).data();
  const want = vaeIo().get('dec_u8')!.data as Uint8Array;
  let off = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(u8[i]! - want[i]!) <= 1, `value ${i}: ${u8[i]} vs ${want[i]}`);
    if (u8[i] !== want[i]) off++;
  }
  assert.ok(off <= want.length * 0.001, `${off} of ${want.length} values differ by 1`);
});
