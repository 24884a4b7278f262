// The one vocabulary of model, dataset, training and sampling settings: their typed schemas (zod) and
// the resolvers from settings to what the code runs (model config, diffusion process, optimizer,
// checkpoint cadence, training run config and key). A spec's sections ARE these schemas, and the
// `train` and `sample` commands build the same objects from their flags (FLAGS below: each flag is a
// schema key in kebab-case), parse them with the same schemas and call the same resolvers, so both
// doors give the same defaults, the same resolved config and the same run key.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import type { Precision } from '../backends/index.js';
import { DEFAULT_IMAGE_SIZE, SYNTHETIC_DEFAULTS } from '../data/index.js';
import { ALLOCATIONS } from '../diffusion/budget.js';
import { diffusionConfig, type DiffusionConfig } from '../diffusion/process.js';
import { fpdmFrom, parsePreset, validateConfig, type DiTConfig, type ModelConfig } from '../models/config.js';
import { canonicalJson, sha256Hex } from '../store/json.js';
import type { AdamWConfig } from '../training/adamw.js';
import { defaultCheckpointEvery } from '../training/checkpoint.js';
import { UserError } from '../util/errors.js';
import { latentFolderShape } from '../vae/spec.js';

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const oneOrMany = <T extends z.ZodTypeAny>(t: T) => z.union([t, z.array(t).min(1)]);
const range = z.tuple([nonNegInt, nonNegInt]);

export const DATASET_KINDS = ['mnist', 'folder', 'synthetic', 'latents'] as const;
export const PREDICTIONS = ['eps', 'v'] as const;
export type Prediction = (typeof PREDICTIONS)[number];

export const datasetSchema = z
  .object({
    kind: z.enum(DATASET_KINDS),
    /** image folder (folder datasets) or latent folder (latents: <name>_features/ + <name>_labels/) */
    path: z.string().min(1).optional(),
    /** latents: which <name>_features/<name>_labels pair (default: the only one in the folder) */
    name: z.string().min(1).optional(),
    /** square side the images are resized to (default: MNIST 28, its native size; folders and synthetic data 32) */
    imageSize: posInt.optional(),
    /** 1 or 3; fixed by MNIST (1); default 3 for folders and synthetic data */
    channels: z.union([z.literal(1), z.literal(3)]).optional(),
    /** number of classes (MNIST 10; synthetic default 4; a folder: one per sub-folder, 1 without) */
    classes: posInt.optional(),
    /** use only the first `limit` images (after the loader's fixed order) */
    limit: posInt.optional(),
    /** synthetic data: how many images (default 512) */
    size: posInt.optional(),
    /** random horizontal flips during training */
    hflip: z.boolean().default(false),
  })
  .strict();

const trunk = {
  /** a paper preset ('DiT-S/2'); explicit fields below override its sizes */
  preset: z.string().optional(),
  /** another model of this spec whose trunk (sizes, patch) this one copies (specs only) */
  like: z.string().optional(),
  hiddenSize: posInt.optional(),
  depth: posInt.optional(),
  heads: posInt.optional(),
  patchSize: posInt.optional(),
  mlpRatio: z.number().positive().optional(),
  classDropout: z.number().min(0).lt(1).optional(),
};

export const ditSchema = z.object({ kind: z.literal('dit'), ...trunk }).strict();
export const sjfbSchema = z.object({ noGrad: range.default([0, 10]), withGrad: range.default([1, 12]) }).strict();
export const fpdmSchema = z
  .object({
    kind: z.literal('fpdm'),
    ...trunk,
    pre: nonNegInt.default(1),
    post: nonNegInt.default(1),
    /** S-JFB: iterations without gradient U{a..b}, then with gradient U{c..d}, per batch */
    sjfb: sjfbSchema.default({}),
    prePostTimestepConditioning: z.boolean().default(true),
  })
  .strict();
export const modelSchema = z.discriminatedUnion('kind', [ditSchema, fpdmSchema]);

