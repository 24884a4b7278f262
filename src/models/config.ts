// Typed model configurations, the paper's presets, and the mapping from the reference constructor's
// keyword arguments (`DiT(input_size=…, fixed_point=True, …)`) so a user can check a port against PyTorch.
import { UserError } from '../util/errors.js';

export interface DiTConfig {
  kind: 'dit';
  /** latent height = width (H = W) */
  inputSize: number;
  /** patch size P; T = (inputSize / P)² tokens */
  patchSize: number;
  /** latent channels C */
  inChannels: number;
  /** hidden size D */
  hiddenSize: number;
  /** number of DiT blocks */
  depth: number;
  /** attention heads K (D % K == 0) */
  numHeads: number;
  /** MLP hidden = mlpRatio · D (reference: 4) */
  mlpRatio: number;
  /** label dropout probability for classifier-free guidance; > 0 adds a null-class row to the table */
  classDropoutProb: number;
  numClasses: number;
  /** output 2·C channels (ε and the variance interpolation values) instead of C */
  learnSigma: boolean;
}

export interface FPDMConfig extends Omit<DiTConfig, 'kind'> {
  kind: 'fpdm';
  /** explicit blocks before the fixed-point block (reference: fixed_point_pre_depth) */
  preDepth: number;
  /** explicit blocks after the fixed-point block */
  postDepth: number;
  /** S-JFB: iterations without gradient, drawn from U{min..max} per batch */
  noGradIters: [number, number];
  /** S-JFB: iterations with gradient (unrolled for backprop), drawn from U{min..max} per batch */
  withGradIters: [number, number];
  /** pre/post blocks and the final layer see c = t_emb + y_emb (true, the reference default) or y_emb only */
  prePostTimestepConditioning: boolean;
  // Note: `depth` is kept as the depth of the DiT this model is compared with (budgets in DiT-step
  // equivalents use it); FPDM itself has preDepth + 1 + postDepth blocks.
}

export type ModelConfig = DiTConfig | FPDMConfig;

/** Preset sizes by paper name: DiT-{S,B,L,XL}. */
export const DIT_SIZES = {
  S: { depth: 12, hiddenSize: 384, numHeads: 6 },
  B: { depth: 12, hiddenSize: 768, numHeads: 12 },
  L: { depth: 24, hiddenSize: 1024, numHeads: 16 },
  XL: { depth: 28, hiddenSize: 1152, numHeads: 16 },
} as const;
export type DiTSize = keyof typeof DIT_SIZES;
export const PATCH_SIZES = [2, 4, 8] as const;
export type PresetName = `DiT-${DiTSize}/${(typeof PATCH_SIZES)[number]}`;
export const PRESET_NAMES: PresetName[] = (Object.keys(DIT_SIZES) as DiTSize[]).flatMap((s) =>
  PATCH_SIZES.map((p) => `DiT-${s}/${p}` as PresetName),
);

export interface PresetOverrides {
  inputSize?: number;
  inChannels?: number;
  numClasses?: number;
  learnSigma?: boolean;
  classDropoutProb?: number;
}

/** The size and patch of a preset name ('DiT-S/2'), or null when it is not one (the one preset table). */
export function parsePreset(name: string): { size: (typeof DIT_SIZES)[DiTSize]; patchSize: number } | null {
  const m = /^DiT-(S|B|L|XL)\/(2|4|8)$/.exec(name);
  return m ? { size: DIT_SIZES[m[1] as DiTSize], patchSize: Number(m[2]) } : null;
}

/** A DiT preset by paper name; defaults are the paper's: 32x32x4 latents, 1000 classes, learned sigma. */
export function ditPreset(name: string, o: PresetOverrides = {}): DiTConfig {
  const p = parsePreset(name);
  if (!p) throw new UserError(`model preset '${name}' does not exist; choose one of ${PRESET_NAMES.join(', ')}`);
  const size = p.size;
  return validateConfig({
    kind: 'dit',
    inputSize: o.inputSize ?? 32,
    patchSize: p.patchSize,
    inChannels: o.inChannels ?? 4,
    hiddenSize: size.hiddenSize,
    depth: size.depth,
    numHeads: size.numHeads,
    mlpRatio: 4,
    classDropoutProb: o.classDropoutProb ?? 0.1,
    numClasses: o.numClasses ?? 1000,
    learnSigma: o.learnSigma ?? true,
  });
}

