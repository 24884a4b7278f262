// `fpdm-exp train --model <preset|CONFIG.json> [--fpdm --pre 1 --post 1 --no-grad 0:10 --with-grad 1:12]
//   --data <mnist|synthetic|folder:PATH> [--image-size 32] [--channels 1] --steps N --batch B --lr 1e-4
//   --ema 0.9999 --seed S --out DIR [--checkpoint-every N] [--hidden D --depth L --heads K --patch P]
//   [--prediction eps|v] [--warmup N] [--lr-schedule constant|cosine] [--clip G] [--weight-decay W] [--hflip] [--grad-checkpoint]`
// Trains DiT or FPDM with checkpoints in DIR; re-running the same command after a kill resumes from the
// last checkpoint (same final weights as an uninterrupted run on the same backend).
// `fpdm-exp train (--preset DiT-S/2 | --model-config CONFIG.json) [--hidden-size D --depth L --heads K
//   --patch-size P --mlp-ratio R --class-dropout p] [--fpdm --pre 1 --post 1 --sjfb-no-grad 0:10
//   --sjfb-with-grad 1:12] --data <mnist|synthetic|folder:PATH> [--image-size 28 --channels 1 --classes K
//   --limit N --size N --hflip] --steps N --batch-size B [--lr 1e-4 --weight-decay 0 --warmup-steps 0
//   --lr-schedule constant|cosine --ema 0.9999 --grad-clip G --checkpoint-every N --prediction eps|v
//   --diffusion-steps 1000 --schedule linear|cosine --grad-checkpoint] --seed S --out DIR [--json]`
// Trains DiT or FPDM with checkpoints in DIR; re-running the same command after a kill resumes from the
// last checkpoint (same final weights as an uninterrupted run on the same backend).
//
// The flags are the spec's keys in kebab-case (experiments/settings.ts FLAGS): the command builds the
// same model/dataset/training settings a spec holds, parses them with the same schemas (same defaults)
// and resolves them with the same functions, so it trains the same run, with the same run key, as a
// spec with those settings.
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { z } from 'zod';
import type { Precision } from '../../backends/index.js';
import { openSpecDataset } from '../../experiments/datasets.js';
import { startProgress } from '../../experiments/progress.js';
import {
  checkpointEveryOf,
  datasetIssues,
  datasetSchema,
  datasetShape,
  FLAGS,
  modelConfigOf,
  modelSchema,
  optimizerOf,
  presetTrunk,
  RENAMED_FLAGS,
  resolveDiffusion,
  runKeyOf,
  trainingIssues,
  trainingSchema,
  trainRunConfig,
  type DatasetSettings,
  type ModelSettings,
  type TrainingSettings,
  type TrainRunConfig,
  type Trunk,
} from '../../experiments/settings.js';
import { countParams, modelName, type ModelConfig } from '../../models/index.js';
import { readModelConfig } from '../../models/load.js';
import { trainModel, type TrainResult } from '../../training/loop.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';
import { toolVersion } from '../../util/version.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { prepareDir } from '../../util/fs.js';

export interface TrainCommandOptions {
  /** a preset name ('DiT-S/2') */
  preset?: string;
  /** a JSON file of the reference constructor's keyword arguments (instead of a preset) */
  modelConfig?: string;
  hiddenSize?: number;
  depth?: number;
  heads?: number;
  patchSize?: number;
  mlpRatio?: number;
  classDropout?: number;
  fpdm?: boolean;
  pre?: number;
  post?: number;
  sjfbNoGrad?: [number, number];
  sjfbWithGrad?: [number, number];
  prePostTimestepConditioning?: boolean;
  /** 'mnist', 'synthetic', or 'folder:PATH' (a bare existing directory also means a folder) */
  data: string;
  imageSize?: number;
  channels?: 1 | 3;
  classes?: number;
  limit?: number;
  size?: number;
  hflip?: boolean;
  steps: number;
  batchSize: number;
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  lrSchedule?: 'constant' | 'cosine';
  ema?: number;
  gradClip?: number;
  checkpointEvery?: number;
  prediction?: 'eps' | 'v';
  diffusionSteps?: number;
  schedule?: 'linear' | 'cosine';
  /** gradient checkpointing: recompute each block in the backward pass (same numbers, less memory) */
  gradCheckpoint?: boolean;
  seed?: number;
  out: string;
  json?: boolean;
}

