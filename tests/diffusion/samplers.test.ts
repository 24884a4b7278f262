import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { createDiffusion, type GaussianDiffusion } from '../../src/diffusion/process.js';
import { sampleDdim, sampleDdpm, SAMPLERS, type StepInfo } from '../../src/diffusion/samplers.js';
import type { Denoiser } from '../../src/diffusion/denoiser.js';
import { withCfg } from '../../src/diffusion/cfg.js';
import { Rng } from '../../src/util/rng.js';
import { TEST_BACKENDS, maxAbsDiff, useBackend } from '../helpers.js';

const SHAPE: [number, number, number, number] = [2, 3, 4, 4];

/**
 * The exact ε-predictor for data that is a single point x*: ε̂ = (x_t − √ᾱ_t x*) / √(1 − ᾱ_t), with ᾱ
 * of the ORIGINAL 1000-step process at the timestep it is given. Any correct sampler then predicts
 * x̂_0 = x* at every step and ends exactly at x* (no noise is added at t = 0). It is asynchronous
 * (reads t with `await t.data()`), as a model whose solver reads residuals must be.
 */
function pointDenoiser(full: GaussianDiffusion, xStar: tf.Tensor4D, learnedVariance: boolean): Denoiser<number> {
  return async (x, t, _y, ctx) => {
    const tv = Array.from(await t.data());
    const out = tf.tidy(() => {
      const ab = full.tables.alphasCumprod;
      const a = tf.tensor4d(
        tv.map((k) => Math.sqrt(ab[k]!)),
        [tv.length, 1, 1, 1],
      );
      const s = tf.tensor4d(
        tv.map((k) => Math.sqrt(1 - ab[k]!)),
        [tv.length, 1, 1, 1],
      );
      const eps = tf.div(tf.sub(x, tf.mul(a, xStar)), s) as tf.Tensor4D;
      return learnedVariance ? (tf.concat([eps, tf.zerosLike(eps)], 1) as tf.Tensor4D) : eps;
    });
    return { out, state: (ctx.state ?? 0) + 1, info: { blockEvals: 28 } };
  };
}

/** A fixed nonlinear "model" for determinism and memory checks (output depends on x, t and y). */
const toyDenoiser: Denoiser = (x, t, y) => ({
  out: tf.tidy(() => {
    const tt = tf.reshape(tf.div(t, 1000), [-1, 1, 1, 1]);
    const yy = y ? tf.reshape(tf.cast(y, 'float32'), [-1, 1, 1, 1]) : tf.scalar(0);
    const eps = tf.add(tf.mul(tf.tanh(x), tf.add(0.5, tt)), tf.mul(0.01, yy));
    return tf.concat([eps, tf.mul(tf.sin(x), 0.5)], 1) as tf.Tensor4D;
  }),
});

