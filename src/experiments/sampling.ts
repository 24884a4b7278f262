// Sampling a trained model: executes a sampling plan (diffusion/budget.ts, planSampling: steps and
// per-step fixed-point iterations of a budget) with DDPM or DDIM, optionally with classifier-free
// guidance, and accounts for what was actually spent. Nothing here plans: the plan is given, and the
// spec planner, `fpdm-exp sample` and `plan`/`run --dry-run` all made theirs with planSampling.
//
// Executing a plan (DESIGN §4, ANCHORS "Sampling"):
//   DiT                     plan.steps steps of `depth` block evaluations
//   FPDM fixed/increasing/  step i runs plan.itersPerStep[i] fixed-point iterations
//        decreasing
//   FPDM tolerance          each step iterates until the relative residual < tol, capped so the pass never
//                           spends more than steps·iters iterations (ToleranceAllocator), at most
//                           plan.maxItersPerStep a step
// Solution reuse (FPDM): the fixed-point state reached at one step starts the next step's iteration;
// the state lives in the denoiser's context and is reset between batches (each batch starts fresh).
//
// Accounting ("counts say what they count"):
//   blockEvaluations   per image trajectory: Σ over steps of the blocks one forward of one image ran
//                      (DiT: depth; FPDM: pre + iterations the solver reports it ran + post), mean over
//                      batches; CFG's second (unconditional) half is NOT counted here (the paper's unit)
//   flops              by formula (models/flops.ts: matmuls only), for everything actually computed:
//                      every image of every batch, both CFG halves
//   seconds            wall time of the sampling passes (model + sampler, forced to completion)
//   residualPerStep    FPDM: relative residual ‖z_k − z_{k−1}‖/‖z_{k−1}‖ of the last iteration at each
//                      step, mean over batches
// A plan with a fixed schedule must be spent exactly; a difference is a bug (an Error, not a result).
import * as tf from '@tensorflow/tfjs-core';
import { ToleranceAllocator, type Allocation, type SamplingPlan } from '../diffusion/budget.js';
import { withCfg, type CfgChannels } from '../diffusion/cfg.js';
import type { Denoiser } from '../diffusion/denoiser.js';
import { createDiffusion, type DiffusionConfig } from '../diffusion/process.js';
import { SAMPLER_NAMES, SAMPLERS, type Sampler, type SamplerName } from '../diffusion/samplers.js';
import { modelFlops } from '../models/flops.js';
import { modelName, type DiffusionModel, type FixedPointState, type SolverOptions } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { stepCost } from './budget.js';

export { ALLOCATIONS, type Allocation } from '../diffusion/budget.js';

export interface SampleAtBudgetOptions {
  /** the trained model (usually its EMA weights); not disposed here */
  model: DiffusionModel;
  /** the training process config; it is respaced here to the plan's number of steps */
  diffusion: DiffusionConfig;
  /** what to run: planSampling's plan for this model */
  plan: SamplingPlan;
  /** number of images */
  n: number;
  /** images per batch (default n); FPDM's reuse state is reset between batches */
  batchSize?: number;
  /** FPDM: solution reuse across steps (default false) */
  reuse?: boolean;
  /** 'ddpm' (default), 'ddim', or any function with the samplers' signature (diffusion/samplers.ts) */
  sampler?: SamplerName | Sampler;
  /** DDIM η (default 0) */
  eta?: number;
  /** classifier-free guidance scale; null or 1 = none (the null class must exist: classDropoutProb > 0) */
  cfgScale?: number | null;
  cfgChannels?: CfgChannels;
  /** class labels: 'random' (uniform, from the seed; default), 'cycle' (i mod classes), or explicit [n] */
  labels?: 'random' | 'cycle' | Int32Array;
  clipDenoised?: boolean;
  seed: number;
  /**
   * FPDM with a fixed iteration plan: read each step's last fixed-point residual before the next step
   * (onStep's `residual`, for a live display). Default false: the residuals stay on the device and are
   * read once per batch, so the host never waits for the GPU between steps (on webgpu that wait left the
   * GPU idle while the next step was recorded). The tolerance allocation reads them in any case.
   */
  stepResiduals?: boolean;
  /** after each step of each batch */
  onStep?: (info: {
    batch: number;
    step: number;
    steps: number;
    iters: number | null;
    residual: number | null;
    ms: number;
  }) => void;
}

