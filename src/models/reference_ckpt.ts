// Checkpoints written by the reference training code, turned into a model configuration + weights:
//   FPDM train.py   torch.save({model, ema, opt, args: args.as_dict(), train_steps})  (args a dict)
//   DiT train.py    torch.save({model, ema, opt, args})                              (args a Namespace)
//   released DiT    a bare state_dict (DiT-XL-2-256x256.pt holds the EMA weights only)
// The architecture is read from the tensor shapes (hidden size, patch, channels, depth or pre/post
// depth, classes, learned sigma, latent size from pos_embed); the heads come from the DiT preset of that
// hidden size; what shapes cannot tell (FPDM's pre/post timestep conditioning, its training iteration
// ranges, the diffusion flags) comes from `args` when the file has them, else the FPDM train.py
// defaults. Sampling uses the EMA weights unless told otherwise, as the reference samplers do.
import { readAny } from '../io/index.js';
import type { TensorMap } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import { requireFile } from '../util/fs.js';
import { DIT_SIZES, fpdmFrom, validateConfig, type DiTConfig, type ModelConfig } from './config.js';

export interface ReferenceCheckpoint {
  config: ModelConfig;
  /** the chosen state_dict (`ema` by default), without a `module.` prefix */
  weights: TensorMap;
  entry: 'ema' | 'model' | 'bare';
  /** the training arguments stored in the file, when it has them */
  args: Record<string, unknown> | null;
  trainSteps: number | null;
  /** diffusion flags of the training run (FPDM train.py: predict_v, use_zero_terminal_snr) */
  predictV: boolean;
  zeroTerminalSnr: boolean;
}

function count(keys: string[], re: RegExp): number {
  let n = 0;
  for (const k of keys) {
    const m = re.exec(k);
    if (m) n = Math.max(n, Number(m[1]) + 1);
  }
  return n;
}

function shapeOf(w: TensorMap, name: string, path: string): number[] {
  const t = w.get(name);
  if (!t)
    throw new UserError(`checkpoint '${path}' has no '${name}': it is not a DiT/FPDM state_dict of the reference code`);
  return t.shape;
}

/** Reads a reference .pt (zip or legacy) or .safetensors checkpoint. */
export function readReferenceCheckpoint(
  path: string,
  opts: { entry?: 'ema' | 'model'; config?: ModelConfig } = {},
): ReferenceCheckpoint {
  requireFile(path, 'checkpoint');
  const all = readAny(path);
  const nested = ['ema', 'model'].filter(
    (e) => all.entries.includes(e) || [...all.tensors.keys()].some((k) => k.startsWith(`${e}.`)),
  );
  let entry: ReferenceCheckpoint['entry'] = 'bare';
  let weights = all.tensors;
  if (nested.length > 0) {
    const chosen = opts.entry ?? (nested.includes('ema') ? 'ema' : 'model');
    if (!nested.includes(chosen))
      throw new UserError(`checkpoint '${path}' has no '${chosen}' weights (it has: ${nested.join(', ')})`);
    entry = chosen as 'ema' | 'model';
    weights = new Map(
      [...all.tensors].filter(([k]) => k.startsWith(`${chosen}.`)).map(([k, v]) => [k.slice(chosen.length + 1), v]),
    );
  } else if (opts.entry === 'model') {
    // (a bare state_dict is taken to be EMA weights, as the released DiT checkpoints are)
    throw new UserError(
      `checkpoint '${path}' is a bare state_dict (no 'ema'/'model' entries): there is no separate 'model' entry to choose`,
    );
  }
  const keys = [...weights.keys()];
  if (keys.length > 0 && keys.every((k) => k.startsWith('module.')))
    weights = new Map([...weights].map(([k, v]) => [k.slice(7), v]));
  const rawArgs = all.extras.args;
  const args =
    rawArgs && typeof rawArgs === 'object' && !Array.isArray(rawArgs) ? (rawArgs as Record<string, unknown>) : null;
  const steps = all.extras.train_steps;
  const k = [...weights.keys()];
  const [hidden, inChannels, patch] = shapeOf(weights, 'x_embedder.proj.weight', path) as [number, number, number];
  const tokens = shapeOf(weights, 'pos_embed', path)[1]!;
  const side = Math.round(Math.sqrt(tokens));
  if (side * side !== tokens)
    throw new UserError(`checkpoint '${path}': pos_embed has ${tokens} tokens, not a square grid`);
  const rows = shapeOf(weights, 'y_embedder.embedding_table.weight', path)[0]!;
  const outDim = shapeOf(weights, 'final_layer.linear.weight', path)[0]!;
  const learnSigma = outDim === patch * patch * 2 * inChannels;
  if (!learnSigma && outDim !== patch * patch * inChannels)
    throw new UserError(
      `checkpoint '${path}': final_layer.linear has ${outDim} outputs, neither p²·C nor p²·2C for patch ${patch}, C ${inChannels}`,
    );
  const argNum = (key: string, d: number): number => (typeof args?.[key] === 'number' ? (args[key] as number) : d);
  const argBool = (key: string, d: boolean): boolean => (typeof args?.[key] === 'boolean' ? (args[key] as boolean) : d);
  if (argBool('flow', false))
    throw new UserError(
      `checkpoint '${path}' was trained with --flow (flow matching), which this tool does not sample`,
    );
  const common = {
    trainSteps:
      typeof steps === 'number' ? steps : typeof steps === 'string' && /^\d+$/.test(steps) ? Number(steps) : null,
    predictV: argBool('predict_v', false),
    zeroTerminalSnr: argBool('use_zero_terminal_snr', false),
  };
  if (opts.config) return { config: opts.config, weights, entry, args, ...common };
  const size = Object.values(DIT_SIZES).find((s) => s.hiddenSize === hidden);
  if (!size)
    throw new UserError(
      `checkpoint '${path}': hidden size ${hidden} is not a DiT preset (S 384, B 768, L 1024, XL 1152), so its number of heads is unknown: give --config with the reference constructor's keyword arguments`,
    );
  const numClasses = argBool('unsupervised', false) ? 1 : argNum('num_classes', rows > 1000 ? 1000 : rows);
  const base: DiTConfig = {
    kind: 'dit',
    inputSize: side * patch,
    patchSize: patch,
    inChannels,
    hiddenSize: hidden,
    depth: size.depth,
    numHeads: size.numHeads,
    mlpRatio: 4,
    classDropoutProb: rows > numClasses ? 0.1 : 0,
    numClasses,
    learnSigma,
  };
  let config: ModelConfig;
  if (k.some((n) => n.startsWith('block_fixed_point.'))) {
    config = fpdmFrom(base, {
      preDepth: count(k, /^blocks_pre\.(\d+)\./),
      postDepth: count(k, /^blocks_post\.(\d+)\./),
      noGradIters: [argNum('fixed_point_no_grad_min_iters', 0), argNum('fixed_point_no_grad_max_iters', 10)],
      withGradIters: [argNum('fixed_point_with_grad_min_iters', 1), argNum('fixed_point_with_grad_max_iters', 12)],
      // FPDM train.py's default is False (the constructor's is True); shapes cannot tell
      prePostTimestepConditioning: argBool('fixed_point_pre_post_timestep_conditioning', false),
    });
  } else {
    const depth = count(k, /^blocks\.(\d+)\./);
    config = validateConfig({ ...base, depth });
  }
  return { config, weights, entry, args, ...common };
}
