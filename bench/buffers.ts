// Live BUFFER bytes of the TF.js engine, peak at kernel granularity.
//
// Why: `tf.memory().numBytes` (what tf.profile's peakBytes reports) adds size × dtype bytes for every
// live tensor HANDLE, so two handles on one buffer count twice. In tfjs-core 4.22 handles on one buffer
// are common during training: every tensor saved for backprop is `keep(clone(t))` (a second handle),
// reshape and identity return handles on their input's buffer, and a variable read by several ops is
// saved once per op. The bytes a device really holds for tensors are the bytes of the distinct data
// buffers (dataIds) alive, which is what this module counts:
//
//   the engine registers a buffer in `state.tensorInfo` (keyed by dataId) when its first handle is
//   tracked and removes it when the backend frees the data (the last handle disposed); we wrap those
//   two engine methods and keep a running sum and its maximum. Backend scratch, pooled free buffers
//   and allocator slack are not seen (as with numBytes).
//
// Usage: `const probe = startBufferProbe(); …; const r = probe.stop();` (one probe at a time).
import * as tf from '@tensorflow/tfjs-core';

interface EngineInternals {
  state: { tensorInfo: WeakMap<object, { bytes: number }>; numBytes: number };
  trackTensor(a: tf.Tensor, backend: unknown): void;
  removeDataId(dataId: object, backend: unknown): void;
  runKernelFunc(p: unknown): unknown;
}

export interface BufferReport {
  /** live distinct-buffer bytes when the probe started */
  startBufferBytes: number;
  /** maximum of live distinct-buffer bytes after any kernel (absolute) */
  peakBufferBytes: number;
  /** live distinct-buffer bytes when the probe stopped */
  endBufferBytes: number;
  /** maximum of the engine's per-handle numBytes over the same kernels (tf.profile's peakBytes convention) */
  peakHandleBytes: number;
  /** with `trace`: [kernel or scope name, live distinct-buffer bytes after it] for every kernel */
  trace?: [string, number][];
}

export interface BufferProbe {
  /** current live distinct-buffer bytes */
  now(): number;
  stop(): BufferReport;
}

let active: BufferProbe | null = null;

/**
 * Starts counting distinct live buffers. The count starts from `baseBytes` (the distinct-buffer bytes
 * alive before; default: tf.memory().numBytes, exact when no buffer has two handles at the start, e.g.
 * only weights and optimizer state are alive).
 */
export function startBufferProbe(baseBytes?: number, trace = false): BufferProbe {
  if (active) throw new Error('startBufferProbe: a probe is already running');
  const e = tf.engine() as unknown as EngineInternals;
  const origTrack = e.trackTensor;
  const origRemove = e.removeDataId;
  const origRun = e.runKernelFunc;
  const start = baseBytes ?? tf.memory().numBytes;
  let live = start;
  let peak = start;
  let peakHandles = e.state.numBytes;
  const steps: [string, number][] = [];
  e.trackTensor = function (this: EngineInternals, a: tf.Tensor, backend: unknown): void {
    const had = this.state.tensorInfo.has(a.dataId);
    origTrack.call(this, a, backend);
    if (!had && this.state.tensorInfo.has(a.dataId)) {
      live += this.state.tensorInfo.get(a.dataId)!.bytes;
      if (live > peak) peak = live;
    }
  };
  e.removeDataId = function (this: EngineInternals, dataId: object, backend: unknown): void {
    const info = this.state.tensorInfo.get(dataId);
    origRemove.call(this, dataId, backend);
    if (info && !this.state.tensorInfo.has(dataId)) live -= info.bytes;
  };
  e.runKernelFunc = function (this: EngineInternals, p: unknown): unknown {
    const r = origRun.call(this, p);
    if (this.state.numBytes > peakHandles) peakHandles = this.state.numBytes;
    if (trace) steps.push([(p as { kernelName?: string }).kernelName ?? 'customGrad op', live]);
    return r;
  };
  const probe: BufferProbe = {
    now: () => live,
    stop: () => {
      e.trackTensor = origTrack;
      e.removeDataId = origRemove;
      e.runKernelFunc = origRun;
      // the wrappers were own properties shadowing the prototype's methods: remove them
      for (const k of ['trackTensor', 'removeDataId', 'runKernelFunc'] as const) {
        if (
          Object.prototype.hasOwnProperty.call(e, k) &&
          (e as unknown as Record<string, unknown>)[k] === Object.getPrototypeOf(e)[k]
        ) {
          delete (e as unknown as Record<string, unknown>)[k];
        }
      }
      active = null;
      return {
        startBufferBytes: start,
        peakBufferBytes: peak,
        endBufferBytes: live,
        peakHandleBytes: peakHandles,
        ...(trace ? { trace: steps } : {}),
      };
    },
  };
  active = probe;
  return probe;
}

/** Runs `fn` under a buffer probe and returns its result with the report. */
export async function measureBuffers<T>(
  fn: () => T | Promise<T>,
  baseBytes?: number,
): Promise<{ result: T; buffers: BufferReport }> {
  const probe = startBufferProbe(baseBytes);
  try {
    const result = await fn();
    return { result, buffers: probe.stop() };
  } catch (err) {
    probe.stop();
    throw err;
  }
}