export interface FPDMOptions {
  preDepth?: number;
  postDepth?: number;
  noGradIters?: [number, number];
  withGradIters?: [number, number];
  prePostTimestepConditioning?: boolean;
}

/** FPDM built on a DiT trunk; defaults are the reference training defaults (1/1, U{0..10}, U{1..12}). */
export function fpdmFrom(base: DiTConfig, o: FPDMOptions = {}): FPDMConfig {
  const { kind: _kind, ...rest } = base;
  return validateConfig({
    ...rest,
    kind: 'fpdm',
    preDepth: o.preDepth ?? 1,
    postDepth: o.postDepth ?? 1,
    noGradIters: o.noGradIters ?? [0, 10],
    withGradIters: o.withGradIters ?? [1, 12],
    prePostTimestepConditioning: o.prePostTimestepConditioning ?? true,
  });
}

/** Cross-field rules; throws a UserError naming the field. Returns its argument. */
export function validateConfig<C extends ModelConfig>(c: C): C {
  const posInt = (k: string, v: number): void => {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`model config: ${k} is ${v}, expected a positive integer`);
  };
  posInt('inputSize', c.inputSize);
  posInt('patchSize', c.patchSize);
  posInt('inChannels', c.inChannels);
  posInt('hiddenSize', c.hiddenSize);
  posInt('numHeads', c.numHeads);
  posInt('numClasses', c.numClasses);
  if (!Number.isInteger(c.depth) || c.depth < 0)
    throw new UserError(`model config: depth is ${c.depth}, expected an integer >= 0`);
  if (c.inputSize % c.patchSize !== 0)
    throw new UserError(`model config: inputSize ${c.inputSize} is not divisible by patchSize ${c.patchSize}`);
  if (c.hiddenSize % c.numHeads !== 0)
    throw new UserError(`model config: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  if (c.hiddenSize % 4 !== 0)
    throw new UserError(
      `model config: hiddenSize ${c.hiddenSize} must be divisible by 4 (2-D sin-cos position embedding)`,
    );
  if (!(c.mlpRatio > 0) || !Number.isInteger(c.mlpRatio * c.hiddenSize))
    throw new UserError(`model config: mlpRatio ${c.mlpRatio} must make mlpRatio·hiddenSize a positive integer`);
  if (!(c.classDropoutProb >= 0 && c.classDropoutProb < 1))
    throw new UserError(`model config: classDropoutProb ${c.classDropoutProb} must be in [0, 1)`);
  if (c.kind === 'fpdm') {
    for (const k of ['preDepth', 'postDepth'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 0)
        throw new UserError(`model config: ${k} is ${c[k]}, expected an integer >= 0`);
    }
    for (const k of ['noGradIters', 'withGradIters'] as const) {
      const [a, b] = c[k];
      if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < a)
        throw new UserError(`model config: ${k} is [${a}, ${b}], expected integers 0 <= min <= max`);
    }
  }
  return c;
}

/** Output channels: C, or 2·C with learned sigma. */
export function outChannels(c: ModelConfig): number {
  return c.learnSigma ? 2 * c.inChannels : c.inChannels;
}

/** Number of tokens T = (H / P)². */
export function numTokens(c: ModelConfig): number {
  return (c.inputSize / c.patchSize) ** 2;
}

/** Display name: 'DiT-XL/2' for a preset trunk, 'FPDM(DiT-XL/2, pre=1, post=1)' for FPDM on it. */
export function modelName(c: ModelConfig): string {
  let trunk = `DiT(D=${c.hiddenSize}, depth=${c.depth}, heads=${c.numHeads}, P=${c.patchSize})`;
  for (const [s, v] of Object.entries(DIT_SIZES)) {
    if (v.hiddenSize === c.hiddenSize && v.depth === c.depth && v.numHeads === c.numHeads && c.mlpRatio === 4)
      trunk = `DiT-${s}/${c.patchSize}`;
  }
  return c.kind === 'dit' ? trunk : `FPDM(${trunk}, pre=${c.preDepth}, post=${c.postDepth})`;
}

// ---- reference keyword arguments -------------------------------------------------------------

/** The reference constructor's defaults (DiT(...) in the FPDM code base). */
const REFERENCE_DEFAULTS = {
  input_size: 32,
  patch_size: 2,
  in_channels: 4,
  hidden_size: 1152,
  depth: 28,
  num_heads: 16,
  mlp_ratio: 4.0,
  class_dropout_prob: 0.1,
  num_classes: 1000,
  learn_sigma: true,
  fixed_point: false,
  fixed_point_pre_depth: 1,
  fixed_point_post_depth: 1,
  fixed_point_no_grad_min_iters: 0,
  fixed_point_no_grad_max_iters: 10,
  fixed_point_with_grad_min_iters: 1,
  fixed_point_with_grad_max_iters: 12,
  fixed_point_pre_post_timestep_conditioning: true,
} as const;
type ReferenceKey = keyof typeof REFERENCE_DEFAULTS;
export const REFERENCE_KEYS = Object.keys(REFERENCE_DEFAULTS) as ReferenceKey[];

/**
 * Maps an object of the reference constructor's keyword arguments (e.g. parsed from a JSON file)
 * to a typed config. Missing keys take the reference defaults; unknown keys and wrongly typed
 * values are UserErrors naming the key.
 */
export function fromReferenceKwargs(obj: unknown, source = 'model config'): ModelConfig {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw new UserError(`${source}: expected a JSON object of the reference constructor's keyword arguments`);
  const rec = obj as Record<string, unknown>;
  const unknown = Object.keys(rec).filter((k) => !(REFERENCE_KEYS as string[]).includes(k));
  if (unknown.length > 0)
    throw new UserError(
      `${source}: unknown key(s) ${unknown.map((k) => `'${k}'`).join(', ')}; known keys are ${REFERENCE_KEYS.join(', ')}`,
    );
  const num = (k: ReferenceKey): number => {
    const v = rec[k] ?? REFERENCE_DEFAULTS[k];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw new UserError(`${source}: '${k}' is ${JSON.stringify(v)}, expected a number`);
    return v;
  };
  const bool = (k: ReferenceKey): boolean => {
    const v = rec[k] ?? REFERENCE_DEFAULTS[k];
    if (typeof v !== 'boolean')
      throw new UserError(`${source}: '${k}' is ${JSON.stringify(v)}, expected true or false`);
    return v;
  };
  const base: DiTConfig = {
    kind: 'dit',
    inputSize: num('input_size'),
    patchSize: num('patch_size'),
    inChannels: num('in_channels'),
    hiddenSize: num('hidden_size'),
    depth: num('depth'),
    numHeads: num('num_heads'),
    mlpRatio: num('mlp_ratio'),
    classDropoutProb: num('class_dropout_prob'),
    numClasses: num('num_classes'),
    learnSigma: bool('learn_sigma'),
  };
  if (!bool('fixed_point')) return validateConfig(base);
  return fpdmFrom(base, {
    preDepth: num('fixed_point_pre_depth'),
    postDepth: num('fixed_point_post_depth'),
    noGradIters: [num('fixed_point_no_grad_min_iters'), num('fixed_point_no_grad_max_iters')],
    withGradIters: [num('fixed_point_with_grad_min_iters'), num('fixed_point_with_grad_max_iters')],
    prePostTimestepConditioning: bool('fixed_point_pre_post_timestep_conditioning'),
  });
}

