// Mixed-precision matmul (src/backends/webgpu/gemm-mixed.ts on the device of
// src/backends/webgpu/device.ts) against the float32 kernel it stands in for (gemm.ts matMulWgsl) and a
// float64 reference on the host, over shapes that are and are not multiples of the tiles, batch > 1,
// split-K (kTotal), transposed operands (aFast 'i', bFast 'k'), an operand expression (SiLU) and an
// epilogue with bias + GELU.
//   tensor cores   where the GPU has f16 subgroup matrices (an H200): every f16 → f32 config and every
//                  tile of MIXED_TILES that fits; the result matches the host's product of the
//                  f16-rounded operands (f32 accumulation only differs in order) and the fp32 kernel
//                  within f16 rounding (≈ 1e-3 of the output norm); also through Plan.matMul
//   emulated       on any webgpu device (SwiftShader here): the same kernels with the subgroup-matrix
//                  operations done in plain f32 — the tiling, staging, offsets and epilogue against
//                  the fp32 kernel and the host
//   Dawn validator every tile and config compiles and makes a pipeline on Dawn's null backend (no GPU
//                  needed), and the workgroup memory counted by mixedWorkgroupBytes is Dawn's count
//   refusal        a GPU without the features: mixedPrecisionSupport and initBackend name the missing
//                  ones and point to --precision fp32
//   training step  on the mixed device, the direct step with loss scaling (forward and backward on the
//                  tensor cores) against the same step's fp32 backward and against TF.js's fp32 ops:
//                  loss and every gradient within f16 rounding
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backends/index.js';
import {
  MIXED_DAWN_FLAGS,
  MIXED_FEATURES,
  type MixedAdapter,
  type MmaShape,
} from '../../src/backends/webgpu/device.js';
import {
  MIXED_TILES,
  mixedFits,
  mixedMatMulGroups,
  mixedMatMulWgsl,
  mixedWorkgroupBytes,
  rowSumFits,
  tileRunsOn,
  vectorStaging,
  vectorViews,
  packedRuns,
  type MixedKernel,
} from '../../src/backends/webgpu/gemm-mixed.js';
import {
  ACTIVATIONS,
  elementGroups,
  elementKernelWgsl,
  matMulGroups,
  matMulWgsl,
  u,
  type MatMulSpec,
} from '../../src/backends/webgpu/gemm.js';
import { Plan } from '../../src/backends/webgpu/plan.js';
import { rawKernels, type Dispatch, type RawKernels } from '../../src/backends/webgpu/raw.js';
import type { GBuffer } from '../../src/backends/webgpu/types.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { nullDevice, validate, type NullDevice } from './dawn-null.js';
import { NO_TENSOR_CORES, SKIP, onGpu, support } from './mixed-support.js';
import { randomTensor, sha256, tensorRelErr, useBackend } from '../helpers.js';
import { directTrainingStep, setKernelOptions } from '../../src/backends/kernels.js';
import { createDiffusion, diffusionConfig } from '../../src/diffusion/process.js';
import { TINY_TRUNK, randomModel, tapedStep, tinyFpdm } from './tiny-models.js';

/** The f16 → f32 subgroup-matrix shapes of the H200 (the reference's measured configs). */
const H200_CONFIGS: MmaShape[] = [
  { M: 16, N: 16, K: 16 },
  { M: 16, N: 8, K: 16 },
  { M: 16, N: 8, K: 8 },
];

/** Dawn instances created here, kept referenced for the life of the process */
const instances: object[] = [];

// ---- the products under test -------------------------------------------------------------------------

interface Case {
  label: string;
  batch: number;
  M: number;
  N: number;
  /** the reduction per batch index (per chunk with kTotal) */
  K: number;
  kTotal?: number;
  aFast: 'i' | 'k';
  bFast: 'j' | 'k';
  /** A enters as SiLU(A) */
  siluA?: boolean;
  /** C = GELU(v + bias[j]) instead of v */
  biasGelu?: boolean;
}