export interface TrainCommandResult extends Omit<TrainResult, 'history'> {
  model: string;
  /** the run key a spec with these settings gives its train run */
  runKey: string;
  params: number;
  backend: string;
  /** mean loss over the first and last min(10, steps) recorded steps */
  lossStart: number | null;
  lossEnd: number | null;
  history: TrainResult['history'];
}

/** The flag of a settings path (for messages). */
function flagOf(path: string): string {
  const hit = Object.entries(FLAGS.train).find(([, p]) => p === path || p.replace('models.*.', 'model.') === path);
  return hit ? hit[0] : path;
}

/** zod parse with each issue named by its flag. */
function parseAs<T extends z.ZodTypeAny>(schema: T, value: unknown, section: string): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const msgs = r.error.issues.map(
    (i) => `${flagOf([section, ...i.path].join('.').replace(/^model\./, 'models.*.'))}: ${i.message}`,
  );
  throw new UserError(msgs.join('; '));
}

const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/** The dataset settings of --data and the dataset flags (a spec's `dataset:` section). */
export function datasetSettingsOf(o: TrainCommandOptions): DatasetSettings {
  const extra = defined({
    imageSize: o.imageSize,
    channels: o.channels,
    classes: o.classes,
    limit: o.limit,
    size: o.size,
    hflip: o.hflip,
  });
  let kind: string = o.data;
  let path: string | undefined;
  if (o.data.startsWith('mnist:'))
    throw new UserError(
      `--data ${o.data}: training uses the MNIST training split ('mnist'); the other splits are for \`fpdm-exp data\` and the held-out reference`,
    );
  if (o.data.startsWith('latents:')) {
    // a latent folder (<name>_features/ + <name>_labels/, as `latents extract` or the reference writes)
    kind = 'latents';
    path = o.data.slice('latents:'.length);
    if (!path) throw new UserError('--data latents: needs a path after "latents:"');
  } else if (o.data !== 'mnist' && o.data !== 'synthetic') {
    kind = 'folder';
    path = o.data.startsWith('folder:') ? o.data.slice('folder:'.length) : o.data;
    if (!path) throw new UserError('--data folder: needs a path after "folder:"');
  }
  const d = parseAs(datasetSchema, { kind, ...(path !== undefined ? { path } : {}), ...extra }, 'dataset');
  const issues = datasetIssues(d);
  if (issues.length) throw new UserError(issues.map((i) => `${flagOf(i.path.join('.'))}: ${i.message}`).join('; '));
  return d;
}

/** The model settings and trunk of --preset / --model-config and the size flags (a spec's model entry). */
export function modelSettingsOf(o: TrainCommandOptions): {
  settings: ModelSettings;
  trunk: Trunk;
  fromFile: ModelConfig | null;
} {
  if (o.preset !== undefined && o.modelConfig !== undefined)
    throw new UserError('give either --preset or --model-config, not both');
  const fromFile = o.modelConfig !== undefined ? readModelConfig(o.modelConfig) : null;
  const fpdm = o.fpdm === true || fromFile?.kind === 'fpdm';
  const f = fromFile?.kind === 'fpdm' ? fromFile : null;
  const raw = {
    kind: fpdm ? 'fpdm' : 'dit',
    ...defined({
      preset: o.preset,
      hiddenSize: o.hiddenSize ?? fromFile?.hiddenSize,
      depth: o.depth ?? fromFile?.depth,
      heads: o.heads ?? fromFile?.numHeads,
      patchSize: o.patchSize ?? fromFile?.patchSize,
      mlpRatio: o.mlpRatio ?? fromFile?.mlpRatio,
      classDropout: o.classDropout ?? fromFile?.classDropoutProb,
    }),
    ...(fpdm
      ? defined({
          pre: o.pre ?? f?.preDepth,
          post: o.post ?? f?.postDepth,
          prePostTimestepConditioning: o.prePostTimestepConditioning ?? f?.prePostTimestepConditioning,
          sjfb: defined({ noGrad: o.sjfbNoGrad ?? f?.noGradIters, withGrad: o.sjfbWithGrad ?? f?.withGradIters }),
        })
      : {}),
  };
  if (
    !fpdm &&
    (o.pre !== undefined ||
      o.post !== undefined ||
      o.sjfbNoGrad ||
      o.sjfbWithGrad ||
      o.prePostTimestepConditioning !== undefined)
  ) {
    throw new UserError(
      '--pre/--post/--sjfb-no-grad/--sjfb-with-grad/--pre-post-timestep-conditioning apply to FPDM: add --fpdm',
    );
  }
  const settings = parseAs(modelSchema, raw, 'model');
  if (settings.preset !== undefined && presetTrunk(settings.preset) === null) {
    throw new UserError(
      `--preset: model preset '${settings.preset}' does not exist; choose one of DiT-{S,B,L,XL}/{2,4,8}, e.g. DiT-S/2`,
    );
  }
  const p = settings.preset !== undefined ? presetTrunk(settings.preset)! : null;
  const pick = (k: 'hiddenSize' | 'depth' | 'heads' | 'patchSize'): number => {
    const v = settings[k] ?? p?.[k];
    if (v === undefined)
      throw new UserError(`give --preset (e.g. DiT-S/2), --model-config or ${flagOf(`models.*.${k}`)}`);
    return v;
  };
  const trunk: Trunk = {
    hiddenSize: pick('hiddenSize'),
    depth: pick('depth'),
    heads: pick('heads'),
    patchSize: pick('patchSize'),
    mlpRatio: settings.mlpRatio ?? 4,
    classDropout: settings.classDropout ?? 0.1,
  };
  return { settings, trunk, fromFile };
}

