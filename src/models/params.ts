// The parameter tree: a flat, ordered map from PyTorch state_dict names to variables, built from a
// shape-only specification. Counting parameters walks the specification (no tensor is allocated, so
// DiT-XL counts cost nothing); initialisation reproduces the reference's scheme with the host Rng;
// loading and exporting use the same names, so checkpoints move both ways between this tool and PyTorch.
//
// Reference initialisation (DiT `initialize_weights`, kept by FPDM):
//   every nn.Linear: xavier-uniform weight, zero bias
//   x_embedder.proj (conv): xavier-uniform on the weight viewed as [D, C·P·P], zero bias
//   y_embedder table: N(0, 0.02²); t_embedder.mlp.{0,2}.weight: N(0, 0.02²)
//   every block's adaLN_modulation.1 (weight and bias): 0 (adaLN-Zero); final_layer adaLN and linear: 0
// FPDM's fixed-point block is a DiT block and is zero-initialised the same way; its projections
// (block_pre_projection, block_fixed_point_projection_fc1/fc2) are plain linears (xavier, zero bias).
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { numel, shapeStr } from '../util/shapes.js';
import { f32, toFloat32, type HostTensor, type TensorMap } from '../io/tensor.js';
import { numTokens, outChannels, type ModelConfig } from './config.js';
import { posEmbed2d } from './blocks.js';

export type Init = 'xavier' | 'zeros' | 'normal0.02';

export interface ParamSpec {
  /** state_dict name */
  name: string;
  shape: number[];
  init: Init;
}

/** name → variable, in state_dict order. */
export type ParamTree = Map<string, tf.Variable>;

/** The name of the one buffer (not a parameter, never counted, exported for PyTorch compatibility). */
export const POS_EMBED = 'pos_embed';

function linearSpec(name: string, inDim: number, outDim: number, init: Init = 'xavier', bias = true): ParamSpec[] {
  const s: ParamSpec[] = [{ name: `${name}.weight`, shape: [outDim, inDim], init }];
  if (bias) s.push({ name: `${name}.bias`, shape: [outDim], init: 'zeros' });
  return s;
}

/** One DiT block: attn.qkv, attn.proj, mlp.fc1, mlp.fc2, adaLN_modulation.1 (zero-initialised). */
export function blockSpec(prefix: string, d: number, mlpRatio: number): ParamSpec[] {
  const hidden = Math.round(d * mlpRatio);
  return [
    ...linearSpec(`${prefix}.attn.qkv`, d, 3 * d),
    ...linearSpec(`${prefix}.attn.proj`, d, d),
    ...linearSpec(`${prefix}.mlp.fc1`, d, hidden),
    ...linearSpec(`${prefix}.mlp.fc2`, hidden, d),
    ...linearSpec(`${prefix}.adaLN_modulation.1`, d, 6 * d, 'zeros'),
  ];
}

/** Every parameter of a model, in the reference's state_dict order (buffers excluded). */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const d = c.hiddenSize;
  const p = c.patchSize;
  const co = outChannels(c);
  const tableRows = c.numClasses + (c.classDropoutProb > 0 ? 1 : 0);
  const specs: ParamSpec[] = [
    { name: 'x_embedder.proj.weight', shape: [d, c.inChannels, p, p], init: 'xavier' },
    { name: 'x_embedder.proj.bias', shape: [d], init: 'zeros' },
    ...linearSpec('t_embedder.mlp.0', 256, d, 'normal0.02'),
    ...linearSpec('t_embedder.mlp.2', d, d, 'normal0.02'),
    { name: 'y_embedder.embedding_table.weight', shape: [tableRows, d], init: 'normal0.02' },
  ];
  if (c.kind === 'dit') {
    for (let i = 0; i < c.depth; i++) specs.push(...blockSpec(`blocks.${i}`, d, c.mlpRatio));
  } else {
    for (let i = 0; i < c.preDepth; i++) specs.push(...blockSpec(`blocks_pre.${i}`, d, c.mlpRatio));
    specs.push(...blockSpec('block_fixed_point', d, c.mlpRatio));
    specs.push(...linearSpec('block_pre_projection', d, d));
    specs.push(...linearSpec('block_fixed_point_projection_fc1', 2 * d, 2 * d));
    specs.push(...linearSpec('block_fixed_point_projection_fc2', 2 * d, d));
    for (let i = 0; i < c.postDepth; i++) specs.push(...blockSpec(`blocks_post.${i}`, d, c.mlpRatio));
  }
  specs.push(...linearSpec('final_layer.linear', d, p * p * co, 'zeros'));
  specs.push(...linearSpec('final_layer.adaLN_modulation.1', d, 2 * d, 'zeros'));
  return specs;
}

/** Shape of the pos_embed buffer: [1, T, D]. */
export function posEmbedShape(c: ModelConfig): number[] {
  return [1, numTokens(c), c.hiddenSize];
}

/** The pos_embed buffer as a [1, T, D] tensor (fixed 2-D sin-cos). */
export function makePosEmbed(c: ModelConfig): tf.Tensor3D {
  return tf.tensor3d(posEmbed2d(c.hiddenSize, c.inputSize / c.patchSize), posEmbedShape(c) as [number, number, number]);
}

export interface ParamCount {
  /** number of trainable parameters (the pos_embed buffer is not counted) */
  total: number;
  /** per top-level module: `x_embedder`, `t_embedder`, `y_embedder`, `blocks`, `blocks_pre`, `block_fixed_point`, … */
  byModule: Record<string, number>;
}

