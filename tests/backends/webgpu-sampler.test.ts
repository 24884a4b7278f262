// A sampling step's update as one direct dispatch (src/backends/webgpu/sampler.ts, through
// src/backends/kernels.ts directSamplerStep) against the TF.js op sequence it replaces (process.ts
// pMeanVariance, then pSampleStep or ddimStep), on webgpu (FPDM_TEST_BACKENDS=webgpu: a GPU, or
// SwiftShader's Vulkan on a CPU machine): DDPM and DDIM (η 0 and 1) over ε / v / x_0 prediction, learned
// range and both fixed variances, clipping on and off, noise or none (the last step), a batch mixing
// t = 0 with other timesteps, and v-prediction with zero terminal SNR (DDIM's ε̂ from v where ᾱ_t = 0);
// classifier-free guidance's batch doubling and combination (cfg.ts) against its TF.js ops;
// and the TF.js kernels a sampling step leaves (none; FPDM's pass reads its residuals with one Concat).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { directCfgKernels, directSamplerStep, setKernelOptions } from '../../src/backends/kernels.js';
import { withCfg } from '../../src/diffusion/cfg.js';
import type { Denoiser } from '../../src/diffusion/denoiser.js';
import { createDiffusion, diffusionConfig, type DiffusionConfig } from '../../src/diffusion/process.js';
import { planModelSampling } from '../../src/experiments/budget.js';
import { sampleAtBudget } from '../../src/experiments/sampling.js';
import { validateConfig, fpdmFrom } from '../../src/models/config.js';
import { TEST_BACKENDS, randomTensor, tensorRelErr, useBackend } from '../helpers.js';
import { TINY_TRUNK, randomModel } from './tiny-models.js';

const onGpu = TEST_BACKENDS.includes('webgpu');
const SKIP = 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)';
const TOL = 1e-5;

const PROCESSES: Array<[string, Partial<DiffusionConfig>]> = [
  ['ε, learned range', { respacing: '20' }],
  ['ε, fixed small', { respacing: '20', variance: 'fixed-small', loss: 'mse' }],
  ['x_0, fixed large', { respacing: '20', parameterization: 'x0', variance: 'fixed-large', loss: 'mse' }],
  ['v, zero terminal SNR, learned range', { respacing: '20', parameterization: 'v', zeroTerminalSnr: true }],
];

test(
  'a sampling step as one dispatch equals the TF.js ops (DDPM, DDIM η 0/1; ε, v, x_0; learned and fixed variances; clipping; the last step)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const [N, C, H, W] = [3, 2, 4, 4];
    const x = randomTensor('step/x', [N, C, H, W]) as tf.Tensor4D;
    const noise = randomTensor('step/noise', [N, C, H, W]) as tf.Tensor4D;
    let checked = 0;
    for (const [label, cfg] of PROCESSES) {
      const process = createDiffusion(cfg);
      const step = directSamplerStep(process);
      assert.ok(step, 'the direct step exists on webgpu');
      const co = process.modelOutputChannels(C);
      // variance values slightly outside [−1, 1] too, as an untrained model gives
      const out = randomTensor(`step/out/${label}`, [N, co, H, W], 1.2) as tf.Tensor4D;
      const last = process.numTimesteps - 1;
      const batches: Array<[string, number[], boolean]> = [
        ['t = 0, 7, T−1', [0, 7, last], true],
        ['t = 0 (no noise)', [0, 0, 0], false],
        ['t = 3, 12, 1', [3, 12, 1], true],
      ];
      for (const kind of ['ddpm', 'ddim'] as const) {
        for (const eta of kind === 'ddim' ? [0, 1] : [0]) {
          for (const clipDenoised of [false, true]) {
            for (const [tl, t, withNoise] of batches) {
              // DDIM with η = 0 takes no noise (as the sampler calls it); everything else does where t != 0
              const z = withNoise && (kind === 'ddpm' || eta > 0) ? noise : null;
              const ours = step({ kind, modelOutput: out, x, t, noise: z, clipDenoised, eta });
              assert.ok(ours, `${label}: the direct step takes every step here`);
              const ref = tf.tidy(() => {
                const mv = process.pMeanVariance(out, x, t, { clipDenoised });
                return kind === 'ddpm' ? process.pSampleStep(mv, t, z) : process.ddimStep(mv, x, t, eta, z);
              });
              const e = await tensorRelErr(ours, ref);
              const what = `${label}, ${kind}${kind === 'ddim' ? ` η ${eta}` : ''}, clip ${clipDenoised}, ${tl}`;
              assert.ok(e <= TOL, `${what}: rel. error ${e}`);
              if (checked % 8 === 0) console.log(`${what}: rel. error ${e.toExponential(2)}`);
              checked++;
              tf.dispose([ours, ref]);
            }
          }
        }
      }
      out.dispose();
    }
    // the comparison can fail: another η, or no clipping, gives another x_{t−1}
    const process = createDiffusion({ respacing: '20' });
    const out = randomTensor('step/out/check', [N, 2 * C, H, W], 3) as tf.Tensor4D;
    const step = directSamplerStep(process)!;
    const t = [5, 9, 2];
    const a = step({ kind: 'ddim', modelOutput: out, x, t, noise, clipDenoised: true, eta: 1 })!;
    const b = step({ kind: 'ddim', modelOutput: out, x, t, noise, clipDenoised: true, eta: 0.5 })!;
    const c = step({ kind: 'ddim', modelOutput: out, x, t, noise, clipDenoised: false, eta: 1 })!;
    assert.ok((await tensorRelErr(a, b)) > 1e-3, 'η changes the step');
    assert.ok((await tensorRelErr(a, c)) > 1e-3, 'clipping changes the step');
    tf.dispose([a, b, c, out, x, noise]);
    console.log(`${checked} steps compared`);
  },
);

