// `fpdm-exp train --model <preset|CONFIG.json> [--fpdm --pre 1 --post 1 --no-grad 0:10 --with-grad 1:12]
//   --data <mnist|synthetic|folder:PATH> [--image-size 32] [--channels 1] --steps N --batch B --lr 1e-4
//   --ema 0.9999 --seed S --out DIR [--checkpoint-every N] [--hidden D --depth L --heads K --patch P]
//   [--prediction eps|v] [--warmup N] [--lr-schedule constant|cosine] [--clip G] [--weight-decay W] [--hflip] [--grad-checkpoint]`
// Trains DiT or FPDM with checkpoints in DIR; re-running the same command after a kill resumes from the
// last checkpoint (same final weights as an uninterrupted run on the same backend).
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { Dataset } from '../../data/dataset.js';
import { openDataset, parseDataArg } from '../../data/index.js';
import { diffusionConfig, type DiffusionConfig } from '../../diffusion/process.js';
import { ditPreset, fpdmFrom, modelName, validateConfig, countParams, type DiTConfig, type ModelConfig } from '../../models/index.js';
import { readModelConfig } from '../../models/load.js';
import { startProgress } from '../../experiments/progress.js';
import { trainModel, type TrainResult } from '../../training/loop.js';
import { UserError } from '../../util/errors.js';
import { emitJson, log } from '../../util/log.js';
import { useBackend, type GlobalOptions } from '../context.js';
import { prepareDir } from '../../util/fs.js';

export interface TrainCommandOptions {
  /** a preset name ('DiT-S/2') or a JSON file of the reference constructor's keyword arguments */
  model: string;
  fpdm?: boolean;
  pre?: number;
  post?: number;
  noGrad?: [number, number];
  withGrad?: [number, number];
  /** 'mnist', 'synthetic', or 'folder:PATH' (a bare existing directory also means a folder) */
  data: string;
  imageSize?: number;
  channels?: 1 | 3;
  steps: number;
  batch: number;
  lr?: number;
  ema?: number;
  seed?: number;
  out: string;
  checkpointEvery?: number;
  hidden?: number;
  depth?: number;
  heads?: number;
  patch?: number;
  prediction?: 'eps' | 'v';
  warmup?: number;
  lrSchedule?: 'constant' | 'cosine';
  clip?: number;
  weightDecay?: number;
  hflip?: boolean;
  /** gradient checkpointing: recompute each block in the backward pass (same numbers, less memory) */
  gradCheckpoint?: boolean;
  json?: boolean;
}

export interface TrainCommandResult extends Omit<TrainResult, 'history'> {
  model: string;
  params: number;
  backend: string;
  /** mean loss over the first and last min(10, steps) recorded steps */
  lossStart: number | null;
  lossEnd: number | null;
  history: TrainResult['history'];
}

/** Opens the training data named by --data (mnist, mnist:<split>, synthetic, folder:PATH or a folder path). */
export async function openTrainingData(spec: string, imageSize: number, channels: 1 | 3 | undefined): Promise<Dataset> {
  const ds = parseDataArg(spec, { imageSize, ...(channels !== undefined ? { channels } : {}) });
  // openDataset passes synthetic's optional fields through as explicit undefineds, which override the
  // generator's defaults; give them explicitly (the documented defaults: 512 images, 4 classes, seed 0)
  if (ds.kind === 'synthetic') Object.assign(ds, { size: 512, numClasses: 4, seed: 0 });
  return openDataset(ds);
}