/** The training settings of the training flags (a spec's `training:` section). */
export function trainingSettingsOf(o: TrainCommandOptions): TrainingSettings {
  const t = parseAs(
    trainingSchema,
    defined({
      steps: o.steps,
      batchSize: o.batchSize,
      lr: o.lr,
      weightDecay: o.weightDecay,
      warmupSteps: o.warmupSteps,
      lrSchedule: o.lrSchedule,
      ema: o.ema,
      gradClip: o.gradClip,
      checkpointEvery: o.checkpointEvery,
      prediction: o.prediction,
      diffusionSteps: o.diffusionSteps,
      schedule: o.schedule,
      gradCheckpoint: o.gradCheckpoint,
    }),
    'training',
  );
  const issues = trainingIssues(t);
  if (issues.length) throw new UserError(issues.map((i) => `${flagOf(i.path.join('.'))}: ${i.message}`).join('; '));
  return t;
}

export interface ResolvedTrain {
  model: ModelConfig;
  dataset: DatasetSettings;
  training: TrainingSettings;
  config: TrainRunConfig;
  key: string;
}

/**
 * Flags → the resolved run: the same functions a spec's planner calls (settings.ts). `precision` is the
 * global --precision (a spec's `precision:`): in the run key where it is not fp32.
 */
export function resolveTrainCommand(
  o: TrainCommandOptions,
  datasetFingerprint: string,
  version = toolVersion(),
  precision: Precision = 'fp32',
): ResolvedTrain {
  const dataset = datasetSettingsOf(o);
  const training = trainingSettingsOf(o);
  const { settings, trunk, fromFile } = modelSettingsOf(o);
  const model = modelConfigOf(settings, trunk, datasetShape(dataset), training.prediction);
  if (fromFile) {
    for (const k of ['inputSize', 'inChannels', 'numClasses', 'learnSigma'] as const) {
      if (fromFile[k] !== model[k])
        throw new UserError(
          `--model-config '${o.modelConfig}': ${k} is ${fromFile[k]} but the data and --prediction give ${model[k]}; fix the file or the data flags`,
        );
    }
  }
  const config = trainRunConfig({
    model,
    training,
    dataset,
    datasetFingerprint,
    seed: o.seed ?? 0,
    toolVersion: version,
    precision,
  });
  return { model, dataset, training, config, key: runKeyOf(config) };
}

