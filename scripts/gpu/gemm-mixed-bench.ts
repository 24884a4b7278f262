// Micro-benchmark of the tensor-core matmul (src/backends/webgpu/gemm-mixed.ts) against our float32
// one (gemm.ts matMulWgsl) on the training matmuls of DiT-S/2 and DiT-XL/2 at batch 32 (256 tokens
// each: 8192 token rows) and on 4096³, on the mixed-precision device (src/backends/webgpu/device.ts).
// Each shape is run with the fp32 kernel and with the mixed kernel at every f16 → f32 subgroup-matrix
// config of the device × every tile of MIXED_TILES that fits its workgroup memory × the operands staged
// one value or 4 (v4, MixedKernel.vector) per thread at a time ('default' marks
// mixedKernel's own choice), so that the best can be chosen.
//   time        GPU time from timestamp queries (one pass per dispatch), median of --reps runs after
//               --warm warm-up runs (default 50: with 2 the GPU's clocks had not ramped up, NOTES §15)
//               recorded with them; split-K products (weight gradients) count their partial products and
//               the sum of the partials
//   TFLOP/s     2·M·N·K / time (the product's multiply-adds only)
//   error       of the mixed result against the fp32 kernel's: max |Δ| / max |C|, and ‖Δ‖ / ‖C‖
// Prints a markdown table (stdout) and the results as JSON (stdout after the table; with --json alone
// on stdout, the table on stderr). A GPU without f16 subgroup matrices is refused (exit 2).
//   node scripts/gpu/gemm-mixed-bench.mjs [--reps N] [--warm N] [--only SHAPE] [--kernel KERNEL] [--json] [--out FILE.json] [--epilogue]
//   (--only, --kernel: substrings of the shape labels, e.g. 'XL/2', and of the mixed kernels' names,
//   e.g. 'M16N16K16' or '128x128k16p'; several separated by commas: any of them)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backends/index.js';
import { mixedDeviceInfo, type MixedDeviceInfo } from '../../src/backends/webgpu/device.js';
import {
  MIXED_TILES,
  mixedKernel,
  mixedMatMulGroups,
  mixedMatMulWgsl,
  mixedFits,
  rowSumFits,
  stageOfA,
  tileRunsOn,
  vectorStaging,
  vectorViews,
  type MixedKernel,
  type MixedTile,
  type MixedTileName,
} from '../../src/backends/webgpu/gemm-mixed.js';
import {
  ACTIVATIONS,
  elementGroups,
  elementKernelWgsl,
  matMulGroups,
  matMulWgsl,
  splitK,
  splitReduceWgsl,
  u,
  type Binding,
  type MatMulSpec,
} from '../../src/backends/webgpu/gemm.js';
import { rawKernels, type Dispatch, type RawKernels } from '../../src/backends/webgpu/raw.js';
import type { GBuffer } from '../../src/backends/webgpu/types.js';
import { UserError } from '../../src/util/errors.js';
import { gitCommit } from '../../src/util/version.js';

interface Shape {
  label: string;
  M: number;
  N: number;
  K: number;
  /** operand layouts as the DiT block's kernels have them (gemm.ts MatMulSpec) */
  aFast: 'i' | 'k';
  bFast: 'j' | 'k';
  /** a weight gradient: the reduction over tokens split as gemm.ts splitK splits it */
  split?: boolean;
  /** A read through GELU, as the block's fc2 reads its input (the operand load computes) */
  gelu?: boolean;
  /**
   * A stored as f16 and read through f32() by the mixed kernels, as the block's fc2 reads GELU(h) at
   * mixed precision (the fp32 kernel reads the f32 values they were rounded from)
   */
  f16A?: boolean;
  /** B (the weight) stored as f16 and read through f32() by the mixed kernels, as an f16 copy of a weight would be */
  f16B?: boolean;
  /** two outputs and an extra read in the epilogue, as fc2's m and gated residual (needs N ≤ K) */
  twoOut?: boolean;
  /** A times a per-sample gate (a second array read in the load), as the block's dh and dmerged read dY */
  gate?: boolean;
  /** B read through GELU, as the block's fc2 weight gradient reads GELU(h) */
  geluB?: boolean;
  /** independent products (attention's heads × samples: 6 × 32 at S/2); A, B, C hold them one after another */
  batch?: number;
  /**
   * a weight gradient with its bias gradient, as Plan.weightGrad computes them: 'ones' B with a column of
   * ones appended (N + 1 columns, B read through select: the fp32 form), 'rowSum' the bias gradient from
   * A's staging (gemm.ts MatMulSpec.aRowSum; mixed only: the fp32 kernel runs the 'ones' form)
   */
  bias?: 'ones' | 'rowSum';
}

