// Executes one claimed sample run: loads the EMA weights of its train run's checkpoint, samples
// `samples` images at the run's budget (steps × iterations, allocation, reuse, CFG), measures them and
// stores metrics (distribution metric, block evaluations / FLOPs / seconds per image, throughput,
// peak memory, per-step fixed-point residuals, params) and a sample grid, in one transaction.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeGrid } from '../data/images.js';
import type { Dataset } from '../data/dataset.js';
import { allocateIterations, ComputeMeter, ToleranceAllocator } from '../diffusion/budget.js';
import { withCfg } from '../diffusion/cfg.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { createDiffusion } from '../diffusion/process.js';
import { SAMPLERS } from '../diffusion/samplers.js';
import { modelFlops } from '../models/flops.js';
import { modelFromStateDict, type AnyModel, type FixedPointState } from '../models/index.js';
import { countParams } from '../models/params.js';
import { METRIC, METRIC_UNITS, TAG } from '../store/names.js';
import type { Store } from '../store/store.js';
import type { ArtifactInput, MetricInput } from '../store/types.js';
import { readCheckpoint, tensorsWithPrefix } from '../training/checkpoint.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { openSpecDataset } from './datasets.js';
import { distributionMetrics } from './measure.js';
import type { PlannedSample, PlannedTrain, SamplingSettings } from './planner.js';
import { startProgress, type ProgressMode } from './progress.js';
import { checkpointDir, diffusionFor } from './train_run.js';

export interface SampleRunContext {
  store: Store;
  runId: number;
  run: PlannedSample;
  parent: PlannedTrain;
  artifactsDir: string;
  progress: ProgressMode;
}

/** The EMA weights of a completed train run as a model. */
export function loadTrainedModel(parent: PlannedTrain, artifactsDir: string): AnyModel {
  const dir = checkpointDir(artifactsDir, parent.key);
  const ckpt = readCheckpoint(dir);
  if (!ckpt) throw new UserError(`the checkpoint of train run ${parent.key.slice(0, 12)} is missing from '${dir}': re-run with the artifacts directory it was trained with (--artifacts)`);
  return modelFromStateDict(parent.config.model, tensorsWithPrefix(ckpt.tensors, 'ema'), { strict: true, source: `EMA weights in '${dir}'` }).model;
}

/** Per-step fixed-point iterations of a sampling pass (sampling order), or null for DiT / tolerance. */
export function iterationSchedule(s: SamplingSettings): number[] | null {
  if (s.iters === null || s.allocation === null || s.allocation === 'tolerance') return null;
  return allocateIterations(s.steps * s.iters, s.steps, s.allocation);
}

interface PassStats {
  /** block evaluations spent (summed over images, then divided by N: per image; CFG evaluates each image twice) */
  blockEvals: number;
  /** forward FLOPs by formula, same accounting */
  flops: number;
  /** residuals[t][k]: sum over batches of the relative residual of iteration k at timestep t */
  residualSums: Map<number, number[]>;
  residualCounts: Map<number, number[]>;
}

/**
 * The denoiser of one model for one sampling pass: DiT as is; FPDM with the per-step iteration
 * schedule (or the residual-tolerance allocator) and solution reuse through the sampler's state.
 */