const CASES: Case[] = [
  { label: 'tile multiples', batch: 1, M: 128, N: 128, K: 64, aFast: 'k', bFast: 'j' },
  { label: 'no tile multiples', batch: 1, M: 75, N: 51, K: 37, aFast: 'k', bFast: 'k' },
  { label: 'batch 3', batch: 3, M: 40, N: 72, K: 50, aFast: 'k', bFast: 'j' },
  { label: 'split-K, 3 chunks of 48 over 130', batch: 3, M: 33, N: 65, K: 48, kTotal: 130, aFast: 'i', bFast: 'j' },
  { label: 'A and B transposed', batch: 2, M: 70, N: 90, K: 45, aFast: 'i', bFast: 'k' },
  {
    label: 'SiLU operand, bias + GELU',
    batch: 1,
    M: 100,
    N: 80,
    K: 70,
    aFast: 'k',
    bFast: 'k',
    siluA: true,
    biasGelu: true,
  },
  // whole tiles with rows that start at multiples of 4 (vector staging's aligned loads), the last chunk partial
  { label: 'split-K, 3 chunks of 64 over 160', batch: 3, M: 128, N: 64, K: 64, kTotal: 160, aFast: 'i', bFast: 'j' },
  // attention's products at 72 values per head (XL/2): 72 columns and 72 values of k
  { label: '72 columns, k 72', batch: 2, M: 128, N: 72, K: 72, aFast: 'k', bFast: 'j' },
];
/** several workgroups of the largest tiles, with partial ones at both edges (tensor cores only) */
const LARGE: Case = { label: 'large', batch: 1, M: 520, N: 700, K: 300, aFast: 'k', bFast: 'k', biasGelu: true };

interface Data {
  A: Float32Array;
  B: Float32Array;
  bias: Float32Array;
}

function dataFor(c: Case): Data {
  const ob = c.kTotal === undefined ? c.batch : 1;
  const kt = c.kTotal ?? c.K;
  const rng = new Rng(`mixed-gemm/${c.label}`);
  return { A: rng.normals(ob * c.M * kt), B: rng.normals(ob * kt * c.N), bias: rng.normals(c.N) };
}

/** The case as a MatMulSpec over bindings A, B, BIAS, C (operands stored as aFast / bFast say). */
function specFor(c: Case): MatMulSpec {
  const kt = c.kTotal ?? c.K;
  const ob = c.kTotal === undefined && c.batch > 1 ? 'b' : '0u';
  const aIdx = c.aFast === 'k' ? `(${ob} * ${u(c.M)} + i) * ${u(kt)} + k` : `(${ob} * ${u(kt)} + k) * ${u(c.M)} + i`;
  const bIdx = c.bFast === 'j' ? `(${ob} * ${u(kt)} + k) * ${u(c.N)} + j` : `(${ob} * ${u(c.N)} + j) * ${u(kt)} + k`;
  const at = `C[(b * ${u(c.M)} + i) * ${u(c.N)} + j]`;
  return {
    batch: c.batch,
    M: c.M,
    N: c.N,
    K: c.K,
    kTotal: c.kTotal,
    bindings: [{ name: 'A' }, { name: 'B' }, { name: 'BIAS' }, { name: 'C', write: true }],
    a: c.siluA ? `silu(A[${aIdx}])` : `A[${aIdx}]`,
    b: `B[${bIdx}]`,
    // BIAS is read in every epilogue, so that every binding is used (layout 'auto'); with the GELU as an
    // epilogue load (MatMulSpec.epilogueLoads: the tensor-core kernel's hoisted loads)
    ...(c.biasGelu ? { epilogueLoads: ['BIAS[j]'] } : {}),
    store: c.biasGelu ? `${at} = gelu(v + w0);` : `${at} = v + 0.0 * BIAS[j];`,
    aFast: c.aFast,
    bFast: c.bFast,
    helpers: ACTIVATIONS,
  };
}

