// The attention of a DiT block as one kernel on the tensor cores (mixed precision): merged = softmax(q·kᵀ)·v
// per (sample, head), without the t × t scores in memory — where the three-kernel path (scores, softmax,
// P·v: dit-block.ts) writes the scores, reads and writes them again as P, and reads P once more.
//
// A workgroup takes BQ = 16·sgs query rows of one (sample, head) and walks the keys in chunks of KC:
//   pass 1  per chunk: K staged to workgroup memory as f16, each subgroup's 16 × KC scores S = q·kᵀ on
//           the subgroup matrices (f32 accumulation) stored to workgroup memory, and each row's running
//           maximum and sum of exp(S − max) updated (two threads per row, each half of the chunk's
//           columns; the halves combined at the end);
//   pass 2  per chunk: S again, P = exp(S − max) / sum rounded to f16 into workgroup memory (with `save`,
//           also written to P in f32 for the backward), v staged, and O += P·v on the subgroup matrices.
// At t = 256 (every DiT/FPDM image size here) the whole row fits four chunks; computing S twice (it costs
// a few GFLOP per block) keeps the O accumulators free of the per-row rescaling an online softmax would
// need (a subgroup matrix cannot be scaled by row). q arrives scaled by 1/√dh (dit-block.ts qkv).
//
// The arithmetic is the three-kernel path's at mixed precision: q, k, v and P rounded to f16, products
// accumulated in f32, the softmax in f32 (only the order of the sums differs). `emulate` generates the
// same kernel with plain f32 arithmetic on the same workgroup arrays and offsets in place of the subgroup
// matrices (as gemm-mixed.ts does), so the tiling, masking and softmax can be checked on a device without
// f16 or subgroup matrices (tests/backends/webgpu-attention.test.ts).
import { declare, u, type Binding } from './gemm.js';
import { SUBGROUP_MATRIX_HEADER } from './gemm-mixed.js';
import type { MixedDeviceInfo } from './device.js';
import { invariant, UserError } from '../../util/errors.js';

/** Rows per subgroup and the subgroup-matrix shape the kernel uses (M16 N16 K16 f16 → f32). */
const S16 = 16;
/** f16 values of padding per row of the staged q, k / v and P (rows stay 16-byte aligned) */
const PAD = 8;
/** the logical subgroup of the kernel's row work (softmax, stores): 32 threads, two per row of 16 */
const LANES = 32;

/** How a workgroup splits the work: sgs subgroups of 16 query rows each, kc keys per chunk. */
export interface AttentionTile {
  sgs: number;
  kc: number;
}

/** The tile on a device with ≥ 48 KiB of workgroup memory: 64 query rows, chunks of 64 keys. */
export const ATTENTION_TILE: AttentionTile = { sgs: 4, kc: 64 };

/**
 * ATTENTION_TILE, or the tile named by the environment variable FPDM_ATTENTION_TILE as `sgs,kc` (e.g. `4,32`;
 * recorded in the bench's header), for comparing tiles in the model's step.
 */
export function attentionTile(): AttentionTile {
  const v = process.env.FPDM_ATTENTION_TILE;
  if (v === undefined || v === '') return ATTENTION_TILE;
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(v);
  const [sgs, kc] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || sgs < 1 || kc < 32 || kc % 32 !== 0)
    throw new UserError(
      `FPDM_ATTENTION_TILE=${v}: expected "subgroups,keys per chunk" with keys a multiple of 32, e.g. "4,64"`,
    );
  return { sgs, kc };
}

/** The device-dependent choices of the kernel. */
export interface AttentionKernel {
  /** the device's largest subgroup size (the workgroup is sgs subgroups of at least 32 threads) */
  subgroupSize: number;
  tile: AttentionTile;
  /** plain f32 arithmetic in place of f16 subgroup matrices (see the file comment) */
  emulate?: boolean;
}

/** The attention's shape: BH = n·H (sample, head) pairs of t tokens × dh; merged [n, t, d = H·dh]. */
export interface AttentionShape {
  BH: number;
  H: number;
  t: number;
  dh: number;
}

/** dh padded to the subgroup matrices' 16 */
function paddedDh(dh: number): number {
  return Math.ceil(dh / S16) * S16;
}