test(
  'classifier-free guidance with its direct dispatches equals its TF.js ops (all / first3 channels; float32, int32 and relabelled timesteps; labels not int32)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const [N, C, H, W] = [3, 2, 4, 4];
    const x = randomTensor('cfg/x', [N, C, H, W]) as tf.Tensor4D;
    // an inner "model" of every input: out [2N, co, H, W] from x, t and y, and what it was given
    const inner =
      (co: number, seen: tf.Tensor[]): Denoiser =>
      (x2, t2, y2) => {
        seen.push(tf.clone(x2), tf.clone(t2), tf.clone(y2!));
        const out = tf.tidy(() => {
          const tt = tf.reshape(tf.div(tf.cast(t2, 'float32'), 1000), [-1, 1, 1, 1]);
          const yy = tf.reshape(tf.cast(y2!, 'float32'), [-1, 1, 1, 1]);
          const f = tf.add(tf.mul(tf.tanh(x2), tf.add(0.5, tt)), tf.mul(0.1, yy));
          const parts = Array.from({ length: co / C }, (_, i) => tf.sin(tf.mul(f, i + 1)));
          return tf.concat(parts, 1) as tf.Tensor4D;
        });
        return { out };
      };
    const tsteps: Array<[string, () => tf.Tensor1D]> = [
      ['float32 t', () => tf.tensor1d([3, 500, 999])],
      ['int32 t', () => tf.tensor1d([3, 500, 999], 'int32')],
      ['t cast from int32', () => tf.cast(tf.tensor1d([3, 500, 999], 'int32'), 'float32') as tf.Tensor1D],
    ];
    const labels: Array<[string, () => tf.Tensor1D]> = [
      ['int32 labels', () => tf.tensor1d([1, 4, 0], 'int32')],
      ['float32 labels', () => tf.tensor1d([1, 4, 0])],
    ];
    for (const channels of ['all', 'first3'] as const) {
      for (const co of [2 * C, 6]) {
        for (const [tl, mkT] of tsteps) {
          for (const [yl, mkY] of labels) {
            const run = async (raw: boolean) => {
              const prev = setKernelOptions({ rawBlock: raw });
              const [t, y, seen] = [mkT(), mkY(), [] as tf.Tensor[]];
              try {
                const before = tf.memory().numTensors;
                const guided = withCfg(inner(co, seen), { scale: 3.5, numClasses: 5, channels });
                const res = await guided(x, t, y, { step: 0, steps: 1 });
                assert.equal(tf.memory().numTensors, before + 1 + seen.length, 'only the result is new');
                return { out: res.out, seen };
              } finally {
                setKernelOptions(prev);
                tf.dispose([t, y]);
              }
            };
            const ours = await run(true);
            const ref = await run(false);
            const what = `${channels}, ${co} channels, ${tl}, ${yl}`;
            for (let i = 0; i < 3; i++) {
              assert.equal(ours.seen[i]!.dtype, ref.seen[i]!.dtype, `${what}: input ${i} dtype`);
              assert.deepEqual(ours.seen[i]!.shape, ref.seen[i]!.shape, `${what}: input ${i} shape`);
              assert.deepEqual(await ours.seen[i]!.data(), await ref.seen[i]!.data(), `${what}: input ${i}`);
            }
            const e = await tensorRelErr(ours.out, ref.out);
            assert.ok(e <= TOL, `${what}: rel. error ${e}`);
            tf.dispose([ours.out, ref.out, ...ours.seen, ...ref.seen]);
          }
        }
      }
    }
    x.dispose();
  },
);

test(
  'with the direct-dispatch kernels off (rawBlock off) the samplers and CFG use the TF.js ops',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const prev = setKernelOptions({ rawBlock: false });
    try {
      assert.equal(directSamplerStep(createDiffusion({ respacing: '20' })), null);
      assert.equal(directCfgKernels(), null);
    } finally {
      setKernelOptions(prev);
    }
  },
);

test(
  'a sampling step runs no TF.js kernel (DiT, FPDM with its residuals kept on the device)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const trunk = validateConfig({ ...TINY_TRUNK, depth: 4 });
    for (const [label, cfg, sampler] of [
      ['DiT, DDPM', trunk, 'ddpm'],
      ['DiT, DDIM', trunk, 'ddim'],
      ['FPDM, DDPM', fpdmFrom(trunk, { prePostTimestepConditioning: false }), 'ddpm'],
    ] as const) {
      const model = randomModel(cfg, `kernels/${label}`);
      const kernelsAt = async (budget: number) => {
        const plan = planModelSampling(model.config, { budget, steps: budget, diffusionSteps: 1000 });
        const opts = { model, diffusion: diffusionConfig({}), plan, n: 2, seed: 1, sampler };
        await sampleAtBudget(opts); // warm-up
        const p = await tf.profile(async () => {
          await sampleAtBudget(opts);
          return [];
        });
        return p.kernels.map((k) => k.name);
      };
      // per step: the difference between passes of 3 and 2 steps (a pass's own kernels cancel out)
      const [k2, k3] = [await kernelsAt(2), await kernelsAt(3)];
      console.log(`${label}: TF.js kernels per pass of 2 / 3 steps: ${k2.length} / ${k3.length} (${k3.join(', ')})`);
      assert.equal(k3.length - k2.length, 0, `${label}: TF.js kernels per step`);
      // FPDM: one Concat per pass, of the steps' residual vectors (read once at the pass's end)
      assert.deepEqual(k3, cfg.kind === 'dit' ? [] : ['Concat'], `${label}: the pass's TF.js kernels`);
      model.dispose();
    }
  },
);
