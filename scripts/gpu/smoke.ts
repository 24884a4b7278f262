// GPU smoke test: initialise the webgpu backend, print the adapter, and measure a float32 4096²
// matmul (TFLOP/s) — the first thing to run on a new GPU machine.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backends/index.js';

const info = await initBackend((process.argv[2] as 'webgpu') ?? 'webgpu');
console.log(JSON.stringify(info));
const n = 4096;
const a = tf.randomNormal([n, n]);
const b = tf.randomNormal([n, n]);
for (let i = 0; i < 3; i++) await tf.matMul(a, b).data();
const reps = 20;
const t0 = performance.now();
let c: tf.Tensor | undefined;
for (let i = 0; i < reps; i++) {
  c?.dispose();
  c = tf.matMul(a, b);
}
await c!.data();
const s = (performance.now() - t0) / 1000;
console.log(
  `matmul ${n}²: ${((2 * n ** 3 * reps) / s / 1e12).toFixed(2)} TFLOP/s (${((s / reps) * 1000).toFixed(2)} ms each)`,
);
