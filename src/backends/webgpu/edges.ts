// The model's edges as direct dispatches (src/backends/webgpu/raw.ts), forward and backward: what runs
// before the first transformer block (q_sample, patch embedding + position embedding, timestep and label
// embedders) and after the last (the final layer: adaLN, LayerNorm + modulate, linear, unpatchify), and
// FPDM's input-injection linear. The math is src/models/blocks.ts (timestepEmbedder, labelEmbedder,
// patchEmbed, finalLayer, unpatchify) and src/diffusion/process.ts qSample; gradients are those TF.js's
// autodiff takes of them. Together with dit-block.ts, fpdm-step.ts and loss.ts they make a training step
// without a tape (train-step.ts). The model's own forward (sampling: x_t and the model's timesteps given,
// no q_sample) runs the same embedders through rawEmbedModel, and rawFinalForward as is.
//
// Legend: n batch, C channels, Hh × Ww latent, p patch, G = Hh/p, t = G² tokens, d hidden, R = n·t,
// Co output channels, PP = C·p·p (a patch), F = 256 timestep frequencies. Scratch (kept from the
// forward to the backward, one set per shape): TH1 [n, d] the timestep MLP's first layer (before
// SiLU); ADAF [n, 2d], MODF [R, d], STATSF [R, 2] the final layer's modulation, LN + modulate and row stats;
// and TF [F], the frequency table (written once).
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '../../models/blocks.js';
import { outChannels, type ModelConfig } from '../../models/config.js';
import { AdaPlan } from './ada.js';
import { elementGroups, elementKernelWgsl, u } from './gemm.js';
import { Plan, type Arg } from './plan.js';
import type { RawKernels } from './raw.js';
import type { GBuffer, WebGPUBackendLike } from './types.js';

/** The frequency embedding width of the timestep embedder (the reference's frequency_embedding_size). */
export const FREQ_DIM = 256;

export interface EdgeDims {
  n: number;
  C: number;
  /** latent height = width */
  hw: number;
  p: number;
  d: number;
  /** output channels (2C with learned variance) */
  co: number;
  /** rows of the label table */
  classes: number;
}

/** Parameters of the embedders, by role. */
export interface EmbedParams {
  patchW: tf.Tensor; // [d, C, p, p]
  patchB: tf.Tensor; // [d]
  tW1: tf.Tensor; // [d, F]
  tB1: tf.Tensor;
  tW2: tf.Tensor; // [d, d]
  tB2: tf.Tensor;
  table: tf.Tensor; // [classes, d]
}

/** Parameters of the final layer, by role. */
export interface FinalParams {
  adaW: tf.Tensor; // [2d, d]
  adaB: tf.Tensor;
  linW: tf.Tensor; // [p·p·Co, d]
  linB: tf.Tensor;
}

/** The embedders' and the final layer's parameters by role ← state_dict name. */
export const EMBED_NAMES: Record<keyof EmbedParams, string> = {
  patchW: 'x_embedder.proj.weight',
  patchB: 'x_embedder.proj.bias',
  tW1: 't_embedder.mlp.0.weight',
  tB1: 't_embedder.mlp.0.bias',
  tW2: 't_embedder.mlp.2.weight',
  tB2: 't_embedder.mlp.2.bias',
  table: 'y_embedder.embedding_table.weight',
};
export const FINAL_NAMES: Record<keyof FinalParams, string> = {
  adaW: 'final_layer.adaLN_modulation.1.weight',
  adaB: 'final_layer.adaLN_modulation.1.bias',
  linW: 'final_layer.linear.weight',
  linB: 'final_layer.linear.bias',
};

/** The parameters of `names` read from the tree, by role. */
export function byRole<K extends string>(p: Params, names: Record<K, string>): Record<K, tf.Tensor> {
  return Object.fromEntries(Object.entries(names).map(([k, n]) => [k, p.get(n as string)!])) as Record<K, tf.Tensor>;
}

/** The edges' dimensions of a model (config, parameters) for a batch of n inputs shaped as the config says. */
export function edgeDims(cfg: ModelConfig, p: Params, n: number): EdgeDims {
  return {
    n,
    C: cfg.inChannels,
    hw: cfg.inputSize,
    p: cfg.patchSize,
    d: cfg.hiddenSize,
    co: outChannels(cfg),
    classes: p.get(EMBED_NAMES.table)!.shape[0]!,
  };
}