export const trainingSchema = z
  .object({
    steps: posInt,
    batchSize: posInt,
    lr: z.number().positive().default(1e-4),
    weightDecay: z.number().nonnegative().default(0),
    warmupSteps: nonNegInt.default(0),
    /** learning rate after warm-up: constant, or cosine decay to 0 at the last step */
    lrSchedule: z.enum(['constant', 'cosine']).default('constant'),
    ema: z.number().min(0).lt(1).default(0.9999),
    gradClip: z.number().positive().nullable().default(null),
    /** steps between checkpoints (default: a tenth of the steps, at most 1000; see checkpointEveryOf) */
    checkpointEvery: posInt.optional(),
    logEvery: posInt.default(10),
    /**
     * eps: ε-prediction (the reference code's default); v: v-prediction with zero terminal SNR (the
     * paper's setting). Both learn the variance (learned range, mse + vb; see resolveDiffusion).
     */
    prediction: z.enum(PREDICTIONS).default('eps'),
    diffusionSteps: posInt.default(1000),
    schedule: z.enum(['linear', 'cosine']).default('linear'),
    /** gradient checkpointing (recompute blocks in the backward pass): same numbers, less memory */
    gradCheckpoint: z.boolean().default(false),
  })
  .strict();

export const samplingSchema = z
  .object({
    /** budgets in DiT-step equivalents (K ↔ K·depth block evaluations) */
    budgets: z.array(posInt).min(1),
    /** FPDM steps at each budget ('auto' = every exact split with at least K steps); iterations follow */
    splits: z.union([z.literal('auto'), z.array(posInt).min(1)]).default('auto'),
    allocation: oneOrMany(z.enum(ALLOCATIONS)).default('fixed'),
    /** relative residual at which the 'tolerance' allocation stops iterating (default 1e-3) */
    tolerance: z.number().positive().optional(),
    /** the 'tolerance' allocation's cap per step (default 3·iterations of the split) */
    maxItersPerStep: posInt.optional(),
    reuse: oneOrMany(z.boolean()).default(false),
    sampler: z.enum(['ddpm', 'ddim']).default('ddpm'),
    eta: z.number().min(0).max(1).default(0),
    cfg: z.number().min(1).default(1),
    /** images generated (and measured) per sampling run */
    samples: posInt,
    batchSize: posInt.default(32),
  })
  .strict();

export type DatasetSettings = z.output<typeof datasetSchema>;
export type ModelSettings = z.output<typeof modelSchema>;
export type TrainingSettings = z.output<typeof trainingSchema>;
export type SamplingSettingsSpec = z.output<typeof samplingSchema>;

/** Keys that were renamed: old path (dotted, `*` = any model) → the message naming the new key. */
export const RENAMED_KEYS: Record<string, string> = {
  'training.loss':
    "was replaced by training.prediction: 'loss: hybrid' is 'prediction: eps'; 'loss: v-zsnr' is 'prediction: v' (v-prediction with zero terminal SNR and a learned variance, the paper's setting)",
};

/**
 * The command-line flags of the settings: flag → schema path. `train` and `sample` register exactly
 * these names (tests/experiments/vocabulary.test.ts checks both commands against this table and walks
 * every entry through both doors). A path ending in [] takes one entry of a spec's list.
 */
export const FLAGS = {
  train: {
    '--preset': 'models.*.preset',
    '--hidden-size': 'models.*.hiddenSize',
    '--depth': 'models.*.depth',
    '--heads': 'models.*.heads',
    '--patch-size': 'models.*.patchSize',
    '--mlp-ratio': 'models.*.mlpRatio',
    '--class-dropout': 'models.*.classDropout',
    '--fpdm': 'models.*.kind',
    '--pre': 'models.*.pre',
    '--post': 'models.*.post',
    '--sjfb-no-grad': 'models.*.sjfb.noGrad',
    '--sjfb-with-grad': 'models.*.sjfb.withGrad',
    '--pre-post-timestep-conditioning': 'models.*.prePostTimestepConditioning',
    '--data': 'dataset.kind',
    '--image-size': 'dataset.imageSize',
    '--channels': 'dataset.channels',
    '--classes': 'dataset.classes',
    '--limit': 'dataset.limit',
    '--size': 'dataset.size',
    '--hflip': 'dataset.hflip',
    '--steps': 'training.steps',
    '--batch-size': 'training.batchSize',
    '--lr': 'training.lr',
    '--weight-decay': 'training.weightDecay',
    '--warmup-steps': 'training.warmupSteps',
    '--lr-schedule': 'training.lrSchedule',
    '--ema': 'training.ema',
    '--grad-clip': 'training.gradClip',
    '--checkpoint-every': 'training.checkpointEvery',
    '--prediction': 'training.prediction',
    '--diffusion-steps': 'training.diffusionSteps',
    '--schedule': 'training.schedule',
    '--grad-checkpoint': 'training.gradCheckpoint',
    '--seed': 'seeds[]',
  },
  sample: {
    '--budget': 'sampling.budgets[]',
    '--steps': 'sampling.splits[]',
    '--allocation': 'sampling.allocation',
    '--tolerance': 'sampling.tolerance',
    '--max-iters-per-step': 'sampling.maxItersPerStep',
    '--reuse': 'sampling.reuse',
    '--sampler': 'sampling.sampler',
    '--eta': 'sampling.eta',
    '--cfg': 'sampling.cfg',
    '--samples': 'sampling.samples',
    '--batch-size': 'sampling.batchSize',
    '--seed': 'seeds[]',
  },
} as const;