// forward x·Wᵀ (W stored [out, in]: bFast 'k'); input gradient dY·W (bFast 'j'); weight gradient
// dYᵀ·X over the 8192 token rows (aFast 'i', bFast 'j', split-K)
const SHAPES: Shape[] = [
  { label: 'S/2 qkv', M: 8192, N: 1152, K: 384, aFast: 'k', bFast: 'k' },
  { label: 'S/2 fc1', M: 8192, N: 1536, K: 384, aFast: 'k', bFast: 'k' },
  { label: 'S/2 fc2', M: 8192, N: 384, K: 1536, aFast: 'k', bFast: 'k' },
  { label: 'S/2 fc2 dX', M: 8192, N: 1536, K: 384, aFast: 'k', bFast: 'j' },
  { label: 'S/2 proj dW', M: 384, N: 384, K: 8192, aFast: 'i', bFast: 'j', split: true },
  { label: 'S/2 fc1 dW', M: 1536, N: 384, K: 8192, aFast: 'i', bFast: 'j', split: true },
  { label: 'XL/2 qkv', M: 8192, N: 3456, K: 1152, aFast: 'k', bFast: 'k' },
  { label: 'XL/2 fc1', M: 8192, N: 4608, K: 1152, aFast: 'k', bFast: 'k' },
  { label: 'XL/2 fc2', M: 8192, N: 1152, K: 4608, aFast: 'k', bFast: 'k' },
  { label: 'XL/2 proj dW', M: 1152, N: 1152, K: 8192, aFast: 'i', bFast: 'j', split: true },
  { label: '4096³', M: 4096, N: 4096, K: 4096, aFast: 'k', bFast: 'j' },
  // XL/2's fc2 (K = 4d) as the block computes it, against dmod2 (its transpose-free twin: B with j contiguous)
  { label: 'XL/2 fc2 two outputs', M: 8192, N: 1152, K: 4608, aFast: 'k', bFast: 'k', twoOut: true },
  { label: 'XL/2 dmod2', M: 8192, N: 1152, K: 4608, aFast: 'k', bFast: 'j' },
  // XL/2's dh = dm·W2 (B with j contiguous) against fc1 (the same M × N × K, B with k contiguous)
  { label: 'XL/2 dh', M: 8192, N: 4608, K: 1152, aFast: 'k', bFast: 'j' },
  { label: 'XL/2 fc2 f16 A, two outputs', M: 8192, N: 1152, K: 4608, aFast: 'k', bFast: 'k', twoOut: true, f16A: true },
  { label: 'S/2 dmod2', M: 8192, N: 384, K: 1536, aFast: 'k', bFast: 'j' },
  // XL/2's forward products (and FPDM's projection: fc1z z·W1ᵀ [2d × d], fc2 [d × 2d]) with the activation
  // (A), the weight (B) or both stored in f16: what f16 activations and f16 weight copies would save
  ...(['qkv', 'fc1', 'fc2', 'proj', 'fpdm fc1z', 'fpdm fc2'] as const).flatMap((name) => {
    const [N, K] = {
      qkv: [3456, 1152],
      fc1: [4608, 1152],
      fc2: [1152, 4608],
      proj: [1152, 1152],
      'fpdm fc1z': [2304, 1152],
      'fpdm fc2': [1152, 2304],
    }[name];
    return (
      [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ] as const
    ).map(([f16A, f16B]): Shape => ({
      label: `XL/2 ${name} A${f16A ? 16 : 32} B${f16B ? 16 : 32}`,
      M: 8192,
      N,
      K,
      aFast: 'k',
      bFast: 'k',
      f16A,
      f16B,
    }));
  }),
  // XL/2's weight gradients with their bias gradients, in the fp32 form (a column of ones) and the mixed
  // one (the bias from A's staging)
  { label: 'XL/2 fc1 dW+db ones', M: 4608, N: 1152, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'ones' },
  { label: 'XL/2 fc1 dW+db rowSum', M: 4608, N: 1152, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'rowSum' },
  { label: 'XL/2 fc2 dW+db rowSum', M: 1152, N: 4608, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'rowSum' },
  { label: 'XL/2 qkv dW+db rowSum', M: 3456, N: 1152, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'rowSum' },
  { label: 'S/2 fc1 dW+db ones', M: 1536, N: 384, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'ones' },
  { label: 'S/2 fc1 dW+db rowSum', M: 1536, N: 384, K: 8192, aFast: 'i', bFast: 'j', split: true, bias: 'rowSum' },
  // fc2 as the block computes it: which of its load and its epilogue makes the difference
  { label: 'S/2 fc2 gelu(A)', M: 8192, N: 384, K: 1536, aFast: 'k', bFast: 'k', gelu: true },
  { label: 'S/2 fc2 two outputs', M: 8192, N: 384, K: 1536, aFast: 'k', bFast: 'k', twoOut: true },
  { label: 'S/2 fc2 gelu(A), two outputs', M: 8192, N: 384, K: 1536, aFast: 'k', bFast: 'k', gelu: true, twoOut: true },
  // the backward's products as the block computes them: dh = (dY ⊙ gate)·W2, dW2 = (dY ⊙ gate)ᵀ·GELU(h)
  { label: 'S/2 dh gate(A)', M: 8192, N: 1536, K: 384, aFast: 'k', bFast: 'j', gate: true },
  { label: 'S/2 dmerged gate(A)', M: 8192, N: 384, K: 384, aFast: 'k', bFast: 'j', gate: true },
  {
    label: 'S/2 fc2 dW gate(A), gelu(B)',
    M: 384,
    N: 1536,
    K: 8192,
    aFast: 'i',
    bFast: 'j',
    split: true,
    gate: true,
    geluB: true,
  },
  { label: 'S/2 fc2 dW gelu(B)', M: 384, N: 1536, K: 8192, aFast: 'i', bFast: 'j', split: true, geluB: true },
  // attention per head (192 = 32 samples × 6 heads): scores = q·kᵀ, pv = P·v, and the backward's dq = dS·k
  { label: 'S/2 attn scores', batch: 192, M: 256, N: 256, K: 64, aFast: 'k', bFast: 'k' },
  { label: 'S/2 attn pv', batch: 192, M: 256, N: 64, K: 256, aFast: 'k', bFast: 'j' },
  { label: 'S/2 attn dk (Aᵀ)', batch: 192, M: 256, N: 64, K: 256, aFast: 'i', bFast: 'j' },
  // at XL/2 (512 = 32 samples × 16 heads of 72): K = 72 for the scores, N = 72 for P·v
  { label: 'XL/2 attn scores', batch: 512, M: 256, N: 256, K: 72, aFast: 'k', bFast: 'k' },
  { label: 'XL/2 attn pv', batch: 512, M: 256, N: 72, K: 256, aFast: 'k', bFast: 'j' },
];

