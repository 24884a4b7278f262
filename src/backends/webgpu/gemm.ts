// WGSL generators for the direct-dispatch kernels (src/backends/webgpu/raw.ts): a tiled float32 matmul
// whose operand loads and result store are WGSL expressions given by the caller — so transposes, head
// splits and merges, a gate or an activation applied to an operand, the bias, a gated residual or an
// activation's gradient in the epilogue cost no extra pass over memory — and the row and column
// reductions of the DiT block (LayerNorm + modulate forward and backward, softmax and its backward,
// per-sample and per-column sums). Shapes are baked in as constants; every kernel binds plain f32
// storage arrays, nothing else.
//
// Matmul: C[b, i, j] = Σ_k A(b, i, k)·B(b, k, j) for b < batch, i < M, j < N, k < K. A workgroup of
// 16×16 threads computes a tile of C of 64 or 128 rows × 64 or 128 columns (perThread), each thread
// 4 or 8 × 4 or 8 values at rows ty + 16r and columns tx + 16c (consecutive threads store consecutive
// columns); K advances 16 at a time through tiles of A and B staged in workgroup memory.
// Out-of-range loads read 0 and out-of-range stores are skipped.

import type { MixedTileName } from './gemm-mixed.js';
import { invariant } from '../../util/errors.js';

export interface Binding {
  name: string;
  /** written by the kernel (read_write); else read-only */
  write?: boolean;
  /**
   * element type (default f32; i32 for TF.js's int32 tensors, e.g. labels; f16 for a float32 tensor that
   * holds f16 values two per element, only on a device with shader-f16 (declare enables f16); vec4<f32>
   * and vec4<f16> for a second view of an operand's buffer read 4 values at a time, gemm-mixed.ts vectorViews;
   * vec2<u32> for such a view of f16 values read as their raw bits, gemm-mixed.ts packedRuns)
   */
  type?: ElementType;
}

/** The element type of a binding's array. */
export type ElementType = 'f32' | 'i32' | 'f16' | 'vec4<f32>' | 'vec4<f16>' | 'vec2<u32>';

export interface MatMulSpec {
  batch: number;
  M: number;
  N: number;
  K: number;
  bindings: Binding[];
  /** WGSL expression of A(b, i, k), with u32 variables b, i, k in scope */
  a: string;
  /** WGSL expression of B(b, k, j), with u32 variables b, k, j in scope */
  b: string;
  /** WGSL statements storing the f32 `v` = C(b, i, j), with u32 variables b, i, j in scope */
  store: string;
  /** which index of A is contiguous in memory ('k': rows of A; 'i': columns), for coalesced tile loads */
  aFast: 'i' | 'k';
  /** which index of B is contiguous in memory ('j': rows of B; 'k': columns) */
  bFast: 'j' | 'k';
  /** extra WGSL functions the expressions call */
  helpers?: string;
  /** larger tiles where the shape allows (perThread); default true */
  wide?: Wide;
  /**
   * split-K: K is the chunk of the reduction each batch index b computes, and the expressions see the
   * global k = b·K + k (< kTotal); see splitK() for the partial sums and their reduction
   */
  kTotal?: number;
  /**
   * 'mixed': operands rounded to f16 and multiplied on the tensor cores, f32 accumulation
   * (gemm-mixed.ts; needs the mixed-precision device); default 'fp32'. Read by Plan.matMul.
   */
  precision?: 'fp32' | 'mixed';
  /** at 'mixed', the tile of gemm-mixed.ts MIXED_TILES to use instead of mixedKernel's choice */
  mixedTile?: MixedTileName;
  /**
   * at 'mixed' only (aFast 'i'): WGSL statements run once per row i of C with the f32 `v` = Σ_k A(b, i, k)
   * over the product's K (its chunk with split-K), A's values before rounding to f16 — a weight
   * gradient's bias gradient from the staging of dYᵀ (Plan.weightGrad), instead of a column of ones in B
   */
  aRowSum?: string;
  /**
   * up to 4 WGSL expressions of (b, i, j) that `store` reads as w0, w1, … (f32): the values an epilogue
   * reads besides C (a residual, a gate, a bias, the forward's pre-activation). The tensor-core kernel
   * reads them for all of a thread's values of a result matrix before any of their stores, so that the
   * loads overlap instead of waiting one after another behind the stores (gemm-mixed.ts, hoistLoads);
   * every kernel reads them through epiLoad(b, i, j) and stores through storeCW (matMulAccessWgsl)
   */
  epilogueLoads?: string[];
}