export interface SamplingAccount {
  model: string;
  kind: 'dit' | 'fpdm';
  /** the sampler's name (a sampler function: its function name) */
  sampler: string;
  eta: number;
  cfgScale: number | null;
  budget: number | null;
  steps: number;
  /** FPDM: planned split iterations per step (null for DiT) */
  iters: number | null;
  allocation: Allocation | null;
  reuse: boolean;
  /** block evaluations per image the plan spends ('tolerance': at most) */
  plannedBlockEvaluations: number;
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

/** Labels of the n images. */
function drawLabels(model: DiffusionModel, o: SampleAtBudgetOptions): Int32Array {
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

/** The checked settings of one call. */
interface Setup {
  plan: SamplingPlan;
  batchSize: number;
  cfgScale: number | null;
  sampler: Sampler;
  samplerName: string;
  eta: number;
}

/** Checks the options against the model and the plan (the plan must have been made for this model). */
function checkSetup(o: SampleAtBudgetOptions): Setup {
  const { model, plan } = o;
  const c = model.config;
  const cost = stepCost(c);
  if (
    plan.cost.family !== cost.family ||
    plan.cost.depth !== cost.depth ||
    plan.cost.pre !== cost.pre ||
    plan.cost.post !== cost.post
  ) {
    throw new Error(
      `sampleAtBudget: the plan was made for ${JSON.stringify(plan.cost)}, the model is ${JSON.stringify(cost)}`,
    );
  }
  if (!Number.isInteger(o.n) || o.n < 1) throw new UserError(`n must be a positive integer (got ${o.n})`);
  const batchSize = o.batchSize ?? o.n;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UserError(`batch size must be a positive integer (got ${batchSize})`);
  if (c.kind !== 'fpdm' && o.reuse)
    throw new UserError('--reuse applies to FPDM (solution reuse of the fixed-point state); this is a DiT');
  const cfgScale = o.cfgScale !== undefined && o.cfgScale !== null && o.cfgScale !== 1 ? o.cfgScale : null;
  if (cfgScale !== null && !(c.classDropoutProb > 0))
    throw new UserError('classifier-free guidance needs a model trained with label dropout (it has no null class)');
  const named = o.sampler ?? 'ddpm';
  const sampler = typeof named === 'function' ? named : SAMPLERS[named];
  if (!sampler) throw new UserError(`sampler '${String(named)}' is not one of ${SAMPLER_NAMES.join(', ')}`);
  return {
    plan,
    batchSize,
    cfgScale,
    sampler,
    samplerName: typeof named === 'function' ? named.name || 'custom' : named,
    eta: o.eta ?? 0,
  };
}

/** What the passes actually spent, summed over batches (divide by the batch count for per-image means). */
class Tally {
  readonly blocks: Float64Array;
  readonly iters: Float64Array;
  readonly residualSum: Float64Array;
  readonly residualCount: Float64Array;
  flops = 0;
  seconds = 0;
  constructor(steps: number) {
    this.blocks = new Float64Array(steps);
    this.iters = new Float64Array(steps);
    this.residualSum = new Float64Array(steps);
    this.residualCount = new Float64Array(steps);
  }
}

/**
 * The last fixed-point residual of each step, kept on the device and read once at the end of a batch
 * (SampleAtBudgetOptions.stepResiduals).
 */
class DeferredResiduals {
  private readonly kept: Array<{ step: number; residuals: tf.Tensor1D }> = [];

  /** keeps a step's residuals [iterations] (no kernel to pick the last one: they are a few values) */
  keep(step: number, residuals: tf.Tensor1D): void {
    if (residuals.shape[0] > 0) this.kept.push({ step, residuals });
    else residuals.dispose();
  }

  /** reads them all in one host read and adds each step's last residual to the tally */
  async flush(tally: Tally): Promise<void> {
    if (this.kept.length === 0) return;
    const all = tf.concat(this.kept.map((k) => k.residuals));
    try {
      const v = await all.data();
      let end = 0;
      for (const k of this.kept) {
        end += k.residuals.shape[0];
        tally.residualSum[k.step]! += v[end - 1]!;
        tally.residualCount[k.step]! += 1;
      }
    } finally {
      all.dispose();
      tf.dispose(this.kept.map((k) => k.residuals));
      this.kept.length = 0;
    }
  }
}

/**
 * The model as a Denoiser for one batch: the plan's per-step iterations (or the tolerance allocator's
 * cap) and solution reuse live here, not in the sampler; every call adds what it ran to the tally.
 */
function planDenoiser(
  model: DiffusionModel,
  setup: Setup,
  reuse: boolean,
  imagesPerForward: number,
  tally: Tally,
  deferred: DeferredResiduals | null,
): Denoiser<FixedPointState> {
  const { plan } = setup;
  const flops = modelFlops(model.config);
  const alloc =
    plan.allocation === 'tolerance'
      ? new ToleranceAllocator({
          budget: plan.steps * plan.iters!,
          steps: plan.steps,
          tol: plan.tolerance!,
          maxPerStep: plan.maxItersPerStep!,
        })
      : null;
  const fpdm = plan.family === 'fpdm';
  return async (x, t, y, ctx) => {
    const yy = y ?? (tf.zeros([x.shape[0]], 'int32') as tf.Tensor1D);
    try {
      const solver: SolverOptions | undefined = !fpdm
        ? undefined
        : alloc
          ? { kind: 'tolerance', tol: plan.tolerance!, maxIters: alloc.capFor(ctx.step) }
          : { kind: 'fixed', iters: plan.itersPerStep![ctx.step]! };
      const opts = fpdm ? { solver, state: reuse ? ctx.state : undefined, trackResiduals: true } : {};
      // deferred residuals: the synchronous forward (fixed solver) leaves them on the device
      const r = deferred && fpdm && !alloc ? model.forward(x, t, yy, opts) : await model.forwardAsync(x, t, yy, opts);
      if (r.residuals) deferred!.keep(ctx.step, r.residuals);
      const used = fpdm ? r.solve!.iterations : undefined;
      if (alloc) alloc.record(ctx.step, used!);
      const blocks = model.blockEvaluations(used);
      tally.blocks[ctx.step]! += blocks;
      tally.flops += flops.forward(used) * imagesPerForward;
      const res = r.solve?.residuals ?? [];
      const last = res.length ? res[res.length - 1]! : null;
      if (last !== null) {
        tally.residualSum[ctx.step]! += last;
        tally.residualCount[ctx.step]! += 1;
      }
      if (used !== undefined) tally.iters[ctx.step]! += used;
      const info = {
        blockEvals: blocks,
        ...(used !== undefined ? { iters: used } : {}),
        ...(last !== null ? { residual: last } : {}),
      };
      // reuse: hand the new state on and drop the old one; otherwise drop the new one
      if (reuse) {
        if (ctx.state) tf.dispose(ctx.state.z);
        return { out: r.out, state: r.state, info };
      }
      if (r.state) tf.dispose(r.state.z);
      return { out: r.out, info };
    } finally {
      if (y === null) yy.dispose();
    }
  };
}

/** Samples batch `b` into `samples` (timed from x_T to x_0 read back). */
async function sampleBatch(
  o: SampleAtBudgetOptions,
  setup: Setup,
  b: number,
  labels: Int32Array,
  samples: Float32Array,
  tally: Tally,
): Promise<void> {
  const c = o.model.config;
  const { inChannels: C, inputSize: H } = c;
  const start = b * setup.batchSize;
  const nb = Math.min(setup.batchSize, o.n - start);
  const rng = new Rng(`${o.seed}/sample/${b}`);
  const process = createDiffusion({ ...o.diffusion, respacing: String(setup.plan.steps) });
  const deferred = o.stepResiduals ? null : new DeferredResiduals();
  const base = planDenoiser(o.model, setup, Boolean(o.reuse), nb * (setup.cfgScale !== null ? 2 : 1), tally, deferred);
  const denoiser =
    setup.cfgScale !== null
      ? withCfg(base, { scale: setup.cfgScale, numClasses: c.numClasses, channels: o.cfgChannels })
      : base;
  const xT = tf.tensor4d(rng.normals(nb * C * H * H), [nb, C, H, H]);
  const y = tf.tensor1d(labels.subarray(start, start + nb), 'int32');
  const onStep = o.onStep;
  const t0 = performance.now();
  const res = await setup.sampler(denoiser, xT, process, {
    y,
    rng,
    eta: setup.eta,
    clipDenoised: o.clipDenoised ?? false,
    onStep: onStep
      ? (i, info) => {
          const it = info.denoiser.iters;
          const r = info.denoiser.residual;
          onStep({
            batch: b,
            step: i,
            steps: info.steps,
            iters: typeof it === 'number' ? it : null,
            residual: typeof r === 'number' ? r : null,
            ms: info.ms,
          });
        }
      : undefined,
  });
  // x_0 and the deferred residuals read together (one wait for the device, not two in turn); the read
  // forces completion before the clock stops
  const [data] = (await Promise.all([res.x0.data(), deferred?.flush(tally)])) as [Float32Array, void];
  tally.seconds += (performance.now() - t0) / 1000;
  samples.set(data, start * C * H * H);
  if (res.state) tf.dispose(res.state.z);
  tf.dispose([res.x0, xT, y]);
}

/** The account of the passes; a fixed-schedule plan not spent exactly is a bug. */
function accountOf(o: SampleAtBudgetOptions, setup: Setup, tally: Tally, numBatches: number): SamplingAccount {
  const { plan } = setup;
  const c = o.model.config;
  const fpdm = plan.family === 'fpdm';
  const blockEvaluationsPerStep = Array.from(tally.blocks, (v) => v / numBatches);
  const blockEvaluations = blockEvaluationsPerStep.reduce((s, v) => s + v, 0);
  if (plan.allocation !== 'tolerance' && blockEvaluations !== plan.blockEvals) {
    throw new Error(
      `sampleAtBudget: the plan spends ${plan.blockEvals} block evaluations per image, the passes spent ${blockEvaluations}`,
    );
  }
  return {
    model: modelName(c),
    kind: c.kind,
    sampler: setup.samplerName,
    eta: setup.eta,
    cfgScale: setup.cfgScale,
    budget: plan.budget,
    steps: plan.steps,
    iters: plan.iters,
    allocation: plan.allocation,
    reuse: Boolean(o.reuse),
    plannedBlockEvaluations: plan.blockEvals,
    itersPerStep: fpdm ? Array.from(tally.iters, (v) => v / numBatches) : null,
    blockEvaluations,
    blockEvaluationsPerStep,
    ditStepEquivalents: blockEvaluations / c.depth,
    flops: tally.flops,
    seconds: tally.seconds,
    residualPerStep: fpdm
      ? Array.from(tally.residualSum, (v, i) => (tally.residualCount[i]! > 0 ? v / tally.residualCount[i]! : NaN))
      : null,
    n: o.n,
    batchSize: setup.batchSize,
    seed: o.seed,
  };
}

/**
 * Samples `n` images by executing `plan`. Same options and seed → the same samples on the same
 * backend; every random draw (labels, x_T, per-step noise) comes from host generators keyed by the
 * seed and the batch index.
 */
export async function sampleAtBudget(o: SampleAtBudgetOptions): Promise<SampleAtBudgetResult> {
  const setup = checkSetup(o); // 1. plan ↔ model, options
  const labels = drawLabels(o.model, o); // 2. labels
  const { inChannels: C, inputSize: H } = o.model.config;
  const samples = new Float32Array(o.n * C * H * H);
  const tally = new Tally(setup.plan.steps);
  const numBatches = Math.ceil(o.n / setup.batchSize);
  for (let b = 0; b < numBatches; b++) await sampleBatch(o, setup, b, labels, samples, tally); // 3. passes
  return { samples, shape: [o.n, C, H, H], labels, account: accountOf(o, setup, tally, numBatches) }; // 4. account
}