/** What the embedders make of the model's inputs (tensors owned by the caller). */
export interface ModelEmbedded {
  h0: tf.Tensor3D; // [n, t, d] patch embedding + position embedding
  c: tf.Tensor2D; // [n, d] t_emb + y_emb
  /** [n, d] y_emb alone, when asked for (FPDM's pre/post conditioning without the timestep) */
  yEmb?: tf.Tensor2D;
}

/** What the training step's embedders made: x_t too (tensors owned by the caller). */
export interface Embedded extends ModelEmbedded {
  xT: tf.Tensor4D; // [n, C, Hh, Ww]
}

/** Per-sample values uploaded once per step: q_sample's √ᾱ_t and √(1 − ᾱ_t), and the model's timestep. */
export const SAMPLE_VALUES = 3;

const t = (z: EdgeDims) => (z.hw / z.p) ** 2;

/** The float32 frequencies exp(−ln(10000)·i/(F/2)), each twice: [f_0..f_127, f_0..f_127] (cos half, sin half). */
export function frequencyTable(): Float32Array {
  const half = FREQ_DIM / 2;
  const f = new Float32Array(FREQ_DIM);
  for (let i = 0; i < half; i++) f[i] = f[i + half] = Math.exp((-Math.log(10000) * i) / half);
  return f;
}

const written = new WeakSet<GBuffer>();

/** frequencyTable() in a scratch buffer of the runtime (a constant: uploaded on first use, not a tensor). */
export function frequencyBuffer(rk: RawKernels): GBuffer {
  const b = rk.scratch('edges.freq', FREQ_DIM);
  if (!written.has(b)) {
    rk.device.queue.writeBuffer(b, 0, frequencyTable()); // ahead of every command buffer submitted later
    written.add(b);
  }
  return b;
}

/** The model timestep of sample `i` in a training step: the last of its SAMPLE_VALUES in TS (WGSL). */
const stepTimestep = (i: string) => `TS[(${i}) * ${u(SAMPLE_VALUES)} + 2u]`;

export class EdgePlan extends AdaPlan {
  constructor(
    rk: RawKernels,
    readonly z: EdgeDims,
  ) {
    const tokens = t(z);
    super(rk, 'edges', `${z.n},${z.C},${z.hw},${z.p},${z.d},${z.co},${z.classes}`, {
      n: z.n,
      t: tokens,
      d: z.d,
      R: z.n * tokens,
      chunks: 2,
    });
  }

  /** x_t at (token row `i`, patch column `k`): the im2col read of the patch embedding (WGSL) */
  patchAt(i: string, k: string): string {
    const { C, hw, p } = this.z;
    const T = t(this.z);
    const G = hw / p;
    return `XT[((((${i}) / ${u(T)}) * ${u(C)} + (${k}) / ${u(p * p)}) * ${u(hw)} + (((${i}) % ${u(T)}) / ${u(G)}) * ${u(p)} + ((${k}) % ${u(p * p)}) / ${u(p)}) * ${u(hw)} + (((${i}) % ${u(T)}) % ${u(G)}) * ${u(p)} + (${k}) % ${u(p)}]`;
  }

  /** the index in [n, Co, Hh, Ww] of the final linear's output (token row `i`, column `j`): unpatchify (WGSL) */
  unpatchAt(i: string, j: string): string {
    const { hw, p, co } = this.z;
    const T = t(this.z);
    const G = hw / p;
    return `(((((${i}) / ${u(T)}) * ${u(co)} + (${j}) % ${u(co)}) * ${u(hw)} + (((${i}) % ${u(T)}) / ${u(G)}) * ${u(p)} + (${j}) / ${u(p * co)}) * ${u(hw)} + (((${i}) % ${u(T)}) % ${u(G)}) * ${u(p)} + ((${j}) / ${u(co)}) % ${u(p)})`;
  }

  /**
   * the timestep embedding [cos(t·f), sin(t·f)] of sample `i` at column `k` (WGSL; TF the table); `ts`
   * reads sample i's timestep (default: a training step's, from TS)
   */
  static freqAt(i: string, k: string, ts: (i: string) => string = stepTimestep): string {
    return `select(sin(${ts(i)} * TF[${k}]), cos(${ts(i)} * TF[${k}]), (${k}) < ${u(FREQ_DIM / 2)})`;
  }
}