/** Counts from a list of (name, shape): a walk of the tree, grouped by the first name component. */
export function countFromShapes(entries: Iterable<{ name: string; shape: readonly number[] }>): ParamCount {
  const byModule: Record<string, number> = {};
  let total = 0;
  for (const { name, shape } of entries) {
    if (name === POS_EMBED) continue;
    const n = numel(shape);
    const mod = name.split('.')[0]!;
    byModule[mod] = (byModule[mod] ?? 0) + n;
    total += n;
  }
  return { total, byModule };
}

/** Parameter count of a configuration, from shapes only (allocates nothing). */
export function countParams(c: ModelConfig): ParamCount {
  return countFromShapes(paramSpecs(c));
}

/** Parameter count of a built tree (a walk of its variables' shapes). */
export function countTree(params: ParamTree): ParamCount {
  return countFromShapes([...params].map(([name, v]) => ({ name, shape: v.shape })));
}

/** Initial values of one parameter on the host, drawn from `rng` in spec order. */
function initValues(s: ParamSpec, rng: Rng): Float32Array {
  const n = numel(s.shape);
  if (s.init === 'zeros') return new Float32Array(n);
  if (s.init === 'normal0.02') {
    const v = rng.normals(n);
    for (let i = 0; i < n; i++) v[i] = v[i]! * 0.02;
    return v;
  }
  // xavier-uniform on the weight viewed as [out, in·(kernel)]: U(−a, a), a = √(6 / (fan_in + fan_out))
  const fanOut = s.shape[0]!;
  const fanIn = n / fanOut;
  const a = Math.sqrt(6 / (fanIn + fanOut));
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (2 * rng.uniform() - 1) * a;
  return v;
}

/** A trainable float32 variable holding `values` (the temporary tensor tf.variable copies from is freed). */
function newVariable(values: Float32Array, shape: number[]): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(values, shape, 'float32'), true));
}

/** Fresh parameters with the reference initialisation; values depend only on `rng`'s state. */
export function initParams(c: ModelConfig, rng: Rng): ParamTree {
  const tree: ParamTree = new Map();
  for (const s of paramSpecs(c)) tree.set(s.name, newVariable(initValues(s, rng), s.shape));
  return tree;
}

export interface LoadReport {
  loaded: number;
  missing: string[];
  unexpected: string[];
}

/**
 * Builds a parameter tree for `c` from a state_dict. A tensor whose shape differs is a UserError
 * naming the first one; missing or unexpected names are a UserError listing them unless
 * `strict: false` (then missing ones keep `fallback`'s values, or are an error without it).
 * `pos_embed` may be present (its shape is checked) or absent; it is recomputed, never loaded.
 */
export function paramsFromStateDict(
  c: ModelConfig,
  sd: TensorMap,
  opts: { strict?: boolean; source?: string } = {},
): { params: ParamTree; report: LoadReport } {
  const source = opts.source ?? 'the checkpoint';
  const specs = paramSpecs(c);
  const known = new Set(specs.map((s) => s.name));
  const missing = specs.filter((s) => !sd.has(s.name)).map((s) => s.name);
  const unexpected = [...sd.keys()].filter((k) => k !== POS_EMBED && !known.has(k));
  for (const s of specs) {
    const t = sd.get(s.name);
    if (t && shapeStr(t.shape) !== shapeStr(s.shape)) {
      throw new UserError(
        `${source}: tensor '${s.name}' has shape ${shapeStr(t.shape)} but the model config needs ${shapeStr(s.shape)}; check the config (hidden_size, depth, patch_size, num_classes, learn_sigma, …) against the checkpoint`,
      );
    }
  }
  const pe = sd.get(POS_EMBED);
  if (pe && shapeStr(pe.shape) !== shapeStr(posEmbedShape(c))) {
    throw new UserError(
      `${source}: buffer '${POS_EMBED}' has shape ${shapeStr(pe.shape)} but the model config needs ${shapeStr(posEmbedShape(c))}; check input_size, patch_size and hidden_size`,
    );
  }
  const list = (xs: string[]): string =>
    xs.slice(0, 10).join(', ') + (xs.length > 10 ? `, … (${xs.length} in all)` : '');
  if (missing.length > 0) {
    throw new UserError(
      `${source} lacks ${missing.length} tensor(s) the model needs: ${list(missing)}${c.kind === 'fpdm' ? '' : ' (is it an FPDM checkpoint? set "fixed_point": true)'}`,
    );
  }
  if (unexpected.length > 0 && opts.strict !== false) {
    throw new UserError(
      `${source} has ${unexpected.length} tensor(s) this model does not have: ${list(unexpected)}${c.kind === 'dit' && unexpected.some((k) => k.startsWith('block_')) ? ' (it looks like an FPDM checkpoint: set "fixed_point": true)' : ''}`,
    );
  }
  const params: ParamTree = new Map();
  for (const s of specs) {
    const t = sd.get(s.name)!;
    params.set(s.name, newVariable(toFloat32(t), s.shape));
  }
  return { params, report: { loaded: specs.length, missing, unexpected } };
}

/**
 * The state_dict of a tree (float32, PyTorch names, pos_embed included as PyTorch has it), read
 * asynchronously (the webgpu backend cannot read synchronously under Node).
 */
export async function stateDictOf(c: ModelConfig, params: ParamTree): Promise<TensorMap> {
  const out: TensorMap = new Map<string, HostTensor>();
  out.set(POS_EMBED, f32(posEmbedShape(c), posEmbed2d(c.hiddenSize, c.inputSize / c.patchSize)));
  for (const [name, v] of params) out.set(name, f32(v.shape, (await v.data()) as Float32Array));
  return out;
}

export function disposeTree(params: ParamTree): void {
  for (const v of params.values()) v.dispose();
}
