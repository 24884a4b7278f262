// The fused optimizer step (AdamW + global-norm clipping + EMA in one pass; raw WGSL on webgpu):
//   - its float32 math, mirrored on the host by adamwEmaReference, equals the TF.js op sequence
//     (the path wasm and cpu take) on every CPU backend;
//   - on each backend in TEST_BACKENDS (FPDM_TEST_BACKENDS=webgpu adds the GPU), the path the training
//     loop takes (gradNormTensor + applyUpdate with the EMA) matches the unfused op sequence, reads back
//     the new values (no stale caches) and resumes from exported state bitwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setKernelOptions } from '../../src/backends/kernels.js';
import { AdamW, adamwEmaReference, learningRateAt, type AdamWConfig, type ParamMap } from '../../src/training/adamw.js';
import { Ema } from '../../src/training/ema.js';
import { Rng } from '../../src/util/rng.js';
import { TEST_BACKENDS, maxAbsDiff, maxRelDiff, useBackend } from '../helpers.js';

// ten tensors: the webgpu norm runs 7 per dispatch (two dispatches, 7 + 3), and two tensors have more
// than one partial sum (over 4,096 values)
const SHAPES: number[][] = [[7, 5], [33], [3, 4, 6], [1], [70, 100], [5], [9, 9], [2, 3], [4101], [17]];
const CFGS: Array<{ name: string; cfg: Partial<AdamWConfig>; ema: number }> = [
  { name: 'defaults', cfg: {}, ema: 0.9999 },
  {
    name: 'clip 0.5, weight decay 0.1, warm-up 2',
    cfg: { lr: 0.01, clipGradNorm: 0.5, weightDecay: 0.1, warmupSteps: 2 },
    ema: 0.9,
  },
];
const STEPS = 3;

function randomArrays(tag: string): Float32Array[] {
  return SHAPES.map((s, i) => Float32Array.from(new Rng(`${tag}/${i}`).normals(s.reduce((a, b) => a * b, 1))));
}

interface Run {
  p: Float32Array[];
  m: Float32Array[];
  v: Float32Array[];
  ema: Float32Array[];
  norms: number[];
}

/**
 * Trains the SHAPES parameters for `steps` steps with the loop's calls; fused or not; optional export/load
 * mid-way; with `lossScale` S the gradients are given as S·g (loss scaling) and the optimizer told so.
 */
async function run(
  cfg: Partial<AdamWConfig>,
  emaDecay: number,
  fused: boolean,
  resumeAt: number | null = null,
  lossScale = 1,
): Promise<Run> {
  const prev = setKernelOptions({ fusedOptimizer: fused });
  try {
    const params: ParamMap = new Map(
      SHAPES.map((s, i) => [
        `w${i}`,
        tf.variable(tf.tensor(randomArrays('p0')[i]!, s), true, `fused-test-${i}-${Math.random()}`),
      ]),
    );
    let opt = new AdamW(params, cfg);
    let ema = new Ema(params, emaDecay);
    const norms: number[] = [];
    for (let t = 0; t < STEPS; t++) {
      if (resumeAt === t) {
        const st = await opt.exportState();
        const es = await ema.exportState();
        opt.dispose();
        ema.dispose();
        opt = new AdamW(params, cfg);
        opt.loadState(st.tensors, st.stepCount);
        ema = new Ema(params, emaDecay);
        ema.loadState(es);
      }
      const grads = new Map(
        randomArrays(`g${t}`).map((a, i) => [
          `w${i}`,
          tf.tensor(
            a.map((x) => x * lossScale),
            SHAPES[i]!,
          ),
        ]),
      );
      const normT = opt.gradNormTensor(grads, lossScale)!;
      const norm = (await normT.data())[0]!;
      normT.dispose();
      norms.push(norm);
      opt.applyUpdate(grads, norm, ema, lossScale);
      tf.dispose([...grads.values()]);
    }
    const st = await opt.exportState();
    const read = async (m: ParamMap): Promise<Float32Array[]> =>
      Promise.all([...m.values()].map(async (x) => (await x.data()) as Float32Array));
    const out: Run = {
      p: await read(params),
      m: SHAPES.map((_, i) => st.tensors.get(`opt.m.w${i}`)!.data as Float32Array),
      v: SHAPES.map((_, i) => st.tensors.get(`opt.v.w${i}`)!.data as Float32Array),
      ema: await read(ema.weights()),
      norms,
    };
    opt.dispose();
    ema.dispose();
    tf.dispose([...params.values()]);
    return out;
  } finally {
    setKernelOptions(prev);
  }
}