interface Options {
  reps: number;
  /** runs before the timed ones, in the same submission (the GPU's clocks ramp up under load) */
  warm: number;
  only?: string;
  /** mixed kernels whose name contains this (e.g. 'M16N16K16' or '128x128'); the fp32 one always runs */
  kernel?: string;
  json: boolean;
  out?: string;
  /** also the epilogue storing a subgroup's whole row of result matrices at once (MixedKernel.epilogueCols) */
  epilogue: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { reps: 10, warm: 50, json: false, epilogue: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UserError(`${a}: a value is expected`);
      return v;
    };
    if (a === '--reps') {
      o.reps = Number(value());
      if (!Number.isInteger(o.reps) || o.reps < 1) throw new UserError(`--reps: expected a positive integer`);
    } else if (a === '--warm') {
      o.warm = Number(value());
      if (!Number.isInteger(o.warm) || o.warm < 0) throw new UserError(`--warm: expected a non-negative integer`);
    } else if (a === '--only') o.only = value();
    else if (a === '--kernel') o.kernel = value();
    else if (a === '--json') o.json = true;
    else if (a === '--out') o.out = value();
    else if (a === '--epilogue') o.epilogue = true;
    else
      throw new UserError(
        `unknown argument '${a}': expected --reps N, --warm N, --only SUBSTRING, --kernel SUBSTRING, --json, --out FILE, --epilogue`,
      );
  }
  return o;
}