/** The inverse of fromReferenceKwargs (for sidecars that PyTorch users can read). */
export function toReferenceKwargs(c: ModelConfig): Record<ReferenceKey, number | boolean> {
  const out: Record<string, number | boolean> = {
    input_size: c.inputSize,
    patch_size: c.patchSize,
    in_channels: c.inChannels,
    hidden_size: c.hiddenSize,
    depth: c.depth,
    num_heads: c.numHeads,
    mlp_ratio: c.mlpRatio,
    class_dropout_prob: c.classDropoutProb,
    num_classes: c.numClasses,
    learn_sigma: c.learnSigma,
    fixed_point: c.kind === 'fpdm',
  };
  if (c.kind === 'fpdm') {
    Object.assign(out, {
      fixed_point_pre_depth: c.preDepth,
      fixed_point_post_depth: c.postDepth,
      fixed_point_no_grad_min_iters: c.noGradIters[0],
      fixed_point_no_grad_max_iters: c.noGradIters[1],
      fixed_point_with_grad_min_iters: c.withGradIters[0],
      fixed_point_with_grad_max_iters: c.withGradIters[1],
      fixed_point_pre_post_timestep_conditioning: c.prePostTimestepConditioning,
    });
  }
  return out as Record<ReferenceKey, number | boolean>;
}
