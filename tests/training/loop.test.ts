import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Batch, Dataset } from '../../src/data/dataset.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { ditPreset, fpdmFrom, validateConfig, type ModelConfig } from '../../src/models/index.js';
import { readCheckpointMeta } from '../../src/training/checkpoint.js';
import { trainModel, type TrainOptions } from '../../src/training/loop.js';
import { Rng } from '../../src/util/rng.js';
import { useBackend } from '../helpers.js';

/** 16 random 8x8 single-channel images in [-1, 1], 2 classes (a test-local dataset). */
function tinyDataset(): Dataset {
  const r = new Rng('tiny-data');
  const n = 16;
  const px = 64;
  const x = Float32Array.from({ length: n * px }, () => r.uniform() * 2 - 1);
  return {
    kind: 'synthetic',
    name: 'tiny',
    size: n,
    numClasses: 2,
    labeled: true,
    classNames: ['a', 'b'],
    channels: 1,
    imageSize: 8,
    fingerprint: 'tiny',
    async batch(idx: ArrayLike<number>): Promise<Batch> {
      const out = new Float32Array(idx.length * px);
      for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i]! * px, (idx[i]! + 1) * px), i * px);
      return { x: out, y: Int32Array.from(idx, (k) => k % 2), shape: [idx.length, 1, 8, 8] };
    },
  };
}

function tinyModel(kind: 'dit' | 'fpdm'): ModelConfig {
  const base = validateConfig({
    ...ditPreset('DiT-S/4', { inputSize: 8, inChannels: 1, numClasses: 2 }),
    hiddenSize: 16,
    numHeads: 2,
    depth: 2,
  });
  return kind === 'dit'
    ? base
    : fpdmFrom(base, { preDepth: 1, postDepth: 1, noGradIters: [0, 2], withGradIters: [1, 2] });
}

function opts(kind: 'dit' | 'fpdm', outDir: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  return {
    model: tinyModel(kind),
    diffusion: diffusionConfig({}),
    dataset: tinyDataset(),
    steps: 6,
    batch: 4,
    optimizer: { lr: 1e-3 },
    ema: 0.9,
    seed: 7,
    outDir,
    checkpointEvery: 2,
    ...extra,
  };
}

test('FPDM trains with S-JFB: finite losses, residuals and iteration counts recorded, no tensor growth', async () => {
  await useBackend('cpu');
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'train-'));
  const r = await trainModel(opts('fpdm', dir, { onStep: () => counts.push(tf.memory().numTensors) }));
  assert.equal(r.status, 'completed');
  assert.equal(r.history.length, 6);
  for (const h of r.history) {
    assert.ok(Number.isFinite(h.loss), `loss ${h.loss}`);
    assert.ok(h.withGradIters! >= 1 && h.withGradIters! <= 2 && h.noGradIters! >= 0 && h.noGradIters! <= 2);
    assert.ok(h.residual !== undefined && Number.isFinite(h.residual));
  }
  // the same number of live tensors after every step, and none left after the run
  assert.ok(
    counts.every((c) => c === counts[0]),
    `tensor counts per step: ${counts}`,
  );
  assert.equal(tf.memory().numTensors, before);
  const meta = readCheckpointMeta(dir)!;
  assert.equal(meta.step, 6);
  assert.equal(meta.status, 'completed');
});

test('resume after an interruption gives bitwise-identical weights, EMA and moments (DiT and FPDM)', async () => {
  await useBackend('cpu');
  for (const kind of ['dit', 'fpdm'] as const) {
    const a = mkdtempSync(join(tmpdir(), 'train-a-'));
    const ra = await trainModel(opts(kind, a));
    const b = mkdtempSync(join(tmpdir(), 'train-b-'));
    const stopped = await trainModel(opts(kind, b, { stopAfter: 3 })); // checkpoint at 2, step 3 lost
    assert.equal(stopped.status, 'stopped');
    const rb = await trainModel(opts(kind, b));
    assert.equal(rb.resumedFrom, 2);
    assert.equal(rb.status, 'completed');
    const ma = readCheckpointMeta(a)!;
    const mb = readCheckpointMeta(b)!;
    assert.equal(ma.sha256, mb.sha256, `${kind}: weights files differ`);
    assert.deepEqual(readFileSync(join(a, ma.weights)), readFileSync(join(b, mb.weights)));
    assert.deepEqual(
      ra.history.map((h) => h.loss),
      rb.history.map((h) => h.loss),
    );
  }
});

test('a different seed trains to different weights; the same seed to the same', async () => {
  await useBackend('cpu');
  const dirs = [
    mkdtempSync(join(tmpdir(), 's-')),
    mkdtempSync(join(tmpdir(), 's-')),
    mkdtempSync(join(tmpdir(), 's-')),
  ];
  await trainModel(opts('dit', dirs[0]!, { steps: 2 }));
  await trainModel(opts('dit', dirs[1]!, { steps: 2 }));
  await trainModel(opts('dit', dirs[2]!, { steps: 2, seed: 8 }));
  const h = dirs.map((d) => readCheckpointMeta(d)!.sha256);
  assert.equal(h[0], h[1]);
  assert.notEqual(h[0], h[2]);
});

test('an absurd learning rate diverges: status diverged with the step, nothing skipped', async () => {
  await useBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'div-'));
  const r = await trainModel(opts('dit', dir, { steps: 50, optimizer: { lr: 1e30 } }));
  assert.equal(r.status, 'diverged');
  assert.ok(r.divergedAt !== null && r.divergedAt >= 2 && r.divergedAt <= 50, `divergedAt ${r.divergedAt}`);
  assert.equal(r.step, r.divergedAt! - 1);
  assert.ok(!Number.isFinite(r.history.at(-1)!.loss));
  assert.equal(r.history.length, r.divergedAt);
  const meta = readCheckpointMeta(dir)!;
  assert.equal(meta.status, 'diverged');
  assert.equal(meta.divergedAt, r.divergedAt);
  // re-running does not silently continue
  const again = await trainModel(opts('dit', dir, { steps: 50, optimizer: { lr: 1e30 } }));
  assert.equal(again.status, 'diverged');
});

test('resuming with other settings is refused with the first difference', async () => {
  await useBackend('cpu');
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  await trainModel(opts('dit', dir, { steps: 2 }));
  await assert.rejects(
    trainModel(opts('dit', dir, { steps: 2, optimizer: { lr: 5e-4 } })),
    /different run \(optimizer\.lr: 0\.001 vs 0\.0005\)/,
  );
});
