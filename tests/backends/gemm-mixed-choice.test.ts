// The choices of the tensor-core matmul that need no GPU (src/backends/webgpu/gemm-mixed.ts): which
// operands are plain (read as vec4 through a second binding of their buffer), which vec4 views a kernel
// binds, which tiles stage 4 values at a time and can sum A's rows, and mixedKernel's defaults (vector
// staging, the prefetching twin of the chosen tile, the weight gradients' tile) and the environment
// variables that turn them off. The kernels themselves run in webgpu-mixed-gemm.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MIXED_TILES,
  mixedKernel,
  mixedMatMulWgsl,
  packedRuns,
  plainOperand,
  rowSumFits,
  tileConfig,
  tileKey,
  tileRunsOn,
  vectorStaging,
  vectorViews,
  type MixedKernel,
} from '../../src/backends/webgpu/gemm-mixed.js';
import type { MixedDeviceInfo } from '../../src/backends/webgpu/device.js';
import { declare, type Binding } from '../../src/backends/webgpu/gemm.js';
import { UserError } from '../../src/util/errors.js';

/** The H200's mixed-precision device as device.ts reads it (configs, subgroup size, limits). */
const H200: MixedDeviceInfo = {
  configs: [
    { M: 16, N: 16, K: 16 },
    { M: 16, N: 8, K: 16 },
    { M: 16, N: 8, K: 8 },
  ],
  subgroupSize: 32,
  maxWorkgroupBytes: 49152,
  maxThreads: 1024,
};

const bindings: Binding[] = [
  { name: 'X' },
  { name: 'G16', type: 'f16' },
  { name: 'OUT', write: true },
  { name: 'Y', type: 'i32' },
];

/** runs `f` with the environment variable set (or removed: undefined), restoring it after */
function withEnv<T>(name: string, value: string | undefined, f: () => T): T {
  const prev = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return f();
  } finally {
    if (prev === undefined) delete process.env[name];
    else process.env[name] = prev;
  }
}

test('plainOperand: one read-only f32 or f16 array read at an index; anything that computes or writes is not', () => {
  assert.deepEqual(plainOperand('X[i * 384u + k]', bindings), {
    name: 'X',
    type: 'f32',
    index: 'i * 384u + k',
    view: 'X_V4',
  });
  assert.deepEqual(plainOperand(' f32(G16[k * 1536u + min(j, 1535u)]) ', bindings), {
    name: 'G16',
    type: 'f16',
    index: 'k * 1536u + min(j, 1535u)',
    view: 'G16_V4',
  });
  for (const computed of [
    'gelu(X[i * 384u + k])', // an activation
    'X[i * 384u + k] * X[k]', // two reads
    'X[i * 384u + k] + 1.0',
    'f32(G16[i]', // unbalanced
    'select(1.0, X[k * 384u + j], j < 384u)', // the fp32 weight gradient's column of ones
    'OUT[i * 384u + k]', // written by the kernel: a second binding of it may not be bound
    'f32(Y[i])', // an i32 array
    'Z[i]', // not bound
  ])
    assert.equal(plainOperand(computed, bindings), undefined, computed);
});

test('vectorViews: one vec4 binding per plain operand array, only with vector staging, none for f16 when emulated', () => {
  const kernel: MixedKernel = {
    mma: H200.configs[0]!,
    subgroupSize: 32,
    tile: MIXED_TILES['128x128k16'],
    vector: true,
  };
  const spec = { a: 'X[i * 384u + k]', b: 'f32(G16[j * 384u + k])', bindings };
  assert.deepEqual(vectorViews(spec, kernel), [
    { binding: { name: 'X_V4', type: 'vec4<f32>' }, of: 'X' },
    { binding: { name: 'G16_V4', type: 'vec4<f16>' }, of: 'G16' },
  ]);
  // both operands from one array: one view
  assert.deepEqual(
    vectorViews({ a: 'X[i * 64u + k]', b: 'X[j * 64u + k]', bindings }, kernel).map((v) => v.of),
    ['X'],
  );
  assert.deepEqual(vectorViews(spec, { ...kernel, vector: false }), []);
  // the emulated kernel has no f16: its f16 operand is read a value at a time
  assert.deepEqual(
    vectorViews(spec, { ...kernel, emulate: true }).map((v) => v.of),
    ['X'],
  );
  assert.deepEqual(
    vectorViews({ ...spec, a: 'gelu(X[i * 384u + k])' }, kernel).map((v) => v.of),
    ['G16'],
  );
});