const TK = 16;

/**
 * Values of C per thread (rows × columns) for an M × N product: 8 rows where M ≥ 512, and 8 columns
 * where N ≥ 512 too (128-wide tiles: twice the FMAs per value read from workgroup memory; measured on
 * the H200: DiT-S/2's fc1 −24 %, dmod2 −18 %), else 4 (64-wide tiles, so that short dimensions, e.g.
 * attention's 64-wide heads, waste no threads and small products keep enough workgroups). An epilogue
 * that writes several outputs ran ~10× slower at 8 × 8 on the H200 (the qkv head split at S/2; the
 * gated-residual epilogues of proj and fc2 at XL/2, which were fine at 8 × 4): those ask for `wide:
 * 'rows'` (8 × 4 at most) or `false` (4 × 4; also FPDM's [z, inj] load, 25 % slower at 8 × 8).
 * Tiles are 16 threads × that.
 */
export function perThread(M: number, N: number, wide: Wide = true): { rm: number; rn: number } {
  if (wide === false) return { rm: 4, rn: 4 };
  const rm = M >= 512 ? 8 : 4;
  return { rm, rn: wide === true && N >= 512 && M >= 512 ? 8 : 4 };
}

/** perThread's choice: true (8 × 8 where the shape allows), 'rows' (8 × 4 at most), false (4 × 4) */
export type Wide = boolean | 'rows';

/** The bindings as WGSL declarations, in binding order. */
export function declare(bindings: Binding[]): string {
  // f16 arrays need the extension (a kernel's header may enable it again: allowed)
  const f16 = bindings.some((b) => b.type === 'f16' || b.type === 'vec4<f16>') ? 'enable f16;\n' : '';
  return (
    f16 +
    bindings
      .map(
        (b, i) =>
          `@group(0) @binding(${i}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name}: array<${b.type ?? 'f32'}>;`,
      )
      .join('\n')
  );
}

/** A u32 literal. */
export const u = (n: number): string => `${n >>> 0}u`;

/** f32 literal of a JS number (the float32 constant the TF.js path multiplies by). */
export const lit = (v: number): string => {
  const s = Math.fround(v).toPrecision(9);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
};

/**
 * The spec's operands and epilogue as WGSL functions (after the constants M, N, K): loadA(b, i, kl),
 * loadB(b, kl, j) with kl < K the index within the batch's reduction chunk (out of range: 0), and
 * storeC(b, i, j, v). Shared by every matmul kernel, so that they all read a spec alike.
 */
export function matMulAccessWgsl(s: MatMulSpec): string {
  const kGlobal = s.kTotal === undefined ? 'let k = kl;' : 'let k = b * K + kl;';
  const kBound = s.kTotal === undefined ? 'kl >= K' : `kl >= K || k >= ${u(s.kTotal)}`;
  return `fn loadA(b: u32, i: u32, kl: u32) -> f32 {
  ${kGlobal}
  if (i >= M || ${kBound}) { return 0.0; }
  return ${s.a};
}
fn loadB(b: u32, kl: u32, j: u32) -> f32 {
  ${kGlobal}
  if (j >= N || ${kBound}) { return 0.0; }
  return ${s.b};
}
${storeWgsl(s)}`;
}

/**
 * storeC(b, i, j, v); with epilogueLoads also epiLoad(b, i, j) (the values as a vec4, unused lanes 0) and
 * storeCW(b, i, j, v, w) (the store with w0… = w.x…), storeC calling the two.
 */