/** Where the embedders read the model timestep: a binding, and sample i's value in it (WGSL). */
interface TimestepSource {
  arg: Arg;
  at: (i: string) => string;
}

/**
 * Pushes the embedders onto `p` with new outputs: h0 = PatchEmbed(x_t) + pos from `xt` (x_t [n, C, Hh, Ww]),
 * and c = t_emb + y_emb (and y_emb alone with `withYEmb`) from the timesteps of `ts`. y [n] int32 labels;
 * pos [1, t, d]. The caller runs p.ops.
 */
function pushEmbedders(
  rk: RawKernels,
  p: EdgePlan,
  xt: GBuffer,
  ts: TimestepSource,
  inp: { y: tf.Tensor; pos: tf.Tensor },
  w: EmbedParams,
  withYEmb: boolean,
): ModelEmbedded {
  const { z } = p;
  const { n, C, d } = z;
  const T = t(z);
  const PP = C * z.p * z.p;
  const b = (x: tf.Tensor) => rk.buffer(x);
  const h0 = rk.output([n, T, d]);
  const c = rk.output([n, d]);
  const yEmb = withYEmb ? rk.output([n, d]) : null;
  const TH1 = p.scratch('th1', n * d);
  p.matMul(
    'patch',
    [
      ['XT', xt],
      ['PW', b(w.patchW)],
      ['PB', b(w.patchB)],
      ['POS', b(inp.pos)],
      ['H0', h0.buffer, true],
    ],
    {
      batch: 1,
      M: n * T,
      N: d,
      K: PP,
      a: p.patchAt('i', 'k'),
      b: `PW[j * ${u(PP)} + k]`,
      store: `H0[i * ${u(d)} + j] = (v + PB[j]) + POS[(i % ${u(T)}) * ${u(d)} + j];`,
      aFast: 'k',
      bFast: 'k',
    },
  );
  p.matMul(
    'temb1', // the timestep binding's name tells the kernels of the two sources apart
    [ts.arg, ['TF', frequencyBuffer(rk)], ['TW1', b(w.tW1)], ['TB1', b(w.tB1)], ['TH1', TH1, true]],
    {
      batch: 1,
      M: n,
      N: d,
      K: FREQ_DIM,
      a: EdgePlan.freqAt('i', 'k', ts.at),
      b: `TW1[j * ${u(FREQ_DIM)} + k]`,
      store: `TH1[i * ${u(d)} + j] = v + TB1[j];`,
      aFast: 'k',
      bFast: 'k',
    },
  );
  p.matMul(
    yEmb ? 'temb2y' : 'temb2', // the kernel's key names its outputs
    [
      ['TH1', TH1],
      ['TW2', b(w.tW2)],
      ['TB2', b(w.tB2)],
      ['Y', b(inp.y), false, 'i32'],
      ['TABLE', b(w.table)],
      ['CC', c.buffer, true],
      ...(yEmb ? ([['YE', yEmb.buffer, true]] as const) : []),
    ],
    {
      batch: 1,
      M: n,
      N: d,
      K: d,
      a: `silu(TH1[i * ${u(d)} + k])`,
      b: `TW2[j * ${u(d)} + k]`,
      store: `
  let ye = TABLE[u32(Y[i]) * ${u(d)} + j];
  CC[i * ${u(d)} + j] = (v + TB2[j]) + ye;${yEmb ? `\n  YE[i * ${u(d)} + j] = ye;` : ''}`,
      aFast: 'k',
      bFast: 'k',
    },
  );
  return {
    h0: h0.tensor as tf.Tensor3D,
    c: c.tensor as tf.Tensor2D,
    ...(yEmb ? { yEmb: yEmb.tensor as tf.Tensor2D } : {}),
  };
}

const outputsOf = (e: ModelEmbedded): tf.Tensor[] => [e.h0, e.c, ...(e.yEmb ? [e.yEmb] : [])];

/**
 * A training step's embedders: q_sample, the patch embedding (+ pos), and c = t_emb + y_emb. x0, noise
 * [n, C, Hh, Ww]; sv [n, 3] (SAMPLE_VALUES); y [n] int32 labels; pos [1, t, d].
 */
