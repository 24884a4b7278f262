// The TF.js side of the benchmark suite: one function per measurement, each returning plain numbers.
//
// Conventions (also in results/bench/README.md):
//   train      one optimizer step of the training loop (src/training/loop.ts `trainModel`, not a copy):
//              batch draw, q_sample, S-JFB (FPDM), hybrid loss under tf.variableGrads, AdamW, EMA.
//              Timed per step by the loop's own StepRecord.seconds (loss, gradient norm and residuals
//              are read together with one `await data()`, so each step is complete on the device);
//              median of the timed steps after the warm-up (until flat, bench/profile.ts).
//              S-JFB draws fixed to n_ng = 5 (mean of U{0..10}) and n_g = 7 (mean 6.5 of U{1..12},
//              rounded up: the conservative side for FPDM's memory) via a config of [5,5] / [7,7].
//   memory     a separate, profiled step of a fresh run: `tf.profile` snapshots the engine's live
//              tensor bytes after every kernel (src/metrics/memory.ts); peakTensorBytes is absolute:
//              weights, AdamW moments, the EMA copy, gradients and activations alive at the worst
//              kernel. Not counted: backend scratch/pooled buffers (reported apart as backendPoolBytes).
//              numBytes counts every tensor HANDLE (a tensor saved for backprop is a second handle on its
//              buffer), so the same step is also measured in distinct live buffers (bench/buffers.ts):
//              peakBufferBytes, what the device holds for tensors — the memory column and ratios use it.
//              With gradCheckpoint the blocks keep only their inputs and are recomputed in the backward.
//   sample     `sampleAtBudget` (src/experiments/sampling.ts), DDPM, no CFG, one batch; one warm-up
//              pass at a 2-step budget (same kernels and shapes), then timed passes (its account.seconds: wall time forced to completion).
//   inception  FidInception.forward on [N, 299, 299, 3] random input in [−1, 1], `await pool3.data()`.
//   GFLOP/s    FLOPs by formula (src/models/flops.ts, matmuls only, 2 per multiply-add): a train step
//              costs 3 × forward FLOPs of the graph part (forward + backward ≈ 2× forward) plus 1 × the
//              no-grad iterations (forward only), × batch.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Batch, Dataset } from '../src/data/dataset.js';
import { diffusionConfig } from '../src/diffusion/process.js';
import { countParams, modelFlops, modelName, type AnyModel, type ModelConfig } from '../src/models/index.js';
import { FidInception } from '../src/metrics/inception.js';
import { measureMemory, type MemoryReport } from '../src/metrics/memory.js';
import { summarizeTimes, timeIt, type TimingResult } from '../src/metrics/timing.js';
import { planModelSampling } from '../src/experiments/budget.js';
import { sampleAtBudget } from '../src/experiments/sampling.js';
import { trainModel } from '../src/training/loop.js';
import { measureBuffers, type BufferReport } from './buffers.js';
import { Rng } from '../src/util/rng.js';
import { kernelOptions } from '../src/backends/kernels.js';
import {
  diffCounters,
  flatFrom,
  readCounters,
  startKernelProfile,
  type Counters,
  type KernelProfile,
} from './profile.js';

/** S-JFB draws fixed for the benchmark (see the file header). */
export const BENCH_NO_GRAD = 5;
export const BENCH_WITH_GRAD = 7;

/** The config a benchmark trains: FPDM's S-JFB ranges collapsed to the fixed draws. */
export function benchTrainConfig(c: ModelConfig): ModelConfig {
  if (c.kind === 'dit') return c;
  return { ...c, noGradIters: [BENCH_NO_GRAD, BENCH_NO_GRAD], withGradIters: [BENCH_WITH_GRAD, BENCH_WITH_GRAD] };
}

