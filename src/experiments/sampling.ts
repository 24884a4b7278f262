// Sampling at a compute budget: composes a trained model and the diffusion process into a Denoiser,
// plans the pass (steps, per-step fixed-point iterations), runs DDPM or DDIM (optionally with
// classifier-free guidance) and accounts for what was actually spent.
//
// Plans (DESIGN §4, ANCHORS "Sampling"; a budget K is in DiT-step equivalents = depth·K block evaluations):
//   DiT                     steps = K (or --steps); each step costs `depth` block evaluations
//   FPDM explicit           (steps, iters) with steps·(pre + iters + post) = depth·K (chooseSplit); without
//                           a budget, steps and iters as given
//   FPDM fixed/increasing/  the split's B = steps·iters iterations spread by the reference LinearController
//        decreasing         (allocateIterations; sampling order, first step = noisiest)
//   FPDM tolerance          each step iterates until the relative residual < tol, capped so the pass never
//                           spends more than B iterations (ToleranceAllocator), at most maxPerStep a step
// Solution reuse (FPDM): the fixed-point state reached at one step starts the next step's iteration;
// the state lives in the denoiser's context and is reset between batches (each batch starts fresh).
//
// Accounting ("counts say what they count"):
//   blockEvaluations   per image trajectory: Σ over steps of the blocks one forward of one image ran
//                      (DiT: depth; FPDM: pre + iterations + post), mean over batches; CFG's second
//                      (unconditional) half is NOT counted here (the paper's budget unit)
//   flops              by formula (models/flops.ts: matmuls only), for everything actually computed:
//                      every image of every batch, both CFG halves
//   seconds            wall time of the sampling passes (model + sampler, forced to completion)
//   residualPerStep    FPDM: relative residual ‖z_k − z_{k−1}‖/‖z_{k−1}‖ of the last iteration at each
//                      step, mean over batches
import * as tf from '@tensorflow/tfjs-core';
import { allocateIterations, chooseSplit, ToleranceAllocator, type AllocationSchedule } from '../diffusion/budget.js';
import { withCfg, type CfgChannels } from '../diffusion/cfg.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { createDiffusion, type DiffusionConfig } from '../diffusion/process.js';
import { SAMPLERS, type SamplerName } from '../diffusion/samplers.js';
import { modelFlops } from '../models/flops.js';
import { FPDM } from '../models/fpdm.js';
import { modelName, type AnyModel, type FixedPointState, type SolverOptions } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

export type Allocation = AllocationSchedule | 'tolerance';
export const ALLOCATIONS: readonly Allocation[] = ['fixed', 'increasing', 'decreasing', 'tolerance'];

export interface SampleAtBudgetOptions {
  /** the trained model (usually its EMA weights); not disposed here */
  model: AnyModel;
  /** the training process config; it is respaced here to the number of sampling steps */
  diffusion: DiffusionConfig;
  /** number of images */
  n: number;
  /** images per batch (default n); FPDM's reuse state is reset between batches */
  batchSize?: number;
  /** budget K in DiT-step equivalents (depth·K block evaluations per image); null = explicit steps/iters */
  budget: number | null;
  /** sampling steps (DiT: default K; FPDM: picks the split with this many steps) */
  steps?: number;
  /** FPDM: iterations per step (picks the split with this many; default the K-step split) */
  iters?: number;
  /** FPDM: how the split's steps·iters iterations are spread (default 'fixed') */
  allocation?: Allocation;
  /** FPDM tolerance allocation: residual threshold (default 1e-3) and per-step cap (default 3·iters) */
  tolerance?: number;
  maxItersPerStep?: number;
  /** FPDM: solution reuse across steps (default false) */
  reuse?: boolean;
  sampler?: SamplerName;
  /** DDIM η (default 0) */
  eta?: number;
  /** classifier-free guidance scale; null or 1 = none (the null class must exist: classDropoutProb > 0) */
  cfgScale?: number | null;
  cfgChannels?: CfgChannels;
  /** class labels: 'random' (uniform, from the seed; default), 'cycle' (i mod classes), or explicit [n] */
  labels?: 'random' | 'cycle' | Int32Array;
  clipDenoised?: boolean;
  seed: number;
  /** after each step of each batch */
  onStep?: (info: { batch: number; step: number; steps: number; iters: number | null; residual: number | null; ms: number }) => void;
}

export interface SamplingAccount {
  model: string;
  kind: 'dit' | 'fpdm';
  sampler: SamplerName;
  eta: number;
  cfgScale: number | null;
  budget: number | null;
  steps: number;
  /** FPDM: planned split iterations per step (null for DiT) */
  iters: number | null;
  allocation: Allocation | null;
  reuse: boolean;
  /** FPDM: iterations per step in sampling order (mean over batches for 'tolerance'); null for DiT */
  itersPerStep: number[] | null;
  /** per image trajectory, mean over batches (CFG's unconditional half not counted) */
  blockEvaluations: number;
  blockEvaluationsPerStep: number[];
  /** blockEvaluations / depth */
  ditStepEquivalents: number;
  /** FLOPs by formula of everything computed (all images, both CFG halves) */
  flops: number;
  seconds: number;
  /** FPDM: last-iteration relative residual at each step, mean over batches; null for DiT */
  residualPerStep: number[] | null;
  n: number;
  batchSize: number;
  seed: number;
}

