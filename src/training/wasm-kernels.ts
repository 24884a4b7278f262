// Kernels the wasm backend of TF.js 4.22 lacks but training needs. The gradient of tf.gather (the
// label embedding's table lookup) calls UnsortedSegmentSum, which only the cpu/webgpu backends have;
// this registers a host implementation for wasm (exact float32 sums in index order, as the cpu
// backend computes them). Registered once, only when training runs on wasm.
import * as tf from '@tensorflow/tfjs-core';

interface WasmLikeBackend {
  readSync(dataId: object): tf.backend_util.BackendValues;
  write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): object;
}

let registered = false;

export function ensureWasmTrainingKernels(): void {
  if (registered || tf.getBackend() !== 'wasm') return;
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    registered = true;
    return;
  }
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as WasmLikeBackend;
      const x = inputs.x as tf.TensorInfo; // [n, ...rest]
      const ids = inputs.segmentIds as tf.TensorInfo; // [n]
      const numSegments = (attrs as unknown as { numSegments: number }).numSegments;
      const xv = b.readSync(x.dataId) as Float32Array;
      const iv = b.readSync(ids.dataId) as Int32Array | Float32Array;
      const n = ids.shape[0]!;
      const inner = n === 0 ? 0 : xv.length / n;
      const out = new Float32Array(numSegments * inner);
      for (let i = 0; i < n; i++) {
        const s = iv[i]!;
        if (s < 0 || s >= numSegments) continue; // as TF: out-of-range ids are dropped
        for (let j = 0; j < inner; j++) out[s * inner + j]! += xv[i * inner + j]!;
      }
      const shape = [numSegments, ...x.shape.slice(1)];
      return { dataId: b.write(out, shape, 'float32'), shape, dtype: 'float32' };
    },
  });
  registered = true;
}
