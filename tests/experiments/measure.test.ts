import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromUint8 } from '../../src/data/images.js';
import { openMnist } from '../../src/data/mnist.js';
import { distributionMetrics } from '../../src/experiments/measure.js';
import { kernelInceptionDistance } from '../../src/metrics/kid.js';
import { loadMnistClassifier, mnistFeatures } from '../../src/metrics/mnist_classifier.js';
import { useBackend } from '../helpers.js';

const N = 64;
const options = { fidMode: 'pytorch-fid', kidSubsets: 100, kidSubsetSize: 1000, prdcK: 3, gridImages: 0 } as const;

async function fd(x: Float32Array, shape: [number, number, number, number]): Promise<number> {
  const rows = await distributionMetrics(
    x,
    shape,
    ['fd_mnist'],
    options,
    openMnist({ split: 'heldout', imageSize: 16 }),
    'none',
  );
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.name, 'fd_mnist');
  return rows[0]!.value;
}

test('fd_mnist is measured on the 8-bit images a user would save: a sample far outside [-1, 1] counts as its clamped image', async () => {
  await useBackend('wasm');
  const digits = await openMnist({ split: 'train', imageSize: 16 }).batch(Array.from({ length: N }, (_, i) => i * 13));
  const shape = digits.shape;
  // ×40 saturates every stroke to ±1 beyond the range: still digit shapes once clamped
  const overdriven = digits.x.map((v) => 40 * v);
  let s = 7;
  const noise = digits.x.map(() => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 30 - 1);
  const fdDigits = await fd(digits.x, shape);
  const fdOverdriven = await fd(overdriven, shape);
  const fdNoise = await fd(noise, shape);
  assert.ok(Number.isFinite(fdOverdriven));
  // unclamped, the features of the ×40 images would be ~40× larger and the distance ~1e5 or more
  assert.ok(
    fdOverdriven < fdNoise,
    `saturated digits (${fdOverdriven}) should be nearer to MNIST than noise (${fdNoise})`,
  );
  assert.ok(fdDigits < fdOverdriven, `real digits (${fdDigits}) nearer than saturated ones (${fdOverdriven})`);
});

test('kid_mnist: mean and std rows beside fd_mnist; near 0 for two sets of real digits, far larger for noise; equals KID on the classifier features', async () => {
  await useBackend('wasm');
  const train = openMnist({ split: 'train', imageSize: 16 });
  const digits = await train.batch(Array.from({ length: N }, (_, i) => 7 + i * 11));
  let s = 11;
  // 8-bit noise, so that the saved-image view the metric takes is the identity on it
  const noise = fromUint8(Uint8Array.from(digits.x, () => (s = (s * 1103515245 + 12345) % 2 ** 31) % 256));
  const heldout = openMnist({ split: 'heldout', imageSize: 16 });
  const kid = async (x: Float32Array) => {
    const rows = await distributionMetrics(
      x,
      digits.shape,
      ['fd_mnist', 'kid_mnist'],
      { ...options, kidSubsetSize: 32 },
      heldout,
      'none',
    );
    assert.deepEqual(
      rows.map((r) => r.name),
      ['fd_mnist', 'kid_mnist', 'kid_mnist_std'],
    );
    return { mean: rows[1]!.value, std: rows[2]!.value };
  };
  const real = await kid(digits.x);
  const fake = await kid(noise);
  assert.ok(real.std > 0 && fake.std > 0);
  assert.ok(
    Math.abs(real.mean) < 3 * real.std + 0.05 * fake.mean,
    `real vs real: ${real.mean} ± ${real.std} should be near 0 (noise ${fake.mean})`,
  );
  assert.ok(fake.mean > 10 * Math.abs(real.mean), `noise ${fake.mean} vs real ${real.mean}`);
  // the same estimator on features computed here directly
  const net = loadMnistClassifier();
  const ref = await heldout.batch(Array.from({ length: N }, (_, i) => i));
  const a = await mnistFeatures(net, ref.x, ref.shape);
  const b = await mnistFeatures(net, noise, digits.shape);
  net.dispose();
  const direct = kernelInceptionDistance(b, N, a, N, 128, { subsets: 100, subsetSize: 32 });
  assert.ok(Math.abs(direct.mean - fake.mean) <= 1e-9 * Math.abs(direct.mean), `${direct.mean} vs ${fake.mean}`);
});