/**
 * Random latents ([C, H, W] standard normals, labels i mod classes) shaped for the model. The Dataset
 * type names image channels (1 | 3); latents have 4, which the training loop only compares with the
 * model's inChannels, hence the cast. Each item is drawn once and kept (a real dataset reads stored
 * latents: drawing 131,072 normals per S/2 batch of 32 took ≈ 5 ms of the training loop's host time).
 */
export function latentDataset(c: ModelConfig, size: number): Dataset {
  const chw = c.inChannels * c.inputSize * c.inputSize;
  const items = new Map<number, Float32Array>();
  const item = (k: number): Float32Array => {
    let v = items.get(k);
    if (!v) {
      v = new Rng(`bench/${k}`).normals(chw);
      items.set(k, v);
    }
    return v;
  };
  const ds: Dataset = {
    kind: 'synthetic',
    name: `bench/latents-${c.inChannels}x${c.inputSize}x${c.inputSize}`,
    size,
    numClasses: c.numClasses,
    labeled: true,
    classNames: Array.from({ length: c.numClasses }, (_, k) => `c${k}`),
    channels: c.inChannels as 1 | 3,
    imageSize: c.inputSize,
    fingerprint: `bench-latents-${c.inChannels}-${c.inputSize}-${c.numClasses}-${size}`,
    batch: (indices: ArrayLike<number>): Promise<Batch> => {
      const n = indices.length;
      const x = new Float32Array(n * chw); // [N, C, H, W]
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        x.set(item(indices[i]!), i * chw);
        y[i] = indices[i]! % c.numClasses;
      }
      return Promise.resolve({ x, y, shape: [n, c.inChannels, c.inputSize, c.inputSize] });
    },
  };
  return ds;
}

/** FLOPs by formula of one training step of `c` at `batch` (see the file header for the 3× convention). */
export function trainStepFlops(c: ModelConfig, batch: number): number {
  const f = modelFlops(c);
  if (c.kind === 'dit') return 3 * f.forward() * batch;
  const ng = c.noGradIters[0];
  const wg = c.withGradIters[0];
  return (3 * f.forward(wg) + ng * f.perIteration) * batch;
}

export interface TrainMeasurement {
  model: string;
  params: number;
  batch: number;
  noGradIters: number | null;
  withGradIters: number | null;
  timing: TimingResult;
  imagesPerSecond: number;
  /** null when the memory step was not run (--memory off) */
  memory: MemoryReport | null;
  /** the same profiled step's peak of distinct live buffers (bench/buffers.ts): what the device holds for tensors */
  buffers: BufferReport | null;
  /** gradient checkpointing on (blocks recomputed in the backward pass) */
  gradCheckpoint: boolean;
  /** FLOPs by formula per step and the effective rate (trainStepFlops / median seconds) */
  stepFlops: number;
  gflopsPerSecond: number;
  /** per-step profile (bench/profile.ts) */
  profile: TrainProfile;
  /** backend settings the row ran with */
  settings: BenchSettings;
}