/** Flags renamed to the schema's names: old → new (the old ones are refused with this hint). */
export const RENAMED_FLAGS = {
  train: {
    '--hidden': '--hidden-size',
    '--patch': '--patch-size',
    '--batch': '--batch-size',
    '--warmup': '--warmup-steps',
    '--clip': '--grad-clip',
    '--no-grad': '--sjfb-no-grad',
    '--with-grad': '--sjfb-with-grad',
    '--model': '--preset',
  },
  sample: {
    '--n': '--samples',
    '--batch': '--batch-size',
    '--tol': '--tolerance',
    '--max-iters': '--max-iters-per-step',
  },
} as const;

// ---- dataset -----------------------------------------------------------------------------------

/** Image side, channels and classes the models see (the one place with the dataset defaults). */
export function datasetShape(d: DatasetSettings): { imageSize: number; channels: number; classes: number } {
  if (d.kind === 'latents') {
    // the latent side and channels are the folder's when it exists (its first feature file is read);
    // before extraction, the spec's imageSize (latent side) and the SD VAE's 4 channels (checked at open)
    const found = d.path !== undefined && existsSync(d.path) ? latentFolderShape(d.path, d.name) : null;
    return { imageSize: found?.[1] ?? d.imageSize ?? 0, channels: found?.[0] ?? 4, classes: d.classes ?? 1 };
  }
  const imageSize = d.imageSize ?? DEFAULT_IMAGE_SIZE[d.kind];
  if (d.kind === 'mnist') return { imageSize, channels: 1, classes: 10 };
  return {
    imageSize,
    channels: d.channels ?? 3,
    classes: d.classes ?? (d.kind === 'synthetic' ? SYNTHETIC_DEFAULTS.classes : 1),
  };
}

type Issue = { path: (string | number)[]; message: string };
const shown = (v: unknown): string => JSON.stringify(v);

/** Cross-field rules of the dataset settings (spec paths; the train command reports them by flag). */
export function datasetIssues(d: DatasetSettings): Issue[] {
  const out: Issue[] = [];
  const add = (k: string, message: string) => out.push({ path: ['dataset', k], message });
  if (d.kind === 'folder' && d.path === undefined)
    add('path', 'is missing; a folder dataset needs the directory of images; fix: add dataset.path');
  if (d.kind === 'latents' && d.path === undefined)
    add(
      'path',
      'is missing; a latents dataset needs the folder holding <name>_features/ and <name>_labels/ (fpdm-exp latents extract writes one); fix: add dataset.path',
    );
  if (d.kind !== 'folder' && d.kind !== 'latents' && d.path !== undefined)
    add(
      'path',
      `received ${shown(d.path)}, but only folder and latents datasets take a path; fix: remove it or use kind: folder`,
    );
  if (d.kind !== 'latents' && d.name !== undefined)
    add('name', `received ${shown(d.name)}, but only latents datasets take a name; fix: remove it`);
  if (d.kind === 'latents') {
    if (d.channels !== undefined)
      add('channels', `received ${d.channels}, but a latent dataset's channels are its files'; fix: remove it`);
    if (d.hflip)
      add(
        'hflip',
        'received true, but latents cannot be flipped at training time (the reference bakes flips in at extraction: latents extract --hflip random); fix: remove it',
      );
  }
  if (d.kind === 'mnist' && d.channels !== undefined && d.channels !== 1)
    add('channels', `received ${d.channels}, but MNIST has 1 channel; fix: remove it`);
  if (d.kind === 'mnist' && d.classes !== undefined && d.classes !== 10)
    add('classes', `received ${d.classes}, but MNIST has 10 classes; fix: remove it`);
  if (d.kind !== 'synthetic' && d.size !== undefined)
    add(
      'size',
      `received ${d.size}, but only synthetic datasets take a size; fix: remove it (use limit to take fewer images)`,
    );
  if (out.length > 0 || d.kind !== 'latents') return out;
  let shape: ReturnType<typeof datasetShape>;
  try {
    shape = datasetShape(d);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    add('path', e.message);
    return out;
  }
  if (d.imageSize !== undefined && shape.imageSize !== 0 && d.imageSize !== shape.imageSize)
    add(
      'imageSize',
      `received ${d.imageSize}, but the latents in ${shown(d.path)} are ${shape.imageSize}×${shape.imageSize}; fix: remove it`,
    );
  if (shape.imageSize === 0)
    add(
      'imageSize',
      `is missing, and the latent folder ${shown(d.path)} does not exist yet to read it from; fix: give the latent side (32 for 256 px images with the SD VAE) or extract the latents first (fpdm-exp latents extract)`,
    );
  return out;
}