export function rawEmbedForward(
  rk: RawKernels,
  z: EdgeDims,
  inp: { x0: tf.Tensor; noise: tf.Tensor; sv: tf.Tensor; y: tf.Tensor; pos: tf.Tensor },
  w: EmbedParams,
  withYEmb: boolean,
): Embedded {
  const p = new EdgePlan(rk, z);
  const { n, C, hw } = z;
  const xT = rk.output([n, C, hw, hw]);
  const sv = rk.buffer(inp.sv);
  const chw = u(C * hw * hw);
  p.elements(
    'qsample',
    [
      ['X0', rk.buffer(inp.x0)],
      ['NOISE', rk.buffer(inp.noise)],
      ['TS', sv],
      ['XT', xT.buffer, true],
    ],
    n * C * hw * hw,
    `
  let s = idx / ${chw};
  XT[idx] = TS[s * ${u(SAMPLE_VALUES)}] * X0[idx] + TS[s * ${u(SAMPLE_VALUES)} + 1u] * NOISE[idx];`,
  );
  const e = pushEmbedders(rk, p, xT.buffer, { arg: ['TS', sv], at: stepTimestep }, inp, w, withYEmb);
  rk.run(p.ops, [inp.x0, inp.noise, inp.sv, inp.y, inp.pos, ...Object.values(w), xT.tensor, ...outputsOf(e)]);
  return { xT: xT.tensor as tf.Tensor4D, ...e };
}

/**
 * The element type of a tensor's buffer on the webgpu backend. Not always its dtype: TF.js's Cast to a
 * type that loses nothing (int32 → float32) relabels the tensor and keeps the int32 buffer.
 */
export function bufferType(x: tf.Tensor): 'f32' | 'i32' {
  const dtype = (tf.backend() as unknown as WebGPUBackendLike).tensorMap.get(x.dataId).dtype;
  if (dtype === 'float32') return 'f32';
  if (dtype === 'int32') return 'i32';
  throw new Error(`the model's timesteps: a float32 or int32 tensor expected, got a ${dtype} buffer`);
}

/**
 * The model's embedders (its forward, e.g. in sampling): x_t given. x [n, C, Hh, Ww]; ts [n] the
 * timesteps the model receives (float32, or int32 values); y [n] int32 labels; pos [1, t, d] → h0, c
 * (and y_emb with `withYEmb`).
 */
export function rawEmbedModel(
  rk: RawKernels,
  z: EdgeDims,
  inp: { x: tf.Tensor; ts: tf.Tensor; y: tf.Tensor; pos: tf.Tensor },
  w: EmbedParams,
  withYEmb: boolean,
): ModelEmbedded {
  const p = new EdgePlan(rk, z);
  const buf = rk.buffer(inp.ts);
  const tm: TimestepSource =
    bufferType(inp.ts) === 'f32'
      ? { arg: ['TM', buf], at: (i) => `TM[${i}]` }
      : { arg: ['TMI', buf, false, 'i32'], at: (i) => `f32(TMI[${i}])` };
  const e = pushEmbedders(rk, p, rk.buffer(inp.x), tm, inp, w, withYEmb);
  rk.run(p.ops, [inp.x, inp.ts, inp.y, inp.pos, ...Object.values(w), ...outputsOf(e)]);
  return e;
}

/**
 * The embedders' backward: dh0 [n, t, d] (the gradient at the first block's input), dc [n, d] (at
 * c = t_emb + y_emb) and dyExtra [n, d] (at y_emb alone, or null) → gradients in EmbedParams order.
 * xT (its output), sv, y as given to rawEmbedForward (TH1 is read from its scratch).
 */
