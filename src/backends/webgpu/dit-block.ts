// The DiT block (src/models/blocks.ts blockForward) and its hand-written backward (src/models/blockgrad.ts
// blockBackward) as our own WGSL kernels dispatched directly (src/backends/webgpu/raw.ts): 10 dispatches
// forward, 25–30 backward (split-K sums where a product is split), against ≈ 40 and ≈ 80 TF.js kernels. Same inputs, outputs and saved
// intermediates (BlockSaved) as the TF.js path, so the two mix freely: the block op's forward may run
// here and its backward there, and everything around the block is unchanged. The math is the op
// sequence of blocks.ts / blockgrad.ts; sums run in another order (tiles of 16 in the matmuls, one
// workgroup per row in the LayerNorm and softmax), so values agree to float32 rounding, not bitwise.
//
// Legend (src/util/shapes.ts): n batch, t tokens, d hidden, H heads, dh = d/H, hid = 4d (MLP), R = n·t
// rows of tokens, BH = n·H attention batches. Scratch (owned by the runtime, no caller sees it):
//   ADA [n, 6d] the adaLN vectors  shift1 | scale1 | gate1 | shift2 | scale2 | gate2 (recomputed in the backward)
//   MOD [R, d]  LN + modulate output (recomputed in the backward), STATS [R, 2] its row mean and 1/σ
//   backward only: DADA [n, 6d], DH [R, hid], DMOD [R, d], DX1 [R, d], DMERGED [R, d], DP [BH, t, t], DQKV [R, 3d]
//   forward without saving (rawBlockForward's `save` false): BlockSaved's q … m as `saved.*`
import * as tf from '@tensorflow/tfjs-core';
import type { BlockSaved } from '../../models/blocks.js';
import { declare, lit, u, type MatMulSpec } from './gemm.js';
import { MIXED_TILES, tileConfig, type MixedTileName } from './gemm-mixed.js';
import { AdaPlan } from './ada.js';
import {
  attentionGroups,
  attentionKernel,
  attentionWgsl,
  fusedAttentionOn,
  vectorAttention,
  type AttentionKernel,
} from './attention.js';
import { mixedDeviceInfo } from './device.js';
import { act16On, halfWeightsOn, weightOperand } from './half-weights.js';
import { savedOperand, type Arg } from './plan.js';
import type { RawKernels } from './raw.js';
import type { GBuffer } from './types.js';
import { invariant } from '../../util/errors.js';

interface Dims {
  n: number;
  t: number;
  d: number;
  H: number;
  dh: number;
  hid: number;
  R: number;
  BH: number;
}

function dims(x: tf.Tensor3D, hid: number, heads: number): Dims {
  const [n, t, d] = x.shape;
  return { n, t, d, H: heads, dh: d / heads, hid, R: n * t, BH: n * heads };
}

/**
 * Attention's per-head products (scores, P·v and the four of the backward: 6 × 32 products of 256 × 256
 * × 64 at S/2) at `precision`; on the tensor cores with 64 × 64 tiles, k 32: measured on the H200 at
 * S/2 (`results/bench/2026-11-30-webgpu-gemm-attention-34f44a5.md`), 2.0–2.3× our fp32 kernel, where the tile
 * mixedKernel would choose (128 × 128, k 32: half of it empty at 64 columns) ran 0.25–0.67×. At 72 values
 * per head (XL/2), with attentionHeadTiles, the products with the head's values as columns (P·v and dq,
 * dk, dv) on a tile of 72 columns (M16 N8 K16) where the device has that config; the scores and dP (k = 72)
 * on 64 × 64 tiles, as fast in the micro-benchmark as one stage of k = 72 on M16 N8 K8
 * (`2026-12-01-webgpu-gemm-attn72-*.md`).
 */
function attentionPrecision(
  rk: RawKernels,
  precision: 'fp32' | 'mixed',
  s: Pick<MatMulSpec, 'N'>,
): Pick<MatMulSpec, 'precision' | 'mixedTile'> {
  if (precision !== 'mixed') return {};
  const device = attentionHeadTiles() ? mixedDeviceInfo(rk.device) : undefined;
  const made: MixedTileName | undefined = s.N === 72 ? '64x72k64n8' : undefined;
  const mixedTile = made && device && tileConfig(device, MIXED_TILES[made]) ? made : '64x64k32';
  return { precision, mixedTile };
}

/**
 * Whether attention's products at 72 values per head take the tile made for it (attentionPrecision): yes by
 * default — measured on the H200 in one call (`2026-12-01-webgpu-xl-mixed-headtiles-*-h{1,0}.md`): P·v 0.139
 * against 0.194 ms per DiT-XL/2 block call, dq, dk, dv 0.134–0.139 against 0.190–0.196, DiT-XL/2 training GPU
 * 211.9 against 218.4 ms per step; the environment variable FPDM_ATTENTION_HEAD_TILES (0 off, 1 on; recorded
 * in the bench's header) sets it for comparing the two in one run.
 */
export function attentionHeadTiles(): boolean {
  return process.env.FPDM_ATTENTION_HEAD_TILES !== '0';
}