/** Whether q, k and v are read 4 values at a time (bound as vec4<f32>: their rows start at multiples of 4). */
export function vectorAttention(dh: number): boolean {
  return dh % 4 === 0;
}

/** Threads per workgroup. */
export function attentionThreads(k: AttentionKernel): number {
  return k.tile.sgs * (k.emulate === true ? LANES : Math.max(LANES, k.subgroupSize));
}

/** Bytes of workgroup memory the kernel uses (to check against the device limit). */
export function attentionWorkgroupBytes(s: Pick<AttentionShape, 'dh'>, k: AttentionKernel): number {
  const { sgs, kc } = k.tile;
  const half = k.emulate === true ? 4 : 2;
  const DS = paddedDh(s.dh) + PAD;
  const BQ = sgs * S16;
  return half * (BQ * DS + kc * DS + BQ * (kc + PAD)) + 4 * BQ * (kc + 4);
}

/** Workgroups: query blocks × (sample, head) pairs. */
export function attentionGroups(s: AttentionShape, k: AttentionKernel): [number, number, number] {
  return [Math.ceil(s.t / (k.tile.sgs * S16)), s.BH, 1];
}

/**
 * Whether the DiT block's forward takes the fused kernel at mixed precision: only when the environment
 * variable FPDM_FUSED_ATTENTION is 1 (recorded in the bench's header). Off by default: measured on the
 * H200 in the model's training step (results/bench/NOTES.md §16), it ran 0.59 ms per DiT-XL/2 block call
 * (P saved) against 0.46 for the three kernels (scores, softmax, P·v), and 0.20 against 0.16 at DiT-S/2;
 * sampling, where it writes no P, moved by 2–5 % in either direction.
 */
export function fusedAttentionOn(): boolean {
  return process.env.FPDM_FUSED_ATTENTION === '1';
}

/**
 * The kernel on the mixed-precision device for this shape, where the device can run it: an M16 N16 K16
 * f16 → f32 subgroup-matrix config, and the workgroup memory and threads of the tile (attentionTile).
 */
export function attentionKernel(device: MixedDeviceInfo, s: Pick<AttentionShape, 'dh'>): AttentionKernel | undefined {
  if (!device.configs.some((c) => c.M === S16 && c.N === S16 && c.K === S16)) return undefined;
  const k: AttentionKernel = { subgroupSize: device.subgroupSize, tile: attentionTile() };
  const fits = attentionWorkgroupBytes(s, k) <= device.maxWorkgroupBytes && attentionThreads(k) <= device.maxThreads;
  return fits ? k : undefined;
}

/**
 * The kernel's WGSL. Bindings, in this order: Q, KK, V [BH, t, dh] (read), MERGED [n, t, H·dh] (written),
 * and with `save` P [BH, t, t] (written: the softmax, for the backward); where vectorAttention(dh), Q, KK
 * and V are bound as arrays of vec4<f32>.
 */