export function rawEmbedBackward(
  rk: RawKernels,
  z: EdgeDims,
  inp: { xT: tf.Tensor; sv: tf.Tensor; y: tf.Tensor },
  w: EmbedParams,
  dh0: tf.Tensor,
  dc: tf.Tensor,
  dyExtra: tf.Tensor | null,
): EmbedParams {
  const p = new EdgePlan(rk, z);
  const { n, C, d, classes } = z;
  const PP = C * z.p * z.p;
  const b = (x: tf.Tensor) => rk.buffer(x);
  const o = (x: tf.Tensor) => rk.output(x.shape);
  const g = { patchW: o(w.patchW), patchB: o(w.patchB), tW1: o(w.tW1), tB1: o(w.tB1), tW2: o(w.tW2), tB2: o(w.tB2) };
  const table = o(w.table);
  const TH1 = p.scratch('th1', n * d);
  const DTH1 = p.scratch('dth1', n * d);
  const [DH0, DC, XT] = [b(dh0), b(dc), b(inp.xT)];
  // patch embedding: dW = dh0ᵀ·patches(x_t), db = Σ dh0
  p.weightGrad(
    'dpatch',
    [
      ['DH0', DH0],
      ['XT', XT],
    ],
    d,
    PP,
    `DH0[k * ${u(d)} + i]`,
    p.patchAt('k', 'j'),
    g.patchW.buffer,
    g.patchB.buffer,
  );
  // t_emb = SiLU(th1)·W2ᵀ + b2: dW2 = dcᵀ·SiLU(th1), db2 = Σ dc; dth1 = (dc·W2) ⊙ SiLU'(th1)
  p.weightGrad(
    'dtemb2',
    [
      ['DC', DC],
      ['TH1', TH1],
    ],
    d,
    d,
    `DC[k * ${u(d)} + i]`,
    `silu(TH1[k * ${u(d)} + j])`,
    g.tW2.buffer,
    g.tB2.buffer,
    n,
  );
  p.matMul(
    'dth1',
    [
      ['DC', DC],
      ['TW2', b(w.tW2)],
      ['TH1', TH1],
      ['DTH1', DTH1, true],
    ],
    {
      batch: 1,
      M: n,
      N: d,
      K: d,
      a: `DC[i * ${u(d)} + k]`,
      b: `TW2[k * ${u(d)} + j]`,
      store: `DTH1[i * ${u(d)} + j] = v * siluGrad(TH1[i * ${u(d)} + j]);`,
      aFast: 'k',
      bFast: 'j',
    },
  );
  // th1 = freq(t)·W1ᵀ + b1
  p.weightGrad(
    'dtemb1',
    [
      ['DTH1', DTH1],
      ['TS', b(inp.sv)],
      ['TF', frequencyBuffer(rk)],
    ],
    d,
    FREQ_DIM,
    `DTH1[k * ${u(d)} + i]`,
    EdgePlan.freqAt('k', 'j'),
    g.tW1.buffer,
    g.tB1.buffer,
    n,
  );
  // the label table: row y_i gets dy_emb of sample i (rows no label picked get 0)
  p.elements(
    dyExtra ? 'dtabley' : 'dtable',
    [
      ['Y', b(inp.y), false, 'i32'],
      ['DC', DC],
      ...(dyExtra ? ([['DYX', b(dyExtra)]] as const) : []),
      ['DT', table.buffer, true],
    ],
    classes * d,
    `
  let cls = idx / ${u(d)};
  let j = idx % ${u(d)};
  var s = 0.0;
  for (var i = 0u; i < ${u(n)}; i = i + 1u) {
    if (u32(Y[i]) == cls) { s = s + ${dyExtra ? `(DC[i * ${u(d)} + j] + DYX[i * ${u(d)} + j])` : `DC[i * ${u(d)} + j]`}; }
  }
  DT[idx] = s;`,
  );
  const outs = [...Object.values(g).map((e) => e.tensor), table.tensor];
  rk.run(p.ops, [inp.xT, inp.sv, inp.y, w.tW2, dh0, dc, ...(dyExtra ? [dyExtra] : []), ...outs]);
  return {
    patchW: g.patchW.tensor,
    patchB: g.patchB.tensor,
    tW1: g.tW1.tensor,
    tB1: g.tB1.tensor,
    tW2: g.tW2.tensor,
    tB2: g.tB2.tensor,
    table: table.tensor,
  };
}