export interface SampleAtBudgetResult {
  /** [n, C, H, W] float32, model space (≈ [−1, 1]) */
  samples: Float32Array;
  shape: [number, number, number, number];
  labels: Int32Array;
  account: SamplingAccount;
}

interface Plan {
  steps: number;
  iters: number | null;
  /** FPDM fixed schedules: iterations per step, sampling order */
  schedule: number[] | null;
  allocation: Allocation | null;
}

/** Resolves the pass plan from the budget and the explicit choices; UserError when they conflict. */
export function planSampling(model: AnyModel, o: Pick<SampleAtBudgetOptions, 'budget' | 'steps' | 'iters' | 'allocation'>): Plan {
  const c = model.config;
  const K = o.budget;
  if (K !== null && (!Number.isInteger(K) || K < 1)) throw new UserError(`budget must be a positive integer of DiT-step equivalents (got ${K})`);
  if (c.kind === 'dit') {
    if (o.iters !== undefined || o.allocation !== undefined) throw new UserError('--iters/--allocation apply to FPDM; this checkpoint is a DiT (its budget K means K steps)');
    if (K !== null && o.steps !== undefined && o.steps !== K) throw new UserError(`a DiT spends its budget of ${K} DiT-step equivalents in exactly ${K} steps; drop --steps or set it to ${K}`);
    const steps = o.steps ?? K;
    if (steps === null || steps === undefined) throw new UserError('give a --budget or --steps');
    if (!Number.isInteger(steps) || steps < 1) throw new UserError(`steps must be a positive integer (got ${steps})`);
    return { steps, iters: null, schedule: null, allocation: null };
  }
  let steps: number;
  let iters: number;
  if (K !== null) {
    const split = chooseSplit({ baselineDepth: c.depth, pre: c.preDepth, post: c.postDepth, K, steps: o.steps, iters: o.iters });
    steps = split.steps;
    iters = split.iters;
  } else {
    if (o.steps === undefined || o.iters === undefined) throw new UserError('without --budget, FPDM needs both --steps and --iters');
    steps = o.steps;
    iters = o.iters;
    if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(iters) || iters < 1) throw new UserError(`steps and iters must be positive integers (got ${steps}, ${iters})`);
  }
  const allocation = o.allocation ?? 'fixed';
  if (!ALLOCATIONS.includes(allocation)) throw new UserError(`allocation '${allocation}' is not one of ${ALLOCATIONS.join(', ')}`);
  const schedule = allocation === 'tolerance' ? null : allocateIterations(steps * iters, steps, allocation);
  return { steps, iters, schedule, allocation };
}

/** Labels of the n images. */
function drawLabels(model: AnyModel, o: SampleAtBudgetOptions): Int32Array {
  const k = model.config.numClasses;
  const l = o.labels ?? 'random';
  if (l instanceof Int32Array) {
    if (l.length !== o.n) throw new UserError(`${l.length} labels given for ${o.n} images`);
    for (const v of l) if (v < 0 || v >= k) throw new UserError(`label ${v} is out of range 0..${k - 1}`);
    return l;
  }
  if (l === 'cycle') return Int32Array.from({ length: o.n }, (_, i) => i % k);
  const r = new Rng(`${o.seed}/labels`);
  return Int32Array.from({ length: o.n }, () => r.int(0, k - 1));
}

/**
 * Samples `n` images at a budget. Same options and seed → the same samples on the same backend;
 * every random draw (labels, x_T, per-step noise) comes from host generators keyed by the seed and
 * the batch index.
 */
