// Mixed-precision matmul on the tensor cores: the same spec as gemm.ts matMulWgsl (operands and
// epilogue as WGSL f32 expressions and statements, batch, split-K through kTotal, out-of-range loads
// read 0 and stores are skipped), with the operands rounded to f16 and multiplied by WGSL's subgroup
// matrices (`chromium_experimental_subgroup_matrix`), accumulating in f32. Needs the mixed-precision
// device (device.ts); f16 holds at most 65504, so a larger operand overflows (to ±inf or NaN).
//
// A workgroup of sgRows × sgCols subgroups computes a BM × BN tile of C (BM = sgRows·rows, BN =
// sgCols·cols); each subgroup a rows × cols block of it, as (rows / m) × (cols / n) result matrices of
// the subgroup-matrix shape m × n × kk (e.g. 16 × 16 × 16) held in registers. Per stage of TK values
// of k:
//   1. every thread loads its share of the A tile (BM × TK) and the B tile (TK × BN) through the spec's
//      expressions (f32) and writes them to workgroup memory as f16, in the order that keeps the
//      global reads coalesced: A row-major [BM][TK + PAD]; B [TK][BN + PAD] when j is contiguous
//      (bFast 'j', loaded row-major), else [BN][TK + PAD] (bFast 'k', loaded column-major);
//   2. each subgroup loads its left (A) and right (B) matrices from there and multiply-accumulates.
// At the end each subgroup stores one result matrix at a time (f32) to its own slice of workgroup
// memory, and its threads apply the spec's `store` to each element of it — so every epilogue of
// matMulWgsl works unchanged.
//
// `emulate` generates the same kernel with the subgroup-matrix loads, multiplies and stores replaced by
// plain f32 arithmetic on the same workgroup arrays, offsets and strides (and "subgroups" of
// subgroupSize consecutive threads): the tiling, staging and epilogue can then be checked against
// matMulWgsl on a device without f16 or subgroup matrices (tests/backends/webgpu-mixed-gemm.test.ts).
import { declare, matMulAccessWgsl, u, type Binding, type MatMulSpec } from './gemm.js';
import type { MixedDeviceInfo, MmaShape } from './device.js';
import { invariant, UserError } from '../../util/errors.js';

/** How a workgroup splits its tile of C among subgroups, and the K per stage. */
export interface MixedTile {
  /** subgroups along i (rows of C) and along j (columns) */
  sgRows: number;
  sgCols: number;
  /** rows and columns of C per subgroup: multiples of the subgroup-matrix M and N */
  rows: number;
  cols: number;
  /** values of k staged per step: a multiple of the subgroup-matrix K */
  tk: number;
  /** read the next stage's operands into registers while this stage multiplies */
  prefetch?: boolean;
  /**
   * the subgroup-matrix shape the tile is made for (its columns or k per stage a multiple of its N or K
   * only), where not the device's largest
   */
  mma?: MmaShape;
}

/** The part of a kernel's cache key that names its tile (Plan.matMul): every field that changes the code. */
export function tileKey(t: MixedTile): string {
  const mma = t.mma ? `m${t.mma.M}n${t.mma.N}k${t.mma.K}` : '';
  return `${t.sgRows * t.rows}x${t.sgCols * t.cols}k${t.tk}/${t.sgRows}x${t.sgCols}${t.prefetch === true ? 'p' : ''}${mma}`;
}

/**
 * Tiles named by the workgroup's tile of C (rows × columns), the k per stage and 'p' for prefetch, with 4
 * subgroups (the 8-subgroup ones say so), in the order mixedKernel prefers them; it chooses among the
 * unprefetched ones and then takes the prefetching twin where there is one (prefetchDefault). Workgroup
 * memory at M16 N16 K16 (mixedWorkgroupBytes), B row-major / column-major: 23040 / 24576 B, 14592 /
 * 16384, 18944 / 19456, 13824 / 14336, and as their unprefetched twins.
 */
export const MIXED_TILES = {
  '128x128k32': { sgRows: 2, sgCols: 2, rows: 64, cols: 64, tk: 32 },
  '128x128k16': { sgRows: 2, sgCols: 2, rows: 64, cols: 64, tk: 16 },
  '128x64k32': { sgRows: 2, sgCols: 2, rows: 64, cols: 32, tk: 32 },
  '64x64k32': { sgRows: 2, sgCols: 2, rows: 32, cols: 32, tk: 32 },
  '128x128k16p': { sgRows: 2, sgCols: 2, rows: 64, cols: 64, tk: 16, prefetch: true },
  '128x64k32p': { sgRows: 2, sgCols: 2, rows: 64, cols: 32, tk: 32, prefetch: true },
  '128x128k32p': { sgRows: 2, sgCols: 2, rows: 64, cols: 64, tk: 32, prefetch: true },
  // 96 columns (3 result matrices per subgroup row): N = 1152 gives 12 column tiles, not 9 (mixedKernel takes
  // it where 128 × 128 leaves the last wave of workgroups mostly empty)
  '128x96k32': { sgRows: 2, sgCols: 2, rows: 64, cols: 48, tk: 32 },
  '128x96k32p': { sgRows: 2, sgCols: 2, rows: 64, cols: 48, tk: 32, prefetch: true },
  // 8 subgroups: twice the columns (or rows) of C per staged tile of A (of B); only when asked for
  '128x256k16': { sgRows: 2, sgCols: 4, rows: 64, cols: 64, tk: 16 },
  '256x128k16': { sgRows: 4, sgCols: 2, rows: 64, cols: 64, tk: 16 },
  // P·v and the backward's products with the head's 72 values (XL/2) as columns, on the M16 N8 K16 config:
  // one tile of 72 columns where 64 × 64 tiles compute 128 (attentionPrecision)
  '64x72k64n8': { sgRows: 4, sgCols: 1, rows: 16, cols: 72, tk: 64, mma: { M: 16, N: 8, K: 16 } },
} as const satisfies Record<string, MixedTile>;
export type MixedTileName = keyof typeof MIXED_TILES;