const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => v / (1 + Math.exp(-2 * Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/** x rounded to the nearest f16 (ties to even; no overflow at the sizes used here). */
function toF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  let e = Math.floor(Math.log2(Math.abs(x)));
  if (2 ** e > Math.abs(x)) e--;
  if (2 ** (e + 1) <= Math.abs(x)) e++;
  const q = 2 ** (Math.max(e, -14) - 10); // the spacing of f16 values around x (subnormal below 2^-14)
  const r = x / q;
  const f = Math.floor(r);
  const d = r - f;
  const n = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
  return n * q;
}

/** C of the case in float64 on the host, from operands passed through `round` (identity: exact). */
function reference(c: Case, d: Data, round: (x: number) => number = (x) => x): Float64Array {
  const kt = c.kTotal ?? c.K;
  const out = new Float64Array(c.batch * c.M * c.N);
  for (let b = 0; b < c.batch; b++) {
    const ob = c.kTotal === undefined ? b : 0;
    const lo = c.kTotal === undefined ? 0 : b * c.K;
    const hi = c.kTotal === undefined ? c.K : Math.min(lo + c.K, c.kTotal);
    for (let i = 0; i < c.M; i++) {
      const a = new Float64Array(hi - lo);
      for (let k = lo; k < hi; k++) {
        const v = d.A[c.aFast === 'k' ? (ob * c.M + i) * kt + k : (ob * kt + k) * c.M + i]!;
        a[k - lo] = round(c.siluA ? Math.fround(silu(v)) : v);
      }
      for (let j = 0; j < c.N; j++) {
        let s = 0;
        for (let k = lo; k < hi; k++)
          s += a[k - lo]! * round(d.B[c.bFast === 'j' ? (ob * kt + k) * c.N + j : (ob * c.N + j) * kt + k]!);
        out[(b * c.M + i) * c.N + j] = c.biasGelu ? gelu(s + d.bias[j]!) : s;
      }
    }
  }
  return out;
}

/** ‖got − want‖ / ‖want‖ (Infinity when got holds a non-finite value) */
function normRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i]!)) return Infinity;
    num += (got[i]! - want[i]!) ** 2;
    den += want[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** a dispatch that fills C with a value no product here comes near */
function poison(rk: RawKernels, C: GBuffer, n: number): Dispatch {
  const kernel = rk.kernel(`mixedtest.poison:${n}`, () =>
    elementKernelWgsl([{ name: 'C', write: true }], n, 'C[idx] = 3.0e38;'),
  );
  return { kernel, buffers: [C], groups: elementGroups(n) };
}

/**
 * Runs a matmul kernel on the case's data (bindings A, B, BIAS, C) and reads C back. C is filled with
 * 3e38 first: its buffer comes from TF.js's pool, where it may still hold an earlier kernel's result
 * for the same shape, which an element the kernel fails to write would otherwise keep.
 */
async function runKernel(
  rk: RawKernels,
  code: string,
  groups: [number, number, number],
  c: Case,
  d: Data,
  views: string[] = [],
) {
  const kernel = rk.kernel(`mixedtest:${sha256(new TextEncoder().encode(code))}`, () => code);
  const inputs = [tf.tensor(d.A), tf.tensor(d.B), tf.tensor(d.bias)];
  const n = c.batch * c.M * c.N;
  const out = rk.output([n]);
  const buffers = [...inputs.map((t) => rk.buffer(t)), out.buffer];
  const byName: Record<string, GBuffer> = { A: buffers[0]!, B: buffers[1]!, BIAS: buffers[2]!, C: out.buffer };
  rk.run(
    [poison(rk, out.buffer, n), { kernel, buffers: [...buffers, ...views.map((v) => byName[v]!)], groups }],
    [...inputs, out.tensor],
  );
  const values = await out.tensor.data();
  tf.dispose([...inputs, out.tensor]);
  return values;
}

/**
 * The mixed kernel's run on the case: the spec with the vec4 views it reads plain operands through
 * (vectorViews; bound after A, B, BIAS, C to the same buffers), its code and groups.
 */
async function runMixed(rk: RawKernels, spec: MatMulSpec, k: MixedKernel, c: Case, d: Data) {
  const views = vectorViews(spec, k);
  const full = { ...spec, bindings: [...spec.bindings, ...views.map((v) => v.binding)] };
  const code = mixedMatMulWgsl(full, k);
  return runKernel(
    rk,
    code,
    mixedMatMulGroups(full, k),
    c,
    d,
    views.map((v) => v.of),
  );
}

// ---- the tests ---------------------------------------------------------------------------------------

test('mixed precision needs the webgpu backend: any other is refused with a UserError', async () => {
  await assert.rejects(
    initBackend('cpu', { precision: 'mixed' }),
    (e: Error) => e instanceof UserError && /webgpu/.test(e.message) && /--precision fp32/.test(e.message),
  );
});

test(
  'a GPU without the features is refused, naming the missing ones and --precision fp32',
  { skip: onGpu ? (support?.ok ? 'this GPU has the features (the tensor-core test runs instead)' : false) : SKIP },
  async () => {
    // the adapter as seen independently of device.ts, with the same Dawn flags
    const mod = (await import('webgpu')) as unknown as {
      create(flags: string[]): { requestAdapter(o: object): Promise<MixedAdapter | null> };
    };
    const gpu = mod.create(MIXED_DAWN_FLAGS);
    instances.push(gpu); // a Dawn instance must outlive its adapters and devices
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    assert.ok(adapter, 'the webgpu suite runs where Dawn finds an adapter');
    const missing = MIXED_FEATURES.filter((f) => !adapter.features.has(f));
    const present = MIXED_FEATURES.filter((f) => adapter.features.has(f));
    assert.ok(support && !support.ok, 'mixedPrecisionSupport says not ok');
    const names = (message: string) => {
      for (const f of missing) assert.ok(message.includes(f), `'${message}' names the missing feature ${f}`);
      for (const f of present) assert.ok(!message.includes(f), `'${message}' does not name ${f}, which is there`);
      assert.match(message, /--precision fp32/);
    };
    if (missing.length > 0) names(support.reason);
    else assert.match(support.reason, /subgroup-matrix configuration|subgroupMaxSize/);
    await assert.rejects(initBackend('webgpu', { precision: 'mixed' }), (e: Error) => {
      assert.ok(e instanceof UserError, `a UserError, not ${e.name}: ${e.message}`);
      if (missing.length > 0) names(e.message);
      return true;
    });
  },
);

/** Kernels for the emulated run: several subgroup layouts, matrices per subgroup and k steps per stage, and prefetch. */
const EMULATED: Array<[string, MixedKernel]> = [
  [
    'M16 N16 K16, 2×2 subgroups of 32×16, k 16',
    { mma: H200_CONFIGS[0]!, subgroupSize: 32, tile: { sgRows: 2, sgCols: 2, rows: 32, cols: 16, tk: 16 } },
  ],
  [
    'M16 N8 K8, 1×4 subgroups of 16×16, k 16',
    { mma: H200_CONFIGS[2]!, subgroupSize: 32, tile: { sgRows: 1, sgCols: 4, rows: 16, cols: 16, tk: 16 } },
  ],
  ['M16 N16 K16, tile 64x64k32', { mma: H200_CONFIGS[0]!, subgroupSize: 32, tile: MIXED_TILES['64x64k32'] }],
  [
    'M16 N16 K16, 2×2 subgroups of 32×48 (3 matrices per row), k 16, prefetch',
    {
      mma: H200_CONFIGS[0]!,
      subgroupSize: 32,
      tile: { sgRows: 2, sgCols: 2, rows: 32, cols: 48, tk: 16, prefetch: true },
    },
  ],
  [
    'M16 N8 K16, 2×2 subgroups of 32×16, k 32, prefetch',
    {
      mma: H200_CONFIGS[1]!,
      subgroupSize: 32,
      tile: { sgRows: 2, sgCols: 2, rows: 32, cols: 16, tk: 32, prefetch: true },
    },
  ],
  [
    'M16 N16 K16, 2×4 subgroups of 32×16 (8 subgroups), k 32, prefetch',
    {
      mma: H200_CONFIGS[0]!,
      subgroupSize: 32,
      tile: { sgRows: 2, sgCols: 4, rows: 32, cols: 16, tk: 32, prefetch: true },
    },
  ],
  [
    'M16 N8 K16, 2×1 subgroups of 16×72 (9 matrices per row, as P·v at 72 values per head), k 16',
    { mma: H200_CONFIGS[1]!, subgroupSize: 32, tile: { sgRows: 2, sgCols: 1, rows: 16, cols: 72, tk: 16 } },
  ],
  [
    'M16 N8 K8, 1×2 subgroups of 16×8, k 72 in one stage (as the scores at 72 values per head)',
    { mma: H200_CONFIGS[2]!, subgroupSize: 32, tile: { sgRows: 1, sgCols: 2, rows: 16, cols: 8, tk: 72 } },
  ],
];

test(
  'the mixed kernel emulated in f32 (same tiles, staging, offsets, epilogue) equals the fp32 kernel and the host',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu', support?.ok ? { precision: 'mixed' } : {});
    const rk = rawKernels()!;
    for (const c of CASES) {
      const spec = specFor(c);
      const d = dataFor(c);
      const want = reference(c, d);
      const fp32 = await runKernel(rk, matMulWgsl(spec), matMulGroups(spec), c, d);
      const e32 = normRelErr(fp32, want);
      assert.ok(e32 <= 1e-5, `${c.label}: fp32 kernel vs host, rel. error ${e32}`);
      for (const [name, k] of EMULATED) {
        // both stagings of A ([BM][TK] rows: row-major left matrices; [TK][BM] columns: column-major), the
        // epilogue one matrix at a time or a subgroup's whole row of them, and the operands staged 4 values
        // at a time (vector) where the tile allows
        const wholeRow = k.tile.cols / k.mma.N;
        // (and the epilogue's loads hoisted, with vector staging and without)
        const variants = [
          ...[1, wholeRow].map((epilogueCols) => ({ epilogueCols, vector: false, hoistLoads: false })),
          { epilogueCols: 1, vector: false, hoistLoads: true },
          { epilogueCols: 1, vector: true, hoistLoads: true },
        ];
        for (const aStage of ['rows', 'cols'] as const) {
          for (const { epilogueCols, vector, hoistLoads } of variants) {
            const kernel = { ...k, emulate: true, aStage, epilogueCols, vector, hoistLoads };
            if (vector && !vectorStaging(kernel)) continue;
            const got = await runMixed(rk, spec, kernel, c, d);
            const eFp32 = normRelErr(got, fp32);
            assert.ok(
              eFp32 <= 1e-5,
              `${c.label}, ${name}, A staged as ${aStage}, epilogue ${epilogueCols} matrices${vector ? ', vector staging' : ''}${hoistLoads ? ', loads hoisted' : ''}: emulated vs the fp32 kernel, rel. error ${eFp32}`,
            );
          }
        }
      }
    }
  },
);