/** The dispatches of one block call, keyed by the block's shape. */
class BlockPlan extends AdaPlan {
  constructor(
    rk: RawKernels,
    readonly z: Dims,
  ) {
    super(rk, 'ditblock', `${z.n},${z.t},${z.d},${z.H},${z.hid}`, { n: z.n, t: z.t, d: z.d, R: z.R, chunks: 6 });
  }

  /**
   * A gate's gradient and the gradient past it, for out = x + gate_k ⊙ b: DADA[:, k] = Σ_t A ⊙ B per
   * sample, and DGATED = A ⊙ gate_k (read by the next products as a plain operand). A workgroup of 16
   * channels × 16 token lanes per sample (each lane takes every 16th token; the lanes' sums are added in
   * a fixed order): at S/2 one thread per (sample, channel) looping over the 256 tokens took 0.13 ms.
   */
  gateGrad(name: string, k: number, a: GBuffer, b: GBuffer, ada: GBuffer, dada: GBuffer, dgated: GBuffer): void {
    const { t, d } = this.z;
    const six = u(6 * d);
    this.push(
      name,
      [
        ['A', a],
        ['B', b],
        ['ADA', ada],
        ['DADA', dada, true],
        ['DGATED', dgated, true],
      ],
      (bindings) => `
${declare(bindings)}
var<workgroup> part: array<array<f32, 16>, 16>;
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wg.x * 16u + lid.x;
  let nn = wg.y;
  var s = 0.0;
  if (j < ${u(d)}) {
    let g = ADA[nn * ${six} + ${u(k * d)} + j];
    for (var tt = lid.y; tt < ${u(t)}; tt = tt + 16u) {
      let e = (nn * ${u(t)} + tt) * ${u(d)} + j;
      s = s + A[e] * B[e];
      DGATED[e] = A[e] * g;
    }
  }
  part[lid.y][lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && j < ${u(d)}) {
    var v = 0.0;
    for (var l = 0u; l < 16u; l = l + 1u) { v = v + part[l][lid.x]; }
    DADA[nn * ${six} + ${u(k * d)} + j] = v;
  }
}`,
      [Math.ceil(d / 16), this.z.n, 1],
    );
  }

  /**
   * A kernel over `rows` rows of t values held in registers: G threads per row (the largest power of 2 ≤
   * min(32, t)), 256 / G rows per workgroup; thread `lane` of row `row` (at `base` = row·t) holds values
   * c = lane + q·G, q < NV = ⌈t / G⌉ (a row's threads read consecutive values together). `body` gets
   * `live` (whether value c of the row exists, as a WGSL expression of c), NV, and `sum(out, v, op)`: the
   * statements reducing the f32 expression v over the row's threads with op (a tree in workgroup memory,
   * all rows of the workgroup at once; every thread of the workgroup must reach it) into `let out`.
   * Replaces row kernels of a 128-thread workgroup per row reducing over all of them and reading
   * the row several times (the softmax: 0.29 ms per DiT-XL/2 block on the H200).
   */
  heldRows(
    name: string,
    args: Arg[],
    rows: number,
    body: (k: {
      NV: number;
      G: number;
      live: (c: string) => string;
      sum: (out: string, v: string, op: (a: string, b: string) => string) => string;
    }) => string,
  ): void {
    const { t } = this.z;
    let G = 1;
    while (G * 2 <= Math.min(32, t)) G *= 2;
    const RW = 256 / G; // rows per workgroup
    const groups = Math.ceil(rows / RW);
    const gx = Math.min(groups, 65535);
    const sum = (out: string, v: string, op: (a: string, b: string) => string) => `red[tid] = ${v};
  workgroupBarrier();
  for (var s = ${u(G / 2)}; s > 0u; s = s >> 1u) {
    if (lane < s) { red[tid] = ${op('red[tid]', 'red[tid + s]')}; }
    workgroupBarrier();
  }
  let ${out} = red[tid - lane];
  workgroupBarrier();`;
    this.push(
      name,
      args,
      (bindings) => `
${declare(bindings)}
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let lane = tid % ${u(G)};
  let row = (wg.y * ${u(gx)} + wg.x) * ${u(RW)} + tid / ${u(G)};
  let base = row * ${u(t)};
  ${body({ NV: Math.ceil(t / G), G, live: (c) => `row < ${u(rows)} && ${c} < ${u(t)}`, sum })}
}`,
      groups <= 65535 ? [groups, 1, 1] : [65535, Math.ceil(groups / 65535), 1],
    );
  }

  /**
   * merged = softmax(q·kᵀ)·v as one kernel on the tensor cores (attention.ts), with `P` the softmax written
   * for the backward (else never in memory).
   */
  attention(k: AttentionKernel, Q: GBuffer, K: GBuffer, V: GBuffer, MERGED: GBuffer, P: GBuffer | null): void {
    const { BH, H, t, dh } = this.z;
    const shape = { BH, H, t, dh };
    // q, k and v read 4 values at a time where dh allows (attentionWgsl's bindings)
    const type = vectorAttention(dh) ? 'vec4<f32>' : undefined;
    const args: Arg[] = [
      ['Q', Q, false, type],
      ['KK', K, false, type],
      ['V', V, false, type],
      ['MERGED', MERGED, true],
      ...(P ? [['P', P, true] as const] : []),
    ];
    this.push('attention', args, () => attentionWgsl(shape, k, P !== null), attentionGroups(shape, k));
  }