test('vectorStaging and rowSumFits: runs of 4 must divide among the threads; row sums need threads a multiple of BM / 4', () => {
  const of = (tile: MixedKernel['tile'], vector = true): MixedKernel => ({
    mma: H200.configs[0]!,
    subgroupSize: 32,
    tile,
    vector,
  });
  for (const name of Object.keys(MIXED_TILES) as Array<keyof typeof MIXED_TILES>) {
    const k = of(MIXED_TILES[name]);
    assert.equal(vectorStaging(k), true, `${name} stages 4 values at a time`);
    assert.equal(vectorStaging(of(MIXED_TILES[name], false)), false, `${name} without vector`);
    assert.equal(rowSumFits(k), true, `${name} can sum A's rows`);
  }
  // 1 × 4 subgroups of 16 × 16, k 16: a 16 × 16 tile of A is 64 runs of 4 for 128 threads
  const narrow = of({ sgRows: 1, sgCols: 4, rows: 16, cols: 16, tk: 16 });
  assert.equal(vectorStaging(narrow), false);
  // one value at a time its 128 threads stage rows t mod 16 (a multiple of BM = 16)
  assert.equal(rowSumFits({ ...narrow, vector: false }), true);
});

test('mixedKernel: vector staging, the prefetching twin and hoisted epilogue loads by default; FPDM_MIXED_VECTOR=0 / FPDM_MIXED_PREFETCH=0 / FPDM_MIXED_HOIST=0 turn them off', () => {
  const fc1 = {
    batch: 1,
    M: 8192,
    N: 4608,
    aFast: 'k',
    bFast: 'k',
    a: 'X[i * 1152u + k]',
    b: 'X[j * 1152u + k]',
  } as const;
  const wgrad = { batch: 6, M: 4608, N: 1152, aFast: 'i', bFast: 'j', aRowSum: '' } as const;
  withEnv('FPDM_MIXED_VECTOR', undefined, () =>
    withEnv('FPDM_MIXED_PREFETCH', undefined, () => {
      const k = mixedKernel(H200, fc1);
      assert.equal(k.vector, true);
      assert.equal(k.hoistLoads, true);
      assert.equal(k.tile, MIXED_TILES['128x128k32p']);
      // the weight gradients: 128 × 128 k32 with vector staging, prefetching
      assert.equal(mixedKernel(H200, wgrad).tile, MIXED_TILES['128x128k32p']);
      // a tile asked for by name is taken with its prefetching twin where it has one, else as it is
      assert.equal(mixedKernel(H200, fc1, '64x64k32').tile, MIXED_TILES['64x64k32']);
      assert.equal(mixedKernel(H200, fc1, '128x128k16').tile, MIXED_TILES['128x128k16p']);
    }),
  );
  withEnv('FPDM_MIXED_HOIST', '0', () => assert.equal(mixedKernel(H200, fc1).hoistLoads, false));
  withEnv('FPDM_MIXED_PREFETCH', '0', () => {
    assert.equal(mixedKernel(H200, fc1).tile, MIXED_TILES['128x128k32']);
    assert.equal(mixedKernel(H200, wgrad).tile, MIXED_TILES['128x128k32']);
  });
  withEnv('FPDM_MIXED_VECTOR', '0', () =>
    withEnv('FPDM_MIXED_PREFETCH', '0', () => {
      assert.equal(mixedKernel(H200, fc1).vector, false);
      // one value at a time the weight gradients take k16 (k32 measured 3–11 TFLOP/s there)
      assert.equal(mixedKernel(H200, wgrad).tile, MIXED_TILES['128x128k16']);
    }),
  );
});