test(
  "aRowSum (a weight gradient's bias gradient from the staging of A) equals the host's row sums; C is unchanged",
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu', support?.ok ? { precision: 'mixed' } : {});
    const rk = rawKernels()!;
    for (const c of CASES.filter((x) => x.aFast === 'i')) {
      const d = dataFor(c);
      const kt = c.kTotal ?? c.K;
      // Σ_k A(b, i, k) over batch index b's range of k (its chunk with split-K), in float64
      const want = new Float64Array(c.batch * c.M);
      for (let b = 0; b < c.batch; b++) {
        const ob = c.kTotal === undefined ? b : 0;
        const lo = c.kTotal === undefined ? 0 : b * c.K;
        const hi = c.kTotal === undefined ? c.K : Math.min(lo + c.K, c.kTotal);
        for (let i = 0; i < c.M; i++) for (let k = lo; k < hi; k++) want[b * c.M + i]! += d.A[(ob * kt + k) * c.M + i]!;
      }
      const wantC = reference(c, d);
      const base = specFor(c);
      const spec: MatMulSpec = {
        ...base,
        bindings: [...base.bindings, { name: 'RS', write: true }],
        aRowSum: `RS[b * ${u(c.M)} + i] = v;`,
      };
      for (const [name, k] of EMULATED) {
        for (const [aStage, vector] of [
          ['rows', false],
          ['cols', false],
          ['cols', true],
        ] as const) {
          const kernel: MixedKernel = { ...k, emulate: true, aStage, epilogueCols: k.tile.cols / k.mma.N, vector };
          if (!rowSumFits(kernel) || (vector && !vectorStaging(kernel))) continue;
          const views = vectorViews(spec, kernel);
          const code = mixedMatMulWgsl(
            { ...spec, bindings: [...spec.bindings, ...views.map((v) => v.binding)] },
            kernel,
          );
          const byName: Record<string, number> = { A: 0, B: 1 };
          const compiled = rk.kernel(`mixedtest.rowsum:${sha256(new TextEncoder().encode(code))}`, () => code);
          const inputs = [tf.tensor(d.A), tf.tensor(d.B), tf.tensor(d.bias)];
          const C = rk.output([c.batch * c.M * c.N]);
          const RS = rk.output([c.batch * c.M]);
          rk.run(
            [
              poison(rk, C.buffer, c.batch * c.M * c.N),
              poison(rk, RS.buffer, c.batch * c.M),
              {
                kernel: compiled,
                buffers: [
                  ...inputs.map((t) => rk.buffer(t)),
                  C.buffer,
                  RS.buffer,
                  ...views.map((v) => rk.buffer(inputs[byName[v.of]!]!)),
                ],
                groups: mixedMatMulGroups(spec, kernel),
              },
            ],
            [...inputs, C.tensor, RS.tensor],
          );
          const [gotC, gotRS] = await Promise.all([C.tensor.data(), RS.tensor.data()]);
          tf.dispose([...inputs, C.tensor, RS.tensor]);
          const label = `${c.label}, ${name}, A staged as ${aStage}${vector ? ', vector staging' : ''}`;
          const eRS = normRelErr(gotRS, want);
          assert.ok(eRS <= 1e-6, `${label}: row sums vs the host, rel. error ${eRS}`);
          const eC = normRelErr(gotC, wantC);
          assert.ok(eC <= 1e-5, `${label}: C vs the host, rel. error ${eC}`);
        }
      }
    }
  },
);