export function attentionWgsl(s: AttentionShape, k: AttentionKernel, save: boolean): string {
  const emu = k.emulate === true;
  const { sgs, kc } = k.tile;
  invariant(kc % S16 === 0 && kc % LANES === 0, () => `attention: ${kc} keys per chunk is not a multiple of 32`);
  const { t, dh, H } = s;
  const DP = paddedDh(dh);
  const DS = DP + PAD; // row stride of the staged q and k / v (f16)
  const BQ = sgs * S16;
  const KS = kc + 4; // row stride of the scores in workgroup memory (f32; 16 bytes of padding per row)
  const PS = kc + PAD; // row stride of P (f16)
  const NC = Math.ceil(t / kc);
  const WG = attentionThreads(k);
  const HT = emu ? 'f32' : 'f16';
  const D = H * dh;
  const NEG = '-3.402823e38';

  // ---- the subgroup-matrix operations (or their f32 emulation by the logical subgroup) ----
  // element e = lane + 32·q (q < 8) of a 16 × 16 matrix is emulated thread `lane`'s, at row e / 16, column e % 16
  const Q8 = (S16 * S16) / LANES;
  // explicitly zero: a declaration without initializer in a loop body is not zeroed on every iteration by
  // every compiler (SwiftShader's kept the previous chunk's sums)
  const acc = (name: string) =>
    emu ? `var ${name} = array<f32, ${Q8}>();` : `var ${name} = subgroup_matrix_result<f32, ${S16}, ${S16}>();`;
  /**
   * acc_n += left · right_n for each n of `rights`: left 16 × 16 row-major at aOff (stride aSt) of `A`;
   * right_n 16 × 16 at its offset of `B`, row-major (x, c) at off + x·st + c or column-major at off + c·st + x
   */
  const macs = (
    A: string,
    aOff: string,
    aSt: number,
    B: string,
    rights: Array<{ acc: string; off: string }>,
    bSt: number,
    bMajor: 'row_major' | 'col_major',
  ): string => {
    if (!emu) {
      const left = `subgroup_matrix_left<f16, ${S16}, ${S16}>`;
      const right = `subgroup_matrix_right<f16, ${S16}, ${S16}>`;
      return `{
        let l = subgroupMatrixLoad<${left}, row_major>(&${A}, ${aOff}, ${u(aSt)});
        ${rights
          .map(
            (r) =>
              `${r.acc} = subgroupMatrixMultiplyAccumulate(l, subgroupMatrixLoad<${right}, ${bMajor}>(&${B}, ${r.off}, ${u(bSt)}), ${r.acc});`,
          )
          .join('\n        ')}
      }`;
    }
    const rightAt = bMajor === 'row_major' ? `x * ${u(bSt)} + ec` : `ec * ${u(bSt)} + x`;
    return `for (var q = 0u; q < ${u(Q8)}; q = q + 1u) {
        let e = lane + q * ${u(LANES)};
        let er = e / ${u(S16)};
        let ec = e % ${u(S16)};
        for (var x = 0u; x < ${u(S16)}; x = x + 1u) {
          let a = ${A}[${aOff} + er * ${u(aSt)} + x];
          ${rights.map((r) => `${r.acc}[q] = ${r.acc}[q] + a * ${B}[${r.off} + ${rightAt}];`).join('\n          ')}
        }
      }`;
  };
  /** the 16 × 16 result `name` stored row-major to Ss at off, stride KS */
  const store = (name: string, off: string) =>
    emu
      ? `for (var q = 0u; q < ${u(Q8)}; q = q + 1u) { let e = lane + q * ${u(LANES)}; Ss[${off} + (e / ${u(S16)}) * ${u(KS)} + e % ${u(S16)}] = ${name}[q]; }`
      : `subgroupMatrixStore<row_major>(&Ss, ${off}, ${name}, ${u(KS)});`;

  // the scores of chunk j0 for the subgroup's 16 rows, into Ss rows sg·16.. (KC / 16 result matrices)
  const NS = kc / S16;
  const scores = `if (sg < ${u(sgs)}) {
      ${Array.from({ length: NS }, (_, n) => acc(`s${n}`)).join('\n      ')}
      ${Array.from({ length: DP / S16 }, (_, x) =>
        macs(
          'Qs',
          `sg * ${u(S16 * DS)} + ${u(x * S16)}`,
          DS,
          'KVs',
          Array.from({ length: NS }, (_, n) => ({ acc: `s${n}`, off: u(n * S16 * DS + x * S16) })),
          DS,
          'col_major',
        ),
      ).join('\n      ')}
      ${Array.from({ length: NS }, (_, n) => store(`s${n}`, `sg * ${u(S16 * KS)} + ${u(n * S16)}`)).join('\n      ')}
    }`;
  // staging: a tile of rows × DP values of q, k or v (rows ≥ t and columns ≥ dh as 0) in runs of U (4 where
  // dh allows: the arrays bound as vec4<f32>), each thread's runs e = tid + l·WG read
  // into registers R first (all in flight at once; for k and v one step ahead of their use) and written to
  // workgroup memory as f16 later
  const U = vectorAttention(dh) ? 4 : 1;
  const RU = DP / U; // runs per row
  const runs = (rowsN: number) => {
    invariant((rowsN * RU) % WG === 0, () => `attention: ${rowsN} × ${RU} runs do not divide among ${WG} threads`);
    return (rowsN * RU) / WG;
  };
  const NU = runs(kc);
  const VT = U === 4 ? 'vec4<f32>' : 'f32';
  const load = (
    src: string,
    reg: string,
    rowsN: number,
    row0: string,
  ) => `for (var l = 0u; l < ${u(runs(rowsN))}; l = l + 1u) {
      let e = tid + l * ${u(WG)};
      let row = ${row0} + e / ${u(RU)};
      let col = (e % ${u(RU)}) * ${u(U)};
      ${reg}[l] = ${VT}(0.0);
      if (row < ${u(t)} && col < ${u(dh)}) { ${reg}[l] = ${U === 4 ? `${src}[((base + row) * ${u(dh)} + col) / 4u]` : `${src}[(base + row) * ${u(dh)} + col]`}; }
    }`;
  const put = (dst: string, reg: string, rowsN: number) => `for (var l = 0u; l < ${u(runs(rowsN))}; l = l + 1u) {
      let e = tid + l * ${u(WG)};
      let at = (e / ${u(RU)}) * ${u(DS)} + (e % ${u(RU)}) * ${u(U)};
      ${U === 4 ? ['x', 'y', 'z', 'w'].map((c, i) => `${dst}[at + ${u(i)}] = ${HT}(${reg}[l].${c});`).join(' ') : `${dst}[at] = ${HT}(${reg}[l]);`}
    }`;
  // the logical subgroup's thread (row r of its 16, half hf of the chunk's columns: hf + 2·q)
  const srow = `G * ${u(S16 * KS)} + r * ${u(KS)}`;

  const header = emu ? '' : SUBGROUP_MATRIX_HEADER;
  const bindings: Binding[] = [
    ...(['Q', 'KK', 'V'] as const).map((name) => ({ name, ...(U === 4 ? { type: 'vec4<f32>' as const } : {}) })),
    { name: 'MERGED', write: true },
    ...(save ? [{ name: 'P', write: true }] : []),
  ];
  const builtins = emu
    ? '@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32'
    : '@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32';
  return `${header}
${declare(bindings)}
var<workgroup> Qs: array<${HT}, ${BQ * DS}>;
var<workgroup> KVs: array<${HT}, ${kc * DS}>;
var<workgroup> Ps: array<${HT}, ${BQ * PS}>;
var<workgroup> Ss: array<f32, ${BQ * KS}>;
@compute @workgroup_size(${WG}, 1, 1)
fn main(${builtins}) {
  // the logical subgroup G of 32 threads (the row work); hardware subgroup sg (the matrices)
  let G = tid / ${u(LANES)};
  let lane = tid % ${u(LANES)};
  ${emu ? 'let sg = G;' : ''}
  let r = lane % ${u(S16)};
  let hf = lane / ${u(S16)};
  let rows = G < ${u(sgs)};
  let bh = wg.y;
  let i0 = wg.x * ${u(BQ)};
  let base = bh * ${u(t)};
  {
    var RQ: array<${VT}, ${runs(BQ)}>;
    ${load('Q', 'RQ', BQ, 'i0')}
    ${put('Qs', 'RQ', BQ)}
  }
  var R: array<${VT}, ${NU}>;
  ${load('KK', 'R', kc, '0u')}
  // pass 1: each row's maximum and sum of exp(S − maximum), over this thread's half of the columns
  var mx = ${NEG};
  var sm = 0.0;
  for (var c0 = 0u; c0 < ${u(NC)}; c0 = c0 + 1u) {
    let j0 = c0 * ${u(kc)};
    workgroupBarrier();
    ${put('KVs', 'R', kc)}
    workgroupBarrier();
    // the next chunk of k (after the last, the first again: pass 2's) in flight during the scores
    ${load('KK', 'R', kc, `select(0u, j0 + ${u(kc)}, j0 + ${u(kc)} < ${u(NC * kc)})`)}
    ${scores}
    workgroupBarrier();
    if (rows) {
      var cm = ${NEG};
      for (var q = 0u; q < ${u(kc / 2)}; q = q + 1u) {
        let j = hf + 2u * q;
        if (j0 + j < ${u(t)}) { cm = max(cm, Ss[${srow} + j]); }
      }
      let mn = max(mx, cm);
      var add = 0.0;
      for (var q = 0u; q < ${u(kc / 2)}; q = q + 1u) {
        let j = hf + 2u * q;
        if (j0 + j < ${u(t)}) { add = add + exp(Ss[${srow} + j] - mn); }
      }
      sm = sm * exp(mx - mn) + add;
      mx = mn;
    }
  }
  // the row's two halves combined, through the first row of the logical subgroup's scores
  workgroupBarrier();
  if (rows) {
    Ss[G * ${u(S16 * KS)} + lane] = mx;
    Ss[G * ${u(S16 * KS)} + ${u(LANES)} + lane] = sm;
  }
  workgroupBarrier();
  var rmax = 0.0;
  var rinv = 0.0;
  if (rows) {
    let o = (lane + ${u(S16)}) % ${u(LANES)};
    let mo = Ss[G * ${u(S16 * KS)} + o];
    let so = Ss[G * ${u(S16 * KS)} + ${u(LANES)} + o];
    rmax = max(mx, mo);
    rinv = 1.0 / (sm * exp(mx - rmax) + so * exp(mo - rmax));
  }
  // pass 2: P per chunk, and O += P·v
  ${Array.from({ length: DP / S16 }, (_, n) => acc(`o${n}`)).join('\n  ')}
  for (var c0 = 0u; c0 < ${u(NC)}; c0 = c0 + 1u) {
    let j0 = c0 * ${u(kc)};
    workgroupBarrier();
    ${put('KVs', 'R', kc)}
    workgroupBarrier();
    // this chunk's v in flight during the scores
    ${load('V', 'R', kc, 'j0')}
    ${scores}
    workgroupBarrier();
    if (rows) {
      for (var q = 0u; q < ${u(kc / 2)}; q = q + 1u) {
        let j = hf + 2u * q;
        var pv = 0.0;
        if (j0 + j < ${u(t)}) { pv = exp(Ss[${srow} + j] - rmax) * rinv; }
        Ps[(G * ${u(S16)} + r) * ${u(PS)} + j] = ${HT}(pv);
        ${save ? `Ss[${srow} + j] = pv;` : ''}
      }
    }
    ${put('KVs', 'R', kc)}
    // the next chunk's k in flight during P·v
    ${load('KK', 'R', kc, `min(j0 + ${u(kc)}, ${u((NC - 1) * kc)})`)}
    workgroupBarrier();
    ${
      save
        ? `if (rows) {
      for (var rr = 0u; rr < ${u(S16)}; rr = rr + 1u) {
        let i = i0 + G * ${u(S16)} + rr;
        for (var q = 0u; q < ${u(kc / LANES)}; q = q + 1u) {
          let j = lane + q * ${u(LANES)};
          if (i < ${u(t)} && j0 + j < ${u(t)}) { P[(base + i) * ${u(t)} + j0 + j] = Ss[G * ${u(S16 * KS)} + rr * ${u(KS)} + j]; }
        }
      }
    }`
        : ''
    }
    if (sg < ${u(sgs)}) {
      ${Array.from({ length: NS }, (_, x) =>
        macs(
          'Ps',
          `sg * ${u(S16 * PS)} + ${u(x * S16)}`,
          PS,
          'KVs',
          Array.from({ length: DP / S16 }, (_, n) => ({ acc: `o${n}`, off: u(x * S16 * DS + n * S16) })),
          DS,
          'row_major',
        ),
      ).join('\n      ')}
    }
  }
  // O to merged [n, t, H·dh], one 16 × 16 matrix at a time through Ss
  ${Array.from(
    { length: DP / S16 },
    (_, n) => `workgroupBarrier();
  if (sg < ${u(sgs)}) { ${store(`o${n}`, `sg * ${u(S16 * KS)}`)} }
  workgroupBarrier();
  if (rows) {
    for (var e = lane; e < ${u(S16 * S16)}; e = e + ${u(LANES)}) {
      let i = i0 + G * ${u(S16)} + e / ${u(S16)};
      let dd = ${u(n * S16)} + e % ${u(S16)};
      if (i < ${u(t)} && dd < ${u(dh)}) {
        MERGED[((bh / ${u(H)}) * ${u(t)} + i) * ${u(D)} + (bh % ${u(H)}) * ${u(dh)} + dd] = Ss[G * ${u(S16 * KS)} + (e / ${u(S16)}) * ${u(KS)} + e % ${u(S16)}];
      }
    }
  }`,
  ).join('\n  ')}
}`;
}
