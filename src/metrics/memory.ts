// Peak memory of a region of TF.js work. What is measured, precisely:
//
//   tensor bytes   TF.js engine bookkeeping (`tf.memory().numBytes`): the bytes of every live tensor's
//                  data on any backend, dtype size × elements, counted once per tensor handle: a
//                  buffer shared by several handles (a reshape, or a tensor autodiff keeps for the
//                  backward) counts several times, so this over-states the distinct bytes (the bench
//                  also reports distinct live buffers, bench/buffers.ts). It does
//                  not see backend scratch space, kernel workspaces, the wasm allocator's slack or
//                  texture/buffer pooling. Reported absolute (including tensors alive before the
//                  region, e.g. weights) and relative to the start of the region.
//     method 'profile' (default): `tf.profile` snapshots numBytes after every kernel, and the probe
//                  after every new tensor (the direct-dispatch kernels make theirs without a TF.js
//                  kernel), so the peak is exact at that granularity (it also records each kernel, so
//                  profile regions of bounded length, e.g. one training step or one sampling pass).
//     method 'sample': numBytes is read at the start, the end and wherever the code calls
//                  `probe.sample()`; cheaper, but a peak between samples is missed.
//   backend pool   where the backend reports its own allocation: wasm → size of the WebAssembly linear
//                  memory (grows, never shrinks: a high-water mark of the heap, including allocator
//                  slack); webgpu → `numBytesAllocatedInGPU` (buffers held by the backend, pooled free
//                  ones included). Read at the end of the region (pools do not shrink inside a region).
//   host rss       process resident set size (bytes) at the end; context only.
import * as tf from '@tensorflow/tfjs-core';
import { rawKernels } from '../backends/webgpu/raw.js';

export type MemoryMethod = 'profile' | 'sample';

export interface MemoryReport {
  method: MemoryMethod;
  backend: string;
  /** live tensor bytes when the region started */
  startTensorBytes: number;
  /** highest live tensor bytes seen during the region (absolute) */
  peakTensorBytes: number;
  /** peakTensorBytes − startTensorBytes */
  peakRegionBytes: number;
  /** live tensor bytes when the region ended (a leak shows as end > start) */
  endTensorBytes: number;
  /** the backend's own pool where it reports one (see file header), else undefined */
  backendPoolBytes?: number;
  backendPoolKind?: 'wasm-linear-memory' | 'webgpu-allocated';
  /**
   * webgpu: buffers of the direct-dispatch kernels (src/backends/webgpu/raw.ts) for intermediates no
   * caller sees, shared by every block call of a shape: not tensors, so in neither of the above
   */
  directScratchBytes?: number;
  hostRssBytes: number;
}

/** The backend's own allocation where it reports one. */
export function backendPool(): { bytes: number; kind: 'wasm-linear-memory' | 'webgpu-allocated' } | undefined {
  const name = tf.getBackend();
  if (name === 'wasm') {
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
    if (heap) return { bytes: heap.buffer.byteLength, kind: 'wasm-linear-memory' };
  }
  if (name === 'webgpu') {
    const m = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number };
    if (typeof m.numBytesAllocatedInGPU === 'number')
      return { bytes: m.numBytesAllocatedInGPU, kind: 'webgpu-allocated' };
  }
  return undefined;
}

interface EngineTracking {
  state: { numBytes: number };
  trackTensor(a: tf.Tensor, backend: unknown): void;
}

/** Sampling probe: call `sample()` at points of interest inside the region, then `finish()`. */
export class MemoryProbe {
  private readonly start = tf.memory().numBytes;
  private peak = this.start;

  /**
   * Also samples at every tensor the engine starts tracking, kernels or not (the direct-dispatch
   * kernels of src/backends/webgpu/ make their outputs without a TF.js kernel, so tf.profile's
   * per-kernel snapshots miss them); returns the function that stops it. Private engine API of tfjs-core 4.x.
   */
  watchAllocations(): () => void {
    const e = tf.engine() as unknown as EngineTracking;
    const orig = e.trackTensor;
    const raise = (bytes: number): void => {
      if (bytes > this.peak) this.peak = bytes;
    };
    e.trackTensor = function (this: EngineTracking, a: tf.Tensor, backend: unknown): void {
      orig.call(this, a, backend);
      raise(this.state.numBytes);
    };
    return () => {
      e.trackTensor = orig;
    };
  }

  sample(): void {
    this.peak = Math.max(this.peak, tf.memory().numBytes);
  }

  finish(method: MemoryMethod = 'sample', peakOverride?: number): MemoryReport {
    this.sample();
    const end = tf.memory().numBytes;
    const peak = Math.max(this.peak, peakOverride ?? 0);
    const pool = backendPool();
    const scratch = rawKernels()?.scratchBytes();
    return {
      method,
      backend: tf.getBackend(),
      startTensorBytes: this.start,
      peakTensorBytes: peak,
      peakRegionBytes: peak - this.start,
      endTensorBytes: end,
      backendPoolBytes: pool?.bytes,
      backendPoolKind: pool?.kind,
      ...(scratch !== undefined ? { directScratchBytes: scratch } : {}),
      hostRssBytes: process.memoryUsage().rss,
    };
  }
}

/**
 * Runs `fn` and reports its peak memory. With 'profile', `fn` runs under `tf.profile` (per-kernel
 * snapshots); with 'sample', `fn` receives the probe and may call `probe.sample()` itself.
 */
export async function measureMemory<T>(
  fn: (probe: MemoryProbe) => T | Promise<T>,
  method: MemoryMethod = 'profile',
): Promise<{ result: T; memory: MemoryReport }> {
  const probe = new MemoryProbe();
  if (method === 'sample') {
    const result = await fn(probe);
    return { result, memory: probe.finish('sample') };
  }
  let result!: T;
  const unwatch = probe.watchAllocations();
  let info: Awaited<ReturnType<typeof tf.profile>>;
  try {
    info = await tf.profile(async () => {
      result = await fn(probe);
      return [] as tf.Tensor[]; // the result is kept by the caller; profile must not track it
    });
  } finally {
    unwatch();
  }
  // peakBytes is -Infinity when no kernel ran (Math.max of an empty list)
  return { result, memory: probe.finish('profile', Number.isFinite(info.peakBytes) ? info.peakBytes : 0) };
}