test(
  "Plan.matMul at precision 'mixed' on a device without tensor cores says what it needs",
  { skip: onGpu ? (support?.ok ? 'this GPU has the mixed-precision device' : false) : SKIP },
  async () => {
    await useBackend('webgpu');
    const rk = rawKernels()!;
    const p = new Plan(rk, 'mixedtest', 'x');
    p.precision = 'mixed';
    const buf = rk.scratch('mixedtest.x', 16);
    const { bindings: _, ...spec } = specFor(CASES[0]!);
    assert.throws(
      () => p.matMul('mm', [['A', buf]], spec),
      /precision 'mixed' needs the webgpu backend on the mixed-precision device/,
    );
  },
);

test(
  'the tensor-core kernel equals the product of f16-rounded operands and the fp32 kernel within f16 rounding',
  { skip: NO_TENSOR_CORES },
  async () => {
    assert.ok(support?.ok);
    await useBackend('webgpu', { precision: 'mixed' });
    const rk = rawKernels()!;
    for (const c of [...CASES, LARGE]) {
      const spec = specFor(c);
      const d = dataFor(c);
      const want16 = reference(c, d, toF16);
      const fp32 = await runKernel(rk, matMulWgsl(spec), matMulGroups(spec), c, d);
      for (const mma of support.configs) {
        for (const [[name, tile], vector] of Object.entries(MIXED_TILES).flatMap((t) => [
          [t, false] as const,
          [t, true] as const,
        ])) {
          // vector staging with the epilogue's loads hoisted (mixedKernel's default), else neither
          const k: MixedKernel = { mma, subgroupSize: support.subgroupSize, tile, vector, hoistLoads: vector };
          if (!tileRunsOn(tile, mma)) continue;
          if (!mixedFits(spec, k, support) || (vector && !vectorStaging(k))) continue;
          const label = `${c.label}, M${mma.M} N${mma.N} K${mma.K}, tile ${name}${vector ? ', vector staging' : ''}`;
          const got = await runMixed(rk, spec, k, c, d);
          const e16 = normRelErr(got, want16);
          const e32 = normRelErr(got, fp32);
          // f32 accumulation in another order: ~1e-6; f16 rounding to other than nearest would show here
          assert.ok(e16 <= 1e-4, `${label}: vs the host's product of f16-rounded operands, rel. error ${e16}`);
          // f16 operands: 2^-11 relative rounding each, ≈ 4e-4 of the norm for random data
          assert.ok(e32 <= 2e-3, `${label}: vs the fp32 kernel, rel. error ${e32}`);
        }
      }
    }
  },
);