function storeWgsl(s: MatMulSpec): string {
  const loads = s.epilogueLoads ?? [];
  if (loads.length === 0)
    return `fn storeC(b: u32, i: u32, j: u32, v: f32) {
  ${s.store}
}`;
  invariant(loads.length <= 4, () => `at most 4 epilogue loads, got ${loads.length}`);
  const lanes = ['x', 'y', 'z', 'w'];
  const values = [0, 1, 2, 3].map((x) => loads[x] ?? '0.0');
  return `fn epiLoad(b: u32, i: u32, j: u32) -> vec4<f32> {
  return vec4<f32>(${values.join(', ')});
}
fn storeCW(b: u32, i: u32, j: u32, v: f32, w: vec4<f32>) {
  ${loads.map((_, x) => `let w${x} = w.${lanes[x]};`).join(' ')}
  ${s.store}
}
fn storeC(b: u32, i: u32, j: u32, v: f32) {
  storeCW(b, i, j, v, epiLoad(b, i, j));
}`;
}

export function matMulWgsl(s: MatMulSpec): string {
  const { rm, rn } = perThread(s.M, s.N, s.wide);
  const BM = 16 * rm;
  const BN = 16 * rn;
  // A tile: BM (i) × 16 (k) values, BM/16 per thread; B tile: 16 (k) × BN (j)
  const aIdx =
    s.aFast === 'k' ? `let ii = e / ${u(TK)}; let kk = e % ${u(TK)};` : `let ii = e % ${u(BM)}; let kk = e / ${u(BM)};`;
  const bIdx =
    s.bFast === 'j' ? `let jj = e % ${u(BN)}; let kk = e / ${u(BN)};` : `let jj = e / ${u(TK)}; let kk = e % ${u(TK)};`;
  return `
${declare(s.bindings)}
const M = ${u(s.M)};
const N = ${u(s.N)};
const K = ${u(s.K)};
var<workgroup> As: array<array<f32, ${BM}>, ${TK}>;
var<workgroup> Bs: array<array<f32, ${BN}>, ${TK}>;
${s.helpers ?? ''}
${matMulAccessWgsl(s)}
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wg.z;
  let row0 = wg.y * ${u(BM)};
  let col0 = wg.x * ${u(BN)};
  let tid = lid.y * 16u + lid.x;
  var acc: array<array<f32, ${rn}>, ${rm}>;
  for (var k0 = 0u; k0 < K; k0 = k0 + ${u(TK)}) {
    for (var l = 0u; l < ${u(rm)}; l = l + 1u) {
      let e = tid + l * 256u;
      ${aIdx}
      As[kk][ii] = loadA(b, row0 + ii, k0 + kk);
    }
    for (var l = 0u; l < ${u(rn)}; l = l + 1u) {
      let e = tid + l * 256u;
      ${bIdx}
      Bs[kk][jj] = loadB(b, k0 + kk, col0 + jj);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${u(TK)}; kk = kk + 1u) {
      var av: array<f32, ${rm}>;
      var bv: array<f32, ${rn}>;
      for (var r = 0u; r < ${u(rm)}; r = r + 1u) { av[r] = As[kk][lid.y + 16u * r]; }
      for (var c = 0u; c < ${u(rn)}; c = c + 1u) { bv[c] = Bs[kk][lid.x + 16u * c]; }
      for (var r = 0u; r < ${u(rm)}; r = r + 1u) {
        for (var c = 0u; c < ${u(rn)}; c = c + 1u) { acc[r][c] = fma(av[r], bv[c], acc[r][c]); }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < ${u(rm)}; r = r + 1u) {
    let i = row0 + lid.y + 16u * r;
    if (i >= M) { continue; }
    for (var c = 0u; c < ${u(rn)}; c = c + 1u) {
      let j = col0 + lid.x + 16u * c;
      if (j < N) { storeC(b, i, j, acc[r][c]); }
    }
  }
}`;
}

