// The fixed-point solver's relative residual ‖a − b‖ / (‖b‖ + 1e-12) over whole tensors as two direct
// dispatches (src/backends/webgpu/raw.ts): partial sums of (a − b)² and b² per workgroup, then one
// workgroup that adds the partials and writes the ratio into a new [] tensor (or into one element of a
// vector: a solver's residuals without a TF.js kernel to stack them). The TF.js form (sub, two
// norms, add, div) spent ≈ 1.3 ms of GPU time per norm at FPDM-S/2 sizes (its Sum over 3 M values):
// 40 of them were 51 ms of a 60 ms sampling call (bench, H200).
import * as tf from '@tensorflow/tfjs-core';
import { finishSumsWgsl, lit, partialSumsWgsl, REDUCE_PARTS } from './gemm.js';
import type { RawKernels } from './raw.js';

/** ‖next − prev‖ / (‖prev‖ + 1e-12) as a new scalar tensor owned by the caller. */
export function rawRelativeResidual(rk: RawKernels, next: tf.Tensor, prev: tf.Tensor): tf.Scalar {
  const out = rk.output([]);
  rawRelativeResidualInto(rk, next, prev, out.tensor, 0);
  return out.tensor as tf.Scalar;
}

/**
 * ‖next − prev‖ / (‖prev‖ + 1e-12) written into element `index` of `into` (a float32 tensor of at least
 * index + 1 values; the others are left as they are): a solver's residuals in one vector without a
 * TF.js kernel to stack them.
 */
export function rawRelativeResidualInto(
  rk: RawKernels,
  next: tf.Tensor,
  prev: tf.Tensor,
  into: tf.Tensor,
  index: number,
): void {
  if (next.size !== prev.size) throw new Error(`relative residual of ${next.size} and ${prev.size} values`);
  if (!Number.isInteger(index) || index < 0 || index >= into.size)
    throw new Error(`relative residual: element ${index} of a tensor of ${into.size}`);
  const n = next.size;
  const parts = rk.scratch('residual.parts', 2 * REDUCE_PARTS);
  const sums = rk.kernel(`residual.sums:${n}`, () =>
    partialSumsWgsl(
      [{ name: 'A' }, { name: 'B' }, { name: 'PARTS', write: true }],
      n,
      ['(A[e] - B[e]) * (A[e] - B[e])', 'B[e] * B[e]'],
      '',
      4,
    ),
  );
  // one pipeline per element index (a solver's iterations: a few dozen at most)
  const finish = rk.kernel(index === 0 ? 'residual.finish' : `residual.finish:${index}`, () =>
    finishSumsWgsl(
      [{ name: 'PARTS' }, { name: 'OUT', write: true }],
      2,
      `OUT[${index}] = sqrt(total0) / (sqrt(total1) + ${lit(1e-12)});`,
    ),
  );
  rk.run(
    [
      { kernel: sums, buffers: [rk.buffer(next), rk.buffer(prev), parts], groups: [REDUCE_PARTS, 1, 1] },
      { kernel: finish, buffers: [parts, rk.buffer(into)], groups: [1, 1, 1] },
    ],
    [next, prev, into],
  );
}