interface Row {
  shape: string;
  M: number;
  N: number;
  K: number;
  splits: number;
  kernel: string;
  /** mixedKernel's own choice for the shape */
  isDefault: boolean;
  ms: number;
  tflops: number;
  /** time of the fp32 kernel / this one */
  speedup: number;
  /** max |C − C_fp32| / max |C_fp32| (0 for the fp32 kernel itself) */
  maxRelErr: number;
  /** ‖C − C_fp32‖ / ‖C_fp32‖ */
  normRelErr: number;
}

/**
 * The operand loads of a shape: A and B as stored, A times a gate (a value per sample of 256 token rows
 * and reduction column, from G, as the block reads ADA) and GELU on either, where the shape says.
 */
function dispatchLoads(s: Shape): { a: string; b: string } {
  const { M, N, K } = s;
  const row = s.aFast === 'k' ? 'i' : 'k';
  const col = s.aFast === 'k' ? 'k' : 'i';
  const ao = s.batch ? `b * ${u(M * K)} + ` : '';
  const bo = s.batch ? `b * ${u(K * N)} + ` : '';
  const a00 = s.aFast === 'k' ? `A[${ao}i * ${u(K)} + k]` : `A[${ao}k * ${u(M)} + i]`;
  const a0 = s.gate ? `${a00} * G[(${row} / 256u) * ${u(s.aFast === 'k' ? K : M)} + ${col}]` : a00;
  const b0 = s.bFast === 'j' ? `B[${bo}k * ${u(N)} + j]` : `B[${bo}j * ${u(K)} + k]`;
  return { a: s.gelu ? `gelu(${a0})` : a0, b: s.geluB ? `gelu(${b0})` : b0 };
}