/** Workgroup counts of a matmul. */
export function matMulGroups(s: Pick<MatMulSpec, 'batch' | 'M' | 'N' | 'wide'>): [number, number, number] {
  const { rm, rn } = perThread(s.M, s.N, s.wide);
  return [Math.ceil(s.N / (16 * rn)), Math.ceil(s.M / (16 * rm)), s.batch];
}

// ---- row kernels: one workgroup per row --------------------------------------------------------------

export const ROW_WG = 128;

/** Workgroup tree sums over the ROW_WG threads (two buffers, so two sums can be in flight); every thread gets the total. */
const ROW_SUMS = [0, 1]
  .map(
    (k) => `
var<workgroup> red${k}: array<f32, ${ROW_WG}>;
fn rowSum${k}(v: f32, tid: u32) -> f32 {
  red${k}[tid] = v;
  workgroupBarrier();
  for (var s = ${u(ROW_WG / 2)}; s > 0u; s = s >> 1u) {
    if (tid < s) { red${k}[tid] = red${k}[tid] + red${k}[tid + s]; }
    workgroupBarrier();
  }
  let total = red${k}[0];
  workgroupBarrier();
  return total;
}`,
  )
  .join('\n').concat(`
fn rowMax(v: f32, tid: u32) -> f32 {
  red0[tid] = v;
  workgroupBarrier();
  for (var s = ${u(ROW_WG / 2)}; s > 0u; s = s >> 1u) {
    if (tid < s) { red0[tid] = max(red0[tid], red0[tid + s]); }
    workgroupBarrier();
  }
  let total = red0[0];
  workgroupBarrier();
  return total;
}`);

/** A row kernel: `body` runs with u32 `row` (< rows) and `tid` (< ROW_WG) in scope; rows laid out by groups2d. */
export function rowKernelWgsl(bindings: Binding[], rows: number, body: string, helpers = ''): string {
  const gx = Math.min(rows, 65535);
  return `
${declare(bindings)}
${ROW_SUMS}
${helpers}
@compute @workgroup_size(${ROW_WG}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wg.y * ${u(gx)} + wg.x;
  if (row >= ${u(rows)}) { return; }
  let tid = lid.x;
  ${body}
}`;
}

// ---- element kernels: one thread per output ---------------------------------------------------------

export const EW_WG = 256;

/** One thread per index < count (u32 `idx` in scope); threads laid out in 2-D past 65535 workgroups. */
export function elementKernelWgsl(bindings: Binding[], count: number, body: string, helpers = ''): string {
  const groups = Math.ceil(count / EW_WG);
  const gx = Math.min(groups, 65535);
  return `
${declare(bindings)}
${helpers}
@compute @workgroup_size(${EW_WG}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let idx = (wg.y * ${u(gx)} + wg.x) * ${u(EW_WG)} + lid.x;
  if (idx >= ${u(count)}) { return; }
  ${body}
}`;
}

/**
 * Column sums: out(j) = Σ_{r < rows} E(r, j) for j < cols, where `expr` is the WGSL expression of E with
 * u32 r, j in scope and `store` stores the f32 `v` at column j. A workgroup of 16 columns × 16 row lanes;
 * each lane sums every 16th row, the lanes are added in a fixed order.
 */
export function colSumWgsl(
  bindings: Binding[],
  rows: number,
  cols: number,
  expr: string,
  store: string,
  helpers = '',
): string {
  return `
${declare(bindings)}
${helpers}
var<workgroup> part: array<array<f32, 16>, 16>;
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wg.x * 16u + lid.x;
  var s = 0.0;
  if (j < ${u(cols)}) {
    for (var r = lid.y; r < ${u(rows)}; r = r + 16u) { s = s + ${expr}; }
  }
  part[lid.y][lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && j < ${u(cols)}) {
    var v = 0.0;
    for (var l = 0u; l < 16u; l = l + 1u) { v = v + part[l][lid.x]; }
    ${store}
  }
}`;
}

