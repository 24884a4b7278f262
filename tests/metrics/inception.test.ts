// inception.io.safetensors reproduced from inception_fid_ternary.legacy.pt (the real file's keys,
// shapes and legacy format; ternary weights): pool3 features and the three block means.
// The full network at 299² is slow on the pure-JS cpu backend (~20-70 s per image measured on this
// 2-core machine), so cpu runs 1 image and wasm all 6, each when in TEST_BACKENDS; a GPU backend there
// (FPDM_TEST_BACKENDS=webgpu) runs all 6, or FPDM_TEST_INCEPTION_GPU_IMAGES of them: SwiftShader, a
// Vulkan driver on the CPU, took 61 s for 1 image and 409 s for all 6 on a 2-core machine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { readWeights } from '../../src/io/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { toFloat64, type TensorMap } from '../../src/io/tensor.js';
import { FidInception, INCEPTION_UNITS } from '../../src/metrics/inception.js';
import { extractFeatures } from '../../src/metrics/features.js';
import { TEST_BACKENDS, fixture, useBackend } from '../helpers.js';

let weights: TensorMap;
let io: TensorMap;
before(() => {
  weights = readWeights(fixture('inception_fid_ternary.legacy.pt'));
  io = readSafetensors(fixture('inception.io.safetensors')).tensors;
});

/** normwise relative error: max |a − ref| / max |ref| over the first a.length values */
function relErr(a: Float32Array, key: string): number {
  const ref = toFloat64(io.get(key)!);
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - ref[i]!));
    s = Math.max(s, Math.abs(ref[i]!));
  }
  return m / s;
}

const GPU_IMAGES = Number(process.env.FPDM_TEST_INCEPTION_GPU_IMAGES ?? 6);
if (!Number.isInteger(GPU_IMAGES) || GPU_IMAGES < 1 || GPU_IMAGES > 6)
  throw new Error(
    `FPDM_TEST_INCEPTION_GPU_IMAGES: received '${process.env.FPDM_TEST_INCEPTION_GPU_IMAGES}', expected an integer from 1 to 6 (the fixture's images)`,
  );
const HOST = (
  [
    ['wasm', 6],
    ['cpu', 1],
  ] as const
).filter(([b]) => TEST_BACKENDS.includes(b));
const GPU = TEST_BACKENDS.filter((b) => b !== 'cpu' && b !== 'wasm').map((b) => [b, GPU_IMAGES] as const);
for (const [backend, n] of [...HOST, ...GPU]) {
  test(`FID Inception on ${backend}: features_2048 and block means of ${n} image(s) within 1e-4 relative`, async () => {
    await useBackend(backend);
    assert.equal(weights.size, 566);
    const before = tf.memory().numTensors;
    const net = new FidInception(weights);
    const img = io.get('images_uint8_nchw')!.data as Uint8Array; // [6, 3, 32, 32]
    const r = await extractFeatures(net, img.subarray(0, n * 3 * 32 * 32), [n, 3, 32, 32], {
      mode: 'pytorch-fid',
      blocks: true,
      batch: 3,
    });
    assert.equal(r.mode, 'pytorch-fid');
    const errs = {
      features_2048: relErr(r.features, 'features_2048'),
      block0: relErr(r.block0!, 'block0_64_spatial_mean'),
      block1: relErr(r.block1!, 'block1_192_spatial_mean'),
      block2: relErr(r.block2!, 'block2_768_spatial_mean'),
    };
    for (const [k, e] of Object.entries(errs)) assert.ok(e <= 1e-4, `${backend} ${k}: relative error ${e}`);
    process.stderr.write(`# ${backend}: ${JSON.stringify(errs)}\n`);
    net.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensors leak across load, forward and dispose');
  });
}

test('a safetensors copy of the weights loads through the same path and gives the same features (wasm, 1 image)', async () => {
  await useBackend('wasm');
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-inception-'));
  try {
    const copy = join(dir, 'inception.safetensors');
    writeSafetensors(copy, new Map([...weights].filter(([k]) => !k.endsWith('num_batches_tracked'))));
    const net = FidInception.load(copy);
    const img = io.get('images_uint8_nchw')!.data as Uint8Array;
    const r = await extractFeatures(net, img.subarray(0, 3 * 32 * 32), [1, 3, 32, 32], { mode: 'pytorch-fid' });
    net.dispose();
    assert.ok(relErr(r.features, 'features_2048') <= 1e-4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a state_dict that is not the FID Inception one is refused with a clear message', () => {
  const partial: TensorMap = new Map([...weights].filter(([k]) => !k.startsWith('Mixed_7c')));
  assert.throws(() => new FidInception(partial), new RegExp(`9 of ${INCEPTION_UNITS} conv units are missing`));
});

after(() => {
  weights.clear();
});