  /**
   * Each of the rows × t values of S → its row's softmax in P (heldRows: read once, written once): in place
   * (P the same buffer as S), or into P in f16 (`half`).
   */
  softmax(name: string, S: GBuffer, P: GBuffer, rows: number, half: boolean): void {
    const args: Arg[] = half
      ? [
          ['S', S],
          ['P16', P, true, 'f16'],
        ]
      : [['S', S, true]];
    const out = half ? 'P16' : 'S';
    this.heldRows(name, args, rows, ({ NV, G: g, live, sum }) => {
      const c = `lane + q * ${u(g)}`;
      return `var x: array<f32, ${NV}>;
  var mx = -3.402823e38;
  for (var q = 0u; q < ${u(NV)}; q = q + 1u) {
    x[q] = -3.402823e38;
    if (${live(c)}) { x[q] = S[base + ${c}]; }
    mx = max(mx, x[q]);
  }
  ${sum('rmax', 'mx', (a, b) => `max(${a}, ${b})`)}
  var total = 0.0;
  for (var q = 0u; q < ${u(NV)}; q = q + 1u) {
    x[q] = select(0.0, exp(x[q] - rmax), ${c} < ${u(this.z.t)});
    total = total + x[q];
  }
  ${sum('rsum', 'total', (a, b) => `${a} + ${b}`)}
  for (var q = 0u; q < ${u(NV)}; q = q + 1u) {
    if (${live(c)}) { ${out}[base + ${c}] = ${half ? 'f16(x[q] / rsum)' : 'x[q] / rsum'}; }
  }`;
    });
  }

  /**
   * In place, dP → dS = P ⊙ (dP − Σ_row dP ⊙ P) over rows × t values (the softmax's backward; heldRows:
   * P and dP read once, dS written once); P in f16 with `half`.
   */
  softmaxBackward(name: string, P: GBuffer, DP: GBuffer, rows: number, half: boolean): void {
    const args: Arg[] = [half ? ['P16', P, false, 'f16'] : ['P', P], ['DP', DP, true]];
    this.heldRows(name, args, rows, ({ NV, G: g, live, sum }) => {
      const c = `lane + q * ${u(g)}`;
      return `var pv: array<f32, ${NV}>;
  var dv: array<f32, ${NV}>;
  var acc = 0.0;
  for (var q = 0u; q < ${u(NV)}; q = q + 1u) {
    pv[q] = 0.0;
    dv[q] = 0.0;
    if (${live(c)}) { pv[q] = ${half ? `f32(P16[base + ${c}])` : `P[base + ${c}]`}; dv[q] = DP[base + ${c}]; }
    acc = acc + dv[q] * pv[q];
  }
  ${sum('dot', 'acc', (a, b) => `${a} + ${b}`)}
  for (var q = 0u; q < ${u(NV)}; q = q + 1u) {
    if (${live(c)}) { DP[base + ${c}] = pv[q] * (dv[q] - dot); }
  }`;
    });
  }
}

/**
 * The fused attention kernel for head size dh on the backend's mixed-precision device, where it has one
 * and FPDM_FUSED_ATTENTION=1 asks for it (attention.ts fusedAttentionOn: off by default, measured slower).
 */
function fusedAttention(rk: RawKernels, dh: number): AttentionKernel | undefined {
  const device = fusedAttentionOn() ? mixedDeviceInfo(rk.device) : null;
  return device ? attentionKernel(device, { dh }) : undefined;
}

/** What the forward without save last wrote into its ADA buffer (see rawBlockForward), per RawKernels. */
interface AdaKey {
  c: object;
  wa: object;
  ba: object;
  buffer: GBuffer;
}
const lastAda = new WeakMap<RawKernels, AdaKey>();

/**
 * Whether `last` computed ADA from the same tensors' data into the same buffer. Weights written in place
 * keep their tensor, so the key includes c's data, a new tensor per model forward: within one forward
 * no weight is written.
 */
function sameAda(last: AdaKey | undefined, key: AdaKey): boolean {
  return (
    last !== undefined && last.c === key.c && last.wa === key.wa && last.ba === key.ba && last.buffer === key.buffer
  );
}

/** The MLP width: mlp.fc1.weight [hid, d] is the 7th of BLOCK_PARAM_NAMES. */
function mlpWidth(w: tf.Tensor[]): number {
  return w[6]!.shape[0]!;
}

/**
 * blockForward on our kernels: x [n, t, d], c [n, d], w in BLOCK_PARAM_NAMES order → the block output
 * and BlockSaved, as new tensors owned by the caller. With `save` false (no backward will read them:
 * sampling, the no-gradient iterations) the intermediates live in scratch buffers of the plan and only
 * the output is a new tensor (s null): 9 TF.js tensors fewer per call, and the bind groups of the
 * dispatches that bind them stay the same from call to call.
 */
