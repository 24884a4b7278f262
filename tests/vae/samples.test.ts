// Decoding diffusion latents to files as the reference samplers do: decode(latent / 0.18215) →
// clamp(127.5x + 128) truncated (against the reference's dec_u8), PNG names of FPDM's sample.py and
// DiT's sample_ddp.py, `arr_0` .npz that `fid` reads as images, and ADM reference batches (arr_0 +
// mu/sigma) read as statistics without touching arr_0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage } from '../../src/data/images.js';
import { readNpz, writeNpz } from '../../src/io/npy.js';
import { f64, hostTensor, toFloat32 } from '../../src/io/tensor.js';
import { classifyInput, openImageSource, readStats } from '../../src/metrics/inputs.js';
import { loadVae } from '../../src/vae/load.js';
import { decodeToUint8, labelSlug, samplePngName, writeSampleNpz, writeSamplePngs } from '../../src/vae/samples.js';
import { runCli } from '../cli.js';
import { fixture, useBackend } from '../helpers.js';
import { vaeFixture, vaeIo } from './helpers.js';

test('decodeToUint8: latents ×0.18215 → the reference dec_u8 (|diff| ≤ 1 on ≤ 0.1% of values), batch-independent shape', async () => {
  await useBackend('wasm');
  const { vae } = loadVae(vaeFixture('vae_tiny.ldm.safetensors'), { config: vaeFixture('vae_tiny.config.json') });
  const z = toFloat32(vaeIo().get('z')!).map((v) => v * 0.18215);
  const { pixels, shape } = await decodeToUint8(vae, z, [2, 4, 16, 16], 1);
  vae.dispose();
  assert.deepEqual(shape, [2, 32, 32, 3]);
  const want = vaeIo().get('dec_u8')!.data as Uint8Array;
  let off = 0;
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(pixels[i]! - want[i]!) <= 1, `value ${i}`);
    if (pixels[i] !== want[i]) off++;
  }
  assert.ok(off <= want.length * 0.001, `${off} values off by one`);
});

test('PNG names as the reference: FPDM {idx:05d}--{y:03d}--{label}.png (sample.py slug), DiT {index:06d}.png; pixels round-trip', async () => {
  assert.equal(samplePngName('fpdm', 7, 3, labelSlug("Great White Shark's")), '00007--003--great-white-sharks.png');
  assert.equal(samplePngName('dit', 123, 3, 'x'), '000123.png');
  const dir = mkdtempSync(join(tmpdir(), 'vae-png-'));
  try {
    const u8 = vaeIo().get('dec_u8')!;
    const names = await writeSamplePngs(dir, u8.data as Uint8Array, [2, 32, 32, 3], [1, 0], {
      naming: 'fpdm',
      labelNames: ['cat', 'Dog House'],
      startIndex: 10,
    });
    assert.deepEqual(names, ['00010--001--dog-house.png', '00011--000--cat.png']);
    assert.deepEqual(readdirSync(dir).sort(), names);
    const back = await readImage(join(dir, names[1]!));
    const hwc = (u8.data as Uint8Array).subarray(3072, 6144);
    for (let j = 0; j < 1024; j++) for (let c = 0; c < 3; c++) assert.equal(back.data[c * 1024 + j], hwc[j * 3 + c]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npz: arr_0 samples are an image set for the metrics; an ADM reference batch (arr_0 + mu + sigma) is statistics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vae-npz-'));
  try {
    const u8 = vaeIo().get('dec_u8')!;
    const samples = join(dir, 'samples.npz');
    writeSampleNpz(samples, u8.data as Uint8Array, [2, 32, 32, 3]);
    const arr = readNpz(samples).get('arr_0')!;
    assert.deepEqual([arr.dtype, arr.shape], ['U8', [2, 32, 32, 3]]);
    assert.equal(classifyInput(samples), 'images');
    assert.equal(openImageSource(samples, 'images').n, 2);
    const adm = join(dir, 'VIRTUAL_ref.npz');
    writeNpz(adm, {
      arr_0: hostTensor('U8', [2, 32, 32, 3], u8.data as Uint8Array),
      mu: f64([2], [1, 2]),
      sigma: f64([2, 2], [1, 0, 0, 1]),
      mu_s: f64([1], [0]),
      sigma_s: f64([1, 1], [1]),
    });
    assert.equal(classifyInput(adm), 'stats');
    assert.deepEqual([...readStats(adm).mu], [1, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fid CLI: decoded samples as an arr_0 .npz against the same images as a folder give FID ≈ 0 (test Inception weights)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vae-fid-'));
  try {
    const u8 = vaeIo().get('dec_u8')!.data as Uint8Array;
    // 4 images: the two reference decodes and their mirror images, so the covariance is not degenerate in every direction
    const four = new Uint8Array(4 * 3072);
    four.set(u8, 0);
    for (let i = 0; i < 2; i++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++)
            four[(2 + i) * 3072 + (y * 32 + x) * 3 + c] = u8[i * 3072 + (y * 32 + 31 - x) * 3 + c]!;
    writeSampleNpz(join(dir, 'a.npz'), four, [4, 32, 32, 3]);
    await writeSamplePngs(join(dir, 'pngs'), four, [4, 32, 32, 3], [0, 0, 0, 0], { naming: 'dit' });
    const r = runCli([
      '--backend',
      'wasm',
      'fid',
      join(dir, 'a.npz'),
      join(dir, 'pngs'),
      '--weights',
      fixture('inception_fid_ternary.legacy.pt'),
      '--no-cache',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(Math.abs(out.fid ?? out.value) < 1e-6, r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
