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

function close(name: string, got: tf.Tensor, want = ref(name)): number {
  const r = worstAbsOrRel(got.dataSync(), want);
  assert.equal(r.failures, 0, `${name}: ${r.failures} values outside 1e-4 abs/rel (max abs ${r.maxAbs})`);
  return r.maxAbs;
}

for (const backend of TEST_BACKENDS) {
  test(`vae_tiny on ${backend}: encode, posterior, sample, latent, decode, recon and the logvar clamp match the reference`, async () => {
    await useBackend(backend);
    const { vae } = loadVae(vaeFixture('vae_tiny.ldm.safetensors'), { config: vaeFixture('vae_tiny.config.json') });
    const before = tf.memory().numTensors;
    const errs: Record<string, number> = {};
    tf.tidy(() => {
      const moments = vae.encodeMoments(input('x'));
      errs.moments = close('moments', moments);
      const p = posterior(moments);
      errs.mean = close('mean', p.mean);
      errs.logvar = close('logvar', p.logvar);
      errs.std = close('std', p.std);
      const sample = samplePosterior(p, input('eps'));
      errs.sample = close('sample', sample);
      const latent = sample.mul(vae.config.scalingFactor) as tf.Tensor4D;
      errs.latent = close('latent', latent);
      errs.dec = close('dec', vae.decode(input('z')));
      errs.recon = close('recon', vae.decodeLatents(latent));
      const g = posterior(input('gauss.moments'));
      errs['gauss.logvar'] = close('gauss.logvar', g.logvar);
      errs['gauss.std'] = close('gauss.std', g.std);
      errs['gauss.sample'] = close('gauss.sample', samplePosterior(g, input('gauss.eps')));
    });
    assert.equal(tf.memory().numTensors, before, 'encode/decode leave no tensors behind');
    vae.dispose();
    process.stdout.write(`# ${backend} max abs errors: ${JSON.stringify(errs)}\n`);
  });
}

test('quantisation as sample.py: clamp(127.5x + 128, 0, 255) truncated, NHWC; equals dec_u8 but for float32 edge flips', async () => {
  await useBackend('cpu');
  // analytic: round-half-up of 127.5(x+1), clamped
  const x = tf.tensor4d([-2, -1, -0.999, 0, 0.5, 0.99999, 1, 3], [1, 1, 2, 4]);
  assert.deepEqual([...quantizeToUint8(x).dataSync()], [0, 0, 0, 128, 191, 255, 255, 255]);
  const u8 = quantizeToUint8(input('dec')).dataSync();
  const want = vaeIo().get('dec_u8')!.data as Uint8Array;
  let off = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(u8[i]! - want[i]!) <= 1, `value ${i}: ${u8[i]} vs ${want[i]}`);
    if (u8[i] !== want[i]) off++;
  }
  assert.ok(off <= want.length * 0.001, `${off} of ${want.length} values differ by 1`);
});