export async function sampleAtBudget(o: SampleAtBudgetOptions): Promise<SampleAtBudgetResult> {
  const model = o.model;
  const c = model.config;
  if (!Number.isInteger(o.n) || o.n < 1) throw new UserError(`n must be a positive integer (got ${o.n})`);
  const batchSize = o.batchSize ?? o.n;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`batch size must be a positive integer (got ${batchSize})`);
  const plan = planSampling(model, o);
  const fpdm = model instanceof FPDM ? model : null;
  if (!fpdm && o.reuse) throw new UserError('--reuse applies to FPDM (solution reuse of the fixed-point state); this is a DiT');
  const cfgScale = o.cfgScale ?? null;
  const useCfg = cfgScale !== null && cfgScale !== 1;
  if (useCfg && !(c.classDropoutProb > 0)) throw new UserError('classifier-free guidance needs a model trained with label dropout (it has no null class)');
  const samplerName = o.sampler ?? 'ddpm';
  const sampler = SAMPLERS[samplerName];
  if (!sampler) throw new UserError(`sampler '${samplerName}' is not one of ddpm, ddim`);
  const eta = o.eta ?? 0;
  const process = createDiffusion({ ...o.diffusion, respacing: String(plan.steps) });
  const flops = modelFlops(c);
  const labels = drawLabels(model, o);
  const { inChannels: C, inputSize: H } = c;
  const samples = new Float32Array(o.n * C * H * H);
  const numBatches = Math.ceil(o.n / batchSize);
  const blocksPerStep = new Float64Array(plan.steps);
  const itersPerStep = new Float64Array(plan.steps);
  const residualSum = new Float64Array(plan.steps);
  const residualCount = new Float64Array(plan.steps);
  let totalFlops = 0;
  let seconds = 0;
  const tol = o.tolerance ?? 1e-3;
  const maxPerStep = o.maxItersPerStep ?? 3 * (plan.iters ?? 1);

  for (let b = 0; b < numBatches; b++) {
    const start = b * batchSize;
    const nb = Math.min(batchSize, o.n - start);
    const rng = new Rng(`${o.seed}/sample/${b}`);
    const alloc = plan.allocation === 'tolerance' ? new ToleranceAllocator({ budget: plan.steps * plan.iters!, steps: plan.steps, tol, maxPerStep: Math.max(1, maxPerStep) }) : null;
    const perForward = nb * (useCfg ? 2 : 1);
    // The model as a Denoiser: the per-step iteration count and reuse live here, not in the sampler.
    const base: Denoiser<FixedPointState> = async (x, t, y, ctx) => {
      const yy = y ?? tf.zeros([x.shape[0]], 'int32');
      try {
        if (!fpdm) {
          const r = model.forward(x, t, yy as tf.Tensor1D);
          blocksPerStep[ctx.step]! += c.depth / numBatches;
          totalFlops += flops.forward() * perForward;
          return { out: r.out, info: { blockEvals: c.depth } };
        }
        let solver: SolverOptions;
        if (alloc) solver = { kind: 'tolerance', tol, maxIters: alloc.capFor(ctx.step) };
        else solver = { kind: 'fixed', iters: plan.schedule![ctx.step]! };
        const r = await fpdm.forwardAsync(x, t, yy as tf.Tensor1D, { solver, state: o.reuse ? ctx.state : undefined, trackResiduals: true });
        const used = r.solve!.iterations;
        if (alloc) alloc.record(ctx.step, used);
        const res = r.solve!.residuals;
        const last = res.length ? res[res.length - 1]! : null;
        if (last !== null) {
          residualSum[ctx.step]! += last;
          residualCount[ctx.step]! += 1;
        }
        const blocks = fpdm.blockEvaluations(used);
        blocksPerStep[ctx.step]! += blocks / numBatches;
        itersPerStep[ctx.step]! += used / numBatches;
        totalFlops += flops.forward(used) * perForward;
        // reuse: hand the new state on and drop the old one; otherwise drop the new one
        if (o.reuse) {
          if (ctx.state) tf.dispose(ctx.state.z);
          return { out: r.out, state: r.state, info: { blockEvals: blocks, iters: used, ...(last !== null ? { residual: last } : {}) } };
        }
        if (r.state) tf.dispose(r.state.z);
        return { out: r.out, info: { blockEvals: blocks, iters: used, ...(last !== null ? { residual: last } : {}) } };
      } finally {
        if (y === null) yy.dispose();
      }
    };
    const denoiser = useCfg ? withCfg(base, { scale: cfgScale!, numClasses: c.numClasses, channels: o.cfgChannels }) : base;
    const xT = tf.tensor4d(rng.normals(nb * C * H * H), [nb, C, H, H]);
    const y = tf.tensor1d(labels.subarray(start, start + nb), 'int32');
    const t0 = performance.now();
    const res = await sampler(denoiser, xT, process, {
      y, rng, eta, clipDenoised: o.clipDenoised ?? false,
      onStep: o.onStep
        ? (i, info) => {
            const it = info.denoiser.iters;
            const r = info.denoiser.residual;
            o.onStep!({ batch: b, step: i, steps: info.steps, iters: typeof it === 'number' ? it : null, residual: typeof r === 'number' ? r : null, ms: info.ms });
          }
        : undefined,
    });
    const data = (await res.x0.data()) as Float32Array; // forces completion before the clock stops
    seconds += (performance.now() - t0) / 1000;
    samples.set(data, start * C * H * H);
    if (res.state) tf.dispose(res.state.z);
    tf.dispose([res.x0, xT, y]);
  }
  const blockEvaluationsPerStep = Array.from(blocksPerStep);
  const blockEvaluations = blockEvaluationsPerStep.reduce((s, v) => s + v, 0);
  return {
    samples,
    shape: [o.n, C, H, H],
    labels,
    account: {
      model: modelName(c), kind: c.kind, sampler: samplerName, eta, cfgScale: useCfg ? cfgScale : null, budget: o.budget,
      steps: plan.steps, iters: plan.iters, allocation: plan.allocation, reuse: Boolean(o.reuse),
      itersPerStep: fpdm ? Array.from(itersPerStep) : null,
      blockEvaluations, blockEvaluationsPerStep, ditStepEquivalents: blockEvaluations / c.depth,
      flops: totalFlops, seconds,
      residualPerStep: fpdm ? Array.from(residualSum, (s, i) => (residualCount[i]! > 0 ? s / residualCount[i]! : NaN)) : null,
      n: o.n, batchSize, seed: o.seed,
    },
  };
}
