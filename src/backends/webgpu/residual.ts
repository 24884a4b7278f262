// The fixed-point solver's relative residual ‖a − b‖ / (‖b‖ + 1e-12) over whole tensors as two direct
// dispatches (src/backends/webgpu/raw.ts): partial sums of (a − b)² and b² per workgroup, then one
// workgroup that adds the partials and writes the ratio into a new [] tensor. The TF.js form (sub, two
// norms, add, div) spent ≈ 1.3 ms of GPU time per norm at FPDM-S/2 sizes (its Sum over 3 M values):
// 40 of them were 51 ms of a 60 ms sampling call (bench, H200).
import * as tf from '@tensorflow/tfjs-core';
import { finishSumsWgsl, lit, partialSumsWgsl, REDUCE_PARTS } from './gemm.js';
import type { RawKernels } from './raw.js';

/** ‖next − prev‖ / (‖prev‖ + 1e-12) as a new scalar tensor owned by the caller. */
export function rawRelativeResidual(rk: RawKernels, next: tf.Tensor, prev: tf.Tensor): tf.Scalar {
  if (next.size !== prev.size) throw new Error(`relative residual of ${next.size} and ${prev.size} values`);
  const n = next.size;
  const parts = rk.scratch('residual.parts', 2 * REDUCE_PARTS);
  const out = rk.output([]);
  const sums = rk.kernel(`residual.sums:${n}`, () =>
    partialSumsWgsl([{ name: 'A' }, { name: 'B' }, { name: 'PARTS', write: true }], n, [
      '(A[e] - B[e]) * (A[e] - B[e])',
      'B[e] * B[e]',
    ]),
  );
  const finish = rk.kernel('residual.finish', () =>
    finishSumsWgsl(
      [{ name: 'PARTS' }, { name: 'OUT', write: true }],
      2,
      `OUT[0] = sqrt(total0) / (sqrt(total1) + ${lit(1e-12)});`,
    ),
  );
  rk.run(
    [
      { kernel: sums, buffers: [rk.buffer(next), rk.buffer(prev), parts], groups: [REDUCE_PARTS, 1, 1] },
      { kernel: finish, buffers: [parts, out.buffer], groups: [1, 1, 1] },
    ],
    [next, prev, out.tensor],
  );
  return out.tensor as tf.Scalar;
}