export function colSumGroups(cols: number): [number, number, number] {
  return [Math.ceil(cols / 16), 1, 1];
}

export function elementGroups(count: number): [number, number, number] {
  const groups = Math.ceil(count / EW_WG);
  return groups <= 65535 ? [groups, 1, 1] : [65535, Math.ceil(groups / 65535), 1];
}

export function rowGroups(rows: number): [number, number, number] {
  return rows <= 65535 ? [rows, 1, 1] : [65535, Math.ceil(rows / 65535), 1];
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * WGSL helpers: tanh-GELU as x·σ(2u) with the op order of src/models/blocks.ts, its gradient as
 * blocks.ts geluTanhBackward, SiLU and SiLU'.
 */
export const ACTIVATIONS = `
fn geluSig(v: f32) -> f32 {
  let g0 = v * v;
  let g1 = g0 * v;
  let g2 = g1 * ${lit(0.044715)};
  let g3 = v + g2;
  let g4 = g3 * ${lit(2 * SQRT_2_OVER_PI)};
  return 1.0 / (1.0 + exp(-1.0 * g4));
}
fn gelu(v: f32) -> f32 { return v * geluSig(v); }
fn geluGrad(v: f32, dy: f32) -> f32 {
  let sg = geluSig(v);
  let i0 = v * v;
  let i1 = i0 * ${lit(3 * 0.044715)};
  let i2 = i1 + 1.0;
  let i3 = i2 * ${lit(2 * SQRT_2_OVER_PI)};
  let inner = i3 * v;
  let s0 = 1.0 - sg;
  let s1 = s0 * sg;
  let second = s1 * inner;
  return dy * (sg + second);
}
fn silu(v: f32) -> f32 { return v * (1.0 / (1.0 + exp(-v))); }
fn siluGrad(v: f32) -> f32 {
  let sg = 1.0 / (1.0 + exp(-v));
  return sg * (1.0 + v * (1.0 - sg));
}`;

// ---- whole-tensor reductions -------------------------------------------------------------------------

/** workgroups of the first pass of a whole-tensor reduction (each writes its partial sums) */
export const REDUCE_PARTS = 256;

/**
 * First pass of Σ over all n elements of `terms` (one or more WGSL f32 expressions of u32 `e`): each of
 * REDUCE_PARTS workgroups sums a grid-stride share of the elements and writes one partial per term to
 * PARTS[term·REDUCE_PARTS + workgroup], in a fixed order. With `unroll` U > 1 a thread evaluates U
 * elements of its share (a grid stride apart) per loop step before adding them, so that U loads per term
 * are in flight instead of one: a large reduction is otherwise bound by memory latency (256 workgroups of
 * 256 threads hold too few loads in flight to stream from the GPU's memory at full bandwidth).
 */
export function partialSumsWgsl(bindings: Binding[], n: number, terms: string[], helpers = '', unroll = 1): string {
  const stride = REDUCE_PARTS * EW_WG;
  const ks = terms.map((_, k) => k);
  const qs = Array.from({ length: unroll }, (_, q) => q);
  // U elements per step while all are in range, then the rest one at a time (both in grid-stride order)
  const unrolled =
    unroll > 1
      ? `
  for (; e + ${u((unroll - 1) * stride)} < ${u(n)}; e = e + ${u(unroll * stride)}) {
    ${ks.map((k) => qs.map((q) => `let t${k}_${q} = term${k}(e + ${u(q * stride)});`).join(' ')).join('\n    ')}
    ${ks.map((k) => `acc${k} = acc${k} + (${qs.map((q) => `t${k}_${q}`).join(' + ')});`).join('\n    ')}
  }`
      : '';
  return `
${declare(bindings)}
${helpers}
${ks.map((k) => `var<workgroup> sh${k}: array<f32, ${EW_WG}>;`).join('\n')}
${unroll > 1 ? ks.map((k) => `fn term${k}(e: u32) -> f32 { return ${terms[k]}; }`).join('\n') : ''}
@compute @workgroup_size(${EW_WG}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  ${ks.map((k) => `var acc${k} = 0.0;`).join(' ')}
  var e = wg.x * ${u(EW_WG)} + lid.x;${unrolled}
  for (; e < ${u(n)}; e = e + ${u(stride)}) {
    ${terms.map((t, k) => `acc${k} = acc${k} + ${t};`).join('\n    ')}
  }
  ${terms.map((_, k) => `sh${k}[lid.x] = acc${k};`).join(' ')}
  workgroupBarrier();
  for (var s = ${u(EW_WG / 2)}; s > 0u; s = s >> 1u) {
    if (lid.x < s) { ${terms.map((_, k) => `sh${k}[lid.x] = sh${k}[lid.x] + sh${k}[lid.x + s];`).join(' ')} }
    workgroupBarrier();
  }
  if (lid.x == 0u) { ${terms.map((_, k) => `PARTS[${u(k * REDUCE_PARTS)} + wg.x] = sh${k}[0];`).join(' ')} }
}`;
}

/**
 * Second pass: one workgroup sums the REDUCE_PARTS partials of each of `count` terms (tree order) and
 * runs `finish`, with the totals in `total0`, `total1`, … in scope (thread 0 only).
 */
export function finishSumsWgsl(bindings: Binding[], count: number, finish: string): string {
  const ks = Array.from({ length: count }, (_, k) => k);
  return `
${declare(bindings)}
${ks.map((k) => `var<workgroup> sh${k}: array<f32, ${REDUCE_PARTS}>;`).join('\n')}
@compute @workgroup_size(${REDUCE_PARTS}, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  ${ks.map((k) => `sh${k}[lid.x] = PARTS[${u(k * REDUCE_PARTS)} + lid.x];`).join(' ')}
  workgroupBarrier();
  for (var s = ${u(REDUCE_PARTS / 2)}; s > 0u; s = s >> 1u) {
    if (lid.x < s) { ${ks.map((k) => `sh${k}[lid.x] = sh${k}[lid.x] + sh${k}[lid.x + s];`).join(' ')} }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    ${ks.map((k) => `let total${k} = sh${k}[0];`).join(' ')}
    ${finish}
  }
}`;
}

/** A matmul whose reduction over K is split across `splits` workgroup layers (see splitK). */
export interface SplitK {
  splits: number;
  /** K per split */
  chunk: number;
}

/**
 * How to split a matmul's reduction so that it fills the GPU: weight gradients (K = tokens·batch, M·N
 * the weight) and small-M products have too few output tiles for ≈ 132 SMs; their K is split in
 * powers of two until there are ≥ 512 workgroups or a chunk would fall below 128.
 */
export function splitK(M: number, N: number, K: number): SplitK {
  const { rm, rn } = perThread(M, N);
  const tiles = Math.ceil(M / (16 * rm)) * Math.ceil(N / (16 * rn));
  let splits = 1;
  while (tiles * splits < 512 && K / (splits * 2) >= 128) splits *= 2;
  return { splits, chunk: Math.ceil(K / splits) };
}

/**
 * The reduction of split-K partial sums PART [splits, M, N]: v = Σ_s PART[s, i, j] (in split order),
 * then `store` with u32 i, j and f32 v in scope; one thread per (i, j).
 */
export function splitReduceWgsl(
  bindings: Binding[],
  M: number,
  N: number,
  splits: number,
  store: string,
  helpers = '',
): string {
  return elementKernelWgsl(
    bindings,
    M * N,
    `
  var v = 0.0;
  for (var s = 0u; s < ${u(splits)}; s = s + 1u) { v = v + PART[s * ${u(M * N)} + idx]; }
  let i = idx / ${u(N)};
  let j = idx % ${u(N)};
  ${store}`,
    helpers,
  );
}