/** The model config from --model and the size overrides, fitted to the data's size/channels/classes. */
export function resolveModel(o: TrainCommandOptions, ds: Dataset, learnSigma: boolean): ModelConfig {
  let base: DiTConfig;
  let fromFile: ModelConfig | null = null;
  if (o.model.endsWith('.json')) {
    fromFile = readModelConfig(o.model);
    const { kind: _k, ...rest } = fromFile;
    base = { kind: 'dit', ...(rest as Omit<DiTConfig, 'kind'>) };
  } else {
    base = ditPreset(o.model, { inputSize: ds.imageSize, inChannels: ds.channels, numClasses: ds.numClasses, learnSigma });
  }
  base = validateConfig({
    ...base,
    ...(o.hidden !== undefined ? { hiddenSize: o.hidden } : {}),
    ...(o.depth !== undefined ? { depth: o.depth } : {}),
    ...(o.heads !== undefined ? { numHeads: o.heads } : {}),
    ...(o.patch !== undefined ? { patchSize: o.patch } : {}),
  });
  const wantFpdm = o.fpdm || fromFile?.kind === 'fpdm';
  if (!wantFpdm) {
    if (o.pre !== undefined || o.post !== undefined || o.noGrad || o.withGrad) throw new UserError('--pre/--post/--no-grad/--with-grad apply to FPDM: add --fpdm');
    return base;
  }
  const f = fromFile?.kind === 'fpdm' ? fromFile : null;
  return fpdmFrom(base, {
    preDepth: o.pre ?? f?.preDepth,
    postDepth: o.post ?? f?.postDepth,
    noGradIters: o.noGrad ?? f?.noGradIters,
    withGradIters: o.withGrad ?? f?.withGradIters,
    prePostTimestepConditioning: f?.prePostTimestepConditioning,
  });
}

/** eps: the reference (learned-range variance, mse + vb). v: v-prediction with zero terminal SNR and p2 weights. */
export function resolveDiffusion(prediction: 'eps' | 'v'): DiffusionConfig {
  return prediction === 'eps'
    ? diffusionConfig({})
    : diffusionConfig({ parameterization: 'v', zeroTerminalSnr: true, vWeighting: 'p2' });
}

export async function run(o: TrainCommandOptions, g: GlobalOptions): Promise<TrainCommandResult> {
  prepareDir(o.out, '--out checkpoint directory', { create: false });
  const backend = await useBackend(g);
  const ds = await openTrainingData(o.data, o.imageSize ?? 32, o.channels);
  const diffusion = resolveDiffusion(o.prediction ?? 'eps');
  const model = resolveModel(o, ds, diffusion.variance === 'learned-range');
  const params = countParams(model).total;
  log(`${modelName(model)}: ${params.toLocaleString('en-US')} parameters; backend ${backend.name}`);
  const progress = startProgress('train', o.steps, o.json ? 'plain' : 'auto');
  let lastLoss = NaN;
  const result = await trainModel({
    model, diffusion, dataset: ds, steps: o.steps, batch: o.batch, seed: o.seed ?? 0, outDir: o.out,
    optimizer: {
      ...(o.lr !== undefined ? { lr: o.lr } : {}), ...(o.warmup !== undefined ? { warmupSteps: o.warmup } : {}),
      ...(o.clip !== undefined ? { clipGradNorm: o.clip } : {}), ...(o.lrSchedule === 'cosine' ? { decaySteps: o.steps } : {}), ...(o.weightDecay !== undefined ? { weightDecay: o.weightDecay } : {}),
    },
    ema: o.ema, hflip: o.hflip, checkpointEvery: o.checkpointEvery, gradCheckpoint: o.gradCheckpoint === true,
    onStep: (r) => {
      lastLoss = r.loss;
      progress.update(r.step, `loss ${r.loss.toFixed(4)}${r.residual !== undefined ? ` residual ${r.residual.toExponential(2)}` : ''}`);
    },
  });
  progress.stop();
  const losses = result.history.map((h) => h.loss).filter(Number.isFinite);
  const k = Math.min(10, losses.length);
  const mean = (a: number[]): number | null => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : null);
  const out: TrainCommandResult = {
    ...result, model: modelName(model), params, backend: backend.name,
    lossStart: mean(losses.slice(0, k)), lossEnd: mean(losses.slice(losses.length - k)),
  };
  if (result.status === 'diverged') log(`status: diverged at step ${result.divergedAt} (loss ${lastLoss}); checkpoint of step ${result.step} kept in '${o.out}'`);
  else log(`status: ${result.status} at step ${result.step}; loss ${out.lossStart?.toFixed(4)} (first ${k}) → ${out.lossEnd?.toFixed(4)} (last ${k}); ${result.seconds.toFixed(1)} s in this call; checkpoint in '${o.out}'`);
  return out;
}

// ---- argv parsing ------------------------------------------------------------------------------