test('FPDM_MIXED_PREFER puts a tile first for the products with plain loads (not the weight gradients); a name that is no tile is refused', () => {
  const fc2 = {
    batch: 1,
    M: 8192,
    N: 1152,
    aFast: 'k',
    bFast: 'k',
    a: 'X[i * 4608u + k]',
    b: 'X[j * 4608u + k]',
  } as const;
  const wgrad = { batch: 6, M: 4608, N: 1152, aFast: 'i', bFast: 'j', aRowSum: '' } as const;
  withEnv('FPDM_MIXED_PREFER', '128x96k32', () => {
    assert.equal(mixedKernel(H200, fc2).tile, MIXED_TILES['128x96k32p']);
    assert.equal(mixedKernel(H200, wgrad).tile, MIXED_TILES['128x128k32p']);
    // a tile asked for by the caller wins over the preference
    assert.equal(mixedKernel(H200, fc2, '64x64k32').tile, MIXED_TILES['64x64k32']);
  });
  withEnv('FPDM_MIXED_PREFER', '128x128k32', () =>
    assert.equal(mixedKernel(H200, fc2).tile, MIXED_TILES['128x128k32p']),
  );
  withEnv('FPDM_MIXED_PREFER', '128x96', () =>
    assert.throws(
      () => mixedKernel(H200, fc2),
      (e: Error) => e instanceof UserError && /FPDM_MIXED_PREFER=128x96: expected one of/.test(e.message),
    ),
  );
});

test('mixedKernel takes 128 × 96 where 128 × 128 leaves the last wave of workgroups mostly empty (N = 1152 at 8192 rows)', () => {
  const product = (N: number, K: number) =>
    ({ batch: 1, M: 8192, N, aFast: 'k', bFast: 'k', a: `X[i * ${K}u + k]`, b: `W[j * ${K}u + k]` }) as const;
  withEnv('FPDM_MIXED_PREFER', undefined, () => {
    // 576 workgroups of 128 × 128 (2.18 waves of 264), 768 of 128 × 96 (2.91)
    assert.equal(mixedKernel(H200, product(1152, 4608)).tile, MIXED_TILES['128x96k32p']);
    assert.equal(mixedKernel(H200, product(1152, 1152)).tile, MIXED_TILES['128x96k32p']);
    // 1152 (4.36 waves) against 1536 (5.82): not enough to pay for the narrower tile; 2304 / 1728: full enough
    for (const N of [2304, 3456, 4608])
      assert.equal(mixedKernel(H200, product(N, 1152)).tile, MIXED_TILES['128x128k32p']);
  });
});

test("a tile made for one subgroup-matrix config (attention's 72 columns) runs on that config only, where the device has it", () => {
  const t72 = MIXED_TILES['64x72k64n8'];
  assert.deepEqual(
    H200.configs.map((c) => tileRunsOn(t72, c)),
    [false, true, false],
  );
  // the other tiles: any config whose sizes divide theirs
  assert.deepEqual(
    H200.configs.map((c) => tileRunsOn(MIXED_TILES['128x96k32'], c)),
    [true, true, true],
  );
  assert.deepEqual(tileConfig(H200, t72), { M: 16, N: 8, K: 16 });
  assert.deepEqual(tileConfig(H200, MIXED_TILES['128x128k32']), H200.configs[0]);
  const only16: MixedDeviceInfo = { ...H200, configs: [{ M: 16, N: 16, K: 16 }] };
  assert.equal(tileConfig(only16, t72), undefined);
  const pv = { batch: 512, M: 256, N: 72, aFast: 'k', bFast: 'j' } as const;
  assert.deepEqual(mixedKernel(H200, pv, '64x72k64n8').mma, { M: 16, N: 8, K: 16 });
  assert.throws(() => mixedKernel(only16, pv, '64x72k64n8'), /needs the subgroup-matrix config M16 N8 K16/);
  // the kernel cache key tells tiles apart by every field that changes the code
  const keys = Object.values(MIXED_TILES).map((t) => tileKey(t));
  assert.equal(new Set(keys).size, keys.length);
});