test(
  "Plan.matMul at precision 'mixed' runs the tensor-core kernel (and fp32 by default)",
  { skip: NO_TENSOR_CORES },
  async () => {
    await useBackend('webgpu', { precision: 'mixed' });
    const rk = rawKernels()!;
    const c = CASES[5]!;
    const d = dataFor(c);
    const want16 = reference(c, d, toF16);
    const want = reference(c, d);
    const { bindings: _, helpers: __, ...spec } = specFor(c);
    const results: Record<string, Float32Array> = {};
    for (const precision of ['fp32', 'mixed'] as const) {
      const inputs = [tf.tensor(d.A), tf.tensor(d.B), tf.tensor(d.bias)];
      const n = c.batch * c.M * c.N;
      const out = rk.output([n]);
      const p = new Plan(rk, 'mixedtest', `${precision}`);
      if (precision === 'mixed') p.precision = 'mixed';
      p.matMul(
        'mm',
        [
          ['A', rk.buffer(inputs[0]!)],
          ['B', rk.buffer(inputs[1]!)],
          ['BIAS', rk.buffer(inputs[2]!)],
          ['C', out.buffer, true],
        ],
        spec,
      );
      assert.equal(p.ops.length, 1);
      assert.equal(p.ops[0]!.kernel.key.includes(':mixed'), precision === 'mixed', p.ops[0]!.kernel.key);
      rk.run([poison(rk, out.buffer, n), ...p.ops], [...inputs, out.tensor]);
      results[precision] = (await out.tensor.data()) as Float32Array;
      tf.dispose([...inputs, out.tensor]);
    }
    const e32 = normRelErr(results.fp32!, want);
    const e16 = normRelErr(results.mixed!, want16);
    assert.ok(e32 <= 1e-5, `fp32 plan vs host, rel. error ${e32}`);
    assert.ok(e16 <= 1e-4, `mixed plan vs host's f16-rounded product, rel. error ${e16}`);
  },
);