export function intArg(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min} (got '${v}')`);
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

function rangeArg(name: string): (v: string) => [number, number] {
  return (v) => {
    const m = /^(\d+):(\d+)$/.exec(v);
    if (!m || Number(m[1]) > Number(m[2])) throw new InvalidArgumentError(`${name} must be MIN:MAX with integers 0 <= MIN <= MAX (got '${v}')`);
    return [Number(m[1]), Number(m[2])];
  };
}

/** --channels: commander's .choices() check is replaced by a parser, so the parser checks too */
function channelsArg(v: string): 1 | 3 {
  if (v !== '1' && v !== '3') throw new InvalidArgumentError(`'${v}' is not 1 or 3. Allowed choices are 1, 3.`);
  return Number(v) as 1 | 3;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('train')
    .description('train DiT or FPDM (S-JFB) with AdamW + EMA and resumable checkpoints; re-run the same command to resume')
    .requiredOption('--model <preset|config.json>', "a preset such as 'DiT-S/2' or a JSON file of the reference constructor's keyword arguments")
    .option('--fpdm', 'train FPDM on the given DiT trunk')
    .option('--pre <n>', 'FPDM: blocks before the fixed-point block (default 1)', intArg('--pre'))
    .option('--post <n>', 'FPDM: blocks after the fixed-point block (default 1)', intArg('--post'))
    .option('--no-grad <a:b>', 'FPDM S-JFB: iterations without gradient, U{a..b} per batch (default 0:10)', rangeArg('--no-grad'))
    .option('--with-grad <c:d>', 'FPDM S-JFB: iterations with gradient, U{c..d} per batch (default 1:12)', rangeArg('--with-grad'))
    .requiredOption('--data <spec>', 'mnist, mnist:<split>, synthetic, folder:PATH (or a folder path)')
    .option('--image-size <px>', 'image size (default 32)', intArg('--image-size', 1))
    .addOption(new Option('--channels <n>', 'image channels (default: 1 for mnist, 3 otherwise)').choices(['1', '3']).argParser(channelsArg))
    .requiredOption('--steps <n>', 'total optimizer steps', intArg('--steps', 1))
    .requiredOption('--batch <n>', 'batch size', intArg('--batch', 1))
    .option('--lr <x>', 'AdamW learning rate (default 1e-4)', numArg('--lr'))
    .option('--ema <d>', 'EMA decay (default 0.9999)', numArg('--ema'))
    .option('--seed <s>', 'seed of everything random (default 0)', intArg('--seed'))
    .requiredOption('--out <dir>', 'checkpoint directory (resumed if it has one)')
    .option('--checkpoint-every <n>', 'steps between checkpoints (default 100)', intArg('--checkpoint-every', 1))
    .option('--hidden <d>', 'override the hidden size', intArg('--hidden', 1))
    .option('--depth <n>', 'override the depth (DiT blocks; FPDM: the compared DiT depth)', intArg('--depth'))
    .option('--heads <k>', 'override the attention heads', intArg('--heads', 1))
    .option('--patch <p>', 'override the patch size', intArg('--patch', 1))
    .addOption(new Option('--prediction <kind>', 'eps (learned variance, mse + vb) or v (zero terminal SNR, p2 weights)').choices(['eps', 'v']).default('eps'))
    .option('--warmup <n>', 'linear LR warm-up steps (default 0)', intArg('--warmup'))
    .addOption(new Option('--lr-schedule <kind>', 'after warm-up: constant, or cosine decay to 0 at --steps').choices(['constant', 'cosine']).default('constant'))
    .option('--clip <g>', 'clip the global gradient norm', numArg('--clip'))
    .option('--weight-decay <w>', 'AdamW decoupled weight decay (default 0)', numArg('--weight-decay'))
    .option('--hflip', 'random horizontal flips')
    .option('--grad-checkpoint', 'gradient checkpointing: keep only block inputs for backprop and recompute the blocks (same numbers, less memory, ~1/3 more compute)')
    .option('--json', 'print the result (with the per-step history) as JSON on stdout')
    .action(async (opts: TrainCommandOptions) => {
      // commander turns `--no-grad` into a negation of `grad`; read the value under its real key
      const raw = opts as TrainCommandOptions & { grad?: unknown };
      if (Array.isArray(raw.grad)) opts.noGrad = raw.grad as [number, number];
      const r = await run(opts, globals());
      if (opts.json) emitJson(r);
      // a diverged run is reported (and recorded in its checkpoint) and exits non-zero
      if (r.status === 'diverged') throw new UserError(`training diverged: the loss at step ${r.divergedAt} is not finite; lower --lr (or add --clip/--warmup) and use a new --out directory`);
    });
}