function makeDenoiser(model: AnyModel, s: SamplingSettings, stats: PassStats, meter: ComputeMeter): Denoiser<FixedPointState> {
  const cfg = model.config;
  const flops = modelFlops(cfg);
  // costs are summed per image: the inner denoiser sees 2N images under CFG, so x.shape[0] counts both halves
  if (cfg.kind === 'dit') {
    return (x, t, y, ctx) => {
      const r = model.forward(x, t, y!);
      meter.record(ctx.step, cfg.depth);
      stats.blockEvals += cfg.depth * x.shape[0];
      stats.flops += flops.forward() * x.shape[0];
      return { out: r.out };
    };
  }
  const schedule = iterationSchedule(s);
  const tol = s.allocation === 'tolerance' ? new ToleranceAllocator({ budget: s.steps * s.iters!, steps: s.steps, tol: s.tolerance!, maxPerStep: s.steps * s.iters! - (s.steps - 1) }) : null;
  return (x, t, y, ctx) => {
    const solver = tol ? { kind: 'tolerance' as const, tol: tol.tol, maxIters: tol.capFor(ctx.step) } : { kind: 'fixed' as const, iters: schedule![ctx.step]! };
    const r = model.forward(x, t, y!, { solver, state: s.reuse ? ctx.state : undefined, trackResiduals: true });
    if (ctx.state) tf.dispose(ctx.state.z);
    const used = r.solve!.iterations;
    if (tol) tol.record(ctx.step, used);
    const evals = cfg.preDepth + used + cfg.postDepth;
    meter.record(ctx.step, evals);
    stats.blockEvals += evals * x.shape[0];
    stats.flops += flops.forward(used) * x.shape[0];
    const tOrig = Math.round(t.dataSync()[0]!);
    const sums = stats.residualSums.get(tOrig) ?? [];
    const counts = stats.residualCounts.get(tOrig) ?? [];
    r.solve!.residuals.forEach((v, k) => {
      sums[k] = (sums[k] ?? 0) + v;
      counts[k] = (counts[k] ?? 0) + 1;
    });
    stats.residualSums.set(tOrig, sums);
    stats.residualCounts.set(tOrig, counts);
    let state = r.state;
    if (!s.reuse && state) {
      tf.dispose(state.z);
      state = undefined;
    }
    return { out: r.out, state, info: { blockEvals: evals, iters: used } };
  };
}

/** Class labels of the samples: classes in turn (balanced), or all 0 for an unconditional model. */
function labelsFor(n: number, start: number, numClasses: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (numClasses > 1 ? (start + i) % numClasses : 0));
}

export interface GeneratedSamples {
  /** [N, C, H, W] in [−1, 1] */
  x: Float32Array;
  shape: [number, number, number, number];
  seconds: number;
  stats: PassStats;
  /** peak TF.js tensor bytes of one profiled sampling step at the sampling batch size (the one with the most iterations) */
  peakStepBytes: number | null;
}

/** Samples `s.samples` images in batches; noise from Rng(`${seed}/sampling/<batch>`) so budgets share x_T. */
export function generate(model: AnyModel, train: PlannedTrain, s: SamplingSettings, seed: number, onBatch?: (done: number) => void, measurePeak = false): GeneratedSamples {
  const c = model.config;
  const base = diffusionFor(train.config.training);
  const process = createDiffusion({ ...base, respacing: s.sampler === 'ddim' ? `ddim${s.steps}` : String(s.steps) });
  const shape: [number, number, number, number] = [s.samples, c.inChannels, c.inputSize, c.inputSize];
  const per = c.inChannels * c.inputSize * c.inputSize;
  const x = new Float32Array(s.samples * per);
  const stats: PassStats = { blockEvals: 0, flops: 0, residualSums: new Map(), residualCounts: new Map() };
  let seconds = 0;
  for (let start = 0; start < s.samples; start += s.batchSize) {
    const n = Math.min(s.batchSize, s.samples - start);
    const rng = new Rng(`${seed}/sampling/${start / s.batchSize}`);
    const meter = new ComputeMeter();
    const inner = makeDenoiser(model, s, stats, meter);
    const den = s.cfg > 1 ? withCfg(inner, { scale: s.cfg, numClasses: c.numClasses }) : inner;
    const xT = tf.tensor4d(rng.normals(n * per), [n, c.inChannels, c.inputSize, c.inputSize]);
    const y = tf.tensor1d(labelsFor(n, start, c.numClasses), 'int32');
    const t0 = performance.now();
    const res = SAMPLERS[s.sampler](den, xT, process, { y, rng, eta: s.eta });
    const data = res.x0.dataSync() as Float32Array;
    seconds += (performance.now() - t0) / 1000;
    x.set(data, start * per);
    tf.dispose([xT, y, res.x0]);
    if (res.state) tf.dispose(res.state.z);
    onBatch?.(start + n);
  }
  stats.blockEvals /= s.samples; // per image
  stats.flops /= s.samples;
  const peakStepBytes = measurePeak ? peakOfOneStep(model, s, process.numTimesteps) : null;
  return { x, shape, seconds, stats, peakStepBytes };
}