/** The matmul (and the sum of its split-K partials) over A, B into C, as dispatches. */
function dispatches(
  rk: RawKernels,
  s: Shape,
  splits: number,
  buf: { A: GBuffer; B: GBuffer; C: GBuffer; G: GBuffer; A16: GBuffer | null; B16: GBuffer | null },
  generate: (spec: MatMulSpec) => {
    key: string;
    code: string;
    groups: [number, number, number];
    /** the operands (A, B) bound again after the spec's bindings, as vec4 views (gemm-mixed.ts vectorViews) */
    views: string[];
  },
  mixed: boolean,
): Dispatch[] {
  const { M, N, K } = s;
  const loads = dispatchLoads(s);
  // A as f16 (read through f32()) on the tensor cores where the shape says
  const f16A = mixed && s.f16A === true;
  const a = f16A ? `f32(${loads.a})` : loads.a;
  const f16B = mixed && s.f16B === true;
  const b = f16B ? `f32(${loads.b})` : loads.b;
  const aBuf = f16A ? buf.A16! : buf.A;
  const bBuf = f16B ? buf.B16! : buf.B;
  // the bias gradient's form: 'rowSum' on the tensor cores only (the fp32 kernel has no aRowSum)
  const bias = s.bias === 'rowSum' && !mixed ? 'ones' : s.bias;
  const io: Binding[] = [
    { name: 'A', ...(f16A ? { type: 'f16' as const } : {}) },
    { name: 'B', ...(f16B ? { type: 'f16' as const } : {}) },
    ...(s.gate ? [{ name: 'G' }] : []),
  ];
  const gate = s.gate ? [buf.G] : [];
  const viewsOf = (g: { views: string[] }) => g.views.map((v) => (v === 'A' ? aBuf : bBuf));
  const helpers = s.gelu || s.geluB ? ACTIVATIONS : undefined;
  if (splits === 1) {
    const D = s.twoOut ? rk.scratch('gemmbench.d', M * N) : null;
    const spec: MatMulSpec = {
      batch: s.batch ?? 1,
      M,
      N,
      K,
      bindings: [...io, { name: 'C', write: true }, ...(D ? [{ name: 'D', write: true }] : [])],
      a,
      b,
      // two outputs: C the product + 1, D a residual (A's value at the same row) + a gate × it
      store: D
        ? `let mv = v + 1.0; C[i * ${u(N)} + j] = mv; D[i * ${u(N)} + j] = f32(A[i * ${u(K)} + j]) + 0.5 * mv;`
        : `C[${s.batch ? `b * ${u(M * N)} + ` : ''}i * ${u(N)} + j] = v;`,
      aFast: s.aFast,
      bFast: s.bFast,
      ...(helpers ? { helpers } : {}),
    };
    const g = generate(spec);
    return [
      {
        kernel: rk.kernel(g.key, () => g.code),
        buffers: [aBuf, bBuf, ...gate, buf.C, ...(D ? [D] : []), ...viewsOf(g)],
        groups: g.groups,
      },
    ];
  }
  const chunk = Math.ceil(K / splits);
  // 'ones': B gets a column of ones (C's column N is the bias gradient); 'rowSum': the bias gradient's
  // partials [splits, M] from the staging of A
  const NC = bias === 'ones' ? N + 1 : N;
  const part = rk.scratch(`gemmbench.part${NC}`, splits * M * NC);
  const partB = bias === 'rowSum' ? rk.scratch('gemmbench.partb', splits * M) : null;
  const db = bias ? rk.scratch('gemmbench.db', M) : null;
  const spec: MatMulSpec = {
    batch: splits,
    M,
    N: NC,
    K: chunk,
    kTotal: K,
    bindings: [...io, { name: 'PART', write: true }, ...(partB ? [{ name: 'PARTB', write: true }] : [])],
    a,
    b: bias === 'ones' ? `select(1.0, ${b}, j < ${u(N)})` : b,
    store: `PART[(b * ${u(M)} + i) * ${u(NC)} + j] = v;`,
    aFast: s.aFast,
    bFast: s.bFast,
    ...(helpers ? { helpers } : {}),
    ...(bias === 'rowSum' ? { aRowSum: `PARTB[b * ${u(M)} + i] = v;` } : {}),
  };
  const g = generate(spec);
  const sumKey = `gemmbench.sum:${M},${NC},${splits},${bias ?? ''}`;
  const store =
    bias === 'ones'
      ? `if (j < ${u(N)}) { C[i * ${u(N)} + j] = v; } else { DB[i] = v; }`
      : bias === 'rowSum'
        ? `C[i * ${u(N)} + j] = v;
  if (j == 0u) { var sb = 0.0; for (var s = 0u; s < ${u(splits)}; s = s + 1u) { sb = sb + PARTB[s * ${u(M)} + i]; } DB[i] = sb; }`
        : `C[i * ${u(N)} + j] = v;`;
  const sum = rk.kernel(sumKey, () =>
    splitReduceWgsl(
      [
        { name: 'PART' },
        ...(partB ? [{ name: 'PARTB' }] : []),
        { name: 'C', write: true },
        ...(db ? [{ name: 'DB', write: true }] : []),
      ],
      M,
      NC,
      splits,
      store,
    ),
  );
  return [
    {
      kernel: rk.kernel(g.key, () => g.code),
      buffers: [aBuf, bBuf, ...gate, part, ...(partB ? [partB] : []), ...viewsOf(g)],
      groups: g.groups,
    },
    {
      kernel: sum,
      buffers: [part, ...(partB ? [partB] : []), buf.C, ...(db ? [db] : [])],
      groups: elementGroups(M * NC),
    },
  ];
}

/** Median GPU milliseconds of running `ops` once (the sum over its dispatches), after `warm` warm-up runs. */
async function time(
  rk: RawKernels,
  ops: Dispatch[],
  tensors: tf.TensorInfo[],
  reps: number,
  warm: number,
): Promise<number> {
  const timer: NonNullable<RawKernels['timer']> = [];
  rk.timer = timer;
  try {
    for (let r = 0; r < reps + warm; r++) rk.run(ops, tensors);
  } finally {
    rk.timer = null;
  }
  const ms = await Promise.all(timer.map((t) => t.ms));
  const runs: number[] = [];
  for (let r = warm; r < reps + warm; r++)
    runs.push(ms.slice(r * ops.length, (r + 1) * ops.length).reduce((x, y) => x + y, 0));
  runs.sort((x, y) => x - y);
  return runs[Math.floor(runs.length / 2)]!;
}

