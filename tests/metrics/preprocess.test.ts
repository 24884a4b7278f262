// Preprocessing against an independent per-pixel host reference of each convention, and against
// TF.js's own resizeBilinear (halfPixelCenters for pytorch-fid, legacy for tf), on cpu and wasm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { preprocess, parsePreprocessMode, type PreprocessMode } from '../../src/metrics/preprocess.js';
import { Rng } from '../../src/util/rng.js';
import { TEST_BACKENDS, maxAbsDiff, useBackend } from '../helpers.js';

/** Reference: pytorch-fid = F.interpolate(u8/255, bilinear, align_corners=False) then 2x−1; tf = TF1 resize then (p−128)/128. */
function reference(u8: Uint8Array, n: number, h: number, w: number, S: number, mode: PreprocessMode): Float64Array {
  const out = new Float64Array(n * S * S * 3); // NHWC
  const src = (d: number, inS: number): number => {
    if (mode === 'pytorch-fid') {
      const s = ((d + 0.5) * inS) / S - 0.5;
      return s < 0 ? 0 : s;
    }
    return (d * inS) / S;
  };
  for (let b = 0; b < n; b++)
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++)
        for (let c = 0; c < 3; c++) {
          const sy = src(y, h);
          const sx = src(x, w);
          const y0 = Math.floor(sy);
          const x0 = Math.floor(sx);
          const y1 = Math.min(y0 + 1, h - 1);
          const x1 = Math.min(x0 + 1, w - 1);
          const ly = sy - y0;
          const lx = sx - x0;
          const px = (yy: number, xx: number): number => {
            const v = u8[((b * 3 + c) * h + yy) * w + xx]!;
            return mode === 'pytorch-fid' ? v / 255 : v;
          };
          const v =
            (1 - ly) * ((1 - lx) * px(y0, x0) + lx * px(y0, x1)) + ly * ((1 - lx) * px(y1, x0) + lx * px(y1, x1));
          out[((b * S + y) * S + x) * 3 + c] = mode === 'pytorch-fid' ? 2 * v - 1 : (v - 128) / 128;
        }
  return out;
}

const rng = new Rng('preprocess');
const cases: [number, number, number, number][] = [
  [2, 6, 4, 11], // upsample, non-square
  [1, 13, 9, 5], // downsample
  [1, 32, 32, 299], // the fixture size to the network's
];

for (const backend of TEST_BACKENDS) {
  test(`preprocess matches the per-pixel reference of both modes on ${backend}`, async () => {
    await useBackend(backend);
    for (const [n, h, w, S] of cases) {
      const u8 = Uint8Array.from({ length: n * 3 * h * w }, () => rng.int(0, 255));
      for (const mode of ['pytorch-fid', 'tf'] as const) {
        const x = tf.tensor4d(u8, [n, 3, h, w], 'int32');
        const y = preprocess(x, mode, S);
        assert.deepEqual(y.shape, [n, S, S, 3]);
        const err = maxAbsDiff(await y.data(), reference(u8, n, h, w, S, mode));
        assert.ok(err < 2e-6, `${mode} ${h}x${w}→${S}: max abs error ${err}`);
        // TF.js resizeBilinear follows the same definitions (checked, not relied on). Its input is made
        // float32 from the host: TF.js 4.22's webgpu Transpose (rank > 2, on the GPU above 1000 elements)
        // is WGSL that does not compile when its input buffer holds int32, and toFloat() of an int32
        // tensor keeps that buffer.
        const tfjs = tf.tidy(() => {
          const nhwc = tf.tensor4d(Float32Array.from(u8), [n, 3, h, w]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
          const r = tf.image.resizeBilinear(nhwc, [S, S], false, mode === 'pytorch-fid');
          return mode === 'pytorch-fid' ? r.div(255).mul(2).sub(1) : r.sub(128).div(128);
        });
        const e2 = maxAbsDiff(await tfjs.data(), await y.data());
        assert.ok(e2 < 2e-5, `${mode} ${h}x${w}→${S}: TF.js resizeBilinear differs by ${e2}`);
        tf.dispose([x, y, tfjs]);
      }
    }
  });
}

test('the two modes differ, and an unknown mode is a clear error', async () => {
  await useBackend('cpu');
  const u8 = Uint8Array.from({ length: 3 * 32 * 32 }, () => rng.int(0, 255));
  const x = tf.tensor4d(u8, [1, 3, 32, 32], 'int32');
  const a = preprocess(x, 'pytorch-fid');
  const b = preprocess(x, 'tf');
  assert.ok(maxAbsDiff(await a.data(), await b.data()) > 1e-2);
  tf.dispose([x, a, b]);
  assert.throws(() => parsePreprocessMode('clean-fid'), /not a preprocessing mode/);
});