export async function run(o: TrainCommandOptions, g: GlobalOptions): Promise<TrainCommandResult> {
  prepareDir(o.out, '--out checkpoint directory', { create: false });
  const backend = await useBackend(g);
  const ds = await openSpecDataset(datasetSettingsOf(o), 'train');
  const r = resolveTrainCommand(o, ds.fingerprint, toolVersion(), g.precision ?? 'fp32');
  const { model, training: t } = r;
  const params = countParams(model).total;
  log(
    `${modelName(model)}: ${params.toLocaleString('en-US')} parameters; backend ${backend.name}; run key ${r.key.slice(0, 12)}`,
  );
  const progress = startProgress('train', o.steps, o.json ? 'plain' : 'auto');
  let lastLoss = NaN;
  const result = await trainModel({
    model,
    diffusion: resolveDiffusion(t),
    dataset: ds,
    steps: t.steps,
    batch: t.batchSize,
    seed: r.config.seed,
    outDir: o.out,
    optimizer: optimizerOf(t),
    ema: t.ema,
    hflip: r.dataset.hflip,
    checkpointEvery: checkpointEveryOf(t),
    gradCheckpoint: t.gradCheckpoint,
    runKey: r.key,
    onStep: (r) => {
      lastLoss = r.loss;
      progress.update(
        r.step,
        `loss ${r.loss.toFixed(4)}${r.residual !== undefined ? ` residual ${r.residual.toExponential(2)}` : ''}`,
      );
    },
  });
  progress.stop();
  const losses = result.history.map((h) => h.loss).filter(Number.isFinite);
  const k = Math.min(10, losses.length);
  const mean = (a: number[]): number | null => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : null);
  const out: TrainCommandResult = {
    ...result,
    model: modelName(model),
    params,
    backend: backend.name,
    runKey: r.key,
    lossStart: mean(losses.slice(0, k)),
    lossEnd: mean(losses.slice(losses.length - k)),
  };
  if (result.status === 'diverged')
    log(
      `status: diverged at step ${result.divergedAt} (loss ${lastLoss}); checkpoint of step ${result.step} kept in '${o.out}'`,
    );
  else
    log(
      `status: ${result.status} at step ${result.step}; loss ${out.lossStart?.toFixed(4)} (first ${k}) → ${out.lossEnd?.toFixed(4)} (last ${k}); ${result.seconds.toFixed(1)} s in this call; checkpoint in '${o.out}'`,
    );
  return out;
}

// ---- argv parsing ------------------------------------------------------------------------------

export function intArg(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min} (got '${v}')`);
    return n;
  };
}

export function numArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number (got '${v}')`);
    return n;
  };
}

function boolArg(name: string): (v: string) => boolean {
  return (v) => {
    if (v !== 'true' && v !== 'false')
      throw new InvalidArgumentError(`${name} must be one of true, false (got '${v}')`);
    return v === 'true';
  };
}

function rangeArg(name: string): (v: string) => [number, number] {
  return (v) => {
    const m = /^(\d+):(\d+)$/.exec(v);
    if (!m || Number(m[1]) > Number(m[2]))
      throw new InvalidArgumentError(`${name} must be MIN:MAX with integers 0 <= MIN <= MAX (got '${v}')`);
    return [Number(m[1]), Number(m[2])];
  };
}

/** --channels: commander's .choices() check is replaced by a parser, so the parser checks too */
function channelsArg(v: string): 1 | 3 {
  if (v !== '1' && v !== '3') throw new InvalidArgumentError(`'${v}' is not 1 or 3. Allowed choices are 1, 3.`);
  return Number(v) as 1 | 3;
}