for (const backend of TEST_BACKENDS) {
  test(`[${backend}] DDPM and DDIM (eta 0, 1) reach x* exactly with the exact predictor; denoiser sees original timesteps`, async () => {
    await useBackend(backend);
    const full = createDiffusion();
    const xStar = tf.tidy(
      () => tf.mul(tf.tanh(tf.tensor4d(new Rng(7).normals(2 * 3 * 16), SHAPE)), 0.9) as tf.Tensor4D,
    );
    for (const respacing of ['20', 'ddim10', '7,3']) {
      const proc = full.respaced(respacing);
      for (const [name, eta] of [
        ['ddpm', 0],
        ['ddim', 0],
        ['ddim', 1],
      ] as const) {
        const xT = tf.tensor4d(new Rng(1).normals(2 * 3 * 16), SHAPE);
        const seen: number[] = [];
        const infos: StepInfo[] = [];
        const res = await SAMPLERS[name](pointDenoiser(full, xStar, true), xT, proc, {
          y: null,
          rng: new Rng(3),
          eta,
          onStep: (i, info) => {
            seen.push(info.tOriginal);
            infos.push(info);
            assert.equal(info.step, i);
          },
        });
        const err = maxAbsDiff(await res.x0.data(), await xStar.data());
        assert.ok(err < 1e-5, `${respacing} ${name} eta ${eta}: |x0 − x*| = ${err}`);
        assert.deepEqual(seen, Array.from(proc.timestepMap).reverse());
        assert.equal(res.state, proc.numTimesteps, 'state threads through every step');
        assert.equal(res.steps, proc.numTimesteps);
        assert.equal(infos[0]!.denoiser.blockEvals, 28);
        tf.dispose([xT, res.x0]);
      }
    }
    xStar.dispose();
  });

  test(`[${backend}] same seed → same samples, different seed → different; no tensor growth across a pass`, async () => {
    await useBackend(backend);
    const proc = createDiffusion({ respacing: '10' });
    const y = tf.tensor1d([3, 7], 'int32');
    const xT = tf.tensor4d(new Rng(11).normals(2 * 3 * 16), SHAPE);
    const run = async (seed: number, sampler = sampleDdpm, eta = 0) => {
      const before = tf.memory().numTensors;
      const counts: number[] = [];
      const res = await sampler(toyDenoiser, xT, proc, {
        y,
        rng: new Rng(seed),
        eta,
        onStep: () => counts.push(tf.memory().numTensors),
      });
      const data = Array.from(await res.x0.data());
      res.x0.dispose();
      assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
      assert.ok(
        counts.every((c) => c === counts[0]),
        `tensor count flat across steps: ${counts}`,
      );
      return data;
    };
    const a = await run(5);
    const b = await run(5);
    const c = await run(6);
    assert.deepEqual(a, b);
    assert.ok(maxAbsDiff(a, c) > 1e-2, 'a different seed gives different samples');
    assert.ok(a.every(Number.isFinite));
    assert.deepEqual(await run(5, sampleDdim, 1), await run(5, sampleDdim, 1));
    assert.ok(maxAbsDiff(await run(5, sampleDdim, 1), await run(6, sampleDdim, 1)) > 1e-2);
    assert.deepEqual(await run(5, sampleDdim, 0), await run(6, sampleDdim, 0), 'DDIM eta 0 is deterministic given x_T');
    tf.dispose([xT, y]);
  });

  test(`[${backend}] CFG: one 2N call with null labels; guidance on all channels, or DiT's first 3`, async () => {
    await useBackend(backend);
    const calls: { n: number; y: number[] }[] = [];
    // output channel c of sample i = (label_i + 1)·(c + 1) + x (so cond and uncond differ per channel)
    const inner: Denoiser = async (x, _t, y) => {
      calls.push({ n: x.shape[0], y: Array.from(await y!.data()) });
      return {
        out: tf.tidy(() => {
          const lab = tf.reshape(tf.add(tf.cast(y!, 'float32'), 1), [-1, 1, 1, 1]);
          const ch = tf.reshape(tf.range(1, 9, 1, 'float32'), [1, 8, 1, 1]);
          return tf.add(tf.mul(lab, ch), tf.tile(x, [1, 2, 1, 1])) as tf.Tensor4D;
        }),
        info: { blockEvals: 28 },
      };
    };
    const x = tf.tensor4d(new Rng(2).normals(2 * 4 * 4), [2, 4, 2, 2]);
    const y = tf.tensor1d([1, 4], 'int32');
    const t = tf.tensor1d([999, 999]);
    const s = 4;
    const K = 10;
    const want = (i: number, c: number, guided: boolean) => {
      const cond = ([1, 4][i]! + 1) * (c + 1);
      const uncond = (K + 1) * (c + 1);
      return guided ? uncond + s * (cond - uncond) : cond;
    };
    for (const mode of ['all', 'first3'] as const) {
      calls.length = 0;
      const res = await withCfg(inner, { scale: s, numClasses: K, channels: mode })(x, t, y, { step: 0, steps: 1 });
      assert.deepEqual(calls, [{ n: 4, y: [1, 4, K, K] }]);
      assert.deepEqual(res.out.shape, [2, 8, 2, 2]);
      const o = (await res.out.array()) as number[][][][];
      const xs = (await x.array()) as number[][][][];
      for (let i = 0; i < 2; i++) {
        for (let c = 0; c < 8; c++) {
          // x enters both halves identically, so it passes through guidance unchanged
          const got = o[i]![c]![1]![0]! - xs[i]![c % 4]![1]![0]!;
          const exp = want(i, c, mode === 'all' || c < 3);
          assert.ok(Math.abs(got - exp) < 1e-3, `${mode} sample ${i} channel ${c}: ${got} vs ${exp}`);
        }
      }
      assert.deepEqual(res.info, { blockEvals: 28 });
      res.out.dispose();
    }
    tf.dispose([x, y, t]);
  });
}

test('cpu and wasm give the same samples for the same seed (to float32 rounding)', async () => {
  if (!TEST_BACKENDS.includes('cpu') || !TEST_BACKENDS.includes('wasm')) return;
  const out: number[][] = [];
  for (const backend of ['cpu', 'wasm'] as const) {
    await useBackend(backend);
    const proc = createDiffusion({ respacing: '10' });
    const xT = tf.tensor4d(new Rng(11).normals(2 * 3 * 16), SHAPE);
    const y = tf.tensor1d([3, 7], 'int32');
    const res = await sampleDdpm(withCfg(toyDenoiser, { scale: 1.5, numClasses: 10 }), xT, proc, {
      y,
      rng: new Rng(5),
    });
    out.push(Array.from(await res.x0.data()));
    tf.dispose([xT, y, res.x0]);
  }
  const d = maxAbsDiff(out[0]!, out[1]!);
  assert.ok(d < 1e-4, `cpu vs wasm max abs difference ${d}`);
});

