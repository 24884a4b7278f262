import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Batch, Dataset } from '../../src/data/dataset.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { ditPreset, validateConfig } from '../../src/models/index.js';
import { readCheckpointMeta } from '../../src/training/checkpoint.js';
import { DRAW_AHEAD_MIN_VALUES, DrawAhead, drawTimestepsAndNoise } from '../../src/training/draw-ahead.js';
import { trainModel, type TrainOptions } from '../../src/training/loop.js';
import { Rng } from '../../src/util/rng.js';
import { useBackend } from '../helpers.js';

test("the worker's timesteps, noise and final state are those drawn on this thread, bitwise", async () => {
  const ahead = new DrawAhead();
  try {
    for (const [seed, pre, n, count] of [
      [1, 0, 4, 1001], // odd: leaves a spare
      [2, 1, 32, 4096], // starts on a spare
      [3, 0, 2, 0],
    ] as const) {
      const rng = new Rng(seed);
      rng.normals(pre);
      ahead.request(rng, n, count, 1000);
      const got = await ahead.take(rng, n, count, 1000);
      assert.ok(got, `seed ${seed}: the worker answered`);
      const here = drawTimestepsAndNoise(rng, n, count, 1000);
      assert.deepEqual(got.tIdx, here.tIdx);
      assert.deepEqual(got.noise, here.noise);
      assert.deepEqual(got.state, rng.state());
    }
  } finally {
    await ahead.close();
  }
});

test('a request is not taken once the generator moved or the sizes changed', async () => {
  const ahead = new DrawAhead();
  try {
    const rng = new Rng(5);
    ahead.request(rng, 4, 64, 1000);
    rng.uniform();
    assert.equal(await ahead.take(rng, 4, 64, 1000), null);
    ahead.request(rng, 4, 64, 1000);
    assert.equal(await ahead.take(rng, 4, 128, 1000), null);
    assert.equal(await ahead.take(rng, 4, 64, 1000), null, 'taken at most once');
  } finally {
    await ahead.close();
  }
});

/** 128 random 16×16 single-channel images: a batch of 128 is 32,768 noise values (drawn ahead). */
function dataset(): Dataset {
  const r = new Rng('draw-ahead-data');
  const n = 128;
  const px = 256;
  const x = Float32Array.from({ length: n * px }, () => r.uniform() * 2 - 1);
  return {
    kind: 'synthetic',
    name: 'draw-ahead',
    size: n,
    numClasses: 2,
    labeled: true,
    classNames: ['a', 'b'],
    channels: 1,
    imageSize: 16,
    fingerprint: 'draw-ahead',
    batch(idx: ArrayLike<number>): Promise<Batch> {
      const out = new Float32Array(idx.length * px);
      for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i]! * px, (idx[i]! + 1) * px), i * px);
      return Promise.resolve({ x: out, y: Int32Array.from(idx, (k) => k % 2), shape: [idx.length, 1, 16, 16] });
    },
  };
}

test('training with the draws made ahead equals training one step per call (every draw on this thread)', async () => {
  await useBackend('cpu');
  assert.ok(128 * 256 >= DRAW_AHEAD_MIN_VALUES, 'this run draws ahead');
  const o = (outDir: string, extra: Partial<TrainOptions> = {}): TrainOptions => ({
    model: validateConfig({
      ...ditPreset('DiT-S/4', { inputSize: 16, inChannels: 1, numClasses: 2 }),
      hiddenSize: 16,
      numHeads: 2,
      depth: 1,
    }),
    diffusion: diffusionConfig({}),
    dataset: dataset(),
    steps: 3,
    batch: 128,
    optimizer: { lr: 1e-3 },
    ema: 0.9,
    seed: 3,
    outDir,
    checkpointEvery: 1,
    ...extra,
  });
  const a = mkdtempSync(join(tmpdir(), 'ahead-a-'));
  const ra = await trainModel(o(a)); // steps 2 and 3 drawn on the worker
  const b = mkdtempSync(join(tmpdir(), 'ahead-b-'));
  for (let k = 0; k < 3; k++) await trainModel(o(b, { stopAfter: 1 })); // each call draws its step here
  const rb = await trainModel(o(b));
  assert.equal(rb.status, 'completed');
  const ma = readCheckpointMeta(a)!;
  const mb = readCheckpointMeta(b)!;
  assert.deepEqual(readFileSync(join(a, ma.weights)), readFileSync(join(b, mb.weights)));
  assert.deepEqual(
    ra.history.map((h) => h.loss),
    rb.history.map((h) => h.loss),
  );
});