/** Old flag names, refused with the new name (commander parses them, the action throws). */
export function addRenamedFlags(cmd: Command, renamed: Record<string, string>): void {
  for (const [old, now] of Object.entries(renamed)) {
    cmd.addOption(
      new Option(`${old} <value>`).hideHelp().argParser(() => {
        throw new InvalidArgumentError(
          `${old} was renamed ${now}${old === '--model' ? " (a preset; a JSON file of the reference's keyword arguments is --model-config)" : ''}: the flags are the spec's keys (README, "Settings")`,
        );
      }),
    );
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const cmd = program
    .command('train')
    .description(
      'train DiT or FPDM (S-JFB) with AdamW + EMA and resumable checkpoints; re-run the same command to resume',
    )
    .option('--preset <name>', "a DiT preset by paper name, e.g. 'DiT-S/2' (spec: preset)")
    .option(
      '--model-config <file.json>',
      "instead of --preset: a JSON file of the reference constructor's keyword arguments",
    )
    .option('--hidden-size <d>', 'hidden size (overrides the preset)', intArg('--hidden-size', 1))
    .option('--depth <n>', 'DiT blocks (FPDM: the depth of the DiT it is compared with)', intArg('--depth', 1))
    .option('--heads <k>', 'attention heads', intArg('--heads', 1))
    .option('--patch-size <p>', 'patch size', intArg('--patch-size', 1))
    .option('--mlp-ratio <r>', 'MLP hidden = r·D (default 4)', numArg('--mlp-ratio'))
    .option(
      '--class-dropout <p>',
      'label dropout for classifier-free guidance (default 0.1)',
      numArg('--class-dropout'),
    )
    .option('--fpdm', 'train FPDM on the given DiT trunk')
    .option('--pre <n>', 'FPDM: blocks before the fixed-point block (default 1)', intArg('--pre'))
    .option('--post <n>', 'FPDM: blocks after the fixed-point block (default 1)', intArg('--post'))
    .option(
      '--sjfb-no-grad <a:b>',
      'FPDM S-JFB: iterations without gradient, U{a..b} per batch (default 0:10)',
      rangeArg('--sjfb-no-grad'),
    )
    .option(
      '--sjfb-with-grad <c:d>',
      'FPDM S-JFB: iterations with gradient, U{c..d} per batch (default 1:12)',
      rangeArg('--sjfb-with-grad'),
    )
    .addOption(
      new Option('--pre-post-timestep-conditioning <bool>', 'FPDM: pre/post blocks see the timestep (default true)')
        .choices(['true', 'false'])
        .argParser(boolArg('--pre-post-timestep-conditioning')),
    )
    .requiredOption('--data <spec>', 'mnist, synthetic, folder:PATH (or a folder path), latents:PATH (a latent folder)')
    .option('--image-size <px>', 'image size (default: mnist 28, otherwise 32)', intArg('--image-size', 1))
    .addOption(
      new Option('--channels <n>', 'image channels (default: 1 for mnist, 3 otherwise)')
        .choices(['1', '3'])
        .argParser(channelsArg),
    )
    .option(
      '--classes <k>',
      'classes (synthetic data: default 4; an image folder: its number of class sub-folders)',
      intArg('--classes', 1),
    )
    .option('--limit <n>', 'train on the first n images only', intArg('--limit', 1))
    .option('--size <n>', 'synthetic data: number of images (default 512)', intArg('--size', 1))
    .option('--hflip', 'random horizontal flips')
    .requiredOption('--steps <n>', 'total optimizer steps', intArg('--steps', 1))
    .requiredOption('--batch-size <n>', 'batch size', intArg('--batch-size', 1))
    .option('--lr <x>', 'AdamW learning rate (default 1e-4)', numArg('--lr'))
    .option('--weight-decay <w>', 'AdamW decoupled weight decay (default 0)', numArg('--weight-decay'))
    .option('--warmup-steps <n>', 'linear LR warm-up steps (default 0)', intArg('--warmup-steps'))
    .addOption(
      new Option('--lr-schedule <kind>', 'after warm-up: constant (default), or cosine decay to 0 at --steps').choices([
        'constant',
        'cosine',
      ]),
    )
    .option('--ema <d>', 'EMA decay (default 0.9999)', numArg('--ema'))
    .option('--grad-clip <g>', 'clip the global gradient norm', numArg('--grad-clip'))
    .option(
      '--checkpoint-every <n>',
      'steps between checkpoints (default: steps/10, at most 1000)',
      intArg('--checkpoint-every', 1),
    )
    .addOption(
      new Option(
        '--prediction <kind>',
        "eps (default) or v (v-prediction with zero terminal SNR, the paper's setting); both learn the variance",
      ).choices(['eps', 'v']),
    )
    .option('--diffusion-steps <T>', 'diffusion steps of training (default 1000)', intArg('--diffusion-steps', 2))
    .addOption(new Option('--schedule <kind>', 'beta schedule (default linear)').choices(['linear', 'cosine']))
    .option(
      '--grad-checkpoint',
      'gradient checkpointing: keep only block inputs for backprop and recompute the blocks (same numbers, less memory, ~1/3 more compute)',
    )
    .option('--seed <s>', 'seed of everything random (default 0)', intArg('--seed'))
    .requiredOption('--out <dir>', 'checkpoint directory (resumed if it has one)')
    .option('--json', 'print the result (with the per-step history) as JSON on stdout');
  addRenamedFlags(cmd, RENAMED_FLAGS.train);
  cmd.action(async (opts: TrainCommandOptions) => {
    const r = await run(opts, globals());
    if (opts.json) emitJson(r);
    // a diverged run is reported (and recorded in its checkpoint) and exits non-zero
    if (r.status === 'diverged')
      throw new UserError(
        `training diverged: the loss at step ${r.divergedAt} is not finite; lower --lr (or add --grad-clip/--warmup-steps) and use a new --out directory`,
      );
  });
}
