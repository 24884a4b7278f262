import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { openMnist } from '../../src/data/mnist.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f32, toFloat32 } from '../../src/io/tensor.js';
import {
  MNIST_CLASSIFIER_WEIGHTS,
  MNIST_FEATURE_DIM,
  MnistClassifier,
  conv2dValid,
  loadMnistClassifier,
  mnistAccuracy,
  mnistFeatures,
  toClassifierInput,
} from '../../src/metrics/mnist_classifier.js';
import { fdMnistDetails } from '../../src/metrics/mnist_fd.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { maxAbsDiff, useBackend } from '../helpers.js';

const record = JSON.parse(readFileSync(MNIST_CLASSIFIER_WEIGHTS.replace(/\.safetensors$/, '.json'), 'utf8')) as {
  heldoutAccuracy: number;
  heldoutSize: number;
  backend: string;
};
const range = (a: number, b: number): Int32Array => Int32Array.from({ length: b - a }, (_, i) => a + i);

test('shipped weights: held-out accuracy >= 98% on the whole held-out split (digits never trained on), as recorded', async () => {
  await useBackend('wasm');
  const held = openMnist({ split: 'heldout', imageSize: 32 }); // 32×32 as the diffusion models see them
  assert.equal(held.size, record.heldoutSize);
  const b = await held.batch(range(0, held.size));
  const model = loadMnistClassifier();
  const acc = await mnistAccuracy(model, b.x, b.shape, b.y);
  model.dispose();
  assert.ok(acc >= 0.98, `held-out accuracy ${acc}`);
  assert.ok(
    Math.abs(acc - record.heldoutAccuracy) <= 2 / held.size,
    `accuracy ${acc} vs recorded ${record.heldoutAccuracy}`,
  );
});

test("the hand-written conv gradient equals tf.conv2d's (cpu backend has Conv2DBackpropFilter)", async () => {
  await useBackend('cpu');
  const r = new Rng(5);
  const x = tf.tensor4d(r.normals(2 * 9 * 8 * 3), [2, 9, 8, 3]);
  const w = tf.tensor4d(r.normals(4 * 3 * 3 * 5), [4, 3, 3, 5]);
  const dy = tf.tensor4d(r.normals(2 * 6 * 6 * 5), [2, 6, 6, 5]);
  const loss = (f: (a: tf.Tensor4D, b: tf.Tensor4D) => tf.Tensor4D) => (a: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D), dy));
  const ours = tf.grads(loss(conv2dValid))([x, w]);
  const ref = tf.grads(loss((a, b) => tf.conv2d(a, b, 1, 'valid')))([x, w]);
  assert.ok(maxAbsDiff(conv2dValid(x, w).dataSync(), tf.conv2d(x, w, 1, 'valid').dataSync()) < 1e-5);
  for (let i = 0; i < 2; i++) assert.ok(maxAbsDiff(ours[i]!.dataSync(), ref[i]!.dataSync()) < 1e-4, `grad ${i}`);
  tf.dispose([x, w, dy, ...ours, ...ref]);
});

test('input mapping: 32×32 is center-cropped, 3 channels averaged, other sizes resized', () => {
  const r = new Rng(2);
  const x28 = r.normals(2 * 28 * 28).map(Math.tanh);
  const x32 = new Float32Array(2 * 32 * 32).fill(-1);
  for (let i = 0; i < 2; i++)
    for (let y = 0; y < 28; y++)
      x32.set(x28.subarray((i * 28 + y) * 28, (i * 28 + y + 1) * 28), (i * 32 + y + 2) * 32 + 2);
  assert.deepEqual(toClassifierInput(x32, [2, 1, 32, 32]), x28);
  const rgb = new Float32Array(3 * 28 * 28);
  for (let k = 0; k < 3; k++)
    rgb.set(
      x28.subarray(0, 784).map((v) => v + (k - 1) * 0.25),
      k * 784,
    );
  assert.ok(maxAbsDiff(toClassifierInput(rgb, [1, 3, 28, 28]), x28.subarray(0, 784)) < 1e-6);
  assert.equal(toClassifierInput(new Float32Array(3 * 64 * 64).fill(0.5), [3, 1, 64, 64]).length, 3 * 784);
  assert.throws(() => toClassifierInput(new Float32Array(2 * 32 * 32), [1, 2, 32, 32]), UserError);
});

test('features [N, 128] agree on cpu and wasm, and leak no tensors', async () => {
  const b = await openMnist({ split: 'heldout' }).batch(range(0, 24));
  const feats: Float32Array[] = [];
  for (const backend of ['cpu', 'wasm'] as const) {
    await useBackend(backend);
    const model = loadMnistClassifier();
    const before = tf.memory().numTensors;
    const f = await mnistFeatures(model, b.x, b.shape, 10);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(f.length, 24 * MNIST_FEATURE_DIM);
    assert.ok(f.every((v) => v >= 0));
    feats.push(f);
    model.dispose();
  }
  assert.ok(maxAbsDiff(feats[0]!, feats[1]!) < 1e-3, `cpu vs wasm ${maxAbsDiff(feats[0]!, feats[1]!)}`);
});

test('fd_mnist: ~0 for identical sets, small for two real sets, large for noise and for a one-digit set', async () => {
  await useBackend('wasm');
  const model = loadMnistClassifier();
  const held = await openMnist({ split: 'heldout' }).batch(range(0, 600));
  const train = await openMnist({ split: 'train' }).batch(range(0, 600));
  const r = new Rng(9);
  const noise = { x: r.normals(600 * 1024).map((v) => Math.max(-1, Math.min(1, v))), shape: [600, 1, 32, 32] };
  const ones = await openMnist({ split: 'train' }).batch(
    range(0, 6000)
      .filter((i) => i % 10 === 1)
      .slice(0, 600),
  );
  const same = await fdMnistDetails(held, held, model);
  const real = (await fdMnistDetails(held, train, model)).value;
  const vsNoise = (await fdMnistDetails(held, noise, model)).value;
  const vsOnes = (await fdMnistDetails(held, ones, model)).value;
  model.dispose();
  assert.equal(same.metric, 'fd_mnist');
  assert.ok(Math.abs(same.value) < 1e-6 * Math.max(1, same.traceSqrt), `fd(A, A) = ${same.value}`);
  assert.ok(real > 0 && real * 10 < vsOnes && real * 10 < vsNoise, `real ${real}, ones ${vsOnes}, noise ${vsNoise}`);
});

test('a weights file with a wrong tensor shape is a UserError naming the tensor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-mnist-cls-'));
  try {
    const p = join(dir, 'bad.safetensors');
    writeSafetensors(p, { 'conv1.weight': f32([16, 1, 5, 5], new Float32Array(400)) });
    assert.throws(
      () => loadMnistClassifier(p),
      (e: Error) => e instanceof UserError && e.message.includes('conv1.weight'),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('toTensorMap (asynchronous read) returns the loaded weights exactly', async () => {
  await useBackend('cpu');
  const model = loadMnistClassifier();
  const map = await model.toTensorMap();
  model.dispose(); // variable names are global: one classifier at a time
  const again = MnistClassifier.fromTensorMap(map, 'round trip');
  const map2 = await again.toTensorMap();
  for (const [name, t] of map) assert.deepEqual(map2.get(name)!.data, t.data, name);
  assert.equal(map.size, 8);
  const file = readSafetensors(MNIST_CLASSIFIER_WEIGHTS).tensors;
  for (const [name, t] of map)
    assert.deepEqual(Array.from(toFloat32(t)), Array.from(toFloat32(file.get(name)!)), `${name} equals the file`);
  again.dispose();
});
