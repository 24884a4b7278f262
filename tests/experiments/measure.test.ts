import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openMnist } from '../../src/data/mnist.js';
import { distributionMetrics } from '../../src/experiments/measure.js';
import { useBackend } from '../helpers.js';

const N = 64;
const options = { fidMode: 'pytorch-fid', kidSubsets: 100, kidSubsetSize: 1000, prdcK: 3, gridImages: 0 } as const;

async function fd(x: Float32Array, shape: [number, number, number, number]): Promise<number> {
  const rows = await distributionMetrics(x, shape, ['fd_mnist'], options, openMnist({ split: 'heldout', imageSize: 16 }), 'none');
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
  const noise = digits.x.map(() => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 30) - 1);
  const fdDigits = await fd(digits.x, shape);
  const fdOverdriven = await fd(overdriven, shape);
  const fdNoise = await fd(noise, shape);
  assert.ok(Number.isFinite(fdOverdriven));
  // unclamped, the features of the ×40 images would be ~40× larger and the distance ~1e5 or more
  assert.ok(fdOverdriven < fdNoise, `saturated digits (${fdOverdriven}) should be nearer to MNIST than noise (${fdNoise})`);
  assert.ok(fdDigits < fdOverdriven, `real digits (${fdDigits}) nearer than saturated ones (${fdOverdriven})`);
});
