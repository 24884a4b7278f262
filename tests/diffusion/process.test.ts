// Every array and step of tests/fixtures/diffusion.safetensors (PyTorch reference) reproduced,
// for all eight processes, on every test backend. Criterion: error relative to the array's scale
// <= 1e-5 (see scaleRelErr); schedules (float64 host tables) to 1e-12 element-wise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { createDiffusion, type GaussianDiffusion } from '../../src/diffusion/process.js';
import { trainingLosses } from '../../src/diffusion/losses.js';
import { UserError } from '../../src/util/errors.js';
import { TEST_BACKENDS, useBackend } from '../helpers.js';
import { PROCESSES, elemRelErr, f32, f64, ints, scaleRelErr, shape } from './fixtures.js';

const TOL = 1e-5;
const t4 = (n: string) => tf.tensor4d(f32(n), shape(n) as [number, number, number, number]);

// Reads are asynchronous (the webgpu backend cannot read synchronously under Node), so the tests
// scope their tensors with start/endScope rather than tf.tidy, which takes no async function.
async function scoped(f: () => Promise<void>): Promise<void> {
  tf.engine().startScope();
  try {
    await f();
  } finally {
    tf.engine().endScope();
  }
}

async function check(what: string, got: tf.Tensor, ref: Float32Array): Promise<void> {
  const g = await got.data();
  const e = scaleRelErr(g, ref);
  assert.ok(e <= TOL, `${what}: error ${e} relative to the array scale (element-wise ${elemRelErr(g, ref)}) > ${TOL}`);
}

test('schedules and timestep_map of all eight processes (float64)', () => {
  for (const [name, cfg] of Object.entries(PROCESSES)) {
    const p = createDiffusion(cfg);
    assert.deepEqual(Array.from(p.timestepMap), ints(`${name}/timestep_map`), `${name} timestep_map`);
    const tabs: Record<string, Float64Array> = {
      betas: p.tables.betas,
      alphas_cumprod: p.tables.alphasCumprod,
      alphas_cumprod_prev: p.tables.alphasCumprodPrev,
      posterior_variance: p.tables.posteriorVariance,
      posterior_log_variance_clipped: p.tables.posteriorLogVarianceClipped,
      posterior_mean_coef1: p.tables.posteriorMeanCoef1,
      posterior_mean_coef2: p.tables.posteriorMeanCoef2,
      sqrt_alphas_cumprod: p.tables.sqrtAlphasCumprod,
      sqrt_one_minus_alphas_cumprod: p.tables.sqrtOneMinusAlphasCumprod,
    };
    for (const [k, v] of Object.entries(tabs)) {
      const e = elemRelErr(v, f64(`${name}/${k}`));
      assert.ok(e <= 1e-12, `${name}/${k}: element-wise relative error ${e}`);
    }
  }
});