function errors(c: Float32Array, ref: Float32Array): { maxRelErr: number; normRelErr: number } {
  let maxDiff = 0;
  let maxRef = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < c.length; i++) {
    const d = Math.abs(c[i]! - ref[i]!);
    if (!Number.isFinite(c[i]!)) return { maxRelErr: Infinity, normRelErr: Infinity };
    maxDiff = Math.max(maxDiff, d);
    maxRef = Math.max(maxRef, Math.abs(ref[i]!));
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return { maxRelErr: maxDiff / maxRef, normRelErr: Math.sqrt(num / den) };
}

interface GpuErrorTarget {
  addEventListener(type: 'uncapturederror', listener: (ev: { error: { message: string } }) => void): void;
}

/** whether `text` contains one of the comma-separated substrings of `alternatives` */
const anyOf = (alternatives: string, text: string) => alternatives.split(',').some((a) => text.includes(a));

const mmaName = (k: MixedKernel) => `M${k.mma.M}N${k.mma.N}K${k.mma.K}`;

async function benchShape(rk: RawKernels, device: MixedDeviceInfo, s: Shape, o: Options): Promise<Row[]> {
  const { M, N, K } = s;
  const splits = s.split ? splitK(M, N, K).splits : 1;
  const nb = s.batch ?? 1;
  const A = tf.randomNormal(s.aFast === 'k' ? [nb, M, K] : [nb, K, M], 0, 1, 'float32', 1);
  const B = tf.randomNormal(s.bFast === 'j' ? [nb, K, N] : [nb, N, K], 0, 1, 'float32', 2);
  const G = tf.randomNormal([32 * (s.aFast === 'k' ? K : M)], 0, 1, 'float32', 3); // gates of 32 samples
  const rows: Row[] = [];
  let fp32: { ms: number; C: Float32Array } | undefined;
  const variants: Array<{ name: string; kernel?: MixedKernel; isDefault: boolean }> = [
    { name: 'fp32', isDefault: false },
  ];
  // the loads as the shape has them, for mixedKernel's choice (it looks at what a load computes)
  const loads = dispatchLoads(s);
  const probe = {
    batch: s.batch ?? splits,
    M,
    N,
    aFast: s.aFast,
    bFast: s.bFast,
    ...loads,
    ...(s.bias === 'ones' ? { b: `select(1.0, ${loads.b}, j < ${u(N)})` } : {}),
  };
  const chosen = mixedKernel(device, probe);
  // where i is contiguous in A (weight gradients), both stagings of A: stageOfA's default first
  const stages: Array<'rows' | 'cols' | undefined> = s.aFast === 'i' ? [undefined, 'rows'] : [undefined];
  for (const mma of device.configs) {
    for (const tile of Object.keys(MIXED_TILES) as MixedTileName[]) {
      // the epilogue one result matrix at a time (e1) or, with --epilogue, a subgroup's whole row of them
      // too; the operands staged one value (scalar) or 4 at a time (v4: MixedKernel.vector) per thread
      if (!tileRunsOn(MIXED_TILES[tile], mma)) continue;
      const rowOf = (MIXED_TILES[tile] as MixedTile).cols / mma.N;
      const epilogues = o.epilogue ? [1, rowOf] : [1];
      const forms = stages.flatMap((a) =>
        epilogues.flatMap((e) => [false, true].map((vector) => [a, e, vector] as const)),
      );
      for (const [aStage, epilogueCols, vector] of forms) {
        const kernel: MixedKernel = {
          mma,
          subgroupSize: device.subgroupSize,
          tile: MIXED_TILES[tile],
          epilogueCols,
          vector,
          ...(aStage ? { aStage } : {}),
        };
        if (!mixedFits(probe, kernel, device)) continue;
        if (vector && (!vectorStaging(kernel) || epilogueCols !== 1)) continue;
        if (s.bias === 'rowSum' && !rowSumFits(kernel)) continue;
        const isDefault =
          chosen.mma === mma &&
          chosen.tile === kernel.tile &&
          aStage === undefined &&
          (chosen.epilogueCols ?? 1) === epilogueCols &&
          vectorStaging(chosen) === vector;
        const name = `${mmaName(kernel)} ${tile}${s.aFast === 'i' ? ` A ${stageOfA(probe, kernel)}` : ''} e${epilogueCols}${vector ? ' v4' : ''}`;
        if (o.kernel && !anyOf(o.kernel, name)) continue;
        variants.push({ name: `mixed ${name}`, kernel, isDefault });
      }
    }
  }
  // A and B rounded to f16, two values per float32 element, for the shapes that read them so
  const toF16 = (t: tf.Tensor): GBuffer => {
    const n = t.size;
    const half = rk.scratch(`gemmbench.f16.${t.id}`, Math.ceil(n / 2));
    const bindings: Binding[] = [{ name: 'X' }, { name: 'X16', write: true, type: 'f16' }];
    const convert = rk.kernel(
      `gemmbench.tof16:${n}`,
      () => `enable f16;\n${elementKernelWgsl(bindings, n, 'X16[idx] = f16(X[idx]);')}`,
    );
    rk.run([{ kernel: convert, buffers: [rk.buffer(t), half], groups: elementGroups(n) }], [t]);
    return half;
  };
  const A16 = s.f16A ? toF16(A) : null;
  const B16 = s.f16B ? toF16(B) : null;
  for (const v of variants) {
    const out = rk.output([nb, M, N]);
    const bufs = { A: rk.buffer(A), B: rk.buffer(B), C: out.buffer, G: rk.buffer(G), A16, B16 };
    const ops = dispatches(
      rk,
      s,
      splits,
      bufs,
      (spec) => {
        const k = v.kernel;
        const flags = ['gelu', 'twoOut', 'gate', 'geluB', 'f16A', 'f16B'].filter((f) => s[f as keyof Shape] === true);
        const shapeKey = `${spec.batch},${M},${spec.N},${spec.K},${s.aFast}${s.bFast}${flags.map((f) => `,${f}`).join('')},${s.bias ?? ''}`;
        if (!k)
          return { key: `gemmbench.fp32:${shapeKey}`, code: matMulWgsl(spec), groups: matMulGroups(spec), views: [] };
        const views = vectorViews(spec, k);
        const full = { ...spec, bindings: [...spec.bindings, ...views.map((x) => x.binding)] };
        return {
          key: `gemmbench.${v.name.replace(/ /g, '.')}:${shapeKey}`,
          code: mixedMatMulWgsl(full, k),
          groups: mixedMatMulGroups(full, k),
          views: views.map((x) => x.of),
        };
      },
      v.kernel !== undefined,
    );
    // C's buffer comes from TF.js's pool and may still hold the previous kernel's result: filled with
    // 3e38 first, an element that a kernel fails to write shows as an error
    const cells = nb * M * N;
    const poison = rk.kernel(`gemmbench.poison:${cells}`, () =>
      elementKernelWgsl([{ name: 'C', write: true }], cells, 'C[idx] = 3.0e38;'),
    );
    rk.run([{ kernel: poison, buffers: [out.buffer], groups: elementGroups(cells) }], [out.tensor]);
    const ms = await time(rk, ops, [A, B, G, out.tensor], o.reps, o.warm);
    const C = (await out.tensor.data()) as Float32Array;
    out.tensor.dispose();
    fp32 ??= { ms, C };
    const err = v.kernel ? errors(C, fp32.C) : { maxRelErr: 0, normRelErr: 0 };
    const row: Row = {
      shape: s.label,
      M,
      N,
      K,
      splits,
      kernel: v.name,
      isDefault: v.isDefault,
      ms,
      tflops: (2 * nb * M * N * K) / (ms * 1e-3) / 1e12,
      speedup: fp32.ms / ms,
      ...err,
    };
    rows.push(row);
    process.stderr.write(
      `${s.label} ${v.name}${v.isDefault ? ' (default)' : ''}: ${ms.toFixed(3)} ms, ${row.tflops.toFixed(2)} TFLOP/s, max rel. err ${row.maxRelErr.toExponential(2)}\n`,
    );
  }
  tf.dispose([A, B, G]);
  return rows;
}