test('declare enables f16 where a binding holds f16 values (the fp32 kernels that read a saved f16 P or h too)', () => {
  const plain = declare([{ name: 'X' }, { name: 'Y', write: true }]);
  assert.ok(!plain.includes('enable f16'));
  assert.ok(plain.startsWith('@group(0) @binding(0) var<storage, read> X: array<f32>;'));
  for (const type of ['f16', 'vec4<f16>'] as const) {
    const code = declare([{ name: 'X' }, { name: 'P16', type }]);
    assert.ok(code.startsWith('enable f16;\n'), `${type}: the directive first`);
    assert.equal(code.match(/enable f16;/g)?.length, 1);
    assert.ok(code.includes(`var<storage, read> P16: array<${type}>;`));
  }
});

test('f16 operands prefetched as raw bits by default (FPDM_MIXED_PACKED16=0 turns it off, a bad value is refused): a vec2<u32> view, prefetching tiles only', () => {
  const fc2 = {
    batch: 1,
    M: 8192,
    N: 1152,
    K: 4608,
    aFast: 'k',
    bFast: 'k',
    a: 'f32(G16[i * 4608u + k])',
    b: 'X[j * 4608u + k]',
    bindings,
  } as const;
  withEnv('FPDM_MIXED_PACKED16', undefined, () => {
    const k = mixedKernel(H200, fc2);
    assert.equal(k.packed16, true);
    assert.equal(packedRuns(k), true);
    // the f16 operand's view holds its raw bits; the f32 one stays vec4<f32>
    assert.deepEqual(
      vectorViews(fc2, k).map((v) => [v.of, v.binding.type]),
      [
        ['G16', 'vec2<u32>'],
        ['X', 'vec4<f32>'],
      ],
    );
    // without prefetch, or emulated (f32 arithmetic), the f16 operand is read as before
    const unprefetched: MixedKernel = { ...k, tile: MIXED_TILES['128x128k32'] };
    assert.equal(packedRuns(unprefetched), false);
    assert.equal(vectorViews(fc2, unprefetched)[0]!.binding.type, 'vec4<f16>');
    assert.equal(packedRuns({ ...k, emulate: true }), false);
  });
  withEnv('FPDM_MIXED_PACKED16', '0', () => {
    const k = mixedKernel(H200, fc2);
    assert.equal(packedRuns(k), false);
    assert.equal(vectorViews(fc2, k)[0]!.binding.type, 'vec4<f16>');
  });
  withEnv('FPDM_MIXED_PACKED16', 'yes', () =>
    assert.throws(
      () => mixedKernel(H200, fc2),
      (e: Error) => e instanceof UserError && /FPDM_MIXED_PACKED16=yes/.test(e.message),
    ),
  );
  // the generated kernel: raw-bit registers, reinterpreted (not converted) into workgroup memory
  const code = mixedMatMulWgsl(
    {
      ...fc2,
      store: 'OUT[i * 1152u + j] = v;',
      bindings: [...bindings, ...vectorViews(fc2, mixedKernel(H200, fc2)).map((v) => v.binding)],
    },
    mixedKernel(H200, fc2),
  );
  assert.match(code, /var PA: array<vec2<u32>, \d+>;/);
  assert.match(code, /PA\[l\] = G16_V4\[xs\[l\] >> 2u\];/);
  assert.match(code, /bitcast<vec2<f16>>\(PA\[l\]\.x\)/);
  assert.match(code, /var<storage, read> G16_V4: array<vec2<u32>>;/);
});