for (const backend of TEST_BACKENDS) {
  test(`[${backend}] p_mean_variance (clip on/off), p_sample, DDIM eta 0/1 for all eight processes`, async () => {
    await useBackend(backend);
    for (const name of Object.keys(PROCESSES)) {
      const p = createDiffusion(PROCESSES[name]);
      await scoped(async () => {
        const t = ints(`${name}/step/t`);
        const x = t4(`${name}/step/x`);
        const mo = t4(`${name}/step/model_output`);
        const noise = t4(`${name}/step/noise`);
        for (const clip of [0, 1]) {
          const mv = p.pMeanVariance(mo, x, t, { clipDenoised: clip === 1 });
          await check(`${name} clip${clip} mean`, mv.mean, f32(`${name}/step/clip${clip}/mean`));
          await check(`${name} clip${clip} variance`, mv.variance, f32(`${name}/step/clip${clip}/variance`));
          await check(`${name} clip${clip} log_variance`, mv.logVariance, f32(`${name}/step/clip${clip}/log_variance`));
          await check(`${name} clip${clip} pred_xstart`, mv.predXstart, f32(`${name}/step/clip${clip}/pred_xstart`));
        }
        const mv = p.pMeanVariance(mo, x, t, { clipDenoised: false });
        await check(`${name} p_sample`, p.pSampleStep(mv, t, noise), f32(`${name}/step/p_sample`));
        await check(`${name} ddim_eta0`, p.ddimStep(mv, x, t, 0, noise), f32(`${name}/step/ddim_eta0`));
        await check(`${name} ddim_eta1`, p.ddimStep(mv, x, t, 1, noise), f32(`${name}/step/ddim_eta1`));
      });
    }
  });

  test(`[${backend}] q_sample and per-sample mse / vb / loss (eps learned-range; v with zero-terminal SNR and p2)`, async () => {
    await useBackend(backend);
    for (const name of ['full', 'v_zsnr_full']) {
      const p: GaussianDiffusion = createDiffusion(PROCESSES[name]);
      await scoped(async () => {
        const t = ints(`${name}/loss/t`);
        const xStart = t4(`${name}/loss/x_start`);
        const noise = t4(`${name}/loss/noise`);
        const xT = p.qSample(xStart, t, noise);
        await check(`${name} x_t`, xT, f32(`${name}/loss/x_t`));
        const terms = trainingLosses(p, { modelOutput: t4(`${name}/loss/model_output`), xStart, xT, noise, t });
        await check(`${name} mse`, terms.mse, f32(`${name}/loss/mse`));
        assert.ok(terms.vb, 'hybrid loss has a vb term');
        // vb per sample: each element against its own value (they span 2.6 … 6.6e-9)
        const vb = await terms.vb.data();
        const refVb = f32(`${name}/loss/vb`);
        const ev = elemRelErr(vb, refVb);
        assert.ok(ev <= TOL, `${name} vb element-wise relative error ${ev}: ${Array.from(vb)} vs ${Array.from(refVb)}`);
        await check(`${name} loss`, terms.loss, f32(`${name}/loss/loss`));
      });
    }
  });

  test(`[${backend}] vb does not pass gradient to the mean channels; mse does`, async () => {
    await useBackend(backend);
    const p = createDiffusion(PROCESSES.full);
    const t = [0, 10, 999];
    const [xStart, noise, mo] = [t4('full/loss/x_start'), t4('full/loss/noise'), t4('full/loss/model_output')];
    const xT = p.qSample(xStart, t, noise);
    const gVb = tf.grad((m: tf.Tensor) =>
      tf.sum(trainingLosses(p, { modelOutput: m as tf.Tensor4D, xStart, xT, noise, t }).vb!),
    )(mo);
    const [gMean, gVar] = tf.split(gVb, 2, 1);
    assert.equal((await tf.max(tf.abs(gMean)).data())[0], 0, 'no vb gradient into the mean prediction');
    assert.ok((await tf.max(tf.abs(gVar)).data())[0]! > 0, 'vb trains the variance channels');
    const gMse = tf.grad((m: tf.Tensor) =>
      tf.sum(trainingLosses(p, { modelOutput: m as tf.Tensor4D, xStart, xT, noise, t }).mse),
    )(mo);
    const [gm2, gv2] = tf.split(gMse, 2, 1);
    // d/dε̂ mean((ε − ε̂)²) = −2(ε − ε̂)/numel(sample): analytic
    const ref = tf.div(tf.mul(-2, tf.sub(noise, tf.split(mo, 2, 1)[0]!)), 4 * 8 * 8);
    assert.ok(scaleRelErr(await gm2.data(), await ref.data()) < 1e-6);
    assert.equal((await tf.max(tf.abs(gv2)).data())[0], 0);
    tf.dispose([xStart, noise, mo, xT, gVb, gMean, gVar, gMse, gm2, gv2, ref]);
  });
}

test('config rules are checked at the boundary', () => {
  assert.throws(() => createDiffusion({ zeroTerminalSnr: true }), UserError);
  assert.throws(() => createDiffusion({ variance: 'fixed-small' }), UserError); // hybrid needs learned variance
  assert.throws(() => createDiffusion({ respacing: '2000' }), UserError);
  assert.throws(() => createDiffusion({ respacing: 'ddim999' }), UserError);
  assert.throws(() => createDiffusion({ respacing: 'ten' }), UserError);
  const p = createDiffusion({ variance: 'fixed-small', loss: 'mse' });
  assert.equal(p.modelOutputChannels(4), 4);
});

test('x_0 parameterisation with fixed variances: mse against x_0, fixed-small = β̃, fixed-large = (β̃_1, β_1, …)', async () => {
  await useBackend(TEST_BACKENDS[0]!);
  const xStart = t4('full/loss/x_start');
  const noise = t4('full/loss/noise');
  const out = tf.tidy(() => tf.mul(0.5, xStart) as tf.Tensor4D);
  const t = [0, 10, 999];
  for (const variance of ['fixed-small', 'fixed-large'] as const) {
    const p = createDiffusion({ parameterization: 'x0', variance, loss: 'mse' });
    await scoped(async () => {
      const xT = p.qSample(xStart, t, noise);
      const terms = trainingLosses(p, { modelOutput: out, xStart, xT, noise, t });
      assert.equal(terms.vb, undefined);
      const x0 = (await xStart.array()) as number[][][][];
      const got = await terms.mse.data();
      for (let i = 0; i < 3; i++) {
        const flat = x0[i]!.flat(2);
        const want = flat.reduce((s, v) => s + (0.5 * v) ** 2, 0) / flat.length; // mean (x_0 − x_0/2)²
        assert.ok(Math.abs(got[i]! - want) <= 1e-6 * want);
      }
      const mv = p.pMeanVariance(out, xT, t, { clipDenoised: false });
      assert.ok(scaleRelErr(await mv.predXstart.data(), await out.data()) === 0);
      const v = (await mv.variance.array()) as number[][][][];
      const want = (k: number) =>
        variance === 'fixed-small'
          ? p.tables.posteriorVariance[k]!
          : k === 0
            ? p.tables.posteriorVariance[1]!
            : p.tables.betas[k]!;
      t.forEach((k, i) => assert.equal(v[i]![2]![3]![1], Math.fround(want(k))));
    });
  }
  tf.dispose([xStart, noise, out]);
});