test("a stateful (solution-reuse) denoiser: state threads through, old state is the denoiser's to free, no growth", async () => {
  await useBackend(TEST_BACKENDS[0]!);
  type State = { z: tf.Tensor4D };
  const seenUndefinedAtStart: boolean[] = [];
  // z ← 0.5·z + 0.5·x ("a fixed-point iteration warm-started from the previous step's solution")
  const reuse: Denoiser<State> = (x, _t, _y, ctx) => {
    if (ctx.step === 0) seenUndefinedAtStart.push(ctx.state === undefined);
    const z = tf.tidy(
      () => (ctx.state ? tf.add(tf.mul(0.5, ctx.state.z), tf.mul(0.5, x)) : tf.clone(x)) as tf.Tensor4D,
    );
    ctx.state?.z.dispose();
    const out = tf.tidy(() => tf.concat([tf.mul(0.1, z), tf.zerosLike(z)], 1) as tf.Tensor4D);
    return { out, state: { z }, info: { iters: 3, residual: [0.1, 0.01, 0.001] } };
  };
  const proc = createDiffusion({ respacing: '8' });
  const xT = tf.tensor4d(new Rng(1).normals(2 * 3 * 16), SHAPE);
  const before = tf.memory().numTensors;
  const counts: number[] = [];
  const infos: StepInfo[] = [];
  const res = await sampleDdpm(reuse, xT, proc, {
    y: null,
    rng: new Rng(2),
    onStep: (_i, info) => {
      counts.push(tf.memory().numTensors);
      infos.push(info);
    },
  });
  assert.deepEqual(seenUndefinedAtStart, [true]);
  assert.ok(
    counts.every((c) => c === counts[0]),
    `flat: ${counts}`,
  );
  assert.deepEqual(infos[3]!.denoiser, { iters: 3, residual: [0.1, 0.01, 0.001] });
  assert.ok(res.state && !res.state.z.isDisposed);
  tf.dispose([res.x0, res.state.z]);
  assert.equal(tf.memory().numTensors, before);
  xT.dispose();
});

test('an asynchronous denoiser gives the same samples as the same denoiser returned synchronously, with and without CFG', async () => {
  await useBackend(TEST_BACKENDS[0]!);
  const proc = createDiffusion({ respacing: '6' });
  const xT = tf.tensor4d(new Rng(11).normals(2 * 3 * 16), SHAPE);
  const y = tf.tensor1d([3, 7], 'int32');
  const asyncToy: Denoiser = async (x, t, yy, ctx) => {
    await new Promise((r) => setTimeout(r, 1)); // really yields to the event loop
    return toyDenoiser(x, t, yy, ctx);
  };
  const before = tf.memory().numTensors;
  const out: number[][] = [];
  for (const d of [
    toyDenoiser,
    asyncToy,
    withCfg(toyDenoiser, { scale: 2, numClasses: 10 }),
    withCfg(asyncToy, { scale: 2, numClasses: 10 }),
  ]) {
    const res = await sampleDdim(d, xT, proc, { y, rng: new Rng(4), eta: 1 });
    out.push(Array.from(await res.x0.data()));
    res.x0.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  assert.deepEqual(out[1], out[0]);
  assert.deepEqual(out[3], out[2]);
  assert.ok(maxAbsDiff(out[0]!, out[2]!) > 1e-3, 'CFG changes the samples');
  tf.dispose([xT, y]);
});

test('noise of a large batch is drawn on the worker: the same samples and the same generator state as drawing here', async () => {
  await useBackend('cpu');
  const proc = createDiffusion({ respacing: '3' });
  // 8 × 4 × 32 × 32 = 32,768 values per step: the worker's threshold (DRAW_AHEAD_MIN_VALUES)
  const shape: [number, number, number, number] = [8, 4, 32, 32];
  const xT = tf.tensor4d(new Rng(21).normals(8 * 4 * 32 * 32), shape);
  const eps: Denoiser = (x) => ({
    out: tf.tidy(() => tf.concat([tf.mul(tf.tanh(x), 0.5), tf.zerosLike(x)], 1) as tf.Tensor4D),
  });
  const run = async (ahead: boolean) => {
    const prev = process.env.FPDM_SAMPLE_DRAW_AHEAD;
    process.env.FPDM_SAMPLE_DRAW_AHEAD = ahead ? '1' : '0';
    try {
      const rng = new Rng(9);
      const res = await sampleDdpm(eps, xT, proc, { y: null, rng });
      const data = await res.x0.data();
      res.x0.dispose();
      return { data, state: rng.state(), next: rng.normals(3) };
    } finally {
      if (prev === undefined) delete process.env.FPDM_SAMPLE_DRAW_AHEAD;
      else process.env.FPDM_SAMPLE_DRAW_AHEAD = prev;
    }
  };
  const here = await run(false);
  const worker = await run(true);
  assert.deepEqual(worker.state, here.state);
  assert.deepEqual(worker.next, here.next);
  assert.ok(
    worker.data.every((v, i) => Object.is(v, here.data[i])),
    'x_0 bit for bit',
  );
  // the two noisy steps really drew: another seed moves x_0
  const rng = new Rng(10);
  const other = await sampleDdpm(eps, xT, proc, { y: null, rng });
  assert.ok(maxAbsDiff(Array.from(await other.x0.data()), Array.from(here.data)) > 1e-2);
  other.x0.dispose();
  xT.dispose();
});
