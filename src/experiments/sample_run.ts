// Executes one claimed sample run: loads the EMA weights of its train run's checkpoint, samples
// `samples` images by executing the run's sampling plan (made by the planner with planSampling: steps,
// per-step iterations; plus reuse and CFG) with the shared sampling engine (./sampling.ts,
// sampleAtBudget), measures them and
// stores metrics (distribution metric, block evaluations / FLOPs / seconds per image, throughput,
// peak memory, per-step fixed-point residuals, params) and a sample grid, in one transaction.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeGrid } from '../data/images.js';
import type { Dataset } from '../data/dataset.js';
import type { SamplingPlan } from '../diffusion/budget.js';
import { createDiffusion } from '../diffusion/process.js';
import { modelFromStateDict, type AnyModel } from '../models/index.js';
import { countParams } from '../models/params.js';
import { METRIC, METRIC_UNITS, TAG } from '../store/names.js';
import type { Store } from '../store/store.js';
import type { ArtifactInput, MetricInput } from '../store/types.js';
import { readCheckpoint, tensorsWithPrefix } from '../training/checkpoint.js';
import { UserError } from '../util/errors.js';
import { sampleAtBudget, type SamplingAccount } from './sampling.js';
import { openSpecDataset } from './datasets.js';
import { decodeForMetrics, openSpecVae } from '../vae/spec.js';
import { peakSampleStep, type Peak } from './peak.js';
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
  if (!ckpt)
    throw new UserError(
      `the checkpoint of train run ${parent.key.slice(0, 12)} is missing from '${dir}': re-run with the artifacts directory it was trained with (--artifacts)`,
    );
  return modelFromStateDict(parent.config.model, tensorsWithPrefix(ckpt.tensors, 'ema'), {
    strict: true,
    source: `EMA weights in '${dir}'`,
  }).model;
}

export interface GeneratedSamples {
  /** [N, C, H, W] in [−1, 1] */
  x: Float32Array;
  shape: [number, number, number, number];
  account: SamplingAccount;
  /** original diffusion timestep of each sampling step (sampling order) */
  timesteps: number[];
}

/**
 * Samples with the shared engine (sampleAtBudget), executing the planner's plan as it is; labels
 * cycle over the classes (balanced).
 */
export async function generate(
  model: AnyModel,
  train: PlannedTrain,
  s: SamplingSettings,
  plan: SamplingPlan,
  seed: number,
  onBatch?: (done: number) => void,
): Promise<GeneratedSamples> {
  const diffusion = diffusionFor(train.config.training);
  let lastBatch = -1;
  const r = await sampleAtBudget({
    model,
    diffusion,
    plan,
    n: s.samples,
    batchSize: s.batchSize,
    reuse: s.reuse === true,
    sampler: s.sampler,
    eta: s.eta,
    cfgScale: s.cfg > 1 ? s.cfg : null,
    labels: 'cycle',
    seed,
    onStep: (i) => {
      if (i.batch !== lastBatch && i.step === i.steps - 1) {
        lastBatch = i.batch;
        onBatch?.(Math.min(s.samples, (i.batch + 1) * s.batchSize));
      }
    },
  });
  const process = createDiffusion({ ...diffusion, respacing: String(s.steps) });
  const timesteps = Array.from({ length: s.steps }, (_, i) => process.timestepMap[s.steps - 1 - i]!);
  return { x: r.samples, shape: r.shape, account: r.account, timesteps };
}

export async function executeSample(ctx: SampleRunContext): Promise<void> {
  const { run, parent, store, runId } = ctx;
  const s = run.config.sampling;
  const metricsWanted = new Set(run.config.metrics);
  const model = loadTrainedModel(parent, ctx.artifactsDir);
  const bar = startProgress(
    `sample ${run.modelName} budget ${s.budget} (${s.steps} steps${s.iters !== null ? ` × ${s.iters} iters` : ''})`,
    s.samples,
    ctx.progress,
  );
  let gen: GeneratedSamples;
  let peak: Peak | null = null;
  try {
    gen = await generate(model, parent, s, run.plan, run.seed, (done) => {
      bar.update(done);
      store.heartbeat(runId);
    });
    if (metricsWanted.has('memory')) {
      const maxIters =
        s.iters === null ? 0 : Math.max(...(run.plan.itersPerStep ?? gen.account.itersPerStep!.map(Math.ceil)));
      peak = await peakSampleStep(
        model,
        Math.min(s.batchSize, s.samples),
        maxIters,
        s.cfg > 1,
        parent.config.training.diffusionSteps,
      );
    }
  } finally {
    bar.stop();
    model.dispose();
  }
  const acc = gen.account;
  const rows: MetricInput[] = [
    { name: METRIC.blockEvals, value: acc.blockEvaluations, unit: METRIC_UNITS.block_evals },
    { name: METRIC.flops, value: acc.flops / s.samples, unit: METRIC_UNITS.flops },
    { name: METRIC.sampleSeconds, value: acc.seconds, unit: METRIC_UNITS.sample_seconds },
  ];
  if (metricsWanted.has('throughput'))
    rows.push({ name: METRIC.imagesPerSecond, value: s.samples / acc.seconds, unit: METRIC_UNITS.images_per_s });
  if (metricsWanted.has('params'))
    rows.push({ name: METRIC.params, value: countParams(parent.config.model).total, unit: METRIC_UNITS.params });
  if (peak !== null)
    rows.push({ name: METRIC.peakSampleBytes, value: peak.bytes, unit: METRIC_UNITS.peak_sample_bytes });
  // the last iteration's relative residual at each sampling step: step = its iteration index k, tag t = timestep
  acc.residualPerStep?.forEach((v, i) => {
    if (!Number.isFinite(v)) return;
    const k = Math.max(0, Math.round(acc.itersPerStep![i]!) - 1);
    rows.push({
      name: METRIC.fpResidual,
      value: v,
      unit: METRIC_UNITS.fp_residual,
      step: k,
      tags: { [TAG.t]: gen.timesteps[i]! },
    });
  });
  // latent datasets: decode with the spec's VAE to 8-bit images (as the reference's sample.py) for the
  // metrics and the grid; the VAE's identity goes with every metric row
  let images = { x: gen.x, shape: gen.shape };
  const vaeSpec = run.config.vae;
  if (vaeSpec) {
    const v = openSpecVae(vaeSpec);
    images = await decodeForMetrics(v.vae, gen.x, gen.shape, vaeSpec.batch);
  }
  const reference: Dataset = await openSpecDataset(parent.config.dataset, 'reference', vaeSpec);
  const dist = await distributionMetrics(
    images.x,
    images.shape,
    run.config.metrics,
    run.config.metricOptions,
    reference,
    ctx.progress,
  );
  if (vaeSpec) {
    const v = openSpecVae(vaeSpec);
    for (const r of dist) r.tags = { ...r.tags, vae: v.variant ?? 'unnamed', vae_sha256: v.sha256.slice(0, 16) };
  }
  rows.push(...dist);
  const artifacts: ArtifactInput[] = [];
  const nGrid = Math.min(run.config.metricOptions.gridImages, s.samples);
  if (nGrid > 0) {
    const dir = join(ctx.artifactsDir, 'runs', run.key);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'samples.png');
    const per = images.shape[1] * images.shape[2] * images.shape[3];
    await writeGrid(path, images.x.subarray(0, nGrid * per), [
      nGrid,
      images.shape[1],
      images.shape[2],
      images.shape[3],
    ]);
    artifacts.push({ kind: 'sample_grid', path, tags: { images: nGrid } });
  }
  store.completeRun(runId, { metrics: rows, artifacts });
}