// ---- Dawn's validator, on its null backend -----------------------------------------------------------

const validator = await nullDevice();

test(
  "every tile and subgroup-matrix config compiles under Dawn's validator, with the workgroup memory counted right",
  { skip: typeof validator === 'string' ? validator : false },
  async () => {
    const dev = validator as NullDevice;
    const limit = dev.limits.maxComputeWorkgroupStorageSize!;
    const check = (code: string) => validate(dev, code);
    const specs = [CASES[0]!, CASES[3]!, CASES[4]!, CASES[5]!].map(specFor);
    // A an f16 array read through f32() (as fc2 reads GELU(h)): its vec4 view is vec4<f16>
    const f16A = specFor(CASES[0]!);
    specs.push({
      ...f16A,
      bindings: f16A.bindings.map((b) => (b.name === 'A' ? { ...b, type: 'f16' as const } : b)),
      a: `f32(${f16A.a})`,
    });
    let overLimit = 0;
    for (const mma of H200_CONFIGS) {
      for (const [name, tile] of Object.entries(MIXED_TILES)) {
        if (!tileRunsOn(tile, mma)) continue;
        for (const [spec, epilogueCols] of specs.flatMap(
          (x) =>
            [
              [x, 1],
              [x, tile.cols / mma.N],
            ] as const,
        )) {
          for (const [vector, packed16] of [
            [false, false],
            [true, false],
            [true, true],
          ] as const) {
            const k: MixedKernel = { mma, subgroupSize: 32, tile, epilogueCols, vector, packed16 };
            if (vector && (!vectorStaging(k) || epilogueCols !== 1)) continue;
            // f16 operands prefetched as raw bits: only a prefetching tile with an f16 operand differs
            if (packed16 && (!packedRuns(k) || spec.bindings[0]!.type !== 'f16')) continue;
            const views = vectorViews(spec, k);
            const label = `M${mma.M} N${mma.N} K${mma.K}, ${name}, aFast ${spec.aFast}, bFast ${spec.bFast}, A ${spec.bindings[0]!.type ?? 'f32'}, epilogue ${epilogueCols} matrices${vector ? `, vector staging (${views.length} views)` : ''}${packed16 ? ', f16 prefetched as raw bits' : ''}`;
            const code = mixedMatMulWgsl({ ...spec, bindings: [...spec.bindings, ...views.map((v) => v.binding)] }, k);
            const { compile, pipeline } = await check(code);
            assert.deepEqual(compile, [], `${label}: compiles`);
            const bytes = mixedWorkgroupBytes(spec, k);
            if (bytes <= limit) assert.equal(pipeline, undefined, `${label}: pipeline`);
            else {
              overLimit++;
              assert.ok(pipeline?.includes(`(${bytes} bytes)`), `${label}: Dawn counts ${bytes} bytes: ${pipeline}`);
            }
          }
        }
      }
    }
    assert.ok(overLimit > 0, 'some tile exceeds the null device limit, so the byte count was compared');
    // the validator does reject a broken kernel (a misspelled majorness); Dawn prints its error
    process.stderr.write('a WGSL error follows on purpose (a kernel broken to check that the validator rejects it):\n');
    const broken = mixedMatMulWgsl(specs[0]!, {
      mma: H200_CONFIGS[0]!,
      subgroupSize: 32,
      tile: MIXED_TILES['64x64k32'],
    });
    assert.notEqual((await check(broken.replace('row_major>', 'rowmajor>'))).compile.length, 0);
  },
);

