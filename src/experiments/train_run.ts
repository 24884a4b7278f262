// Executes one claimed train run: trains (or resumes from the run's checkpoint directory) and stores
// the loss curve, parameter count, timing and the checkpoint as the run's metrics and artifacts, in
// one transaction with the status change (so a kill never leaves half a result).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import type { DiffusionConfig } from '../diffusion/process.js';
import { countParams } from '../models/params.js';
import { METRIC, METRIC_UNITS, TAG } from '../store/names.js';
import type { Store } from '../store/store.js';
import type { ArtifactInput, MetricInput } from '../store/types.js';
import { SIDECAR } from '../training/checkpoint.js';
import { trainModel, type StepRecord } from '../training/loop.js';
import type { PlannedTrain } from './planner.js';
import { startProgress, type ProgressMode } from './progress.js';
import { checkpointEveryOf, optimizerOf, resolveDiffusion } from './settings.js';
import type { TrainingSpec } from './spec.js';
import { peakTrainStep } from './peak.js';

/** The diffusion process of training settings (settings.ts's one meaning of the prediction). */
export function diffusionFor(t: Pick<TrainingSpec, 'prediction' | 'diffusionSteps' | 'schedule'>): DiffusionConfig {
  return resolveDiffusion(t);
}

/** Checkpoint directory of a train run (under the artifacts directory, by run key). */
export function checkpointDir(artifactsDir: string, key: string): string {
  return join(artifactsDir, 'runs', key);
}

export interface TrainRunContext {
  store: Store;
  runId: number;
  run: PlannedTrain;
  dataset: Dataset;
  artifactsDir: string;
  progress: ProgressMode;
  /** stop after this many optimizer steps in this process (tests of interruption) */
  stopAfter?: number;
}

export type TrainOutcome = 'completed' | 'diverged' | 'stopped';

/** The loss-curve rows: every `logEvery`-th step, the first and the last. */
export function lossRows(history: StepRecord[], logEvery: number): MetricInput[] {
  return history
    .filter((r, i) => r.step === 1 || r.step % logEvery === 0 || i === history.length - 1)
    .map((r) => ({ name: METRIC.trainLoss, value: r.loss, unit: METRIC_UNITS.train_loss, step: r.step }));
}

export async function executeTrain(ctx: TrainRunContext): Promise<TrainOutcome> {
  const { run, store, runId } = ctx;
  const t = run.training;
  const outDir = checkpointDir(ctx.artifactsDir, run.key);
  const bar = startProgress(`train ${run.modelName} (seed ${run.seed})`, t.steps, ctx.progress);
  let lastBeat = Date.now();
  const result = await trainModel({
    model: run.config.model,
    diffusion: diffusionFor(t),
    dataset: ctx.dataset,
    steps: t.steps,
    batch: t.batchSize,
    optimizer: optimizerOf(t),
    ema: t.ema,
    seed: run.seed,
    hflip: run.config.dataset.hflip,
    outDir,
    checkpointEvery: checkpointEveryOf(t),
    gradCheckpoint: t.gradCheckpoint === true,
    runKey: run.key,
    stopAfter: ctx.stopAfter,
    onStep: (r) => {
      bar.update(r.step, `loss ${r.loss.toPrecision(4)}`);
      if (Date.now() - lastBeat > 30_000) {
        store.heartbeat(runId);
        lastBeat = Date.now();
      }
    },
  });
  bar.stop();
  if (result.status === 'stopped') return 'stopped';
  const metrics: MetricInput[] = [
    ...lossRows(result.history, t.logEvery),
    { name: METRIC.params, value: countParams(run.config.model).total, unit: METRIC_UNITS.params },
  ];
  if (result.status === 'diverged') {
    store.addMetrics(runId, metrics);
    store.failRun(
      runId,
      `diverged: the training loss at step ${result.divergedAt} is not finite; the last good checkpoint (step ${result.step}) is in ${outDir}`,
      'diverged',
    );
    return 'diverged';
  }
  const trainSeconds = result.history.reduce((a, r) => a + r.seconds, 0);
  metrics.push({ name: METRIC.trainSeconds, value: trainSeconds, unit: METRIC_UNITS.train_seconds });
  // peak memory of one step without and with gradient checkpointing, whichever the run trained with
  for (const ckpt of [false, true]) {
    const peak = await peakTrainStep(run.config.model, diffusionFor(t), t.batchSize, optimizerOf(t), ckpt);
    metrics.push({
      name: METRIC.peakTrainBytes,
      value: peak.bytes,
      unit: METRIC_UNITS.peak_train_bytes,
      tags: { [TAG.gradCheckpoint]: ckpt },
    });
  }
  store.completeRun(runId, { metrics, artifacts: checkpointArtifacts(outDir, result.step) });
  return 'completed';
}

/** The sidecar and the weights file of the final checkpoint. */
function checkpointArtifacts(dir: string, step: number): ArtifactInput[] {
  const out: ArtifactInput[] = [];
  if (existsSync(join(dir, SIDECAR))) out.push({ kind: 'checkpoint', path: join(dir, SIDECAR), tags: { step } });
  for (const f of readdirSync(dir))
    if (/^ckpt-\d+\.safetensors$/.test(f)) out.push({ kind: 'checkpoint', path: join(dir, f), tags: { step } });
  return out;
}