/** The device-dependent choices of a mixed-precision matmul kernel. */
export interface MixedKernel {
  /** the subgroup-matrix shape (one of the device's f16 → f32 configs) */
  mma: MmaShape;
  /** the device's largest subgroup size (workgroup x is subgroups × this) */
  subgroupSize: number;
  tile: MixedTile;
  /** plain f32 arithmetic in place of f16 subgroup matrices (see the file comment) */
  emulate?: boolean;
  /**
   * how the A tile is staged: 'rows' [BM][TK + PAD] (left matrices loaded row-major), 'cols' [TK][BM + PAD]
   * (loaded column-major); default (stageOfA) the one whose workgroup-memory writes are contiguous for
   * the spec's aFast
   */
  aStage?: 'rows' | 'cols';
  /**
   * result matrices per subgroup that the epilogue stores side by side before its threads apply the
   * spec's store (a divisor of the tile's matrices per row, cols / N; default 1): fewer barriers and
   * wider runs of columns per row, for more workgroup memory. mixedKernel keeps 1 (measured faster)
   */
  epilogueCols?: number;
  /**
   * stage the operands 4 values at a time (vectorStaging): each thread takes runs of 4 consecutive values
   * along the operand's contiguous index; a plain operand (one array read at an index, PlainOperand) is read
   * as one vec4 through a second, vec4-typed binding of its buffer (vectorViews) where the run is aligned,
   * and inside tiles that lie wholly in range (every tile but the edges) loads skip their bounds checks
   */
  vector?: boolean;
  /**
   * with the spec's epilogueLoads: a thread reads them for all its values of a result matrix (unrolled)
   * before it stores any of them, instead of each value's loads after the previous value's stores
   */
  hoistLoads?: boolean;
  /**
   * with prefetch and vector staging: a plain f16 operand's runs are read as their raw bits (vec2<u32>,
   * through a view of that type) into the prefetch registers and reinterpreted as f16 only where they are
   * written to workgroup memory, instead of converted to f32 as they are read (a conversion right after the
   * load makes the thread wait for it there, before this stage's multiplies). The same f16 values.
   */
  packed16?: boolean;
}

/**
 * The A staging of a kernel: its own choice, else 'cols' where i is contiguous in memory (aFast 'i', the
 * weight gradients' dYᵀ: consecutive threads read consecutive i, so they write consecutive f16 values of
 * a [TK][BM] tile; staged as rows they wrote TK + PAD values apart, into the same few banks) and 'rows'
 * where k is.
 */
export function stageOfA(s: Pick<MatMulSpec, 'aFast'>, k: Pick<MixedKernel, 'aStage'>): 'rows' | 'cols' {
  return k.aStage ?? (s.aFast === 'i' ? 'cols' : 'rows');
}

/** The WGSL header of a kernel on the subgroup matrices (f16, subgroups, the experimental extension). */
export const SUBGROUP_MATRIX_HEADER = `diagnostic(off, chromium.subgroup_matrix_uniformity);
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;`;

/** f16 values of padding per row of the staged tiles (rows stay 16-byte aligned; fewer bank conflicts) */
const PAD = 8;

/** tiles mixedKernel never chooses by itself (see there), besides the prefetching ones */
const ASKED_ONLY: MixedTileName[] = ['128x64k32', '128x256k16', '256x128k16', '128x96k32', '64x72k64n8'];

/** Whether a tile can run on a subgroup-matrix config: its own config if it names one, its sizes multiples of the config's. */
export function tileRunsOn(tile: MixedTile, mma: MmaShape): boolean {
  const own = tile.mma;
  if (own && (own.M !== mma.M || own.N !== mma.N || own.K !== mma.K)) return false;
  return tile.rows % mma.M === 0 && tile.cols % mma.N === 0 && tile.tk % mma.K === 0;
}

/** The device's subgroup-matrix config for a tile (MixedTile.mma, else its largest), or undefined where it has none. */
export function tileConfig(device: Pick<MixedDeviceInfo, 'configs'>, tile: MixedTile): MmaShape | undefined {
  const want = tile.mma;
  if (!want) return device.configs[0];
  return device.configs.find((c) => c.M === want.M && c.N === want.N && c.K === want.K);
}

/**
 * Whether mixedKernel stages operands 4 values at a time (MixedKernel.vector) where the tile allows: yes
 * by default (measured on the H200 in one call, `2026-11-30-webgpu-xl-mixed-vector-d39e849-v{1,0}.md`:
 * DiT-XL/2 training 90.3 against 81.3 img/s, FPDM-XL/2 164.8 against 144.1; XL/2's fc2, which reads
 * GELU(h) in f16, 29.4 against 50.1 ms per step); the environment variable FPDM_MIXED_VECTOR (1 on, 0 off;
 * recorded in the bench's header) sets it for comparing the two in one run.
 */
export function vectorStagingDefault(): boolean {
  const v = process.env.FPDM_MIXED_VECTOR;
  return v === undefined || v === '' ? true : v !== '0';
}

/**
 * Whether mixedKernel takes the prefetching twin of the tile it chooses (MIXED_TILES' 'p' names, where
 * there is one): yes by default — with vector staging, measured on the H200 in two calls with the order of
 * the two runs swapped (`2026-11-30-webgpu-xl-mixed-prefetch-002fec0-{a,b}-p{1,0}.md`): DiT-XL/2 training
 * 114.8 / 124.0 img/s against 104.4 / 98.6 without, GPU 251.5 / 250.9 against 312.3 / 313.0 ms per step
 * (every large family faster); FPDM-XL/2 234.1 / 241.4 against 192.5 / 179.6 (the micro-benchmark, one
 * product at a time, had the prefetching tiles slower on most shapes: the model's step decides). The
 * environment variable FPDM_MIXED_PREFETCH (0 off, 1 on; recorded in the bench's header) sets it for
 * comparing the two in one run.
 */
export function prefetchDefault(): boolean {
  const v = process.env.FPDM_MIXED_PREFETCH;
  return v === undefined || v === '' ? true : v !== '0';
}

/**
 * Whether mixedKernel hoists the epilogue's loads (MixedKernel.hoistLoads): yes by default — measured on
 * the H200 in one call (`2026-11-30-webgpu-xl-mixed-hoist-1a948ae-h{1,0}.md`): DiT-XL/2 training 133.6
 * against 122.6 img/s (dh 16.5 against 27.3 ms per step), FPDM-XL/2 273.5 against 240.7; the
 * environment variable FPDM_MIXED_HOIST (0 off, 1 on; recorded in the bench's header) sets it for
 * comparing the two in one run.
 */
export function hoistLoadsDefault(): boolean {
  const v = process.env.FPDM_MIXED_HOIST;
  return v === undefined || v === '' ? true : v !== '0';
}

/**
 * Whether mixedKernel reads plain f16 operands as raw bits into the prefetch registers (MixedKernel.packed16):
 * yes by default — measured on the H200 in the model's sampling pass, interleaved in one process
 * (scripts/gpu/sample-ab.ts, `results/bench/2026-12-01-webgpu-xl-sample-ab-packed.md`): XL/2's fc2, which
 * reads GELU(h) in f16, 13.40 against 19.17 ms per FPDM-XL/2 call, FPDM's projection fc2 6.42 against 8.98,
 * the same x_0 bit for bit. The environment variable FPDM_MIXED_PACKED16 (0 off, 1 on; recorded in the
 * bench's header) sets it for comparing the two in one run.
 */
