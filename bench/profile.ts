// Per-step profile of the benchmark: what a training step or a sampling pass costs in kernels, GPU
// time and host time, so each change's effect is attributable.
//
//   tfjs kernels    TF.js kernels run (the engine's kernel invocations, as `tf.profile` lists them;
//                   reshapes and other bookkeeping kernels included)
//   dispatches      GPU compute dispatches (webgpu): TF.js programs recorded + our own raw dispatches
//                   (src/backends/webgpu: fused optimizer, direct-dispatch block); submits = queue
//                   submissions of command buffers
//   GPU ms          summed GPU time of the kernels of one profiled step: TF.js's per-kernel timestamp
//                   queries (`kernelTimeMs`, only where the adapter has `timestamp-query`) + our raw
//                   passes' timestamps. The profiled step runs slower (one submit per kernel), so its
//                   wall time is not used; the other steps run unprofiled.
//   host CPU ms     process CPU time (user + system, all threads: the JS thread and Dawn's) per step
//   wall ms         the training loop's own per-step seconds (the step ends with a host read of its loss)
import * as tf from '@tensorflow/tfjs-core';
import { webgpuOptimizerKernels } from '../src/backends/webgpu/optimizer.js';
import { rawKernels } from '../src/backends/webgpu/raw.js';

interface DispatchCounter {
  dispatches: number;
  submits: number;
}

let counter: { backend: unknown; c: DispatchCounter } | null = null;

/** Counts TF.js's webgpu dispatches and submits (wraps the backend instance's methods once). */
function dispatchCounter(): DispatchCounter | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const b = tf.backend() as unknown as { recordAndSubmit: (...a: unknown[]) => unknown; submitQueue: () => unknown };
  if (counter?.backend === b) return counter.c;
  const c: DispatchCounter = { dispatches: 0, submits: 0 };
  const rec = b.recordAndSubmit.bind(b);
  const sub = b.submitQueue.bind(b);
  b.recordAndSubmit = (...a: unknown[]) => {
    c.dispatches++;
    return rec(...a);
  };
  b.submitQueue = () => {
    c.submits++;
    return sub();
  };
  counter = { backend: b, c };
  return c;
}

export interface Counters {
  wall: number;
  cpu: number;
  dispatches: number;
  submits: number;
  rawDispatches: number;
  rawSubmits: number;
  kernels: number;
}

let kernelCount = 0;
let kernelHook: { backend: unknown } | null = null;

/** Counts engine kernel invocations (every backend) by wrapping the engine's runKernelFunc once. */
function installKernelCount(): void {
  const e = tf.engine() as unknown as { runKernelFunc: (...a: unknown[]) => unknown };
  if (kernelHook) return;
  const orig = e.runKernelFunc.bind(e);
  e.runKernelFunc = (...a: unknown[]) => {
    kernelCount++;
    return orig(...a);
  };
  kernelHook = { backend: e };
}

/** A reading of every counter; differences of two readings give a region's cost. */
export function readCounters(): Counters {
  installKernelCount();
  const d = dispatchCounter();
  const raw = webgpuOptimizerKernels()?.counters;
  // the direct-dispatch kernels record into TF.js's passes: their submits are TF.js's (counted above)
  const direct = rawKernels()?.counters.dispatches ?? 0;
  const u = process.cpuUsage();
  return {
    wall: performance.now() / 1000,
    cpu: (u.user + u.system) / 1e6,
    dispatches: (d?.dispatches ?? 0) + (raw?.dispatches ?? 0) + direct,
    submits: (d?.submits ?? 0) + (raw?.submits ?? 0),
    rawDispatches: (raw?.dispatches ?? 0) + direct,
    rawSubmits: raw?.submits ?? 0,
    kernels: kernelCount,
  };
}

export function diffCounters(a: Counters, b: Counters): Counters {
  return {
    wall: b.wall - a.wall,
    cpu: b.cpu - a.cpu,
    dispatches: b.dispatches - a.dispatches,
    submits: b.submits - a.submits,
    rawDispatches: b.rawDispatches - a.rawDispatches,
    rawSubmits: b.rawSubmits - a.rawSubmits,
    kernels: b.kernels - a.kernels,
  };
}