// ---- model -------------------------------------------------------------------------------------

/** Trunk sizes of a model with its preset applied (explicit fields win). */
export interface Trunk {
  hiddenSize: number;
  depth: number;
  heads: number;
  patchSize: number;
  mlpRatio: number;
  classDropout: number;
}

/** A preset's trunk, or null for a name that is not a preset. */
export function presetTrunk(name: string): Pick<Trunk, 'hiddenSize' | 'depth' | 'heads' | 'patchSize'> | null {
  const p = parsePreset(name);
  return p
    ? { hiddenSize: p.size.hiddenSize, depth: p.size.depth, heads: p.size.numHeads, patchSize: p.patchSize }
    : null;
}

/**
 * The model config of resolved settings for the data's shape and the prediction: the one mapping from
 * the settings' names to the model config's (which mirror the reference checkpoint's keys).
 */
export function modelConfigOf(
  m: ModelSettings,
  t: Trunk,
  shape: { imageSize: number; channels: number; classes: number },
  prediction: Prediction,
): ModelConfig {
  const dit: DiTConfig = validateConfig({
    kind: 'dit',
    inputSize: shape.imageSize,
    patchSize: t.patchSize,
    inChannels: shape.channels,
    hiddenSize: t.hiddenSize,
    depth: t.depth,
    numHeads: t.heads,
    mlpRatio: t.mlpRatio,
    classDropoutProb: shape.classes > 1 ? t.classDropout : 0,
    numClasses: shape.classes,
    learnSigma: resolveDiffusion({ prediction, diffusionSteps: 1000, schedule: 'linear' }).variance === 'learned-range',
  });
  if (m.kind === 'dit') return dit;
  return fpdmFrom(dit, {
    preDepth: m.pre,
    postDepth: m.post,
    noGradIters: m.sjfb.noGrad,
    withGradIters: m.sjfb.withGrad,
    prePostTimestepConditioning: m.prePostTimestepConditioning,
  });
}

// ---- training ----------------------------------------------------------------------------------

/**
 * The diffusion process of the training settings; the one meaning of the prediction:
 *   eps  ε-prediction, learned-range variance, loss mse + vb (the reference code's default)
 *   v    v-prediction with zero-terminal-SNR rescaling of the schedule, learned-range variance, loss
 *        mse (x_0-space, 'p2' weights as the reference's --predict_v) + vb: the paper's setting
 *        ("we learn the variance σ along with the velocity v", zero terminal SNR; §4.1)
 */
export function resolveDiffusion(
  t: Pick<TrainingSettings, 'prediction' | 'diffusionSteps' | 'schedule'>,
): DiffusionConfig {
  const common = {
    diffusionSteps: t.diffusionSteps,
    schedule: t.schedule,
    variance: 'learned-range' as const,
    loss: 'hybrid' as const,
  };
  return t.prediction === 'eps'
    ? diffusionConfig({ ...common, parameterization: 'eps' })
    : diffusionConfig({ ...common, parameterization: 'v', zeroTerminalSnr: true, vWeighting: 'p2' });
}