export function rawBlockForward(
  rk: RawKernels,
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
): { out: tf.Tensor3D; s: BlockSaved };
export function rawBlockForward(
  rk: RawKernels,
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
  save: false,
): { out: tf.Tensor3D; s: null };
export function rawBlockForward(
  rk: RawKernels,
  x: tf.Tensor3D,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  heads: number,
  save = true,
): { out: tf.Tensor3D; s: BlockSaved | null } {
  const z = dims(x, mlpWidth(w), heads);
  const { n, t, d, H, dh, hid, R, BH } = z;
  const p = new BlockPlan(rk, z);
  const buf = (tt: tf.Tensor) => rk.buffer(tt);
  const [X, C] = [buf(x), buf(c)];
  const [WA, BA, , BQKV, , BP, , B1, , B2] = w.map(buf) as GBuffer[]; // the products' weights: weightOperand
  // the saved intermediates: new tensors, or (save false) scratch buffers of the plan
  const o = (name: string, shape: number[]): { tensor: tf.Tensor | null; buffer: GBuffer } =>
    save ? rk.output(shape) : { tensor: null, buffer: p.scratch(`saved.${name}`, tf.util.sizeFromShape(shape)) };
  const q = o('q', [n, H, t, dh]);
  const k = o('k', [n, H, t, dh]);
  const v = o('v', [n, H, t, dh]);
  // at mixed precision with FPDM_FUSED_ATTENTION=1, the attention as one kernel where the device has its
  // tiles (attention.ts): the scores then exist only in workgroup memory, and P only when saved
  const mixed = rk.forwardPrecision === 'mixed';
  const fused = mixed ? fusedAttention(rk, dh) : undefined;
  // at mixed precision (three kernels) the softmax reads the scores (f32, a scratch buffer) and writes P in
  // f16 (BlockSaved.p): P·v and the backward's dv round P to f16 in their staging anyway (the same values),
  // the softmax's backward reads it as it is saved; half the bytes kept per block
  const halfP = mixed && !fused && t > 1; // (with one token the two sizes would be equal: see savedOperand)
  const P = fused && !save ? null : o('p', [n, H, t, halfP ? Math.ceil(t / 2) : t]);
  const S = halfP ? p.scratch('scores', BH * t * t) : P?.buffer;
  const merged = o('merged', [n, t, d]);
  const a = o('a', [n, t, d]);
  const x1 = o('x1', [n, t, d]);
  // at mixed precision fc1 also writes GELU(h) in f16 (two per float32 element), which fc2 then reads as a
  // plain operand (the same f16 values it rounded GELU(h) to in its load before) and the backward's dW2 too;
  // h itself, read by the backward only (GELU'(h) in dh's epilogue), is kept in f16 as well
  const halfH = mixed && hid > 1;
  const h = o('h', [n, t, halfH ? Math.ceil(hid / 2) : hid]);
  const m = o('m', [n, t, d]);
  const out = rk.output([n, t, d]);
  const g = mixed ? o('g', [(R * hid) / 2]) : null;
  // without save, ADA in a buffer of its own, not computed again while the same (c, Wa, ba) come back:
  // the iterations of an FPDM solve (sampling, S-JFB's no-gradient iterations) share their c and weights
  const ADA = p.scratch(save ? 'ada' : 'ada.reuse', n * 6 * d);
  const adaKey = { c: c.dataId, wa: w[0]!.dataId, ba: w[1]!.dataId, buffer: ADA };
  const reuseAda = !save && sameAda(lastAda.get(rk), adaKey);
  const MOD = p.scratch('mod', R * d);
  const STATS = p.scratch('stats', 2 * R);
  const scale = 1 / Math.sqrt(dh);
  // without save at mixed precision, the products' weights as f16 copies where the same ones come back
  // within a forward (half-weights.ts: an FPDM solve's iterations)
  const half16 = !save && mixed && halfWeightsOn();
  const weight = (name: string, i: number) => weightOperand(rk, p, name, `${name}16`, w[i]!, c.dataId, half16);
  // at mixed precision, LN + modulate's output (qkv's and fc1's A, read by nothing else: the backward
  // computes its own) in f16, the values the products round it to; without save also the attention's
  // merged heads (proj's A)
  const act16 = mixed && act16On();
  const mod: { arg: Arg; at: string } = act16
    ? { arg: ['MOD16', MOD, false, 'f16'], at: `f32(MOD16[i * ${u(d)} + k])` }
    : { arg: ['MOD', MOD], at: `MOD[i * ${u(d)} + k]` };
  const merged16 = act16 && !save && !fused;
  const wqkv = weight('WQKV', 2);
  const wp = weight('WP', 4);
  const w1 = weight('W1', 6);
  const w2 = weight('W2', 8);

  if (!reuseAda) p.adaLN(C, WA!, BA!, ADA);
  p.lnModulate('lnmod1', X, ADA, 0, MOD, STATS, act16);
  p.matMul(
    'qkv',
    [mod.arg, wqkv.arg, ['BQKV', BQKV!], ['Q', q.buffer, true], ['KK', k.buffer, true], ['V', v.buffer, true]],
    {
      batch: 1,
      M: R,
      N: 3 * d,
      K: d,
      a: mod.at,
      b: wqkv.at(`j * ${u(d)} + k`),
      epilogueLoads: ['BQKV[j]'],
      // qkv [R, 3d] (q | k | v, each heads-major) → q, k, v [n, H, t, dh]; q scaled by 1/√dh
      store: `
  let s = j / ${u(d)};
  let rem = j % ${u(d)};
  let o = (((i / ${u(t)}) * ${u(H)} + rem / ${u(dh)}) * ${u(t)} + i % ${u(t)}) * ${u(dh)} + rem % ${u(dh)};
  let val = v + w0;
  if (s == 0u) { Q[o] = val * ${lit(scale)}; } else if (s == 1u) { KK[o] = val; } else { V[o] = val; }`,
      aFast: 'k',
      bFast: 'k',
      wide: false,
      precision: rk.forwardPrecision, // see RawKernels.forwardPrecision
    },
  );
  if (fused) p.attention(fused, q.buffer, k.buffer, v.buffer, merged.buffer, P ? P.buffer : null);
  else {
    p.matMul(
      'scores',
      [
        ['Q', q.buffer],
        ['KK', k.buffer],
        ['S', S!, true],
      ],
      {
        batch: BH,
        M: t,
        N: t,
        K: dh,
        a: `Q[(b * ${u(t)} + i) * ${u(dh)} + k]`,
        b: `KK[(b * ${u(t)} + j) * ${u(dh)} + k]`,
        store: `S[(b * ${u(t)} + i) * ${u(t)} + j] = v;`,
        aFast: 'k',
        bFast: 'k',
        ...attentionPrecision(rk, rk.forwardPrecision, { N: t }),
      },
    );
    p.softmax('softmax', S!, P!.buffer, BH * t, halfP);
    p.matMul(
      'pv',
      [
        halfP ? ['P16', P!.buffer, false, 'f16'] : ['P', P!.buffer],
        ['V', v.buffer],
        merged16 ? ['MERGED16', merged.buffer, true, 'f16'] : ['MERGED', merged.buffer, true],
      ],
      {
        batch: BH,
        M: t,
        N: dh,
        K: t,
        a: halfP ? `f32(P16[(b * ${u(t)} + i) * ${u(t)} + k])` : `P[(b * ${u(t)} + i) * ${u(t)} + k]`,
        b: `V[(b * ${u(t)} + k) * ${u(dh)} + j]`,
        store: `${merged16 ? 'MERGED16' : 'MERGED'}[((b / ${u(H)}) * ${u(t)} + i) * ${u(d)} + (b % ${u(H)}) * ${u(dh)} + j] = ${merged16 ? 'f16(v)' : 'v'};`,
        aFast: 'k',
        bFast: 'j',
        ...attentionPrecision(rk, rk.forwardPrecision, { N: dh }),
      },
    );
  }
  p.matMul(
    'proj',
    [
      merged16 ? ['MERGED16', merged.buffer, false, 'f16'] : ['MERGED', merged.buffer],
      wp.arg,
      ['BP', BP!],
      ['X', X],
      ['ADA', ADA],
      // a is read by the backward only (dgate1): not written without save
      ...(save ? [['A', a.buffer, true] as const] : []),
      ['X1', x1.buffer, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: d,
      a: merged16 ? `f32(MERGED16[i * ${u(d)} + k])` : `MERGED[i * ${u(d)} + k]`,
      b: wp.at(`j * ${u(d)} + k`),
      // a = merged·Wpᵀ + bp; x1 = x + gate1 ⊙ a
      epilogueLoads: [`X[i * ${u(d)} + j]`, `ADA[(i / ${u(t)}) * ${u(6 * d)} + ${u(2 * d)} + j]`, 'BP[j]'],
      store: `
  let av = v + w2;
  ${save ? `A[i * ${u(d)} + j] = av;` : ''}
  X1[i * ${u(d)} + j] = w0 + w1 * av;`,
      aFast: 'k',
      bFast: 'k',
      wide: 'rows', // several outputs (perThread)
      precision: rk.forwardPrecision,
    },
  );
  p.lnModulate('lnmod2', x1.buffer, ADA, 3, MOD, STATS, act16);
  p.matMul(
    'fc1',
    [
      mod.arg,
      w1.arg,
      ['B1', B1!],
      // h itself is read by the backward (GELU'; in f16 with g) and, without the f16 GELU(h), by fc2's load
      ...(!g || save ? [(halfH ? ['H16', h.buffer, true, 'f16'] : ['HH', h.buffer, true]) as Arg] : []),
      ...(g ? [['G16', g.buffer, true, 'f16'] as const] : []),
    ],
    {
      batch: 1,
      M: R,
      N: hid,
      K: d,
      a: mod.at,
      b: w1.at(`j * ${u(d)} + k`),
      epilogueLoads: ['B1[j]'],
      store: g
        ? `let hv = v + w0;
  ${save ? (halfH ? `H16[i * ${u(hid)} + j] = f16(hv);` : `HH[i * ${u(hid)} + j] = hv;`) : ''}
  G16[i * ${u(hid)} + j] = f16(gelu(hv));`
        : `HH[i * ${u(hid)} + j] = v + w0;`,
      aFast: 'k',
      bFast: 'k',
      precision: rk.forwardPrecision,
    },
  );
  p.matMul(
    'fc2',
    [
      g ? (['G16', g.buffer, false, 'f16'] as const) : (['HH', h.buffer] as const),
      w2.arg,
      ['B2', B2!],
      ['X1', x1.buffer],
      ['ADA', ADA],
      // m is read by the backward only (dgate2)
      ...(save ? [['MM', m.buffer, true] as const] : []),
      ['OUT', out.buffer, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: hid,
      a: g ? `f32(G16[i * ${u(hid)} + k])` : `gelu(HH[i * ${u(hid)} + k])`,
      b: w2.at(`j * ${u(hid)} + k`),
      // m = GELU(h)·W2ᵀ + b2; out = x1 + gate2 ⊙ m
      epilogueLoads: [`X1[i * ${u(d)} + j]`, `ADA[(i / ${u(t)}) * ${u(6 * d)} + ${u(5 * d)} + j]`, 'B2[j]'],
      store: `
  let mv = v + w2;
  ${save ? `MM[i * ${u(d)} + j] = mv;` : ''}
  OUT[i * ${u(d)} + j] = w0 + w1 * mv;`,
      aFast: 'k',
      bFast: 'k',
      wide: 'rows', // several outputs (perThread)
      precision: rk.forwardPrecision,
    },
  );
  const outs = [q, k, v, ...(P ? [P] : []), merged, a, x1, h, m, out, ...(g ? [g] : [])].flatMap((e) =>
    e.tensor ? [e.tensor] : [],
  );
  rk.run(p.ops, [x, c, ...w, ...outs]);
  if (!save) {
    lastAda.set(rk, adaKey);
    return { out: out.tensor as tf.Tensor3D, s: null };
  }
  return {
    out: out.tensor as tf.Tensor3D,
    s: {
      x,
      qs: q.tensor as tf.Tensor4D,
      k: k.tensor as tf.Tensor4D,
      v: v.tensor as tf.Tensor4D,
      p: P!.tensor as tf.Tensor4D,
      merged: merged.tensor as tf.Tensor3D,
      a: a.tensor as tf.Tensor3D,
      x1: x1.tensor as tf.Tensor3D,
      h: h.tensor as tf.Tensor3D,
      m: m.tensor as tf.Tensor3D,
      ...(g?.tensor ? { g: g.tensor } : {}),
    },
  };
}

/**
 * blockBackward on our kernels: from the saved intermediates, c and the output gradient dy →
 * [dx, dc, ...dW in BLOCK_PARAM_NAMES order], new tensors owned by the caller. `precision` 'mixed' puts
 * the MLP's, the projections' and attention's products (dh, dmod2, dmerged, dmod1, their weight
 * gradients — fc2's where the forward kept GELU(h) in f16 (BlockSaved.g) —, dv, dp, dq, dk) on the tensor
 * cores: their gradient operands are rounded to f16, so only with loss scaling (the caller scales dy; see
 * train-step.ts). The adaLN's stay fp32. With `into` (gradients of these weights, BLOCK_PARAM_NAMES order)
 * the weight gradients are added into those tensors, which come back as the dW (no new tensors): a
 * weight-tied block's iterations, without a separate add per weight and iteration (the same sums in the
 * same order as adding a new dW into them).
 */
export function rawBlockBackward(
  rk: RawKernels,
  s: BlockSaved,
  c: tf.Tensor2D,
  w: tf.Tensor[],
  dy: tf.Tensor3D,
  heads: number,
  precision: 'fp32' | 'mixed' = 'fp32',
  into?: tf.Tensor[],
): tf.Tensor[] {
  const z = dims(s.x, mlpWidth(w), heads);
  const { n, t, d, H, dh, hid, R, BH } = z;
  const p = new BlockPlan(rk, z);
  const buf = (tt: tf.Tensor) => rk.buffer(tt);
  const [X, C, DY] = [buf(s.x), buf(c), buf(dy)];
  const [Q, KK, V, P, MERGED, A, X1, HH, MM] = [s.qs, s.k, s.v, s.p, s.merged, s.a, s.x1, s.h, s.m].map(
    buf,
  ) as GBuffer[];
  const [WA, BA, WQKV, , WP, , W1, , W2] = w.map(buf) as GBuffer[];
  // P and h as the forward kept them: in f16 at mixed precision (rawBlockForward), told apart by their sizes
  const sp = savedOperand(s.p, P!, BH * t, t, 'P', 'P16');
  const halfP = sp.half;
  const sh = savedOperand(s.h, HH!, R, hid, 'HH', 'H16');
  const o = (shape: number[]) => rk.output(shape);
  const dx = o([n, t, d]);
  const dc = o([n, d]);
  invariant(
    !into || (into.length === w.length && into.every((g, i) => g.size === w[i]!.size)),
    'rawBlockBackward: `into` holds one gradient per weight, of its size',
  );
  const dW = into ? into.map((g) => ({ tensor: g, buffer: buf(g) })) : w.map((wi) => o(wi.shape));
  const [dWa, dBa, dWqkv, dBqkv, dWp, dBp, dW1, dB1, dW2, dB2] = dW as Array<{ tensor: tf.Tensor; buffer: GBuffer }>;
  const ADA = p.scratch('ada', n * 6 * d);
  const DADA = p.scratch('dada', n * 6 * d);
  const MOD = p.scratch('mod', R * d);
  const STATS = p.scratch('stats', 2 * R);
  // the backward's intermediates in the buffers of the forward without save (rawBlockForward's `saved.*`
  // scratch, of the same sizes): nothing reads those after that call, and the device runs the calls in the
  // order they are recorded (mixed, XL/2 batch 32: 1.96 → 1.68 GiB of scratch with the f16 P and h, NOTES §19)
  const DH = p.scratch('saved.h', R * hid);
  const DMOD = p.scratch('saved.merged', R * d);
  const DX1 = p.scratch('saved.a', R * d);
  const DMERGED = p.scratch('saved.x1', R * d);
  const DP = p.scratch(halfP ? 'scores' : 'saved.p', BH * t * t);
  const DQKV = p.scratch('dqkv', R * 3 * d);
  // dy ⊙ gate2 (dm: read by dh and dW2), then dx1 ⊙ gate1 (da: read by dmerged and dWp)
  const DGATED = p.scratch('saved.m', R * d);
  const scale = 1 / Math.sqrt(dh);

  /** gate k's gradient (DADA) and dgated = a ⊙ gate k, for out = x + gate k ⊙ b (BlockPlan.gateGrad) */
  const colDot = (name: string, k: number, a: GBuffer, b: GBuffer) => p.gateGrad(name, k, a, b, ADA, DADA, DGATED);
  const lnBackward = (name: string, x: GBuffer, k: number, res: GBuffer, out: GBuffer) =>
    p.lnBackward(name, { x, stats: STATS, ada: ADA, dmod: DMOD }, k, res, out);
  const lnSums = (name: string, x: GBuffer, k: number) =>
    p.lnSums(name, { x, stats: STATS, dmod: DMOD, dada: DADA }, k);
  // the MLP's, projections' and attention's products take `precision`; the adaLN's stay fp32, and so does
  // fc2's weight gradient where the forward kept no f16 GELU(h) (see dw2 below)
  const weightGrad = (
    name: string,
    args: Arg[],
    o: number,
    i: number,
    a: string,
    b: string,
    dw: GBuffer,
    db: GBuffer,
    at: 'fp32' | 'mixed' = precision,
  ) => p.weightGrad(name, args, o, i, a, b, dw, db, undefined, at, into !== undefined);

  // adaLN vectors, recomputed from c
  p.adaLN(C, WA!, BA!, ADA);
  // out = x1 + gate2 ⊙ m: dgate2 = Σ_t dy ⊙ m; dm = dy ⊙ gate2
  colDot('dgate2', 5, DY, MM!);
  // m = GELU(h)·W2ᵀ + b2: dh = (dm·W2) ⊙ GELU'(h); dW2 = dmᵀ·GELU(h); db2 = Σ dm
  p.geluInputGrad('dh', ['DM', DGATED], W2!, sh, ['DH', DH, true], R, hid, d, precision);
  // with the forward's f16 GELU(h) (mixed precision) a plain operand on the tensor cores; else GELU(h) in
  // the load, in fp32 (on the tensor cores that load took 7.7 ms per DiT-S/2 step against 6.4 in fp32:
  // H200, results/bench/NOTES.md §10)
  const G16 = s.g && precision === 'mixed' ? buf(s.g) : null;
  weightGrad(
    'dw2',
    [['DM', DGATED], G16 ? ['G16', G16, false, 'f16'] : sh.arg],
    d,
    hid,
    `DM[k * ${u(d)} + i]`,
    G16 ? `f32(G16[k * ${u(hid)} + j])` : `gelu(${sh.at(`k * ${u(hid)} + j`)})`,
    dW2!.buffer,
    dB2!.buffer,
    G16 ? 'mixed' : 'fp32',
  );
  // h = mod2·W1ᵀ + b1: dmod2 = dh·W1; dW1 = dhᵀ·mod2; db1 = Σ dh
  p.lnModulate('lnmod2', X1!, ADA, 3, MOD, STATS);
  p.matMul(
    'dmod2',
    [
      ['DH', DH],
      ['W1', W1!],
      ['DMOD', DMOD, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: hid,
      a: `DH[i * ${u(hid)} + k]`,
      b: `W1[k * ${u(d)} + j]`,
      store: `DMOD[i * ${u(d)} + j] = v;`,
      aFast: 'k',
      bFast: 'j',
      precision,
    },
  );
  weightGrad(
    'dw1',
    [
      ['DH', DH],
      ['MOD', MOD],
    ],
    hid,
    d,
    `DH[k * ${u(hid)} + i]`,
    `MOD[k * ${u(d)} + j]`,
    dW1!.buffer,
    dB1!.buffer,
  );
  // LN2 + modulate backward: dx1 = dy + LN'(…); dshift2, dscale2
  lnBackward('lnback2', X1!, 3, DY, DX1);
  lnSums('lnsums2', X1!, 3);
  // x1 = x + gate1 ⊙ a: dgate1 = Σ_t dx1 ⊙ a; da = dx1 ⊙ gate1
  colDot('dgate1', 2, DX1, A!);
  // a = merged·Wpᵀ + bp
  p.matMul(
    'dmerged',
    [
      ['DA', DGATED],
      ['WP', WP!],
      ['DMERGED', DMERGED, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: d,
      a: `DA[i * ${u(d)} + k]`,
      b: `WP[k * ${u(d)} + j]`,
      store: `DMERGED[i * ${u(d)} + j] = v;`,
      aFast: 'k',
      bFast: 'j',
      precision,
    },
  );
  weightGrad(
    'dwp',
    [
      ['DA', DGATED],
      ['MERGED', MERGED!],
    ],
    d,
    d,
    `DA[k * ${u(d)} + i]`,
    `MERGED[k * ${u(d)} + j]`,
    dWp!.buffer,
    dBp!.buffer,
  );
  // attention: dO = heads of dmerged; dv = Pᵀ·dO; dP = dO·vᵀ; dS = P ⊙ (dP − Σ dP ⊙ P); dq = dS·k/√dh; dk = dSᵀ·qs
  const dO = (row: string, col: string) =>
    `DMERGED[((b / ${u(H)}) * ${u(t)} + ${row}) * ${u(d)} + (b % ${u(H)}) * ${u(dh)} + ${col}]`;
  const dqkvAt = (part: number) =>
    `DQKV[((b / ${u(H)}) * ${u(t)} + i) * ${u(3 * d)} + ${u(part * d)} + (b % ${u(H)}) * ${u(dh)} + j]`;
  p.matMul('dv', [sp.arg, ['DMERGED', DMERGED], ['DQKV', DQKV, true]], {
    batch: BH,
    M: t,
    N: dh,
    K: t,
    a: sp.at(`(b * ${u(t)} + k) * ${u(t)} + i`),
    b: dO('k', 'j'),
    store: `${dqkvAt(2)} = v;`,
    aFast: 'i',
    bFast: 'j',
    ...attentionPrecision(rk, precision, { N: dh }),
  });
  p.matMul(
    'dp',
    [
      ['DMERGED', DMERGED],
      ['V', V!],
      ['DP', DP, true],
    ],
    {
      batch: BH,
      M: t,
      N: t,
      K: dh,
      a: dO('i', 'k'),
      b: `V[(b * ${u(t)} + j) * ${u(dh)} + k]`,
      store: `DP[(b * ${u(t)} + i) * ${u(t)} + j] = v;`,
      aFast: 'k',
      bFast: 'k',
      ...attentionPrecision(rk, precision, { N: t }),
    },
  );
  p.softmaxBackward('softmaxback', P!, DP, BH * t, halfP);
  p.matMul(
    'dq',
    [
      ['DP', DP],
      ['KK', KK!],
      ['DQKV', DQKV, true],
    ],
    {
      batch: BH,
      M: t,
      N: dh,
      K: t,
      a: `DP[(b * ${u(t)} + i) * ${u(t)} + k]`,
      b: `KK[(b * ${u(t)} + k) * ${u(dh)} + j]`,
      store: `${dqkvAt(0)} = v * ${lit(scale)};`,
      aFast: 'k',
      bFast: 'j',
      ...attentionPrecision(rk, precision, { N: dh }),
    },
  );
  p.matMul(
    'dk',
    [
      ['DP', DP],
      ['Q', Q!],
      ['DQKV', DQKV, true],
    ],
    {
      batch: BH,
      M: t,
      N: dh,
      K: t,
      a: `DP[(b * ${u(t)} + k) * ${u(t)} + i]`,
      b: `Q[(b * ${u(t)} + k) * ${u(dh)} + j]`,
      store: `${dqkvAt(1)} = v;`,
      aFast: 'i',
      bFast: 'j',
      ...attentionPrecision(rk, precision, { N: dh }),
    },
  );
  // qkv = mod1·Wqkvᵀ + bqkv
  p.lnModulate('lnmod1', X, ADA, 0, MOD, STATS);
  p.matMul(
    'dmod1',
    [
      ['DQKV', DQKV],
      ['WQKV', WQKV!],
      ['DMOD', DMOD, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: 3 * d,
      a: `DQKV[i * ${u(3 * d)} + k]`,
      b: `WQKV[k * ${u(d)} + j]`,
      store: `DMOD[i * ${u(d)} + j] = v;`,
      aFast: 'k',
      bFast: 'j',
      precision,
    },
  );
  weightGrad(
    'dwqkv',
    [
      ['DQKV', DQKV],
      ['MOD', MOD],
    ],
    3 * d,
    d,
    `DQKV[k * ${u(3 * d)} + i]`,
    `MOD[k * ${u(d)} + j]`,
    dWqkv!.buffer,
    dBqkv!.buffer,
  );
  // LN1 + modulate backward: dx = dx1 + LN'(…); dshift1, dscale1
  lnBackward('lnback1', X, 0, DX1, dx.buffer);
  lnSums('lnsums1', X, 0);
  // adaLN: ADA = SiLU(c)·Waᵀ + ba: dc = (dada·Wa) ⊙ SiLU'(c); dWa = dadaᵀ·SiLU(c); dba = Σ dada
  p.adaBackward(DADA, C, WA!, dc.buffer, dWa!.buffer, dBa!.buffer, into !== undefined);

  const outs = [dx.tensor, dc.tensor, ...dW.map((e) => e.tensor)];
  rk.run(p.ops, [s.x, s.qs, s.k, s.v, s.p, s.merged, s.a, s.x1, s.h, s.m, ...(s.g ? [s.g] : []), c, dy, ...w, ...outs]);
  return outs;
}