for (const backend of TEST_BACKENDS.filter((b) => b === 'cpu' || b === 'wasm')) {
  test(`the fused kernel's float32 math (host mirror) equals the TF.js op sequence (${backend})`, async () => {
    await useBackend(backend);
    for (const c of CFGS) {
      const got = await run(c.cfg, c.ema, false);
      const cfg: AdamWConfig = { ...new AdamW(new Map(), c.cfg).cfg };
      const p = randomArrays('p0');
      const m = SHAPES.map((s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
      const v = m.map((x) => x.slice());
      const ema = p.map((x) => x.slice());
      for (let t = 1; t <= STEPS; t++) {
        const g = randomArrays(`g${t - 1}`);
        let sq = 0;
        for (const a of g) for (const x of a) sq += x * x;
        const norm = got.norms[t - 1]!;
        // the device norm is a float32 sum: equal to the float64 one to float32 precision
        assert.ok(Math.abs(norm - Math.sqrt(sq)) / Math.sqrt(sq) < 1e-5, `${c.name}: norm ${norm} vs ${Math.sqrt(sq)}`);
        const lr = learningRateAt(cfg, t);
        const scalars = {
          clip: cfg.clipGradNorm !== null ? Math.min(1, cfg.clipGradNorm / (norm + 1e-6)) : 1,
          decay: 1 - lr * cfg.weightDecay,
          applyDecay: cfg.weightDecay > 0,
          beta1: cfg.beta1,
          beta2: cfg.beta2,
          bc2Sqrt: Math.sqrt(1 - cfg.beta2 ** t),
          eps: cfg.eps,
          stepSize: lr / (1 - cfg.beta1 ** t),
          emaDecay: c.ema,
          gradScale: 1,
        };
        if (c.cfg.clipGradNorm) assert.ok(scalars.clip < 1, 'the clipping case clips');
        SHAPES.forEach((_, i) => adamwEmaReference({ g: g[i]!, p: p[i]!, m: m[i]!, v: v[i]!, ema: ema[i]! }, scalars));
      }
      for (const [what, a, b] of [
        ['p', got.p, p],
        ['m', got.m, m],
        ['v', got.v, v],
        ['ema', got.ema, ema],
      ] as const) {
        a.forEach((x, i) =>
          assert.deepEqual(
            Array.from(x),
            Array.from(b[i]!),
            `${c.name}: ${what}[${i}] differs from the float32 mirror`,
          ),
        );
      }
      // and it moved (a no-op would pass the equality only if the mirror were a no-op too)
      assert.ok(maxRelDiff(got.p[0]!, randomArrays('p0')[0]!) > 1e-7);
    }
  });
}

for (const backend of TEST_BACKENDS) {
  test(`fused AdamW + EMA step matches the unfused op sequence and resumes bitwise (${backend})`, async () => {
    await useBackend(backend);
    for (const c of CFGS) {
      const fused = await run(c.cfg, c.ema, true);
      const plain = await run(c.cfg, c.ema, false);
      // webgpu: a different summation order for the norm and the GPU's sqrt/division; CPU backends: the same path
      const tol = backend === 'webgpu' ? 1e-5 : 0;
      fused.norms.forEach((n, t) =>
        assert.ok(
          Math.abs(n - plain.norms[t]!) <= tol * plain.norms[t]!,
          `${c.name}: norm at step ${t + 1}: ${n} vs ${plain.norms[t]}`,
        ),
      );
      // relative to the tensor's largest value: m = β1·m + (1 − β1)·g cancels to values far below its
      // terms' size, where a different rounding of the terms (the GPU's FMA contraction) is a large
      // fraction of the value (measured on the H200: 1.6e-8 absolute in a 7,000-value tensor whose
      // values reach 0.3); CPU backends: bitwise
      for (const what of ['p', 'm', 'v', 'ema'] as const) {
        fused[what].forEach((x, i) => {
          const ref = plain[what][i]!;
          const scale = ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          const d = maxAbsDiff(x, ref) / Math.max(scale, 1e-12);
          assert.ok(d <= tol, `${c.name}: ${what}[${i}] fused vs unfused difference ${d} of the largest value`);
        });
      }
      // the EMA starts as a clone of the weights (a shared buffer): an in-place write must not leak into it
      assert.ok(maxRelDiff(fused.ema[1]!, fused.p[1]!, 1e-3) > 0, `${c.name}: EMA equals the weights`);
      const resumed = await run(c.cfg, c.ema, true, 2);
      for (const what of ['p', 'm', 'v', 'ema'] as const) {
        resumed[what].forEach((x, i) =>
          assert.deepEqual(
            Array.from(x),
            Array.from(fused[what][i]!),
            `${c.name}: ${what}[${i}] after export/load differs`,
          ),
        );
      }
    }
  });
}

for (const backend of TEST_BACKENDS) {
  test(`loss-scaled gradients (S·g with S = 2^12) give the unscaled step, fused and not (${backend})`, async () => {
    await useBackend(backend);
    const S = 2 ** 12; // a power of 2: S·g and the division by S are exact in float32
    const c = CFGS[1]!; // clipping and weight decay: the norm is used
    for (const fused of [true, false]) {
      const plain = await run(c.cfg, c.ema, fused);
      const scaled = await run(c.cfg, c.ema, fused, null, S);
      // CPU backends: bitwise; webgpu: the GPU's sqrt of S²·Σ may round apart from S·√Σ
      const tol = backend === 'webgpu' ? 1e-6 : 0;
      scaled.norms.forEach((n, t) =>
        assert.ok(
          Math.abs(n - plain.norms[t]!) <= tol * plain.norms[t]!,
          `norm at step ${t + 1}: ${n} vs ${plain.norms[t]}`,
        ),
      );
      for (const what of ['p', 'm', 'v', 'ema'] as const) {
        scaled[what].forEach((x, i) => {
          const ref = plain[what][i]!;
          const scale = ref.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          const d = maxAbsDiff(x, ref) / Math.max(scale, 1e-12);
          assert.ok(d <= tol, `fused ${fused}: ${what}[${i}] with S vs without: ${d} of the largest value`);
        });
      }
    }
  });
}

test(
  'with loss scaling the device skips an update whose gradient norm is not finite (webgpu)',
  {
    skip: !TEST_BACKENDS.includes('webgpu') && 'webgpu-only (the fused kernels); runs under FPDM_TEST_BACKENDS=webgpu',
  },
  async () => {
    await useBackend('webgpu');
    const params: ParamMap = new Map(
      SHAPES.map((s, i) => [
        `w${i}`,
        tf.variable(tf.tensor(randomArrays('p0')[i]!, s), true, `skip-test-${i}-${Math.random()}`),
      ]),
    );
    const opt = new AdamW(params, {});
    const ema = new Ema(params, 0.9);
    try {
      const before = await Promise.all(
        [...params.values()].map(async (x) => Array.from((await x.data()) as Float32Array)),
      );
      const step = async (norm: number, lossScale: number) => {
        const grads = new Map(randomArrays('g0').map((a, i) => [`w${i}`, tf.tensor(a, SHAPES[i]!)]));
        const status = tf.tensor1d([0.5, norm]);
        const rec = opt.recordUpdate(grads, status, ema, lossScale);
        assert.ok(rec, 'the fused update is recorded on webgpu');
        tf.dispose([...grads.values(), status]);
        return Promise.all([...params.values()].map(async (x) => Array.from((await x.data()) as Float32Array)));
      };
      for (const bad of [Infinity, NaN])
        assert.deepEqual(await step(bad, 2 ** 10), before, `norm ${bad}: weights changed`);
      // the same status without loss scaling updates (the loss is finite: the fp32 path's rule)
      const moved = await step(Infinity, 1);
      assert.notDeepEqual(moved, before, 'without loss scaling the update is applied');
    } finally {
      opt.dispose();
      ema.dispose();
      tf.dispose([...params.values()]);
    }
  },
);