/** Steps between checkpoints: the setting, else a tenth of the steps (at least 1, at most 1000). */
export function checkpointEveryOf(t: Pick<TrainingSettings, 'checkpointEvery' | 'steps'>): number {
  return t.checkpointEvery ?? defaultCheckpointEvery(t.steps);
}

/** AdamW settings of the training settings (cosine decay ends at the last step). */
export function optimizerOf(t: TrainingSettings): Partial<AdamWConfig> {
  return {
    lr: t.lr,
    weightDecay: t.weightDecay,
    warmupSteps: t.warmupSteps,
    clipGradNorm: t.gradClip,
    ...(t.lrSchedule === 'cosine' ? { decaySteps: t.steps } : {}),
  };
}

/** Cross-field rules of the training settings (spec paths; the train command reports them by flag). */
export function trainingIssues(t: TrainingSettings): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const add = (k: string, message: string) => out.push({ path: ['training', k], message });
  if (t.warmupSteps > t.steps)
    add('warmupSteps', `received ${t.warmupSteps}, expected at most training.steps (${t.steps})`);
  else if (t.lrSchedule === 'cosine' && t.warmupSteps === t.steps)
    add(
      'warmupSteps',
      `received ${t.warmupSteps} with lrSchedule: cosine, which decays after the warm-up; fix: fewer warm-up steps than training.steps (${t.steps})`,
    );
  if (t.checkpointEvery !== undefined && t.checkpointEvery > t.steps)
    add('checkpointEvery', `received ${t.checkpointEvery}, expected at most training.steps (${t.steps})`);
  if (t.prediction === 'v' && t.schedule !== 'linear')
    add(
      'schedule',
      `received "${t.schedule}"; v-prediction here rescales the linear schedule to zero terminal SNR (the paper's setting); fix: use schedule: linear`,
    );
  return out;
}

// ---- precision -------------------------------------------------------------------------------

/** A precision other than fp32: the only ones a run key names. */
export type KeyedPrecision = Exclude<Precision, 'fp32'>;

/**
 * The precision as it enters a run's config (and so its key): nothing at fp32, `{ precision }`
 * otherwise. fp32 keys are thus the keys of before the setting existed: no stored result is re-keyed.
 */
export function precisionInKey(p: Precision = 'fp32'): { precision?: KeyedPrecision } {
  return p === 'fp32' ? {} : { precision: p };
}

/** The precision a run's config was keyed with (the inverse of precisionInKey). */
export function precisionOfConfig(config: { precision?: KeyedPrecision }): Precision {
  return config.precision ?? 'fp32';
}

// ---- training run ------------------------------------------------------------------------------

/**
 * Everything a training run's numbers depend on (hashed into its run key). Settings that do not change
 * the numbers are not in it: checkpoint cadence, loss-log cadence and gradient checkpointing.
 */
export interface TrainRunConfig {
  kind: 'train';
  model: ModelConfig;
  training: Omit<TrainingSettings, 'checkpointEvery' | 'logEvery' | 'gradCheckpoint'>;
  dataset: DatasetSettings;
  datasetFingerprint: string;
  seed: number;
  toolVersion: string;
  /** the matmul precision, where it is not fp32 (precisionInKey) */
  precision?: KeyedPrecision;
}

/** The run config of one training run (the spec's planner and the train command both call this). */
export function trainRunConfig(o: {
  model: ModelConfig;
  training: TrainingSettings;
  dataset: DatasetSettings;
  datasetFingerprint: string;
  seed: number;
  toolVersion: string;
  /** default fp32 */
  precision?: Precision;
}): TrainRunConfig {
  const { checkpointEvery: _c, logEvery: _l, gradCheckpoint: _g, ...training } = o.training;
  return {
    kind: 'train',
    model: o.model,
    training,
    dataset: o.dataset,
    datasetFingerprint: o.datasetFingerprint,
    seed: o.seed,
    toolVersion: o.toolVersion,
    ...precisionInKey(o.precision),
  };
}

/** A run key: the SHA-256 of the canonical JSON (sorted keys) of the run's config. */
export function runKeyOf(config: object): string {
  return sha256Hex(canonicalJson(config));
}
