// The fused attention kernel (src/backends/webgpu/attention.ts) against a float64 softmax(q·kᵀ)·v on the
// host, over shapes whose tokens and head sizes are and are not multiples of its tiles, with and without
// P saved for the backward:
//   emulated        on any webgpu device (SwiftShader here): the kernel with plain f32 arithmetic in place
//                   of the subgroup matrices (the tiling, masking of keys and query rows beyond t, both
//                   passes of the softmax, P and the merged layout) on a tile that fits SwiftShader
//   Dawn validator  the tensor-core kernel compiles and makes a pipeline on Dawn's null backend at DiT-S/2
//                   and DiT-XL/2 head sizes, and its workgroup memory is counted right
//   tensor cores    where the GPU has f16 subgroup matrices (an H200): the kernel on ATTENTION_TILE equals
//                   the host's with q, k, v and P rounded to f16, and the block forward with it
//                   (FPDM_FUSED_ATTENTION=1; off by default) equals the block forward of the three-kernel
//                   path (scores, softmax, P·v) within f16 rounding
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import {
  ATTENTION_TILE,
  attentionGroups,
  attentionKernel,
  attentionThreads,
  attentionTile,
  attentionWgsl,
  fusedAttentionOn,
  attentionWorkgroupBytes,
  type AttentionKernel,
  type AttentionShape,
} from '../../src/backends/webgpu/attention.js';
import { rawBlockForward } from '../../src/backends/webgpu/dit-block.js';
import { rawKernels, type RawKernels } from '../../src/backends/webgpu/raw.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { nullDevice, validate, type NullDevice } from './dawn-null.js';
import { NO_TENSOR_CORES, SKIP, onGpu, support } from './mixed-support.js';
import { sha256, tensorRelErr, useBackend } from '../helpers.js';
import { randomTensor } from '../helpers.js';

interface Case extends AttentionShape {
  label: string;
}

/** n = BH / H samples; t and dh around the tiles' multiples */
const CASES: Case[] = [
  { label: 't 64, dh 16 (whole tiles)', BH: 2, H: 2, t: 64, dh: 16 },
  { label: 't 37, dh 24', BH: 3, H: 3, t: 37, dh: 24 },
  { label: 't 70, dh 20', BH: 4, H: 2, t: 70, dh: 20 },
  { label: 't 5, dh 8', BH: 2, H: 1, t: 5, dh: 8 },
  { label: 't 9, dh 6 (read one value at a time)', BH: 2, H: 2, t: 9, dh: 6 },
];
/** DiT-S/2 and DiT-XL/2 heads at 256 tokens (tensor cores only) */
const MODEL_CASES: Case[] = [
  { label: 'S/2 heads: t 256, dh 64', BH: 6, H: 6, t: 256, dh: 64 },
  { label: 'XL/2 heads: t 256, dh 72', BH: 4, H: 4, t: 256, dh: 72 },
];

