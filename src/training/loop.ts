// The training loop: DiT or FPDM with the diffusion process's loss, AdamW, EMA, resumable checkpoints.
//
// One step (all randomness from host generators seeded by `seed`, so a run depends only on the seed
// and the backend, and resumes bitwise from the generators' saved states):
//   1. batch (x_0, y) from the seeded data iterator                               x_0 [N, C, H, W]
//   2. t ~ U{0..T−1} per sample, ε ~ N(0, I) (training Rng)                        t [N], ε [N, C, H, W]
//   3. the model's training plan (training Rng): FPDM's S-JFB counts n_ng ~ U{a..b}, n_g ~ U{c..d},
//      then the label-dropout mask (p = classDropoutProb; dropped labels → the null class)
//   4. x_t = q_sample(x_0, t, ε)
//   5. FPDM: n_ng iterations OUTSIDE the gradient scope → state (no graph kept)
//   6. inside tf.variableGrads: forward (FPDM: n_g iterations from that state), loss = mean_N(loss terms);
//      with gradCheckpoint the blocks keep only their inputs and are recomputed in the backward pass
//   7. a non-finite loss stops the run: status 'diverged' at this step; the update is NOT applied and the
//      last good state is checkpointed with that status (nothing is silently skipped)
//   8. AdamW update, EMA update; every `checkpointEvery` steps and at the end a checkpoint.
// Steps 4–6 record the device's work and start the step's one host read (loss, gradient norm,
// residuals); where the optimizer runs on the device (webgpu, fused) step 8 is recorded right after,
// clipped by the device's norm and skipped by the device when the loss is not finite, so 7 holds; the
// next step's draws (1–3) are made while the device computes, then the read is awaited. Step 2's t and
// ε of the next step are drawn on a worker thread meanwhile (draw-ahead.ts: the same numbers from the
// same generator state; large batches only).
// On webgpu (learned variance, hybrid loss) 4–6 run as one step of direct dispatches without a tape
// (src/backends/webgpu/train-step.ts: the same loss and gradients); with step 8 recorded on the device,
// the next step's forward (everything before its loss, which needs the loss scale) is recorded too before
// the read is awaited, so the device has work while the host waits, and dropped if the run stops.
// At mixed precision that step scales
// the loss (training/loss-scale.ts): a step whose gradient norm is not finite (an f16 overflow) is
// skipped on the device, recorded with `overflow`, and the scale halved; the run goes on (an overflow
// at a scale of 1 or less stops it as diverged: the gradients are not finite even unscaled).
import * as tf from '@tensorflow/tfjs-core';
import { activeBackend } from '../backends/index.js';
import {
  directTrainingStep,
  directTrainingStepForward,
  hostTensor,
  type DirectStepResult,
} from '../backends/kernels.js';
import { BatchIterator, type BatchIteratorState, type Dataset } from '../data/dataset.js';
import { trainingLossMean } from '../diffusion/losses.js';
import { createDiffusion, type DiffusionConfig, type GaussianDiffusion } from '../diffusion/process.js';
import {
  applyLabelDrop,
  createModel,
  loadStateDict,
  POS_EMBED,
  modelName,
  type AnyModel,
  type ModelConfig,
  type TrainingPlan,
} from '../models/index.js';
import { posEmbed2d } from '../models/blocks.js';
import { posEmbedShape } from '../models/params.js';
import { f32, type TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { log } from '../util/log.js';
import { Rng, type RngState } from '../util/rng.js';
import { gitCommit, toolVersion } from '../util/version.js';
import { AdamW, type AdamWConfig, type ParamMap } from './adamw.js';
import {
  defaultCheckpointEvery,
  readCheckpoint,
  tensorsWithPrefix,
  withPrefix,
  writeCheckpoint,
  type CheckpointMeta,
  type StepRecord,
} from './checkpoint.js';
import { DRAW_AHEAD_MIN_VALUES, DrawAhead, drawTimestepsAndNoise } from './draw-ahead.js';
import { Ema } from './ema.js';
import { LossScaler } from './loss-scale.js';
import { ensureWasmTrainingKernels } from './wasm-kernels.js';

export type { StepRecord } from './checkpoint.js';

/** Everything that determines a run's numbers. It is stored in the sidecar; a resume must match it. */
export interface TrainConfig {
  model: ModelConfig;
  diffusion: DiffusionConfig;
  /** total optimizer steps */
  steps: number;
  batch: number;
  optimizer: AdamWConfig;
  /** EMA decay (reference 0.9999) */
  ema: number;
  seed: number;
  /** random horizontal flips of the training images (the reference does them for ImageNet) */
  hflip: boolean;
  /** dataset identity (fingerprint, name, size): a resume on other data is refused */
  data: { kind: string; name: string; size: number; fingerprint: string };
}

export interface TrainOptions {
  model: ModelConfig;
  diffusion: DiffusionConfig;
  dataset: Dataset;
  steps: number;
  batch: number;
  /** AdamW settings; lr (1e-4), betas, eps, weight decay 0, warm-up 0, no clipping by default */
  optimizer?: Partial<AdamWConfig>;
  /** EMA decay, default 0.9999 */
  ema?: number;
  seed: number;
  hflip?: boolean;
  /** checkpoint directory; an existing checkpoint there is resumed (its config must match) */
  outDir: string;
  /** steps between checkpoints (default: defaultCheckpointEvery); one is always written at the end */
  checkpointEvery?: number;
  /** recorded in the sidecar (the experiment runner's run key) */
  runKey?: string;
  /** called after each completed step (also for the diverged one, with its non-finite loss) */
  onStep?: (r: StepRecord) => void;
  /**
   * called after each completed step, before onStep, with the milliseconds the step spent waiting for
   * the device's results (its one host read) and the rest (`hostMs`: drawing, recording the device's
   * work, the update): the benchmarks' host time per step. Not stored.
   */
  onTiming?: (t: { hostMs: number; waitMs: number }) => void;
  /** stop after this many steps in this call, as if killed cleanly (tests); the run stays 'running' */
  stopAfter?: number;
  /**
   * gradient checkpointing: keep only each block's inputs for backprop and recompute the blocks in the
   * backward pass (less memory, about one more forward per step). The numbers are the same as without
   * (models/blockgrad.ts), so it is not part of TrainConfig and a run may resume with either setting.
   */
  gradCheckpoint?: boolean;
  /**
   * loss scaling's initial scale S₀ (a power of 2). At mixed precision the direct step scales the loss
   * anyway, from PyTorch's 2^16 (training/loss-scale.ts); given here, it scales it at fp32 too, where
   * the gradients are then exactly S times larger and the update the same (the mechanism's tests).
   * Needs the direct step (webgpu); not stored in TrainConfig (the numbers do not depend on it).
   */
  initialLossScale?: number;
}

export interface TrainResult {
  status: 'completed' | 'diverged' | 'stopped';
  /** completed optimizer steps */
  step: number;
  /** the step whose loss was not finite (1-based), when diverged */
  divergedAt: number | null;
  /** per-step records of the whole run (including steps before a resume) */
  history: StepRecord[];
  /** the step this call resumed from (0 for a fresh run) */
  resumedFrom: number;
  outDir: string;
  /** seconds spent in this call */
  seconds: number;
  config: TrainConfig;
}

/** The resolved config a set of options trains with (what the sidecar stores). */
export function resolveTrainConfig(o: TrainOptions): TrainConfig {
  const ds = o.dataset;
  const m = o.model;
  if (!Number.isInteger(o.steps) || o.steps < 1)
    throw new UserError(`steps must be a positive integer (got ${o.steps})`);
  if (!Number.isInteger(o.batch) || o.batch < 1)
    throw new UserError(`batch must be a positive integer (got ${o.batch})`);
  if (m.inChannels !== ds.channels)
    throw new UserError(
      `the model takes ${m.inChannels} channel(s) but ${ds.name} has ${ds.channels}: set the model's channels to ${ds.channels}`,
    );
  if (m.inputSize !== ds.imageSize)
    throw new UserError(
      `the model takes ${m.inputSize}x${m.inputSize} images but ${ds.name} gives ${ds.imageSize}x${ds.imageSize}: use the same image size for both`,
    );
  if (m.numClasses !== ds.numClasses)
    throw new UserError(
      `the model has ${m.numClasses} classes but ${ds.name} has ${ds.numClasses}: set the model's class count to ${ds.numClasses}`,
    );
  const learned = o.diffusion.variance === 'learned-range';
  if (m.learnSigma !== learned)
    throw new UserError(
      `the model ${m.learnSigma ? 'learns' : 'does not learn'} sigma but the diffusion variance is '${o.diffusion.variance}': use learnSigma = ${learned}`,
    );
  const ema = o.ema ?? 0.9999;
  const optimizer: AdamWConfig = {
    lr: 1e-4,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    warmupSteps: 0,
    clipGradNorm: null,
    ...o.optimizer,
  };
  return {
    model: m,
    diffusion: o.diffusion,
    steps: o.steps,
    batch: o.batch,
    optimizer,
    ema,
    seed: o.seed,
    hflip: o.hflip ?? false,
    data: { kind: ds.kind, name: ds.name, size: ds.size, fingerprint: ds.fingerprint },
  };
}

/** The first path where two JSON values differ, or null. */
function firstDifference(a: unknown, b: unknown, path = ''): string | null {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return JSON.stringify(a) === JSON.stringify(b)
      ? null
      : `${path || '(root)'}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      path ? `${path}.${k}` : k,
    );
    if (d) return d;
  }
  return null;
}

interface LiveState {
  model: AnyModel;
  opt: AdamW;
  ema: Ema;
  rng: Rng;
  data: BatchIterator;
  history: StepRecord[];
  step: number;
  /** loss scaling (mixed precision's direct step), else null */
  scaler: LossScaler | null;
  /** the next step's timesteps and noise drawn on a worker thread (draw-ahead.ts) */
  ahead: DrawAhead;
}

/**
 * The model's state_dict read asynchronously (models' exportStateDict reads synchronously, which the
 * webgpu backend cannot do under Node); same names and values, pos_embed included as PyTorch has it.
 */
async function readStateDict(model: AnyModel): Promise<TensorMap> {
  const c = model.config;
  const sd: TensorMap = new Map([
    [POS_EMBED, f32(posEmbedShape(c), posEmbed2d(c.hiddenSize, c.inputSize / c.patchSize))],
  ]);
  for (const [name, v] of model.params) sd.set(name, f32(v.shape, (await v.data()) as Float32Array));
  return sd;
}

/** The generators' states between two steps (what a checkpoint stores, and a resume starts from). */
interface GeneratorStates {
  train: RngState;
  data: BatchIteratorState;
}

function generatorStates(s: LiveState): GeneratorStates {
  return { train: s.rng.state(), data: s.data.state() };
}

async function saveCheckpoint(
  o: TrainOptions,
  cfg: TrainConfig,
  s: LiveState,
  status: CheckpointMeta['status'],
  divergedAt: number | null,
  rng: GeneratorStates,
): Promise<void> {
  const model = await readStateDict(s.model);
  const opt = await s.opt.exportState();
  const tensors = new Map([...withPrefix(model, 'model'), ...(await s.ema.exportState()), ...opt.tensors]);
  const b = activeBackend();
  writeCheckpoint(o.outDir, tensors, {
    step: s.step,
    config: cfg,
    rng: { train: rng.train, data: rng.data },
    optimizer: { stepCount: opt.stepCount },
    history: s.history,
    runKey: o.runKey ?? null,
    toolVersion: toolVersion(),
    gitCommit: gitCommit(),
    backend: { name: b.name, version: b.version, device: b.device, ...(b.precision ? { precision: b.precision } : {}) },
    ...(s.scaler ? { lossScale: s.scaler.state() } : {}),
    status,
    divergedAt,
    createdAt: new Date().toISOString(),
  });
}

/** The checkpoint in `outDir` when it is one of this run (only the total steps may differ), else null; another run's is a UserError. */
function resumableCheckpoint(o: TrainOptions, cfg: TrainConfig): ReturnType<typeof readCheckpoint> {
  const prev = readCheckpoint(o.outDir);
  if (!prev) return null;
  const diff = firstDifference({ ...(prev.meta.config as TrainConfig), steps: 0 }, { ...cfg, steps: 0 });
  if (diff)
    throw new UserError(
      `'${o.outDir}' holds a checkpoint of a different run (${diff}): use another --out directory, or the original settings to resume`,
    );
  return prev;
}

/**
 * A fresh model, optimizer, EMA, generators and data iterator for the run; loss scaling where the step
 * runs as direct dispatches at mixed precision (their backward rounds gradients to f16).
 */
function freshState(o: TrainOptions, cfg: TrainConfig, process: GaussianDiffusion): LiveState {
  const model = createModel(cfg.model, `${cfg.seed}/init`);
  const params: ParamMap = model.params;
  const direct = directTrainingStep(process, model) !== null;
  const s0 = o.initialLossScale;
  if (s0 !== undefined) {
    if (!(s0 > 0 && Number.isInteger(Math.log2(s0))))
      throw new UserError(`initialLossScale must be a power of 2 (got ${s0})`);
    if (!direct) {
      model.dispose();
      throw new UserError(
        'initialLossScale needs the training step of direct dispatches (the webgpu backend, learned-range variance, hybrid loss)',
      );
    }
  }
  const scaled = direct && (activeBackend().precision === 'mixed' || s0 !== undefined);
  return {
    model,
    opt: new AdamW(params, cfg.optimizer),
    ema: new Ema(params, cfg.ema),
    rng: new Rng(`${cfg.seed}/train`),
    data: new BatchIterator(o.dataset, { batchSize: cfg.batch, seed: `${cfg.seed}/data`, hflip: cfg.hflip }),
    history: [],
    step: 0,
    scaler: scaled ? new LossScaler(s0 !== undefined ? { scale: s0, goodSteps: 0 } : undefined) : null,
    ahead: new DrawAhead(),
  };
}

/** Loads weights, EMA, optimizer moments, generators, data position and history from a checkpoint. */
function restoreState(
  s: LiveState,
  prev: NonNullable<ReturnType<typeof readCheckpoint>>,
  o: TrainOptions,
  cfg: TrainConfig,
): void {
  loadStateDict(s.model, tensorsWithPrefix(prev.tensors, 'model'), {
    strict: true,
    source: `checkpoint in '${o.outDir}'`,
  });
  s.ema.loadState(prev.tensors);
  s.opt.loadState(prev.tensors, prev.meta.optimizer.stepCount);
  s.rng = Rng.fromState(prev.meta.rng.train as RngState);
  s.data = new BatchIterator(
    o.dataset,
    { batchSize: cfg.batch, seed: `${cfg.seed}/data`, hflip: cfg.hflip },
    prev.meta.rng.data as BatchIteratorState,
  );
  s.history = prev.meta.history;
  s.step = prev.meta.step;
  // a checkpoint of an fp32 run resumed at mixed precision starts from the initial scale
  if (s.scaler && prev.meta.lossScale) s.scaler = new LossScaler(prev.meta.lossScale);
}

/** Steps 1–3 of the header: what a step draws on the host (data iterator and training Rng, in this order). */
interface StepDraws {
  x: Float32Array;
  shape: [number, number, number, number];
  tIdx: number[];
  noise: Float32Array;
  plan: TrainingPlan;
  /** labels with the dropped ones replaced by the null class */
  labels: Int32Array;
}

async function drawStep(s: LiveState, cfg: TrainConfig, process: GaussianDiffusion): Promise<StepDraws> {
  const batch = await s.data.next(); // 1
  const [N, C, H, W] = batch.shape;
  const count = N * C * H * W;
  const T = process.numTimesteps;
  // 2: drawn ahead on the worker from this very state, or here
  const ahead = await s.ahead.take(s.rng, N, count, T);
  if (ahead) s.rng = Rng.fromState(ahead.state);
  const { tIdx, noise } = ahead ?? drawTimestepsAndNoise(s.rng, N, count, T);
  const plan = s.model.sampleTrainingPlan(s.rng, N); // 3
  // the next step's 2 starts now (the same sizes: the batch's shape is fixed), on the worker
  if (count >= DRAW_AHEAD_MIN_VALUES) s.ahead.request(s.rng, N, count, T);
  const labels = applyLabelDrop(batch.y, plan.dropMask, cfg.model.numClasses);
  return { x: batch.x, shape: [N, C, H, W], tIdx, noise, plan, labels };
}

/** What one forward/backward pass recorded: the gradients by parameter name, and the pending read of loss, norm and residuals. */
interface RecordedStep {
  grads: Map<string, tf.Tensor>;
  plan: TrainingPlan;
  /** the loss scale S the gradients carry (1 without loss scaling) */
  lossScale: number;
  /** the device tensor [loss, ‖g‖ (where computed), residuals…] being read; disposed once read */
  status: tf.Tensor;
  /** resolves to the loss, the global gradient norm (0 where the optimizer computes none) and the last fixed-point residual */
  read: Promise<{ loss: number; gradNorm: number; residual: number | undefined }>;
}

/** A step whose forward may already be recorded (the direct step) and whose rest waits for its loss scale. */
interface BegunStep {
  /** records the rest of the step (with the loss scale S the scaler holds now) and starts its host read */
  finish(): RecordedStep;
  /** drops the step (its forward's tensors): the run stops before it */
  abandon(): void;
}

/**
 * Steps 4–6 of the header from the step's draws: q_sample, the no-gradient iterations (the model's own:
 * none for DiT), then loss and gradients (under the tape, or as the direct step where the backend has
 * it). The direct step's forward (which does not depend on the loss scale) is recorded now; the rest of
 * the step, and the taped step whole, at `finish`, which also starts the step's one host read without
 * waiting for it.
 */
function beginStep(
  s: LiveState,
  process: GaussianDiffusion,
  gradCheckpoint: boolean,
  byVarName: Map<string, string>,
  d: StepDraws,
): BegunStep {
  const forward = directTrainingStepForward(process, s.model);
  if (!forward) return { finish: () => recordStep(s, process, gradCheckpoint, byVarName, d, null), abandon: () => {} };
  const { plan, tIdx } = d;
  // written into device buffers where nothing is recorded but unsubmitted (webgpu: no staging buffer per tensor)
  const x0 = hostTensor(d.x, d.shape) as tf.Tensor4D;
  const noise = hostTensor(d.noise, d.shape) as tf.Tensor4D;
  const y = hostTensor(d.labels, [d.labels.length], 'int32') as tf.Tensor1D;
  // 4–6 as direct dispatches without a tape (webgpu): the same loss and gradients (× S with loss scaling)
  const f = forward({
    x0,
    noise,
    t: tIdx,
    y,
    noGrad: plan.noGrad,
    withGrad: plan.withGrad,
    gradCheckpoint,
    trackResiduals: true,
  });
  let open = true;
  const close = () => {
    open = false;
    tf.dispose([x0, noise, y]);
  };
  return {
    finish: () => {
      const r = f.finish(s.scaler ? s.scaler.scale : undefined);
      close();
      return recordStep(s, process, gradCheckpoint, byVarName, d, r);
    },
    abandon: () => {
      if (!open) return;
      f.abandon();
      close();
    },
  };
}

/**
 * The step's gradients and its host read: from the direct step's result `direct`, else the taped step
 * (q_sample, the no-gradient iterations, loss and gradients under the tape) recorded here.
 */
function recordStep(
  s: LiveState,
  process: GaussianDiffusion,
  gradCheckpoint: boolean,
  byVarName: Map<string, string>,
  d: StepDraws,
  direct: DirectStepResult | null,
): RecordedStep {
  const model = s.model;
  const { plan, tIdx } = d;
  // the synchronous forward returns the residuals as a tensor: kept past variableGrads, read asynchronously below
  const kept: { residuals?: tf.Tensor1D } = {};
  let value: tf.Scalar;
  let named: Map<string, tf.Tensor>;
  const lossScale = s.scaler?.scale ?? 1;
  if (direct) {
    value = direct.loss;
    named = direct.grads;
    if (direct.residuals) kept.residuals = direct.residuals;
  } else {
    const x0 = hostTensor(d.x, d.shape) as tf.Tensor4D;
    const noise = hostTensor(d.noise, d.shape) as tf.Tensor4D;
    const y = hostTensor(d.labels, [d.labels.length], 'int32') as tf.Tensor1D;
    const xT = process.qSample(x0, tIdx, noise); // 4
    const tModel = process.modelTimesteps(tIdx);
    const state = model.noGradState(xT, tModel, y, plan.noGrad); // 5
    const taped = tf.variableGrads(() => {
      // 6
      const r = model.forward(xT, tModel, y, { state, iters: plan.withGrad, trackResiduals: true, gradCheckpoint });
      if (r.state) tf.dispose(r.state.z);
      if (r.residuals) kept.residuals = tf.keep(r.residuals);
      return trainingLossMean(process, { modelOutput: r.out, xStart: x0, xT, noise, t: tIdx });
    }, [...model.params.values()]);
    if (state) tf.dispose(state.z);
    tf.dispose([x0, noise, xT, tModel, y]);
    value = taped.value;
    named = new Map(Object.entries(taped.grads).map(([vn, g]) => [byVarName.get(vn)!, g as tf.Tensor]));
  }
  // one host read per step: the loss, the global gradient norm and the residuals together
  const normT = s.opt.gradNormTensor(named, lossScale); // ‖g‖, unscaled
  const parts: tf.Tensor[] = [
    tf.reshape(value, [1]),
    ...(normT ? [normT] : []),
    ...(kept.residuals ? [kept.residuals] : []),
  ];
  const readBack = tf.concat(parts);
  tf.dispose([...parts, value]);
  const read = readBack.data().then((host) => {
    readBack.dispose();
    const res = kept.residuals ? host.subarray(normT ? 2 : 1) : null;
    return {
      loss: host[0]!,
      gradNorm: normT ? host[1]! : 0,
      residual: res && res.length > 0 ? res[res.length - 1] : undefined,
    };
  });
  return { grads: named, plan, lossScale, status: readBack, read };
}

/** A step's record (FPDM: its S-JFB draw and last residual). */
function stepRecord(
  model: AnyModel,
  step: number,
  loss: number,
  lr: number,
  gradNorm: number,
  t0: number,
  plan: TrainingPlan,
  residual: number | undefined,
): StepRecord {
  const fpdm =
    model.config.kind === 'fpdm'
      ? {
          noGradIters: plan.noGrad,
          withGradIters: plan.withGrad,
          ...(residual !== undefined ? { residual } : {}),
        }
      : {};
  return { step, loss, lr, gradNorm, seconds: (performance.now() - t0) / 1000, ...fpdm };
}

/**
 * Trains (or resumes) a model. Returns when `steps` are done, the loss is not finite, or `stopAfter`
 * steps were taken in this call. Disposes everything it created.
 */
export async function trainModel(o: TrainOptions): Promise<TrainResult> {
  const cfg = resolveTrainConfig(o);
  const checkpointEvery = o.checkpointEvery ?? defaultCheckpointEvery(cfg.steps);
  if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1)
    throw new UserError(`checkpointEvery must be a positive integer (got ${checkpointEvery})`);
  ensureWasmTrainingKernels();
  const started = performance.now();
  const process: GaussianDiffusion = createDiffusion(cfg.diffusion);
  const prev = resumableCheckpoint(o, cfg);
  const s = freshState(o, cfg, process);
  const byVarName = new Map([...s.model.params].map(([name, v]) => [v.name, name]));
  // the next step, begun (its forward recorded) before the current step's read
  let begun: BegunStep | null = null;
  const result = (status: TrainResult['status'], divergedAt: number | null, resumedFrom: number): TrainResult => ({
    status,
    step: s.step,
    divergedAt,
    history: s.history,
    resumedFrom,
    outDir: o.outDir,
    seconds: (performance.now() - started) / 1000,
    config: cfg,
  });
  try {
    if (prev) {
      restoreState(s, prev, o, cfg);
      if (prev.meta.status === 'diverged') {
        log(
          `'${o.outDir}': this run diverged at step ${prev.meta.divergedAt} (non-finite loss); not resuming. Change the settings and use another --out directory.`,
        );
        return { ...result('diverged', prev.meta.divergedAt ?? null, s.step), seconds: 0 };
      }
      log(`resuming '${o.outDir}' from step ${s.step} of ${cfg.steps}`);
    } else {
      log(
        `training ${modelName(cfg.model)} on ${o.dataset.name} for ${cfg.steps} steps (batch ${cfg.batch}, lr ${cfg.optimizer.lr}, seed ${cfg.seed}) → '${o.outDir}'`,
      );
    }
    const resumedFrom = s.step;
    // The next step's host draws are made while the device runs the current step (their order in the
    // generators' streams is unchanged); a checkpoint stores the generator states from before them.
    let draws = s.step < cfg.steps ? await drawStep(s, cfg, process) : null;
    for (let taken = 0; s.step < cfg.steps; taken++) {
      if (o.stopAfter !== undefined && taken >= o.stopAfter) return result('stopped', null, resumedFrom);
      const t0 = performance.now();
      const r = (begun ?? beginStep(s, process, o.gradCheckpoint === true, byVarName, draws!)).finish(); // 4–6
      begun = null;
      const named = r.grads;
      // 8 recorded before the read where the optimizer can (webgpu, fused): clipped by the device's norm,
      // and a no-op on the device when the loss is not finite (7); else after the read, below
      const recorded = s.opt.recordUpdate(named, r.status, s.ema, r.lossScale);
      if (recorded) tf.dispose([...named.values()]);
      const between = generatorStates(s); // after this step's draws, before the next step's
      const more = s.step + 1 < cfg.steps && (o.stopAfter === undefined || taken + 1 < o.stopAfter);
      draws = more ? await drawStep(s, cfg, process) : null; // 1–3 of the next step, while the device computes
      // with this step's update recorded on the device, the next step's forward too, before this step's
      // read: it reads the weights after the update either way (the device skips an update whose loss or
      // gradients are not finite), and nothing in it depends on the loss scale the read may change; so the
      // device has it to run while the host waits for the read and records the backward after it
      if (draws && recorded) begun = beginStep(s, process, o.gradCheckpoint === true, byVarName, draws);
      const tWait = performance.now();
      const { loss, gradNorm, residual } = await r.read;
      const waitMs = performance.now() - tWait;
      const step = s.step + 1;
      // loss scaling: a finite loss with a non-finite gradient norm is an overflow (the device skipped the update)
      const overflow = s.scaler !== null && Number.isFinite(loss) && !Number.isFinite(gradNorm);
      const scaled = s.scaler ? { lossScale: r.lossScale } : {};
      if (!Number.isFinite(loss) || (overflow && r.lossScale <= 1)) {
        // 7
        if (!recorded) tf.dispose([...named.values()]);
        const rec = { ...stepRecord(s.model, step, loss, NaN, NaN, t0, r.plan, residual), ...scaled };
        o.onStep?.(rec);
        s.history.push(rec);
        begun?.abandon();
        begun = null;
        await saveCheckpoint(o, cfg, s, 'diverged', step, between);
        log(
          Number.isFinite(loss)
            ? `diverged: the gradient norm at step ${step} is ${gradNorm} at a loss scale of ${r.lossScale} (the gradients overflow even unscaled); the run stops (last good weights are those of step ${s.step}); --precision fp32 keeps the backward in fp32`
            : `diverged: the loss at step ${step} is ${loss}; the run stops (last good weights are those of step ${s.step})`,
        );
        return result('diverged', step, resumedFrom);
      }
      if (overflow) {
        // skipped: nothing was updated (recorded: by the device; else applyUpdate is not called)
        if (!recorded) tf.dispose([...named.values()]);
        s.scaler!.update(false);
        s.step = step;
        const rec: StepRecord = {
          ...stepRecord(s.model, step, loss, recorded?.lr ?? NaN, gradNorm, t0, r.plan, residual),
          ...scaled,
          overflow: true,
        };
        o.onTiming?.({ hostMs: performance.now() - t0 - waitMs, waitMs });
        s.history.push(rec);
        o.onStep?.(rec);
        if (s.step % checkpointEvery === 0 || s.step === cfg.steps)
          await saveCheckpoint(o, cfg, s, s.step === cfg.steps ? 'completed' : 'running', null, between);
        continue;
      }
      s.scaler?.update(true);
      let info: { lr: number; gradNorm: number };
      if (recorded) {
        s.opt.commitStep();
        info = { lr: recorded.lr, gradNorm };
      } else {
        info = s.opt.applyUpdate(named, gradNorm, s.ema, r.lossScale); // 8 (EMA too)
        tf.dispose([...named.values()]);
      }
      s.step = step;
      const rec = { ...stepRecord(s.model, step, loss, info.lr, info.gradNorm, t0, r.plan, residual), ...scaled };
      o.onTiming?.({ hostMs: performance.now() - t0 - waitMs, waitMs });
      s.history.push(rec);
      o.onStep?.(rec);
      if (s.step % checkpointEvery === 0 || s.step === cfg.steps)
        await saveCheckpoint(o, cfg, s, s.step === cfg.steps ? 'completed' : 'running', null, between);
    }
    return result('completed', null, resumedFrom);
  } finally {
    begun?.abandon();
    await s.ahead.close();
    s.opt.dispose();
    s.ema.dispose();
    s.model.dispose();
  }
}