/** The final layer and unpatchify: h [n, t, d], c [n, d] → the model output [n, Co, Hh, Ww] (new tensor). */
export function rawFinalForward(rk: RawKernels, z: EdgeDims, h: tf.Tensor, c: tf.Tensor, w: FinalParams): tf.Tensor4D {
  const p = new EdgePlan(rk, z);
  const { n, hw, d, co } = z;
  const R = p.ad.R;
  const out = rk.output([n, co, hw, hw]);
  const ADAF = p.scratch('adaf', n * 2 * d);
  const MODF = p.scratch('modf', R * d);
  const STATSF = p.scratch('statsf', 2 * R);
  const b = (x: tf.Tensor) => rk.buffer(x);
  p.adaLN(b(c), b(w.adaW), b(w.adaB), ADAF);
  p.lnModulate('lnmodf', b(h), ADAF, 0, MODF, STATSF);
  p.matMul(
    'linear',
    [
      ['MODF', MODF],
      ['WL', b(w.linW)],
      ['BL', b(w.linB)],
      ['OUT', out.buffer, true],
    ],
    {
      batch: 1,
      M: R,
      N: z.p * z.p * co,
      K: d,
      a: `MODF[i * ${u(d)} + k]`,
      b: `WL[j * ${u(d)} + k]`,
      store: `OUT[${p.unpatchAt('i', 'j')}] = v + BL[j];`,
      aFast: 'k',
      bFast: 'k',
    },
  );
  rk.run(p.ops, [h, c, ...Object.values(w), out.tensor]);
  return out.tensor as tf.Tensor4D;
}

/**
 * The final layer's backward from the output gradient dout [n, Co, Hh, Ww] (its forward's scratch must
 * still hold this h and c: nothing else writes it) → dh [n, t, d], dc [n, d] and the gradients in
 * FinalParams order (new tensors).
 */