interface Data {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

function dataFor(c: Case): Data {
  const rng = new Rng(`attention/${c.label}`);
  const n = c.BH * c.t * c.dh;
  // q scaled by 1/√dh as the block's qkv stores it, times 2 for peaked rows
  const q = rng.normals(n).map((x) => (2 * x) / Math.sqrt(c.dh));
  return { q, k: rng.normals(n), v: rng.normals(n) };
}

/**
 * merged [n, t, H·dh] and P [BH, t, t] in float64, from q, k, v passed through `round` and P rounded by it
 * before the product with v (identity: exact).
 */
function reference(c: Case, d: Data, round: (x: number) => number = (x) => x) {
  const { BH, H, t, dh } = c;
  const merged = new Float64Array(BH * t * dh);
  const P = new Float64Array(BH * t * t);
  const s = new Float64Array(t);
  for (let b = 0; b < BH; b++) {
    for (let i = 0; i < t; i++) {
      let mx = -Infinity;
      for (let j = 0; j < t; j++) {
        let acc = 0;
        for (let x = 0; x < dh; x++) acc += round(d.q[(b * t + i) * dh + x]!) * round(d.k[(b * t + j) * dh + x]!);
        s[j] = acc;
        mx = Math.max(mx, acc);
      }
      let sum = 0;
      for (let j = 0; j < t; j++) sum += Math.exp(s[j]! - mx);
      for (let j = 0; j < t; j++) P[(b * t + i) * t + j] = Math.exp(s[j]! - mx) / sum;
      for (let x = 0; x < dh; x++) {
        let acc = 0;
        for (let j = 0; j < t; j++) acc += round(P[(b * t + i) * t + j]!) * round(d.v[(b * t + j) * dh + x]!);
        merged[((Math.floor(b / H) * t + i) * H + (b % H)) * dh + x] = acc;
      }
    }
  }
  return { merged, P };
}

/** x rounded to the nearest f16 (ties to even; no overflow at the sizes used here). */
function toF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  let e = Math.floor(Math.log2(Math.abs(x)));
  if (2 ** e > Math.abs(x)) e--;
  if (2 ** (e + 1) <= Math.abs(x)) e++;
  const q = 2 ** (Math.max(e, -14) - 10);
  const r = x / q;
  const f = Math.floor(r);
  const frac = r - f;
  return (frac > 0.5 || (frac === 0.5 && f % 2 !== 0) ? f + 1 : f) * q;
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

/** Runs the kernel on the case's data and reads merged (and P with `save`) back. */
async function runAttention(rk: RawKernels, c: Case, d: Data, k: AttentionKernel, save: boolean) {
  const code = attentionWgsl(c, k, save);
  const kernel = rk.kernel(`attentiontest:${sha256(new TextEncoder().encode(code))}`, () => code);
  const inputs = [tf.tensor(d.q), tf.tensor(d.k), tf.tensor(d.v)];
  const merged = rk.output([c.BH * c.t * c.dh]);
  const P = save ? rk.output([c.BH * c.t * c.t]) : null;
  rk.run(
    [
      {
        kernel,
        buffers: [...inputs.map((x) => rk.buffer(x)), merged.buffer, ...(P ? [P.buffer] : [])],
        groups: attentionGroups(c, k),
      },
    ],
    [...inputs, merged.tensor, ...(P ? [P.tensor] : [])],
  );
  const [m, p] = await Promise.all([merged.tensor.data(), P ? P.tensor.data() : Promise.resolve(null)]);
  tf.dispose([...inputs, merged.tensor, ...(P ? [P.tensor] : [])]);
  return { merged: m, P: p };
}

/** the emulated kernel's tile: 2 subgroups of 16 rows, chunks of 32 keys (fits SwiftShader's 32 KiB) */
const EMULATED: AttentionKernel = { subgroupSize: 32, tile: { sgs: 2, kc: 32 }, emulate: true };

test(
  'the emulated kernel equals softmax(q·kᵀ)·v on the host, merged and P',
  { skip: onGpu ? false : SKIP },
  async () => {
    // at mixed precision where the GPU has it: the backend's precision is fixed at its first use in a process
    await useBackend('webgpu', support?.ok ? { precision: 'mixed' } : {});
    const rk = rawKernels()!;
    for (const c of CASES) {
      const d = dataFor(c);
      const want = reference(c, d);
      for (const save of [false, true]) {
        const got = await runAttention(rk, c, d, EMULATED, save);
        const label = `${c.label}${save ? ', P saved' : ''}`;
        const e = normRelErr(got.merged, want.merged);
        assert.ok(e <= 1e-5, `${label}: merged vs the host, rel. error ${e}`);
        if (save) {
          const eP = normRelErr(got.P!, want.P);
          assert.ok(eP <= 1e-5, `${label}: P vs the host, rel. error ${eP}`);
        }
      }
    }
  },
);

test(
  'the tensor-core kernel equals the host with q, k, v and P rounded to f16',
  { skip: NO_TENSOR_CORES },
  async () => {
    assert.ok(support?.ok);
    await useBackend('webgpu', { precision: 'mixed' });
    const rk = rawKernels()!;
    const k = attentionKernel(support, { dh: 72 });
    assert.ok(k, 'the H200-class device runs the fused attention at XL/2 head sizes');
    for (const c of [...CASES, ...MODEL_CASES]) {
      const d = dataFor(c);
      const want16 = reference(c, d, toF16);
      const exact = reference(c, d);
      for (const save of [false, true]) {
        const got = await runAttention(rk, c, d, k, save);
        const label = `${c.label}${save ? ', P saved' : ''}`;
        const e16 = normRelErr(got.merged, want16.merged);
        // P's f32 values before rounding differ from the host's by the scores' summation order; rounding
        // them to f16 then differs in a few last bits: ≈ 1e-4
        assert.ok(e16 <= 5e-4, `${label}: merged vs the host's f16-rounded, rel. error ${e16}`);
        const e = normRelErr(got.merged, exact.merged);
        assert.ok(e <= 3e-3, `${label}: merged vs the exact host, rel. error ${e}`);
        if (save) {
          const eP = normRelErr(got.P!, want16.P);
          assert.ok(eP <= 1e-4, `${label}: P vs the host's from f16-rounded q, k, rel. error ${eP}`);
        }
      }
    }
  },
);

test(
  'the block forward with the fused attention equals the three-kernel path within f16 rounding',
  { skip: NO_TENSOR_CORES },
  async () => {
    await useBackend('webgpu', { precision: 'mixed' });
    const rk = rawKernels()!;
    assert.equal(rk.forwardPrecision, 'mixed');
    const [n, t, d, heads, hid] = [2, 256, 144, 2, 576]; // dh 72, as XL/2's heads
    const x = randomTensor('attn-block/x', [n, t, d]) as tf.Tensor3D;
    const c = randomTensor('attn-block/c', [n, d]) as tf.Tensor2D;
    const shapes = [[6 * d, d], [6 * d], [3 * d, d], [3 * d], [d, d], [d], [hid, d], [hid], [d, hid], [d]];
    const w = shapes.map((s, i) => randomTensor(`attn-block/w${i}`, s, 1 / Math.sqrt(s[s.length - 1]!)));
    const run = (fused: boolean, save: boolean) => {
      const before = process.env.FPDM_FUSED_ATTENTION;
      process.env.FPDM_FUSED_ATTENTION = fused ? '1' : '0';
      try {
        return save ? rawBlockForward(rk, x, c, w, heads) : rawBlockForward(rk, x, c, w, heads, false);
      } finally {
        if (before === undefined) delete process.env.FPDM_FUSED_ATTENTION;
        else process.env.FPDM_FUSED_ATTENTION = before;
      }
    };
    for (const save of [false, true]) {
      const a = run(true, save);
      const b = run(false, save);
      const e = await tensorRelErr(a.out, b.out);
      assert.ok(e <= 2e-3, `block output${save ? ' (saved)' : ''}: fused vs three kernels, rel. error ${e}`);
      if (a.s && b.s) {
        const eP = await tensorRelErr(a.s.p, b.s.p);
        assert.ok(eP <= 1e-4, `saved P: fused vs three kernels, rel. error ${eP}`);
        const eM = await tensorRelErr(a.s.merged, b.s.merged);
        assert.ok(eM <= 2e-3, `saved merged: fused vs three kernels, rel. error ${eM}`);
        tf.dispose(Object.values(a.s).filter((v) => v !== x));
        tf.dispose(Object.values(b.s).filter((v) => v !== x));
      }
      tf.dispose([a.out, b.out]);
    }
    tf.dispose([x, c, ...w]);
  },
);

// ---- Dawn's validator, on its null backend -----------------------------------------------------------

const validator = await nullDevice();

test(
  "the tensor-core and emulated kernels compile under Dawn's validator, with the workgroup memory counted right",
  { skip: typeof validator === 'string' ? validator : false },
  async () => {
    const dev = validator as NullDevice;
    const limit = dev.limits.maxComputeWorkgroupStorageSize!;
    const check = (code: string) => validate(dev, code);
    const device = { configs: [{ M: 16, N: 16, K: 16 }], subgroupSize: 32, maxWorkgroupBytes: 49152, maxThreads: 1024 };
    for (const c of [...MODEL_CASES, CASES[1]!, CASES[4]!]) {
      for (const k of [attentionKernel(device, c)!, EMULATED]) {
        assert.ok(k, `${c.label}: a 48 KiB device runs the kernel`);
        assert.equal(attentionThreads(k), k.tile.sgs * 32);
        for (const save of [false, true]) {
          const label = `${c.label}, ${k.emulate === true ? 'emulated' : 'tensor cores'}${save ? ', P saved' : ''}`;
          const { compile, pipeline } = await check(attentionWgsl(c, k, save));
          assert.deepEqual(compile, [], `${label}: compiles`);
          const bytes = attentionWorkgroupBytes(c, k);
          if (bytes <= limit) assert.equal(pipeline, undefined, `${label}: pipeline`);
          else assert.match(pipeline ?? '', /workgroup storage size|[Ww]orkgroup/, `${label}: over the limit, refused`);
        }
      }
    }
    // at XL/2's head size the kernel takes all of an H200's 48 KiB (Dawn's count, checked above where it fits)
    assert.equal(attentionWorkgroupBytes(MODEL_CASES[1]!, { subgroupSize: 32, tile: ATTENTION_TILE }), 49152);
  },
);

test('attentionKernel: none without an M16 N16 K16 config or over the memory; the block takes it only with FPDM_FUSED_ATTENTION=1', () => {
  const device = { configs: [{ M: 16, N: 16, K: 16 }], subgroupSize: 32, maxWorkgroupBytes: 49152, maxThreads: 1024 };
  assert.ok(attentionKernel(device, { dh: 72 }));
  assert.equal(attentionKernel({ ...device, configs: [{ M: 16, N: 8, K: 16 }] }, { dh: 72 }), undefined);
  assert.equal(attentionKernel({ ...device, maxWorkgroupBytes: 32768 }, { dh: 72 }), undefined);
  // dh 64 needs less: 45,056 bytes
  assert.ok(attentionKernel({ ...device, maxWorkgroupBytes: 45056 }, { dh: 64 }));
  const before = process.env.FPDM_FUSED_ATTENTION;
  try {
    delete process.env.FPDM_FUSED_ATTENTION;
    assert.equal(fusedAttentionOn(), false);
    process.env.FPDM_FUSED_ATTENTION = '0';
    assert.equal(fusedAttentionOn(), false);
    process.env.FPDM_FUSED_ATTENTION = '1';
    assert.equal(fusedAttentionOn(), true);
  } finally {
    if (before === undefined) delete process.env.FPDM_FUSED_ATTENTION;
    else process.env.FPDM_FUSED_ATTENTION = before;
  }
});

test('FPDM_ATTENTION_TILE names a tile, or is refused with what it expects', () => {
  const before = process.env.FPDM_ATTENTION_TILE;
  try {
    delete process.env.FPDM_ATTENTION_TILE;
    assert.deepEqual(attentionTile(), ATTENTION_TILE);
    process.env.FPDM_ATTENTION_TILE = '2, 32';
    assert.deepEqual(attentionTile(), { sgs: 2, kc: 32 });
    for (const bad of ['4', '4,48', '0,64', 'x,64'])
      assert.throws(
        () => {
          process.env.FPDM_ATTENTION_TILE = bad;
          attentionTile();
        },
        (e: unknown) => e instanceof UserError && /keys a multiple of 32/.test(e.message),
        bad,
      );
  } finally {
    if (before === undefined) delete process.env.FPDM_ATTENTION_TILE;
    else process.env.FPDM_ATTENTION_TILE = before;
  }
});