/** Peak tensor bytes of one denoiser call + update at the sampling batch size (tf.profile). */
function peakOfOneStep(model: AnyModel, s: SamplingSettings, numSteps: number): number {
  const c = model.config;
  const n = Math.min(s.batchSize, s.samples);
  const iters = s.iters === null ? 0 : Math.max(...(iterationSchedule(s) ?? [s.steps * s.iters - (s.steps - 1)]));
  const rng = new Rng('peak');
  let peak = 0;
  const before = tf.memory().numBytes;
  // tf.profile is asynchronous only in its bookkeeping; run it synchronously via the engine's profile hook
  const engine = tf.engine() as unknown as { state: { profiling: boolean; activeProfile: { kernels: { totalBytesSnapshot: number }[] } } };
  engine.state.profiling = true;
  engine.state.activeProfile.kernels = [];
  try {
    const xt = tf.tensor4d(rng.normals(n * c.inChannels * c.inputSize * c.inputSize), [n, c.inChannels, c.inputSize, c.inputSize]);
    const t = tf.fill([n], numSteps - 1, 'float32') as tf.Tensor1D;
    const y = tf.zeros([n], 'int32') as tf.Tensor1D;
    const r = model.forward(xt, t, y, c.kind === 'fpdm' ? { iters: Math.max(1, iters), trackResiduals: false } : {});
    tf.dispose([xt, t, y, r.out, ...(r.state ? [r.state.z] : [])]);
  } finally {
    engine.state.profiling = false;
    for (const k of engine.state.activeProfile.kernels) peak = Math.max(peak, k.totalBytesSnapshot);
    engine.state.activeProfile.kernels = [];
  }
  return Math.max(0, peak - before) * (s.cfg > 1 ? 2 : 1);
}

export async function executeSample(ctx: SampleRunContext): Promise<void> {
  const { run, parent, store, runId } = ctx;
  const s = run.config.sampling;
  const metricsWanted = new Set(run.config.metrics);
  const model = loadTrainedModel(parent, ctx.artifactsDir);
  const bar = startProgress(`sample ${run.modelName} budget ${s.budget} (${s.steps} steps${s.iters !== null ? ` × ${s.iters} iters` : ''})`, s.samples, ctx.progress);
  let gen: GeneratedSamples;
  try {
    gen = generate(model, parent, s, run.seed, (done) => {
      bar.update(done);
      store.heartbeat(runId);
    }, metricsWanted.has('memory'));
  } finally {
    bar.stop();
    model.dispose();
  }
  const rows: MetricInput[] = [
    { name: METRIC.blockEvals, value: gen.stats.blockEvals, unit: METRIC_UNITS.block_evals },
    { name: METRIC.flops, value: gen.stats.flops, unit: METRIC_UNITS.flops },
    { name: METRIC.sampleSeconds, value: gen.seconds, unit: METRIC_UNITS.sample_seconds },
  ];
  if (metricsWanted.has('throughput')) rows.push({ name: METRIC.imagesPerSecond, value: s.samples / gen.seconds, unit: METRIC_UNITS.images_per_s });
  if (metricsWanted.has('params')) rows.push({ name: METRIC.params, value: countParams(parent.config.model).total, unit: METRIC_UNITS.params });
  if (gen.peakStepBytes !== null) rows.push({ name: METRIC.peakSampleBytes, value: gen.peakStepBytes, unit: METRIC_UNITS.peak_sample_bytes });
  for (const [t, sums] of gen.stats.residualSums) {
    const counts = gen.stats.residualCounts.get(t)!;
    sums.forEach((v, k) => rows.push({ name: METRIC.fpResidual, value: v / counts[k]!, unit: METRIC_UNITS.fp_residual, step: k, tags: { [TAG.t]: t } }));
  }
  const reference: Dataset = await openSpecDataset(parent.config.dataset, 'reference');
  rows.push(...(await distributionMetrics(gen.x, gen.shape, run.config.metrics, run.config.metricOptions, reference, ctx.progress)));
  const artifacts: ArtifactInput[] = [];
  const nGrid = Math.min(run.config.metricOptions.gridImages, s.samples);
  if (nGrid > 0) {
    const dir = join(ctx.artifactsDir, 'runs', run.key);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'samples.png');
    const per = gen.shape[1] * gen.shape[2] * gen.shape[3];
    await writeGrid(path, gen.x.subarray(0, nGrid * per), [nGrid, gen.shape[1], gen.shape[2], gen.shape[3]]);
    artifacts.push({ kind: 'sample_grid', path, tags: { images: nGrid } });
  }
  store.completeRun(runId, { metrics: rows, artifacts });
}