export function rawFinalBackward(
  rk: RawKernels,
  z: EdgeDims,
  h: tf.Tensor,
  c: tf.Tensor,
  w: FinalParams,
  dout: tf.Tensor,
): { dh: tf.Tensor3D; dc: tf.Tensor2D; grads: FinalParams } {
  const p = new EdgePlan(rk, z);
  const { n, d, co } = z;
  const R = p.ad.R;
  const out = z.p * z.p * co;
  const b = (x: tf.Tensor) => rk.buffer(x);
  const o = (x: tf.Tensor) => rk.output(x.shape);
  const dh = rk.output(h.shape);
  const dc = rk.output(c.shape);
  const g = { adaW: o(w.adaW), adaB: o(w.adaB), linW: o(w.linW), linB: o(w.linB) };
  const ADAF = p.scratch('adaf', n * 2 * d);
  const MODF = p.scratch('modf', R * d);
  const STATSF = p.scratch('statsf', 2 * R);
  const DMODF = p.scratch('dmodf', R * d);
  const DADAF = p.scratch('dadaf', n * 2 * d);
  const [H, C, DOUT] = [b(h), b(c), b(dout)];
  // y = modf·Wlᵀ + bl (unpatchified): dmodf = dy·Wl; dWl = dyᵀ·modf, dbl = Σ dy
  p.matMul(
    'dmodf',
    [
      ['DOUT', DOUT],
      ['WL', b(w.linW)],
      ['DMODF', DMODF, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: out,
      a: `DOUT[${p.unpatchAt('i', 'k')}]`,
      b: `WL[k * ${u(d)} + j]`,
      store: `DMODF[i * ${u(d)} + j] = v;`,
      aFast: 'k',
      bFast: 'j',
    },
  );
  p.weightGrad(
    'dlin',
    [
      ['DOUT', DOUT],
      ['MODF', MODF],
    ],
    out,
    d,
    `DOUT[${p.unpatchAt('k', 'i')}]`,
    `MODF[k * ${u(d)} + j]`,
    g.linW.buffer,
    g.linB.buffer,
  );
  p.lnBackward('lnbackf', { x: H, stats: STATSF, ada: ADAF, dmod: DMODF }, 0, null, dh.buffer);
  p.lnSums('lnsumsf', { x: H, stats: STATSF, dmod: DMODF, dada: DADAF }, 0);
  p.adaBackward(DADAF, C, b(w.adaW), dc.buffer, g.adaW.buffer, g.adaB.buffer);
  const outs = [dh.tensor, dc.tensor, ...Object.values(g).map((e) => e.tensor)];
  rk.run(p.ops, [h, c, dout, w.linW, w.adaW, ...outs]);
  return {
    dh: dh.tensor as tf.Tensor3D,
    dc: dc.tensor as tf.Tensor2D,
    grads: { adaW: g.adaW.tensor, adaB: g.adaB.tensor, linW: g.linW.tensor, linB: g.linB.tensor },
  };
}

function linearPlan(rk: RawKernels, x: tf.Tensor, outDim: number): Plan {
  const [n, tt, d] = x.shape as [number, number, number];
  return new Plan(rk, 'linear', `${n},${tt},${d},${outDim}`);
}

/**
 * y = x·Wᵀ + b over the last axis of x [n, t, in], W [out, in] → [n, t, out] (FPDM's block_pre_projection);
 * at the forward precision of the blocks' products (on the tensor cores at mixed precision).
 */
export function rawLinearForward(rk: RawKernels, x: tf.Tensor3D, w: tf.Tensor, bias: tf.Tensor): tf.Tensor3D {
  const [n, tt, din] = x.shape;
  const dout = w.shape[0]!;
  const p = linearPlan(rk, x, dout);
  const y = rk.output([n, tt, dout]);
  p.matMul(
    'fwd',
    [
      ['X', rk.buffer(x)],
      ['W', rk.buffer(w)],
      ['B', rk.buffer(bias)],
      ['Y', y.buffer, true],
    ],
    {
      batch: 1,
      M: n * tt,
      N: dout,
      K: din,
      a: `X[i * ${u(din)} + k]`,
      b: `W[j * ${u(din)} + k]`,
      epilogueLoads: ['B[j]'],
      store: `Y[i * ${u(dout)} + j] = v + w0;`,
      aFast: 'k',
      bFast: 'k',
      precision: rk.forwardPrecision,
    },
  );
  rk.run(p.ops, [x, w, bias, y.tensor]);
  return y.tensor as tf.Tensor3D;
}

/**
 * rawLinearForward's backward: dx = res + dy·W (res: a gradient already at x, or null), dW = dyᵀ·x,
 * db = Σ dy → [dx, dW, db] (new tensors). `precision` 'mixed': both products on the tensor cores (dy in f16:
 * only with loss scaling, as rawBlockBackward).
 */
export function rawLinearBackward(
  rk: RawKernels,
  x: tf.Tensor3D,
  w: tf.Tensor,
  dy: tf.Tensor,
  res: tf.Tensor | null,
  precision: 'fp32' | 'mixed' = 'fp32',
): [tf.Tensor3D, tf.Tensor, tf.Tensor] {
  const [n, tt, din] = x.shape;
  const dout = w.shape[0]!;
  const R = n * tt;
  const p = linearPlan(rk, x, dout);
  const dx = rk.output(x.shape);
  const dw = rk.output(w.shape);
  const db = rk.output([dout]);
  const [X, W, DY] = [rk.buffer(x), rk.buffer(w), rk.buffer(dy)];
  p.matMul(
    res ? 'dxres' : 'dx',
    [['DY', DY], ['W', W], ...(res ? ([['RES', rk.buffer(res)]] as const) : []), ['DX', dx.buffer, true]],
    {
      batch: 1,
      M: R,
      N: din,
      K: dout,
      a: `DY[i * ${u(dout)} + k]`,
      b: `W[k * ${u(din)} + j]`,
      store: `DX[i * ${u(din)} + j] = ${res ? `RES[i * ${u(din)} + j] + ` : ''}v;`,
      aFast: 'k',
      bFast: 'j',
      precision,
    },
  );
  p.weightGrad(
    'dw',
    [
      ['DY', DY],
      ['X', X],
    ],
    dout,
    din,
    `DY[k * ${u(dout)} + i]`,
    `X[k * ${u(din)} + j]`,
    dw.buffer,
    db.buffer,
    R,
    precision,
  );
  rk.run(p.ops, [x, w, dy, ...(res ? [res] : []), dx.tensor, dw.tensor, db.tensor]);
  return [dx.tensor as tf.Tensor3D, dw.tensor, db.tensor];
}

/** into += add, elementwise (same sizes), in place; `add` is left to the caller. */
export function rawAccumulate(rk: RawKernels, into: tf.Tensor, add: tf.Tensor): void {
  const count = into.size;
  const kernel = rk.kernel(`accumulate:${count}`, () =>
    elementKernelWgsl([{ name: 'A', write: true }, { name: 'B' }], count, 'A[idx] = A[idx] + B[idx];'),
  );
  rk.run([{ kernel, buffers: [rk.buffer(into), rk.buffer(add)], groups: elementGroups(count) }], [into, add]);
}