export function packed16Default(): boolean {
  const v = process.env.FPDM_MIXED_PACKED16;
  if (v === undefined || v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new UserError(`FPDM_MIXED_PACKED16=${v}: expected 1 (f16 operands prefetched as raw bits) or 0`);
}

/**
 * The tile named by the environment variable FPDM_MIXED_PREFER (a MIXED_TILES name without the 'p'; recorded
 * in the bench's header), which mixedKernel then takes first for the products it chooses a tile for whose
 * loads are plain (not the weight gradients, not a computed load), where it fits: for comparing a tile
 * against the default choice in the model's step, in one call. Unset: undefined.
 */
export function preferredTile(): MixedTileName | undefined {
  const v = process.env.FPDM_MIXED_PREFER;
  if (v === undefined || v === '') return undefined;
  const names = (Object.keys(MIXED_TILES) as MixedTileName[]).filter(
    (n) => (MIXED_TILES[n] as MixedTile).prefetch !== true,
  );
  if (!(names as string[]).includes(v))
    throw new UserError(`FPDM_MIXED_PREFER=${v}: expected one of the mixed tiles ${names.join(', ')}`);
  return v as MixedTileName;
}

/** workgroups wanted at least before a smaller tile is preferred: two per SM of the H200's 132 */
const MIN_GROUPS = 264;

/**
 * Whether an operand's load computes: calls a function (an activation, a select) or reads more than
 * one array (dY times a gate: the block's dh and dmerged); it is inlined into the staging loop.
 */
export function computedLoad(s: Partial<Pick<MatMulSpec, 'a' | 'b'>>): boolean {
  return [s.a ?? '', s.b ?? '']
    .map((e) => e.replace(/\b(f32|f16)\s*\(/g, '(')) // a conversion (an f16 operand read as f32) does not compute
    .some((e) => /[A-Za-z0-9_]\s*\(/.test(e) || (e.match(/[A-Za-z_][A-Za-z0-9_]*\s*\[/g) ?? []).length > 1);
}

/**
 * The kernel for a product on a mixed-precision device: its largest f16 → f32 subgroup-matrix shape,
 * and the first tile of MIXED_TILES that fits the device's workgroup memory and still gives MIN_GROUPS
 * workgroups (else the smallest that fits), or `tile` when given. Where an operand load computes
 * (computedLoad), the first tile staging 16 values of k that fits, whatever its workgroup count:
 * measured on the H200 at DiT-S/2's fc2
 * with GELU in the load (`2026-11-30-webgpu-gemm-fc2-*.md`), 128×128 k16 took 0.85 ms and 64×64 k32
 * 0.92, while 128×64 k32 took 5.0 ms and 128×128 k32 2.8 (our fp32 kernel 2.3); with plain loads k32
 * is 0–17 % faster. A first choice, to be tuned with scripts/gpu/gemm-mixed-bench.ts.
 */
export function mixedKernel(
  device: MixedDeviceInfo,
  s: Pick<MatMulSpec, 'batch' | 'M' | 'N' | 'aFast' | 'bFast'> & Partial<Pick<MatMulSpec, 'a' | 'b' | 'aRowSum'>>,
  tile?: MixedTileName,
): MixedKernel {
  const mma = device.configs[0];
  invariant(mma, 'a mixed-precision device has at least one f16 → f32 subgroup-matrix config');
  // the epilogue one result matrix at a time: storing a subgroup's whole row of them at once (e4) ran
  // 1.3–3× slower on every XL/2 product measured (`2026-11-30-webgpu-gemm-epilogue-31e1407.md`)
  // the environment read once per call (this runs for every matmul a plan records)
  const vector = vectorStagingDefault();
  const prefetch = prefetchDefault();
  const hoistLoads = hoistLoadsDefault();
  const packed16 = packed16Default();
  const preferred = tile === undefined ? preferredTile() : undefined;
  const of = (name: MixedTileName): MixedKernel => {
    const twin = `${name}p`;
    const pre = prefetch && twin in MIXED_TILES ? (twin as MixedTileName) : name;
    const t: MixedTile = MIXED_TILES[pre];
    const config = tileConfig(device, t);
    invariant(
      config,
      () =>
        `mixed tile ${name} needs the subgroup-matrix config M${t.mma?.M} N${t.mma?.N} K${t.mma?.K}, which this device lacks`,
    );
    return {
      mma: config,
      subgroupSize: device.subgroupSize,
      tile: t,
      vector,
      hoistLoads,
      ...(packed16 ? { packed16 } : {}),
    };
  };
  if (tile) return of(tile);
  // 128 × 64 (k 32) is only for asking: it measured slowest of the unprefetched tiles wherever it ran on
  // the H200 (S/2's fc2 0.786 / 0.197 ms against 128 × 128's 0.590 / 0.131 in two calls, dmerged 0.852
  // against 0.262–0.524: `…-gemm-mixed-ba48fb8`, `…-gemm-fc2-b2951d5`, `…-gemm-backward-e7aca8f`)
  const order = (Object.keys(MIXED_TILES) as MixedTileName[]).filter(
    (n) => (MIXED_TILES[n] as MixedTile).prefetch !== true && !ASKED_ONLY.includes(n),
  );
  const fitting = order.filter((n) => mixedFits(s, of(n), device));
  // with aRowSum, the tiles that can add up A's rows, where any can (else the caller's rowSumFits says no)
  const summing = fitting.filter((n) => rowSumFits(of(n)));
  const fits = s.aRowSum !== undefined && summing.length > 0 ? summing : fitting;
  // i contiguous in A (the weight gradients, dYᵀ·X over the token rows): 128 × 128, k 32 with vector
  // staging, else k 16. Staged one value at a time, measured on the H200 at XL/2's weight gradients in two
  // calls (`2026-11-30-webgpu-gemm-wgrad-a92c0d0.md`, `…-gemm-epilogue-31e1407.md`): k 32 tiles at 3.2–10.8
  // TFLOP/s (either staging of A), k 16 at 18–83 (70–83 on the three with the bias from A's staging, in both
  // calls), k 16 with prefetch at 18–111 in one call and 25–111 in the other. Staged 4 at a time
  // (`…-gemm-vector-d39e849.md`): k 32 at 70–111 (qkv, fc1, fc2 with the bias from A's staging), k 16 at 74–83
  const wgradTile: MixedTileName = vector ? '128x128k32' : '128x128k16';
  const wgrad = s.aFast === 'i' && mixedFits(s, of(wgradTile), device) ? wgradTile : undefined;
  if (wgrad && (s.aRowSum === undefined || rowSumFits(of(wgrad)))) return of(wgrad);
  // a computed load: the first tile staging 16 values of k, however many workgroups it gives
  const k16 = computedLoad(s) ? fits.find((n) => MIXED_TILES[n].tk === 16) : undefined;
  if (k16) return of(k16);
  if (preferred && s.aFast === 'k' && mixedFits(s, of(preferred), device)) return of(preferred);
  invariant(
    fits.length > 0,
    () =>
      `no mixed tile fits ${device.maxWorkgroupBytes} bytes of workgroup memory and ${device.maxThreads} threads of ${device.subgroupSize}-wide subgroups`,
  );
  const groups = (n: MixedTileName) => mixedMatMulGroups(s, of(n)).reduce((x, y) => x * y, 1);
  const pick = fits.find((n) => groups(n) >= MIN_GROUPS);
  // 128 × 96 where 128 × 128 leaves the last wave of workgroups mostly empty (N = 1152 at 8192 rows: 576
  // workgroups, 2.18 waves of MIN_GROUPS) and 128 × 96 fills it (768: 2.91). Measured on the H200 in the
  // model's step with every plain-load product on 128 × 96 against the default, one call
  // (`2026-12-01-webgpu-xl-mixed-prefer96-efcf6e2.md`): the N = 1152 products faster (DiT-XL/2's fc2 0.713
  // against 0.755 ms per call, proj 0.197 / 0.231, dmod2 0.481 / 0.541, dmod1 0.373 / 0.420; FPDM's fc2
  // 0.355 / 0.375), those with N = 2304 … 4608 as fast or slower (fc1 0.602 / 0.538, dh 0.645 / 0.590)
  if (pick === '128x128k32' && mixedFits(s, of('128x96k32'), device)) {
    const fill = (n: MixedTileName) => {
      const waves = groups(n) / MIN_GROUPS;
      return waves / Math.ceil(waves);
    };
    if (fill('128x96k32') > fill('128x128k32') + 0.15) return of('128x96k32');
  }
  return of(pick ?? fits[fits.length - 1]!);
}

/** Workgroup counts of a mixed-precision matmul. */
export function mixedMatMulGroups(s: Pick<MatMulSpec, 'batch' | 'M' | 'N'>, k: MixedKernel): [number, number, number] {
  const { sgRows, sgCols, rows, cols } = k.tile;
  return [Math.ceil(s.N / (sgCols * cols)), Math.ceil(s.M / (sgRows * rows)), s.batch];
}

/** Threads per workgroup of a mixed-precision matmul. */
export function mixedThreads(k: MixedKernel): number {
  return k.tile.sgRows * k.tile.sgCols * k.subgroupSize;
}

/** Bytes of workgroup memory a mixed-precision matmul uses (to check against the device limit). */
export function mixedWorkgroupBytes(s: Pick<MatMulSpec, 'aFast' | 'bFast'>, k: MixedKernel): number {
  const { sgRows, sgCols, rows, cols, tk } = k.tile;
  const half = k.emulate === true ? 4 : 2;
  const BM = sgRows * rows;
  const BN = sgCols * cols;
  const a = stageOfA(s, k) === 'cols' ? tk * (BM + PAD) : BM * (tk + PAD);
  const b = s.bFast === 'j' ? tk * (BN + PAD) : BN * (tk + PAD);
  return half * (a + b) + 4 * sgRows * sgCols * (k.epilogueCols ?? 1) * k.mma.M * k.mma.N;
}

/**
 * Whether a kernel can add up A's rows (MatMulSpec.aRowSum): with aFast 'i' its thread t stages values
 * of row t mod BM only when the workgroup's threads are a multiple of BM, and Cs holds one value per
 * thread (with vector staging, rows 4·(t mod BM/4) + 0..3: threads a multiple of BM / 4, 4 values each).
 */
export function rowSumFits(k: MixedKernel): boolean {
  const { sgRows, sgCols, rows } = k.tile;
  const WG = mixedThreads(k);
  const cs = sgRows * sgCols * k.mma.M * k.mma.N;
  // staged 4 values at a time, a thread's runs all start at row 4·(t mod BM / 4): 4 sums per thread
  if (vectorStaging(k)) return WG % ((sgRows * rows) / 4) === 0 && cs >= 4 * WG;
  return WG % (sgRows * rows) === 0 && cs >= WG;
}

/**
 * Whether a kernel stages its operands 4 values at a time: asked for (MixedKernel.vector), and its A and
 * B tiles divide into runs of 4 values among its threads (with prefetch, the next stage's runs are read
 * into registers).
 */
export function vectorStaging(k: MixedKernel): boolean {
  const { sgRows, sgCols, rows, cols, tk } = k.tile;
  const WG = mixedThreads(k);
  const BM = sgRows * rows;
  const BN = sgCols * cols;
  return (
    k.vector === true &&
    tk % 4 === 0 &&
    BM % 4 === 0 &&
    BN % 4 === 0 &&
    ((BM * tk) / 4) % WG === 0 &&
    ((tk * BN) / 4) % WG === 0
  );
}

/** An operand that reads one array at an index (its binding read-only, f32 or f16 read through f32()). */
export interface PlainOperand {
  /** the array's binding */
  name: string;
  type: 'f32' | 'f16';
  /** the WGSL index expression (u32 variables b, i or j, k in scope) */
  index: string;
  /** the vec4 view of the array that the kernel binds beside it (vectorViews) */
  view: string;
}

/** The operand expression as a PlainOperand, or undefined where it computes or its array is written. */
export function plainOperand(expr: string, bindings: Binding[]): PlainOperand | undefined {
  const m = /^\s*(f32\s*\(\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\[([^[\]]*)\]\s*(\))?\s*$/.exec(expr);
  if (!m || (m[1] === undefined) !== (m[4] === undefined)) return undefined;
  const b = bindings.find((x) => x.name === m[2]);
  const type = b?.type ?? 'f32';
  if (!b || b.write === true || (type !== 'f32' && type !== 'f16')) return undefined;
  return { name: b.name, type, index: m[3]!, view: `${b.name}_V4` };
}

/** Whether a kernel prefetches its plain f16 operands' runs as raw bits (MixedKernel.packed16, with prefetch). */
export function packedRuns(k: MixedKernel): boolean {
  return k.packed16 === true && k.tile.prefetch === true && k.emulate !== true;
}

/**
 * The vec4-typed bindings a kernel reads its plain operands through, after the spec's own: each of the
 * same buffer as the binding `of` (read-only; a buffer may be bound twice for reading). Callers bind them
 * in this order after the spec's bindings (Plan.matMul does). Empty without vector staging.
 */
export function vectorViews(
  s: Pick<MatMulSpec, 'a' | 'b' | 'bindings'>,
  k: MixedKernel,
): Array<{ binding: Binding; of: string }> {
  if (!vectorStaging(k)) return [];
  const views: Array<{ binding: Binding; of: string }> = [];
  for (const p of [plainOperand(s.a, s.bindings), plainOperand(s.b, s.bindings)]) {
    if (!p || views.some((v) => v.of === p.name) || (k.emulate === true && p.type === 'f16')) continue;
    const type = p.type === 'f32' ? 'vec4<f32>' : packedRuns(k) ? 'vec2<u32>' : 'vec4<f16>';
    views.push({ binding: { name: p.view, type }, of: p.name });
  }
  return views;
}

/** Whether a kernel fits the device's workgroup memory and threads per workgroup. */
export function mixedFits(s: Pick<MatMulSpec, 'aFast' | 'bFast'>, k: MixedKernel, device: MixedDeviceInfo): boolean {
  return mixedWorkgroupBytes(s, k) <= device.maxWorkgroupBytes && mixedThreads(k) <= device.maxThreads;
}

export function mixedMatMulWgsl(s: MatMulSpec, k: MixedKernel): string {
  const { mma, tile } = k;
  const emu = k.emulate === true;
  const SG = k.subgroupSize;
  const SGS = tile.sgRows * tile.sgCols;
  const WG = SGS * SG;
  const BM = tile.sgRows * tile.rows;
  const BN = tile.sgCols * tile.cols;
  const TK = tile.tk;
  const TM = tile.rows / mma.M;
  const TN = tile.cols / mma.N;
  const MN = mma.M * mma.N;
  invariant(
    Number.isInteger(TM) && Number.isInteger(TN) && TK % mma.K === 0,
    () => `mixed tile ${JSON.stringify(tile)} is not a multiple of the subgroup matrix M${mma.M} N${mma.N} K${mma.K}`,
  );
  invariant(
    (BM * TK) % WG === 0 && (TK * BN) % WG === 0,
    () => `mixed tile ${JSON.stringify(tile)}: its A and B tiles do not divide among ${WG} threads`,
  );
  invariant(!emu || MN % SG === 0, `emulated subgroups of ${SG} threads must divide a ${mma.M} × ${mma.N} matrix`);
  const H = emu ? 'f32' : 'f16';
  const aCols = stageOfA(s, k) === 'cols'; // A staged [TK][BM + PAD] (left matrices column-major), else [BM][TK + PAD]
  const AST = aCols ? BM + PAD : TK + PAD;
  const aSize = aCols ? TK * AST : BM * AST;
  const rowSum = s.aRowSum !== undefined;
  invariant(
    !rowSum || (s.aFast === 'i' && rowSumFits(k)),
    () =>
      `aRowSum needs aFast 'i' and a tile whose ${WG} threads each stage one row of its ${BM} (and ${SGS * MN} ≥ ${WG} values of Cs)`,
  );
  const bRows = s.bFast === 'j'; // B staged row-major [TK][BN + PAD], else column-major [BN][TK + PAD]
  const BST = bRows ? BN + PAD : TK + PAD;
  const bSize = bRows ? TK * BST : BN * BST;

  // staging: thread tid takes elements e = tid + l·WG of each tile
  const aIdx =
    s.aFast === 'k' ? `let ii = e / ${u(TK)}; let kk = e % ${u(TK)};` : `let ii = e % ${u(BM)}; let kk = e / ${u(BM)};`;
  const bIdx =
    s.bFast === 'j' ? `let jj = e % ${u(BN)}; let kk = e / ${u(BN)};` : `let jj = e / ${u(TK)}; let kk = e % ${u(TK)};`;
  const bAt = bRows ? `kk * ${u(BST)} + jj` : `jj * ${u(BST)} + kk`;

  // offsets in As / Bs of the subgroup's m-th left and n-th right matrix at k offset kk within the stage
  // (aBase, bBase: the subgroup's first row of A and first column of B there)
  const aOff = (m: number, kk: number) => `aBase + ${u(aCols ? kk * AST + m * mma.M : m * mma.M * AST + kk)}`;
  const bOff = (n: number, kk: number) => `bBase + ${u(bRows ? kk * BST + n * mma.N : n * mma.N * BST + kk)}`;
  const bBase = bRows ? `sgJ * ${u(tile.cols)}` : `sgJ * ${u(tile.cols * BST)}`;
  const acc = (m: number, n: number) => `acc_${m}_${n}`;
  const pairs: Array<[number, number]> = [];
  for (let m = 0; m < TM; m++) for (let n = 0; n < TN; n++) pairs.push([m, n]);
  const kSteps = Array.from({ length: TK / mma.K }, (_, i) => i * mma.K);

  let decls: string;
  let multiply: string;
  let storeTile: (m: number, n: number) => string;
  const Q = MN / SG; // emulated: result elements per thread per matrix
  // the epilogue stores E matrices of a row side by side: per subgroup a block of m × E·n values of Cs
  // (row-major, stride E·n) at sg·E·MN; matrix (m, n) at column (n mod E)·n of it
  const E = k.epilogueCols ?? 1;
  invariant(TN % E === 0, () => `epilogueCols ${E} does not divide the ${TN} matrices of a subgroup's row`);
  const EW = E * mma.N; // the block's width
  const ES = E * MN; // values of Cs per subgroup
  if (!emu) {
    const left = `subgroup_matrix_left<f16, ${mma.K}, ${mma.M}>`;
    const right = `subgroup_matrix_right<f16, ${mma.N}, ${mma.K}>`;
    decls = pairs.map(([m, n]) => `var ${acc(m, n)}: subgroup_matrix_result<f32, ${mma.N}, ${mma.M}>;`).join('\n  ');
    multiply = kSteps
      .map((kk) => {
        const lines = Array.from(
          { length: TM },
          (_, m) =>
            `let l${m} = subgroupMatrixLoad<${left}, ${aCols ? 'col_major' : 'row_major'}>(&As, ${aOff(m, kk)}, ${u(AST)});`,
        );
        for (let n = 0; n < TN; n++) {
          lines.push(
            `let r${n} = subgroupMatrixLoad<${right}, ${bRows ? 'row_major' : 'col_major'}>(&Bs, ${bOff(n, kk)}, ${u(BST)});`,
          );
          for (let m = 0; m < TM; m++)
            lines.push(`${acc(m, n)} = subgroupMatrixMultiplyAccumulate(l${m}, r${n}, ${acc(m, n)});`);
        }
        return `{\n        ${lines.join('\n        ')}\n      }`;
      })
      .join('\n      ');
    storeTile = (m, n) =>
      `subgroupMatrixStore<row_major>(&Cs, sg * ${u(ES)} + ${u((n % E) * mma.N)}, ${acc(m, n)}, ${u(EW)});`;
  } else {
    // element e = lane + q·SG of each result matrix is thread `lane`'s, at row e / n, column e % n;
    // left(r, x) = As[off + r·AST + x] (row-major) or As[off + x·AST + r] (column-major); right(x, c) =
    // Bs[off + x·BST + c] (row-major) or Bs[off + c·BST + x] (column-major); the result matrix stored
    // row-major with stride n
    decls = `var acc: array<f32, ${TM * TN * Q}>;`;
    const leftAt = aCols ? `x * ${u(AST)} + r` : `r * ${u(AST)} + x`;
    const rightAt = bRows ? `x * ${u(BST)} + c` : `c * ${u(BST)} + x`;
    multiply = `for (var q = 0u; q < ${u(Q)}; q = q + 1u) {
        let e = lane + q * ${u(SG)};
        let r = e / ${u(mma.N)};
        let c = e % ${u(mma.N)};
        ${kSteps
          .flatMap((kk) =>
            pairs.map(
              ([m, n]) => `for (var x = 0u; x < ${u(mma.K)}; x = x + 1u) {
          acc[${u((m * TN + n) * Q)} + q] = acc[${u((m * TN + n) * Q)} + q] + As[${aOff(m, kk)} + ${leftAt}] * Bs[${bOff(n, kk)} + ${rightAt}];
        }`,
            ),
          )
          .join('\n        ')}
      }`;
    storeTile = (m, n) =>
      `for (var q = 0u; q < ${u(Q)}; q = q + 1u) { let e = lane + q * ${u(SG)}; Cs[sg * ${u(ES)} + (e / ${u(mma.N)}) * ${u(EW)} + ${u((n % E) * mma.N)} + e % ${u(mma.N)}] = acc[${u((m * TN + n) * Q)} + q]; }`;
  }
  const rounds: Array<[number, number]> = []; // (m, first n) of each round of E matrices
  for (let m = 0; m < TM; m++) for (let n = 0; n < TN; n += E) rounds.push([m, n]);
  // with epilogue loads (hoistLoads): the ES / SG values of each thread unrolled, their loads first (a
  // subgroup of SG threads; of another size, the loop)
  const hoist = k.hoistLoads === true && (s.epilogueLoads ?? []).length > 0 && ES % SG === 0;
  const at = (m: number, n0: number, e: string) => ({
    i: `row0 + sgI * ${u(tile.rows)} + ${u(m * mma.M)} + ${e} / ${u(EW)}`,
    j: `col0 + sgJ * ${u(tile.cols)} + ${u(n0 * mma.N)} + ${e} % ${u(EW)}`,
  });
  const storeLoop = (m: number, n0: number) => {
    const { i, j } = at(m, n0, 'e');
    return `for (var e = lane; e < ${u(ES)}; e = e + sgSize) {
      let i = ${i};
      let j = ${j};
      if (i < M && j < N) { storeC(b, i, j, Cs[sg * ${u(ES)} + e]); }
    }`;
  };
  const hoisted = (m: number, n0: number) => {
    const qs = Array.from({ length: ES / SG }, (_, q) => q);
    const loads = qs.map((q) => {
      const { i, j } = at(m, n0, `e${q}`);
      return `let e${q} = lane + ${u(q * SG)};
      let i${q} = ${i};
      let j${q} = ${j};
      let in${q} = i${q} < M && j${q} < N;
      var w${q} = vec4<f32>(0.0);
      if (in${q}) { w${q} = epiLoad(b, i${q}, j${q}); }`;
    });
    const stores = qs.map((q) => `if (in${q}) { storeCW(b, i${q}, j${q}, Cs[sg * ${u(ES)} + e${q}], w${q}); }`);
    return `if (sgSize == ${u(SG)}) {
      ${loads.join('\n      ')}
      ${stores.join('\n      ')}
    } else {
      ${storeLoop(m, n0)}
    }`;
  };
  const epilogue = rounds
    .map(
      ([m, n0]) => `
  if (sg < ${u(SGS)}) { ${Array.from({ length: E }, (_, x) => storeTile(m, n0 + x)).join(' ')} }
  workgroupBarrier();
  if (sg < ${u(SGS)}) {
    ${hoist ? hoisted(m, n0) : storeLoop(m, n0)}
  }
  workgroupBarrier();`,
    )
    .join('');

  // staging: each thread's elements of the A and B tiles at k0, written to As, Bs; with prefetch, read
  // into registers (PA, PB) one stage ahead and written at the start of the next
  const LA = (BM * TK) / WG;
  const LB = (TK * BN) / WG;
  const each = (n: number, body: string) => `for (var l = 0u; l < ${u(n)}; l = l + 1u) {
      let e = tid + l * ${u(WG)};
      ${body}
    }`;
  const aAt = aCols ? `As[kk * ${u(AST)} + ii]` : `As[ii * ${u(AST)} + kk]`;
  // aRowSum: each thread adds up the f32 values of A it stages (all of one row: WG % BM == 0)
  const addRow = (v: string) => (rowSum ? `rs = rs + ${v};` : '');
  let stageLoop =
    tile.prefetch === true
      ? `var PA: array<f32, ${LA}>;
  var PB: array<f32, ${LB}>;
  ${each(
    LA,
    `${aIdx}
      PA[l] = loadA(b, row0 + ii, kk);`,
  )}
  ${each(
    LB,
    `${bIdx}
      PB[l] = loadB(b, kk, col0 + jj);`,
  )}
  for (var k0 = 0u; k0 < K; k0 = k0 + ${u(TK)}) {
    ${each(
      LA,
      `${aIdx}
      ${addRow('PA[l]')}
      ${aAt} = ${H}(PA[l]);`,
    )}
    ${each(
      LB,
      `${bIdx}
      Bs[${bAt}] = ${H}(PB[l]);`,
    )}
    workgroupBarrier();
    // the next stage's loads (beyond K they read 0) are in flight during this stage's multiplies
    ${each(
      LA,
      `${aIdx}
      PA[l] = loadA(b, row0 + ii, k0 + ${u(TK)} + kk);`,
    )}
    ${each(
      LB,
      `${bIdx}
      PB[l] = loadB(b, k0 + ${u(TK)} + kk, col0 + jj);`,
    )}`
      : `for (var k0 = 0u; k0 < K; k0 = k0 + ${u(TK)}) {
    ${each(
      LA,
      `${aIdx}
      let av = loadA(b, row0 + ii, k0 + kk);
      ${addRow('av')}
      ${aAt} = ${H}(av);`,
    )}
    ${each(
      LB,
      `${bIdx}
      Bs[${bAt}] = ${H}(loadB(b, k0 + kk, col0 + jj));`,
    )}`;

  const vec = vectorStaging(k);
  // the prefetching loops end with the barrier after this stage's writes (then the next stage's loads)
  const prefetched = tile.prefetch === true;
  let vecHelpers = '';
  if (vec) {
    const views = vectorViews(s, k);
    for (const v of views)
      invariant(
        s.bindings.some((b) => b.name === v.binding.name && b.type === v.binding.type),
        () =>
          `vector staging reads ${v.of} through the binding ${v.binding.name}: add vectorViews' bindings to the spec's`,
      );
    const staged = vectorStageLoop(
      s,
      { WG, BM, BN, TK, AST, BST, aCols, bRows, H, rowSum, prefetch: tile.prefetch === true, packed: packedRuns(k) },
      views,
    );
    stageLoop = staged.loop;
    vecHelpers = staged.helpers;
  }

  const header = emu ? '' : SUBGROUP_MATRIX_HEADER;
  const builtins = emu
    ? '@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32'
    : '@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgSize: u32';
  const subgroupVars = emu ? `let sg = tid / ${u(SG)};\n  let lane = tid % ${u(SG)};\n  let sgSize = ${u(SG)};` : '';
  return `${header}
${declare(s.bindings)}
const M = ${u(s.M)};
const N = ${u(s.N)};
const K = ${u(s.K)};
var<workgroup> As: array<${H}, ${aSize}>;
var<workgroup> Bs: array<${H}, ${bSize}>;
var<workgroup> Cs: array<f32, ${SGS * ES}>;
${s.helpers ?? ''}
${matMulAccessWgsl(s)}
${vecHelpers}
@compute @workgroup_size(${WG}, 1, 1)
fn main(${builtins}) {
  ${subgroupVars}
  let b = wg.z;
  let row0 = wg.y * ${u(BM)};
  let col0 = wg.x * ${u(BN)};
  let sgI = min(sg, ${u(SGS - 1)}) / ${u(tile.sgCols)};
  let sgJ = min(sg, ${u(SGS - 1)}) % ${u(tile.sgCols)};
  let aBase = sgI * ${u(aCols ? tile.rows : tile.rows * AST)};
  let bBase = ${bBase};
  ${decls}
  ${rowSum ? (vec ? 'var rs = vec4<f32>(0.0);' : 'var rs = 0.0;') : ''}
  ${stageLoop}
    ${prefetched ? '' : 'workgroupBarrier();'}
    if (sg < ${u(SGS)}) {
      ${multiply}
    }
    workgroupBarrier();
  }${rowSum ? rowSumWgsl(s, BM, WG, vec) : ''}${epilogue}
}`;
}

/**
 * aRowSum's end of the kernel: the first column of workgroups adds up its threads' row sums of A (the
 * WG / BM threads of each row, in thread order, through Cs) and runs the spec's aRowSum with the row `i`
 * and its sum `v` over this workgroup's k (with split-K, the chunk of batch index b). With vector
 * staging (`vec`) thread t holds the sums of rows 4·(t mod BM/4) + 0..3, in rs's 4 lanes.
 */
function rowSumWgsl(s: MatMulSpec, BM: number, WG: number, vec: boolean): string {
  const G = BM / 4;
  const gather = vec
    ? `Cs[tid * 4u] = rs.x; Cs[tid * 4u + 1u] = rs.y; Cs[tid * 4u + 2u] = rs.z; Cs[tid * 4u + 3u] = rs.w;`
    : `Cs[tid] = rs;`;
  const sum = vec
    ? `for (var q = 0u; q < ${u(WG / G)}; q = q + 1u) { v = v + Cs[(tid / 4u + q * ${u(G)}) * 4u + tid % 4u]; }`
    : `for (var q = 0u; q < ${u(WG / BM)}; q = q + 1u) { v = v + Cs[tid + q * ${u(BM)}]; }`;
  return `
  if (wg.x == 0u) { ${gather} }
  workgroupBarrier();
  if (wg.x == 0u && tid < ${u(BM)}) {
    var v = 0.0;
    ${sum}
    let i = row0 + tid;
    if (i < M) { ${s.aRowSum} }
  }
  workgroupBarrier();`;
}

interface StageShape {
  WG: number;
  BM: number;
  BN: number;
  TK: number;
  /** row strides of the staged A and B tiles */
  AST: number;
  BST: number;
  /** A staged [TK][BM] (else [BM][TK]); B staged [TK][BN] (else [BN][TK]) */
  aCols: boolean;
  bRows: boolean;
  /** the staged element type */
  H: string;
  rowSum: boolean;
  /** read the next stage into registers while this one multiplies (MixedTile.prefetch) */
  prefetch: boolean;
  /** plain f16 operands prefetched as raw bits (packedRuns) */
  packed: boolean;
}

/**
 * The staging loop with runs of 4 values (MixedKernel.vector; the loop header and the writes to As and
 * Bs of one stage, as mixedMatMulWgsl's scalar loop) and the functions it calls. Run e = tid + l·WG of a
 * tile starts at a multiple of 4 of the operand's contiguous index. Each thread takes one of three loops
 * per operand and stage, with no branch inside them (a branch per run kept the loads from overlapping:
 * measured 2–4× slower on the H200): where the stage's tile of the operand lies wholly inside the
 * product (a workgroup-uniform test) and every run of the thread starts at a multiple of 4 in memory, a
 * plain operand (PlainOperand) reads each run as one vec4 through its view; else, inside the product, its
 * expression without bounds checks; elsewhere each value through loadA / loadB, bounds-checked as in the
 * scalar loop.
 */
function vectorStageLoop(
  s: MatMulSpec,
  t: StageShape,
  views: Array<{ binding: Binding; of: string }>,
): { loop: string; helpers: string } {
  const { WG, BM, BN, TK, AST, BST, aCols, bRows, H } = t;
  const kGlobal = s.kTotal === undefined ? 'let k = kl;' : 'let k = b * K + kl;';
  // the stage's k range lies inside the product (with split-K, inside the chunk and kTotal)
  const kIn = (kv: string) =>
    `${kv} + ${u(TK)} <= K${s.kTotal === undefined ? '' : ` && b * K + ${kv} + ${u(TK)} <= ${u(s.kTotal)}`}`;
  const viewOf = (p: PlainOperand | undefined) => (p && views.some((v) => v.binding.name === p.view) ? p : undefined);
  const lanes = ['x', 'y', 'z', 'w'];
  const plus = (v: string, c: number) => (c === 0 ? v : `(${v} + ${u(c)})`);

  interface Operand {
    name: 'A' | 'B';
    plain: PlainOperand | undefined;
    expr: string;
    /** the parameters of loadA / loadB */
    params: [string, string];
    /** runs per thread, the run's tile indices from e, its tile's range test at the stage starting at kv */
    runs: number;
    idx: string;
    inside: (kv: string) => string;
    /** value c of the run at the stage starting at kv: its load's arguments after b; its place in the staged tile */
    args: (c: number, kv: string) => [string, string];
    at: (c: number) => string;
    sum: boolean;
    /** a plain f16 operand prefetched as raw bits (StageShape.packed): its registers are vec2<u32> */
    packed: boolean;
  }
  const A4 = TK / 4;
  const ops: Operand[] = [
    {
      name: 'A',
      plain: viewOf(plainOperand(s.a, s.bindings)),
      expr: s.a,
      params: ['i', 'kl'],
      runs: (BM * TK) / 4 / WG,
      idx:
        s.aFast === 'k'
          ? `let ii = e / ${u(A4)}; let kk = (e % ${u(A4)}) * 4u;`
          : `let ii = (e % ${u(BM / 4)}) * 4u; let kk = e / ${u(BM / 4)};`,
      inside: (kv) => `row0 + ${u(BM)} <= M && ${kIn(kv)}`,
      args: (c, kv) => [
        `row0 + ${s.aFast === 'i' ? plus('ii', c) : 'ii'}`,
        `${kv} + ${s.aFast === 'k' ? plus('kk', c) : 'kk'}`,
      ],
      at: (c) => {
        const ii = s.aFast === 'i' ? plus('ii', c) : 'ii';
        const kk = s.aFast === 'k' ? plus('kk', c) : 'kk';
        return aCols ? `As[${kk} * ${u(AST)} + ${ii}]` : `As[${ii} * ${u(AST)} + ${kk}]`;
      },
      sum: t.rowSum,
      packed: false,
    },
    {
      name: 'B',
      plain: viewOf(plainOperand(s.b, s.bindings)),
      expr: s.b,
      params: ['kl', 'j'],
      runs: (TK * BN) / 4 / WG,
      idx:
        s.bFast === 'j'
          ? `let jj = (e % ${u(BN / 4)}) * 4u; let kk = e / ${u(BN / 4)};`
          : `let jj = e / ${u(A4)}; let kk = (e % ${u(A4)}) * 4u;`,
      inside: (kv) => `col0 + ${u(BN)} <= N && ${kIn(kv)}`,
      args: (c, kv) => [
        `${kv} + ${s.bFast === 'k' ? plus('kk', c) : 'kk'}`,
        `col0 + ${s.bFast === 'j' ? plus('jj', c) : 'jj'}`,
      ],
      at: (c) => {
        const jj = s.bFast === 'j' ? plus('jj', c) : 'jj';
        const kk = s.bFast === 'k' ? plus('kk', c) : 'kk';
        return bRows ? `Bs[${kk} * ${u(BST)} + ${jj}]` : `Bs[${jj} * ${u(BST)} + ${kk}]`;
      },
      sum: false,
      packed: false,
    },
  ];
  for (const o of ops) o.packed = t.packed && t.prefetch && o.plain?.type === 'f16';

  const helpers = ops
    .map((o) => {
      const sig = `b: u32, ${o.params[0]}: u32, ${o.params[1]}: u32`;
      const unchecked = `fn load${o.name}U(${sig}) -> f32 {
  ${kGlobal}
  return ${o.expr};
}`;
      return o.plain
        ? `${unchecked}
fn idx${o.name}(${sig}) -> u32 {
  ${kGlobal}
  return ${o.plain.index};
}`
        : unchecked;
    })
    .join('\n');

  // the run's 4 values, then into the staged tile (rs: A's row sums) or, prefetching, into registers P{A,B}
  // (a packed operand's registers hold two f16 per u32: reinterpreted, not converted, on their way in)
  const write = (o: Operand, v4: string) =>
    o.packed
      ? `let h01 = bitcast<vec2<f16>>(${v4}.x);
        let h23 = bitcast<vec2<f16>>(${v4}.y);
        ${o.sum ? 'rs = rs + vec4<f32>(f32(h01.x), f32(h01.y), f32(h23.x), f32(h23.y));' : ''}
        ${[0, 1, 2, 3].map((c) => `${o.at(c)} = ${['h01.x', 'h01.y', 'h23.x', 'h23.y'][c]};`).join(' ')}`
      : `let v4 = ${v4};
        ${o.sum ? 'rs = rs + v4;' : ''}
        ${[0, 1, 2, 3].map((c) => `${o.at(c)} = ${H}(v4.${lanes[c]});`).join(' ')}`;
  // into the prefetch registers; a packed operand's f32 values (f16 values read through f32(): its bounds-
  // checked loops) packed exactly, its raw bits (the aligned loop) as they are
  const keep = (o: Operand, v4: string) =>
    o.packed
      ? `{ let v4 = ${v4}; P${o.name}[l] = vec2<u32>(pack2x16float(v4.xy), pack2x16float(v4.zw)); }`
      : `P${o.name}[l] = ${v4};`;
  const keepBits = (o: Operand, bits: string) => `P${o.name}[l] = ${bits};`;
  const loop = (
    o: Operand,
    v4: string,
    sink: (o: Operand, v4: string) => string,
  ) => `for (var l = 0u; l < ${u(o.runs)}; l = l + 1u) {
        let e = tid + l * ${u(WG)};
        ${o.idx}
        ${sink(o, v4)}
      }`;
  const values = (o: Operand, fn: string, kv: string) =>
    `vec4<f32>(${[0, 1, 2, 3].map((c) => `${fn}(b, ${o.args(c, kv).join(', ')})`).join(', ')})`;
  // the operand's runs of the stage starting at kv, by one of the three loops
  const stage = (o: Operand, kv: string, sink: (o: Operand, v4: string) => string) => {
    const inside = `${o.name.toLowerCase()}In`;
    const slow = `if (${inside}) {
      ${loop(o, values(o, `load${o.name}U`, kv), sink)}
    } else {
      ${loop(o, values(o, `load${o.name}`, kv), sink)}
    }`;
    if (!o.plain)
      return `{
    let ${inside} = ${o.inside(kv)};
    ${slow}
    }`;
    // the runs' first indices in memory, and whether all of them are multiples of 4
    return `{
    let ${inside} = ${o.inside(kv)};
    var xs: array<u32, ${o.runs}>;
    var aligned = ${inside};
    for (var l = 0u; l < ${u(o.runs)}; l = l + 1u) {
      let e = tid + l * ${u(WG)};
      ${o.idx}
      xs[l] = idx${o.name}(b, ${o.args(0, kv).join(', ')});
      aligned = aligned && (xs[l] & 3u) == 0u;
    }
    if (aligned) {
      ${o.packed ? loop(o, `${o.plain.view}[xs[l] >> 2u]`, keepBits) : loop(o, `vec4<f32>(${o.plain.view}[xs[l] >> 2u])`, sink)}
    } else ${slow}
    }`;
  };
  const [A, B] = ops as [Operand, Operand];
  if (!t.prefetch)
    return {
      loop: `for (var k0 = 0u; k0 < K; k0 = k0 + ${u(TK)}) {
    ${stage(A, 'k0', write)}
    ${stage(B, 'k0', write)}`,
      helpers,
    };
  // prefetch: the next stage's runs are read into registers while this stage multiplies (beyond K they
  // take the bounds-checked loop and read 0)
  return {
    loop: `var PA: array<${A.packed ? 'vec2<u32>' : 'vec4<f32>'}, ${A.runs}>;
  var PB: array<${B.packed ? 'vec2<u32>' : 'vec4<f32>'}, ${B.runs}>;
  {
    let kn = 0u;
    ${stage(A, 'kn', keep)}
    ${stage(B, 'kn', keep)}
  }
  for (var k0 = 0u; k0 < K; k0 = k0 + ${u(TK)}) {
    ${loop(A, 'PA[l]', write)}
    ${loop(B, 'PB[l]', write)}
    workgroupBarrier();
    {
      let kn = k0 + ${u(TK)};
      ${stage(A, 'kn', keep)}
      ${stage(B, 'kn', keep)}
    }`,
    helpers,
  };
}