export interface KernelProfile {
  /** TF.js kernels in the profiled region */
  kernels: number;
  /** summed GPU ms: TF.js kernels' timestamp queries + raw passes (null where no timer exists) */
  gpuMs: number | null;
  tfjsGpuMs: number | null;
  rawGpuMs: number | null;
  /** raw passes timed (norm and update passes of the fused optimizer, one per direct dispatch) */
  rawPasses: number;
  /** whether the adapter had timestamp queries (else TF.js reports host time per kernel) */
  timestampQueries: boolean;
  /** the largest kernel families (TF.js kernels and our direct-dispatch kernels): name, count, GPU ms */
  top: Array<{ name: string; count: number; ms: number }>;
}

interface ActiveProfile {
  kernels: Array<{ name: string; kernelTimeMs: number | Promise<number | { error: string }> }>;
}
interface EngineState {
  profiling: boolean;
  activeProfile: ActiveProfile;
}

/**
 * Starts recording kernels as `tf.profile` does (the engine's own profiling state, switched on and off
 * around a region that is not one function call, e.g. one step inside the training loop). `stop()`
 * must be called synchronously at the region's end; `collect()` awaits the GPU times.
 */
export function startKernelProfile(): { stop: () => void; collect: () => Promise<KernelProfile> } {
  const st = (tf.engine() as unknown as { state: EngineState }).state;
  // per-kernel NaN checks would read every output back
  const check = tf.env().getBool('CHECK_COMPUTATION_FOR_ERRORS');
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
  st.profiling = true;
  st.activeProfile.kernels = [];
  const raw = webgpuOptimizerKernels();
  const direct = rawKernels();
  const rawTimes: Array<Promise<number>> = [];
  const directTimes: Array<{ name: string; ms: Promise<number> }> = [];
  if (raw) raw.timer = rawTimes;
  if (direct) direct.timer = directTimes;
  let kernels: ActiveProfile['kernels'] = [];
  const backend = tf.backend() as unknown as { supportTimestampQuery?: boolean };
  return {
    stop: () => {
      st.profiling = false;
      tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', check);
      kernels = st.activeProfile.kernels;
      st.activeProfile.kernels = [];
      if (raw) raw.timer = null;
      if (direct) direct.timer = null;
    },
    collect: async () => {
      const fam = new Map<string, { count: number; ms: number }>();
      let total = 0;
      for (const k of kernels) {
        const t = await k.kernelTimeMs;
        const ms = typeof t === 'number' ? t : 0;
        total += ms;
        const f = fam.get(k.name) ?? { count: 0, ms: 0 };
        f.count++;
        f.ms += ms;
        fam.set(k.name, f);
      }
      let rawMs = rawTimes.length > 0 ? (await Promise.all(rawTimes)).reduce((a, b) => a + b, 0) : 0;
      // our direct dispatches, by kernel (one timed pass each), in the same families table
      for (const k of directTimes) {
        const ms = await k.ms;
        rawMs += ms;
        const f = fam.get(k.name) ?? { count: 0, ms: 0 };
        f.count++;
        f.ms += ms;
        fam.set(k.name, f);
      }
      const timestampQueries = tf.getBackend() === 'webgpu' ? backend.supportTimestampQuery === true : false;
      const gpu = tf.getBackend() === 'webgpu' && timestampQueries;
      return {
        kernels: kernels.length,
        gpuMs: gpu ? total + rawMs : null,
        tfjsGpuMs: gpu ? total : null,
        rawGpuMs: gpu ? rawMs : null,
        rawPasses: rawTimes.length + directTimes.length,
        timestampQueries,
        top: [...fam.entries()]
          .map(([name, v]) => ({ name, ...v }))
          .sort((a, b) => b.ms - a.ms || b.count - a.count)
          .slice(0, 24),
      };
    },
  };
}

/** The first index i ≥ minWarmup where the last `window` step times lie within ±tol of their median. */
export function flatFrom(seconds: number[], minWarmup: number, window = 3, tol = 0.1): number | null {
  for (let i = Math.max(minWarmup, window - 1); i < seconds.length; i++) {
    const w = seconds.slice(i - window + 1, i + 1);
    const med = [...w].sort((a, b) => a - b)[w.length >> 1]!;
    if (w.every((s) => Math.abs(s - med) <= tol * med)) return i;
  }
  return null;
}