export interface BenchSettings {
  /** webgpu: WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE (dispatches per submitted command buffer) */
  submitBatch: number | null;
  /** fused AdamW + EMA kernels (webgpu) */
  fusedOptimizer: boolean;
  /** fused block kernels: LayerNorm + modulate, GELU, softmax backward (webgpu) */
  fusedBlock: boolean;
  /** with fusedBlock: bias in the matMul kernel, gated residual, Σ_T gate/scale gradients, residual in the LN backward (webgpu) */
  fusedEpilogue?: boolean;
  /** with fusedEpilogue: the bias add in the matMul kernel (webgpu) */
  fusedBias?: boolean;
  /** the whole DiT block on directly dispatched kernels (webgpu) */
  rawBlock?: boolean;
  /** with rawBlock: the whole training step on them without a tape (webgpu) */
  directStep?: boolean;
  /** webgpu: the Dawn toggles added through FPDM_DAWN_TOGGLES (src/backends/webgpu/device.ts dawnFlags) */
  dawnToggles?: string;
  /** webgpu at mixed precision: FPDM_MIXED_VECTOR as set (src/backends/webgpu/gemm-mixed.ts vectorStagingDefault) */
  mixedVector?: string;
  /** webgpu at mixed precision: FPDM_MIXED_PREFETCH as set (src/backends/webgpu/gemm-mixed.ts prefetchDefault) */
  mixedPrefetch?: string;
  /** webgpu at mixed precision: FPDM_MIXED_HOIST as set (src/backends/webgpu/gemm-mixed.ts hoistLoadsDefault) */
  mixedHoist?: string;
  /** webgpu at mixed precision: FPDM_MIXED_PREFER as set (src/backends/webgpu/gemm-mixed.ts preferredTile) */
  mixedPrefer?: string;
  /** webgpu at mixed precision: FPDM_ATTENTION_HEAD_TILES as set (src/backends/webgpu/dit-block.ts attentionHeadTiles) */
  attentionHeadTiles?: string;
  /** webgpu at mixed precision: FPDM_FUSED_ATTENTION as set (src/backends/webgpu/attention.ts attentionKernel) */
  fusedAttention?: string;
  /** webgpu at mixed precision: FPDM_ATTENTION_TILE as set (src/backends/webgpu/attention.ts attentionTile) */
  attentionTile?: string;
  /** webgpu: FPDM_SUBMIT_RAMP as set (src/backends/webgpu/raw.ts submitRampDefault) */
  submitRamp?: string;
  /** webgpu at mixed precision: FPDM_MIXED_PACKED16 as set (src/backends/webgpu/gemm-mixed.ts packed16Default) */
  mixedPacked16?: string;
  /** webgpu at mixed precision: FPDM_MIXED_WEIGHTS16 as set (src/backends/webgpu/half-weights.ts halfWeightsOn) */
  mixedWeights16?: string;
  /** webgpu at mixed precision: FPDM_MIXED_ACT16 as set (src/backends/webgpu/half-weights.ts act16On) */
  mixedAct16?: string;
  /** FPDM_SAMPLE_DRAW_AHEAD as set (src/diffusion/samplers.ts sampleDrawAheadOn) */
  sampleDrawAhead?: string;
}

export function benchSettings(): BenchSettings {
  const webgpu = tf.getBackend() === 'webgpu';
  return {
    submitBatch: webgpu ? (tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number) : null,
    fusedOptimizer: webgpu && kernelOptions().fusedOptimizer,
    fusedBlock: webgpu && kernelOptions().fusedBlock,
    fusedEpilogue: webgpu && kernelOptions().fusedBlock && kernelOptions().fusedEpilogue,
    fusedBias: webgpu && kernelOptions().fusedBlock && kernelOptions().fusedEpilogue && kernelOptions().fusedBias,
    rawBlock: webgpu && kernelOptions().rawBlock,
    directStep: webgpu && kernelOptions().rawBlock && kernelOptions().directStep,
    ...(webgpu && process.env.FPDM_DAWN_TOGGLES ? { dawnToggles: process.env.FPDM_DAWN_TOGGLES } : {}),
    ...(webgpu && process.env.FPDM_MIXED_VECTOR ? { mixedVector: process.env.FPDM_MIXED_VECTOR } : {}),
    ...(webgpu && process.env.FPDM_MIXED_PREFETCH ? { mixedPrefetch: process.env.FPDM_MIXED_PREFETCH } : {}),
    ...(webgpu && process.env.FPDM_MIXED_HOIST ? { mixedHoist: process.env.FPDM_MIXED_HOIST } : {}),
    ...(webgpu && process.env.FPDM_MIXED_PREFER ? { mixedPrefer: process.env.FPDM_MIXED_PREFER } : {}),
    ...(webgpu && process.env.FPDM_ATTENTION_HEAD_TILES
      ? { attentionHeadTiles: process.env.FPDM_ATTENTION_HEAD_TILES }
      : {}),
    ...(webgpu && process.env.FPDM_FUSED_ATTENTION ? { fusedAttention: process.env.FPDM_FUSED_ATTENTION } : {}),
    ...(webgpu && process.env.FPDM_ATTENTION_TILE ? { attentionTile: process.env.FPDM_ATTENTION_TILE } : {}),
    ...(webgpu && process.env.FPDM_SUBMIT_RAMP ? { submitRamp: process.env.FPDM_SUBMIT_RAMP } : {}),
    ...(webgpu && process.env.FPDM_MIXED_PACKED16 ? { mixedPacked16: process.env.FPDM_MIXED_PACKED16 } : {}),
    ...(webgpu && process.env.FPDM_MIXED_WEIGHTS16 ? { mixedWeights16: process.env.FPDM_MIXED_WEIGHTS16 } : {}),
    ...(webgpu && process.env.FPDM_MIXED_ACT16 ? { mixedAct16: process.env.FPDM_MIXED_ACT16 } : {}),
    ...(process.env.FPDM_SAMPLE_DRAW_AHEAD ? { sampleDrawAhead: process.env.FPDM_SAMPLE_DRAW_AHEAD } : {}),
  };
}