test(
  'the training step at mixed precision (forward and, with loss scaling, backward on the tensor cores) gives the fp32 step within f16 rounding',
  { skip: NO_TENSOR_CORES },
  async () => {
    await useBackend('webgpu', { precision: 'mixed' });
    const prev = setKernelOptions({ rawBlock: true, directStep: true });
    try {
      const N = 4;
      // d 64, 16 tokens: the products at shapes that are not multiples of the tiles
      for (const [label, cfg] of [
        ['DiT', TINY_TRUNK],
        ['FPDM', tinyFpdm({})],
      ] as const) {
        const model = randomModel(cfg, label);
        const process = createDiffusion(
          diffusionConfig({ diffusionSteps: 1000, parameterization: 'v', zeroTerminalSnr: true }),
        );
        const C = cfg.inChannels;
        const S = cfg.inputSize;
        const x0 = tf.clipByValue(randomTensor(`${label}/x0`, [N, C, S, S], 0.8), -1, 1) as tf.Tensor4D;
        const noise = randomTensor(`${label}/noise`, [N, C, S, S]) as tf.Tensor4D;
        const y = tf.tensor1d([1, 2, 3, 0], 'int32');
        const inp = {
          x0,
          noise,
          t: [5, 100, 500, 900],
          y,
          noGrad: 1,
          withGrad: 2,
          gradCheckpoint: false,
          trackResiduals: false,
        };
        const step = directTrainingStep(process, model)!;
        const fwdOnly = step(inp); // the backward in fp32 (no loss scale); the forward on the tensor cores
        const LS = 2 ** 16;
        const mixed = step({ ...inp, lossScale: LS });
        // the whole step in fp32: TF.js's own ops on the same device (their matmuls are fp32)
        const ref = tapedStep(model, process, { ...inp, ckpt: false });
        assert.equal((await mixed.loss.data())[0], (await fwdOnly.loss.data())[0], `${label}: the same forward`);
        const eLoss = await tensorRelErr(mixed.loss, ref.loss);
        // f16 operands (2^-11 relative rounding each) through the blocks
        assert.ok(eLoss <= 1e-2 && eLoss > 0, `${label}: loss at mixed vs fp32, rel. error ${eLoss}`);
        const worst = { bwd: { e: 0, name: '' }, all: { e: 0, name: '' } };
        for (const [name, g] of ref.grads) {
          const m = tf.mul(mixed.grads.get(name)!, 1 / LS);
          const eBwd = await tensorRelErr(m, fwdOnly.grads.get(name)!); // the backward's precision alone
          const eAll = await tensorRelErr(m, g); // forward and backward
          m.dispose();
          if (eBwd > worst.bwd.e) worst.bwd = { e: eBwd, name };
          if (eAll > worst.all.e) worst.all = { e: eAll, name };
        }
        assert.ok(
          worst.bwd.e <= 1e-2,
          `${label}: backward at mixed vs fp32, largest rel. error ${worst.bwd.e} (${worst.bwd.name})`,
        );
        assert.ok(worst.bwd.e > 0, `${label}: the backward did change precision`);
        assert.ok(
          worst.all.e <= 3e-2,
          `${label}: step at mixed vs fp32, largest gradient rel. error ${worst.all.e} (${worst.all.name})`,
        );
        tf.dispose([
          fwdOnly.loss,
          mixed.loss,
          ref.loss,
          ...fwdOnly.grads.values(),
          ...mixed.grads.values(),
          ...ref.grads.values(),
        ]);
        tf.dispose([x0, noise, y]);
        model.dispose();
      }
    } finally {
      setKernelOptions(prev);
    }
  },
);