function table(rows: Row[]): string {
  const lines = [
    '| shape | M×N×K | splits | kernel | ms | TFLOP/s | × fp32 | max rel. err | norm rel. err |',
    '| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.shape} | ${r.M}×${r.N}×${r.K} | ${r.splits} | ${r.kernel}${r.isDefault ? ' (default)' : ''} | ${r.ms.toFixed(3)} | ${r.tflops.toFixed(2)} | ${r.speedup.toFixed(2)} | ${r.maxRelErr.toExponential(2)} | ${r.normRelErr.toExponential(2)} |`,
    );
  // the best mixed kernel per shape
  lines.push('', '| shape | fp32 TFLOP/s | best mixed | TFLOP/s | × fp32 | default mixed | TFLOP/s |');
  lines.push('| --- | ---: | --- | ---: | ---: | --- | ---: |');
  for (const shape of [...new Set(rows.map((r) => r.shape))]) {
    const of = rows.filter((r) => r.shape === shape);
    const fp32 = of.find((r) => r.kernel === 'fp32')!;
    const mixed = of.filter((r) => r.kernel !== 'fp32');
    const best = mixed.reduce((x, y) => (y.tflops > x.tflops ? y : x), mixed[0]!);
    const def = mixed.find((r) => r.isDefault);
    lines.push(
      `| ${shape} | ${fp32.tflops.toFixed(2)} | ${best?.kernel ?? '—'} | ${best?.tflops.toFixed(2) ?? '—'} | ${best?.speedup.toFixed(2) ?? '—'} | ${def?.kernel ?? '—'} | ${def?.tflops.toFixed(2) ?? '—'} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const backend = await initBackend('webgpu', { precision: 'mixed' });
  const rk = rawKernels()!;
  const device = mixedDeviceInfo(rk.device);
  if (!device) throw new Error('the webgpu backend is not on the mixed-precision device');
  if (!rk.device.features.has('timestamp-query'))
    throw new UserError('the GPU has no timestamp queries, which this bench times the kernels with');
  // a kernel that fails validation does not throw: its output would be whatever the pooled buffer held
  (rk.device as unknown as GpuErrorTarget).addEventListener('uncapturederror', (ev) => {
    process.stderr.write(`WebGPU error (a kernel did not run), stopping: ${ev.error.message}\n`);
    process.exit(1);
  });
  const shapes = SHAPES.filter((s) => !o.only || anyOf(o.only, s.label));
  if (shapes.length === 0)
    throw new UserError(`--only ${o.only}: no shape matches (${SHAPES.map((s) => s.label).join(', ')})`);
  process.stderr.write(
    `${backend.device}; subgroup size ${device.subgroupSize}, ${device.maxWorkgroupBytes} B workgroup memory, ${device.maxThreads} threads per workgroup\n`,
  );
  const rows: Row[] = [];
  for (const s of shapes) rows.push(...(await benchShape(rk, device, s, o)));
  const app = process.env.APP;
  const result = {
    bench: 'gemm-mixed',
    date: new Date().toISOString(),
    commit:
      gitCommit() ?? (app && existsSync(join(app, 'COMMIT')) ? readFileSync(join(app, 'COMMIT'), 'utf8').trim() : null),
    backend,
    device,
    tiles: MIXED_TILES,
    reps: o.reps,
    warm: o.warm,
    rows,
  };
  const json = JSON.stringify(result, null, 2);
  if (o.out) writeFileSync(o.out, json + '\n');
  if (o.json) {
    process.stderr.write(table(rows) + '\n');
    process.stdout.write(json + '\n');
  } else process.stdout.write(`${table(rows)}\n\n${json}\n`);
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    process.stderr.write(e instanceof UserError ? `gemm-mixed-bench: ${e.message}\n` : `${e.stack ?? e.message}\n`);
    process.exit(e instanceof UserError ? 2 : 1);
  },
);