export interface TrainProfile {
  /** every step of the run in order, warm-up included: wall seconds (the loop's own) and process CPU seconds */
  seconds: number[];
  cpuSeconds: number[];
  /** steps before the timed ones: until the step time was flat (3 steps within ±10 %), at least the requested warm-up */
  warmupSteps: number;
  /** whether the flat criterion was met (else warm-up stopped at its maximum) */
  flat: boolean;
  /** medians over the timed steps */
  perStep: {
    wallMs: number;
    cpuMs: number;
    /** the loop's own time per step outside the wait for the device's results (drawing, recording, the update) */
    hostMs?: number;
    tfjsKernels: number;
    dispatches: number;
    submits: number;
    rawDispatches: number;
  };
  /** one more step, profiled: kernels and summed GPU time */
  kernels: KernelProfile;
}

class StopRun extends Error {}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function runSteps(
  c: ModelConfig,
  batch: number,
  stopAfter: number,
  gradCheckpoint: boolean,
  onStep?: (seconds: number) => void,
  onTiming?: (hostMs: number) => void,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fpdm-bench-'));
  try {
    await trainModel({
      model: c,
      diffusion: diffusionConfig(),
      dataset: latentDataset(c, Math.max(batch * 4, 64)),
      steps: 1_000_000,
      batch,
      seed: 0,
      outDir: dir,
      checkpointEvery: 1_000_000,
      stopAfter,
      gradCheckpoint,
      onStep: (r) => onStep?.(r.seconds),
      onTiming: (t) => onTiming?.(t.hostMs),
    });
  } catch (e) {
    if (!(e instanceof StopRun)) throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Training throughput and per-step profile of one run: warm-up until the step time is flat (at least
 * `warmup`, at most `maxWarmup` steps), `steps` timed steps, then one profiled step; peak memory from
 * one profiled step of a fresh run (unless `memory` is false).
 */
export async function measureTrain(
  config: ModelConfig,
  batch: number,
  warmup: number,
  steps: number,
  gradCheckpoint = false,
  opts: { maxWarmup?: number; memory?: boolean } = {},
): Promise<TrainMeasurement> {
  const c = benchTrainConfig(config);
  const maxWarmup = Math.max(warmup, opts.maxWarmup ?? warmup);
  const seconds: number[] = [];
  const cpuSeconds: number[] = [];
  const perStep: Counters[] = [];
  const hostMs: number[] = [];
  let lastHostMs = NaN;
  let warm: number | null = null;
  let prof: ReturnType<typeof startKernelProfile> | null = null;
  let last = readCounters();
  await runSteps(
    c,
    batch,
    // one step more than measured: the training loop records a step's forward before the previous step's
    // read, so the profiled step's window holds a whole step only when a next step is begun after it
    maxWarmup + steps + 2,
    gradCheckpoint,
    (s) => {
      const now = readCounters();
      const d = diffCounters(last, now);
      seconds.push(s);
      cpuSeconds.push(d.cpu);
      if (prof) {
        prof.stop();
        throw new StopRun('profiled step done');
      }
      if (warm === null) {
        const i = flatFrom(seconds, warmup);
        if (i !== null || seconds.length >= maxWarmup) warm = seconds.length;
      } else {
        perStep.push(d);
        hostMs.push(lastHostMs);
        if (perStep.length >= steps) prof = startKernelProfile();
      }
      last = readCounters();
    },
    (ms) => {
      lastHostMs = ms;
    },
  );
  if (!prof || warm === null) throw new Error(`measureTrain: the run ended after ${seconds.length} steps`);
  const kernels = await (prof as ReturnType<typeof startKernelProfile>).collect();
  const warmupSteps: number = warm;
  const timed = seconds.slice(warmupSteps, warmupSteps + steps);
  const timing = summarizeTimes(timed, batch, warmupSteps);
  const profile: TrainProfile = {
    seconds,
    cpuSeconds,
    warmupSteps,
    flat: flatFrom(seconds.slice(0, warmupSteps), warmup) !== null,
    perStep: {
      wallMs: median(timed) * 1000,
      cpuMs: median(perStep.map((d) => d.cpu)) * 1000,
      hostMs: median(hostMs),
      tfjsKernels: median(perStep.map((d) => d.kernels)),
      dispatches: median(perStep.map((d) => d.dispatches)),
      submits: median(perStep.map((d) => d.submits)),
      rawDispatches: median(perStep.map((d) => d.rawDispatches)),
    },
    kernels,
  };
  let memory: MemoryReport | null = null;
  let buffers: BufferReport | null = null;
  if (opts.memory !== false) {
    // per-kernel NaN checks would read every output back; they are off for the profiled step
    const check = tf.env().getBool('CHECK_COMPUTATION_FOR_ERRORS');
    tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);
    try {
      const r = await measureBuffers(() => measureMemory(() => runSteps(c, batch, 1, gradCheckpoint), 'profile'));
      memory = r.result.memory;
      buffers = r.buffers;
    } finally {
      tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', check);
    }
  }
  const params = countParams(c).total;
  const stepFlops = trainStepFlops(c, batch);
  return {
    model: modelName(c),
    params,
    batch,
    noGradIters: c.kind === 'fpdm' ? c.noGradIters[0] : null,
    withGradIters: c.kind === 'fpdm' ? c.withGradIters[0] : null,
    timing,
    imagesPerSecond: timing.itemsPerSecond,
    memory,
    buffers,
    gradCheckpoint,
    stepFlops,
    gflopsPerSecond: stepFlops / timing.medianSeconds / 1e9,
    profile,
    settings: benchSettings(),
  };
}

export interface SampleCase {
  /** the model is built once per config by the caller (an XL init costs seconds on the host) */
  config: ModelConfig;
  /** DiT-step budget actually measured (may be below 20 for large models: see budgetScale) */
  budget: number;
  steps: number;
  reuse: boolean;
}

export interface SampleMeasurement {
  model: string;
  kind: 'dit' | 'fpdm';
  batch: number;
  budget: number;
  steps: number;
  iters: number | null;
  reuse: boolean;
  blockEvaluations: number;
  timing: TimingResult;
  /** images/s of the measured pass */
  imagesPerSecond: number;
  /** images/s extrapolated to a 20-DiT-step budget: measured × budget / 20 (same per-step work) */
  imagesPerSecondAt20: number;
  /** per sampling step (one denoiser call: a DiT forward, or an FPDM forward with its iterations) */
  perCall: { tfjsKernels: number; dispatches: number; cpuMs: number; wallMs: number; gpuMs: number | null };
  /** the profiled (warm-up) pass: kernels, GPU time and the largest kernel families */
  kernels: KernelProfile & { steps: number };
  settings: BenchSettings;
}

/** Sampling throughput of one batch at a budget: two warm-up passes at a 2-step budget (the second profiled), then `repeats` timed passes. */
export async function measureSample(
  model: AnyModel,
  sc: SampleCase,
  batch: number,
  repeats: number,
): Promise<SampleMeasurement> {
  {
    const diffusion = diffusionConfig();
    const plan = (budget: number, steps: number) =>
      planModelSampling(model.config, { budget, steps, diffusionSteps: diffusion.diffusionSteps });
    const opts = {
      model,
      diffusion,
      plan: plan(sc.budget, sc.steps),
      n: batch,
      batchSize: batch,
      reuse: sc.reuse,
      seed: 0,
      labels: 'cycle' as const,
    };
    // warm-up (shader compilation, weight upload): the same plan at a 2-step budget (a respaced
    // process needs 2 timesteps), i.e. the same kernels and shapes at a fraction of the cost; run twice,
    // the second time profiled (the first pass's kernel times came out 1.5–3× its timed passes': the GPU's
    // clocks had not ramped up)
    const per = sc.steps / sc.budget;
    const warmOpts = Number.isInteger(per) && sc.budget > 2 ? { ...opts, plan: plan(2, 2 * per) } : opts;
    await sampleAtBudget(warmOpts);
    const prof = startKernelProfile();
    let warmSteps: number;
    try {
      warmSteps = (await sampleAtBudget(warmOpts)).account.steps;
    } finally {
      prof.stop();
    }
    const kernels = { ...(await prof.collect()), steps: warmSteps };
    const seconds: number[] = [];
    const c0 = readCounters();
    let last = await sampleAtBudget(opts);
    seconds.push(last.account.seconds);
    for (let i = 1; i < repeats; i++) {
      last = await sampleAtBudget(opts);
      seconds.push(last.account.seconds);
    }
    const d = diffCounters(c0, readCounters());
    const timing = summarizeTimes(seconds, batch, 1);
    const a = last.account;
    const calls = a.steps * repeats;
    return {
      model: a.model,
      kind: a.kind,
      batch,
      budget: sc.budget,
      steps: a.steps,
      iters: a.iters,
      reuse: a.reuse,
      blockEvaluations: a.blockEvaluations,
      timing,
      imagesPerSecond: timing.itemsPerSecond,
      imagesPerSecondAt20: (timing.itemsPerSecond * sc.budget) / 20,
      perCall: {
        tfjsKernels: d.kernels / calls,
        dispatches: d.dispatches / calls,
        cpuMs: (d.cpu / calls) * 1000,
        wallMs: (timing.medianSeconds / a.steps) * 1000, // of the median pass, as images/s
        gpuMs: kernels.gpuMs === null ? null : kernels.gpuMs / warmSteps,
      },
      kernels,
      settings: benchSettings(),
    };
  }
}

export interface InceptionMeasurement {
  weights: string;
  batch: number;
  timing: TimingResult;
  imagesPerSecond: number;
}

/** FID Inception feature extraction on random input (weights from `path`). */
export async function measureInception(
  path: string,
  batch: number,
  warmup: number,
  repeats: number,
): Promise<InceptionMeasurement> {
  const net = FidInception.load(path);
  const x = tf.tensor4d(
    new Rng('bench/inception').normals(batch * 299 * 299 * 3).map((v) => Math.tanh(v)),
    [batch, 299, 299, 3],
  );
  try {
    const timing = await timeIt(
      async () => {
        const out = net.forward(x);
        await out.pool3.data();
        out.pool3.dispose();
      },
      { warmup, repeats, itemsPerCall: batch },
    );
    return { weights: path, batch, timing, imagesPerSecond: timing.itemsPerSecond };
  } finally {
    x.dispose();
    net.dispose();
  }
}
