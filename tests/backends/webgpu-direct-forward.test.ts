// The model forward with its edges as direct dispatches (src/backends/kernels.ts directEdgeKernels: the
// embedders, FPDM's block_pre_projection, the final layer + unpatchify on src/backends/webgpu/edges.ts,
// beside the blocks already on our kernels) against the same forward on TF.js ops alone (rawBlock off), on
// webgpu (FPDM_TEST_BACKENDS=webgpu: a GPU, or SwiftShader's Vulkan on a CPU machine): DiT with and
// without learned variance, fractional and int32 timesteps, a null-class label; FPDM with pre/post
// timestep conditioning on and off, a passed state (solution reuse), no post blocks, the Anderson solver;
// the TF.js kernels one forward runs (none: without a tape the block ops run without their customGrad
// wrapper, blockgrad.ts); under a gradient tape the TF.js
// ops (the same gradients); and whole sampling passes (DDPM / DDIM, CFG, reuse, the tolerance allocation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { directEdgeKernels, setKernelOptions } from '../../src/backends/kernels.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { planModelSampling } from '../../src/experiments/budget.js';
import {
  sampleAtBudget,
  type SampleAtBudgetOptions,
  type SampleAtBudgetResult,
} from '../../src/experiments/sampling.js';
import type { AnyModel } from '../../src/models/index.js';
import { fpdmFrom, validateConfig, type ModelConfig } from '../../src/models/config.js';
import type { ForwardOptions, ForwardResult } from '../../src/models/model.js';
import { TEST_BACKENDS, maxAbsDiff, randomTensor, tensorRelErr, useBackend } from '../helpers.js';
import { TINY_TRUNK, randomModel, tinyFpdm } from './tiny-models.js';

const onGpu = TEST_BACKENDS.includes('webgpu');
const SKIP = 'webgpu only: npm run test:webgpu runs it (on a GPU, or on SwiftShader without one)';
const TOL = 1e-4;

const FPDM = tinyFpdm;

/** Runs `f` with the direct-dispatch kernels on (direct edges and blocks) or off (TF.js ops only). */
async function withRaw<T>(on: boolean, f: () => Promise<T> | T): Promise<T> {
  const prev = setKernelOptions({ rawBlock: on });
  try {
    return await f();
  } finally {
    setKernelOptions(prev);
  }
}

/** The forward's tensors (out, and FPDM's state), each owned by the caller. */
const tensorsOf = (r: ForwardResult): tf.Tensor[] => [r.out, ...(r.state ? [r.state.z] : [])];

interface Case {
  label: string;
  model: ModelConfig;
  /** timesteps as the model receives them */
  t: tf.Tensor1D;
  /** FPDM: forward options; `reuse`: a second forward from the first one's state */
  opts?: ForwardOptions;
  reuse?: boolean;
  /** through forwardAsync (every solver) */
  async?: boolean;
}

function cases(): Case[] {
  const tf32 = tf.tensor1d([0, 3.5, 499.25, 999]); // fractional timesteps: the kernel reads floats
  return [
    { label: 'DiT, learned variance', model: TINY_TRUNK, t: tf32 },
    {
      label: 'DiT, fixed variance, int32 timesteps',
      model: validateConfig({ ...TINY_TRUNK, learnSigma: false }),
      t: tf.tensor1d([0, 3, 500, 999], 'int32'),
    },
    { label: 'FPDM, c_pp = c, 2 iterations, reuse', model: FPDM({}), t: tf32, opts: { iters: 2 }, reuse: true },
    {
      label: 'FPDM, c_pp = y_emb, pre 2 / post 0, 3 iterations, reuse',
      model: FPDM({ prePostTimestepConditioning: false, preDepth: 2, postDepth: 0 }),
      t: tf32,
      opts: { iters: 3 },
      reuse: true,
    },
    {
      label: 'FPDM, c_pp = y_emb, Anderson (4 iterations), fixed variance, timesteps cast from int32',
      model: fpdmFrom(validateConfig({ ...TINY_TRUNK, learnSigma: false }), { prePostTimestepConditioning: false }),
      // TF.js's webgpu Cast int32 → float32 keeps the int32 buffer under the float32 tensor
      t: tf.tidy(() => tf.cast(tf.tensor1d([0, 3, 500, 999], 'int32'), 'float32')),
      opts: { solver: { kind: 'anderson', tol: 1e-9, maxIters: 4, window: 2 } },
      async: true,
    },
  ];
}

test(
  'the model forward with direct-dispatch edges equals the TF.js ops (DiT, FPDM, reuse, Anderson); no tensor leaks',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const N = 4;
    const all = cases();
    for (const cs of all) {
      const model = randomModel(cs.model, cs.label);
      const x = randomTensor(`${cs.label}/x`, [N, 3, 8, 8]) as tf.Tensor4D;
      const y = tf.tensor1d([1, 5, 4, 1], 'int32'); // 5: the null class; label 1 twice
      const call = (opts: ForwardOptions = {}) =>
        cs.async
          ? model.forwardAsync(x, cs.t, y, { ...cs.opts, ...opts })
          : model.forward(x, cs.t, y, { ...cs.opts, ...opts });
      const run = async (raw: boolean) =>
        withRaw(raw, async () => {
          if (raw) assert.ok(directEdgeKernels(), 'direct edges available on webgpu with rawBlock on');
          else assert.equal(directEdgeKernels(), null, 'no direct edges with rawBlock off');
          const before = tf.memory().numTensors;
          const first = await call();
          const second = cs.reuse ? await call({ state: first.state }) : null;
          const made = [...tensorsOf(first), ...(second ? tensorsOf(second) : [])];
          assert.equal(tf.memory().numTensors, before + made.length, `${cs.label}: only the results are new tensors`);
          return { first, second, made };
        });
      const ours = await run(true);
      const ref = await run(false);
      const e = await tensorRelErr(ours.first.out, ref.first.out);
      assert.ok(e <= TOL, `${cs.label}: out rel. error ${e}`);
      if (ours.first.state) {
        const ez = await tensorRelErr(ours.first.state.z, ref.first.state!.z);
        assert.ok(ez <= TOL, `${cs.label}: state rel. error ${ez}`);
      }
      if (ours.second) {
        const e2 = await tensorRelErr(ours.second.out, ref.second!.out);
        assert.ok(e2 <= TOL, `${cs.label}: out from the passed state rel. error ${e2}`);
        // the passed state matters (the comparison above can fail)
        const d = maxAbsDiff(await ours.second.out.data(), await ours.first.out.data());
        assert.ok(d > 1e-3, `${cs.label}: the second forward starts elsewhere (max diff ${d})`);
      }
      console.log(`${cs.label}: out rel. error ${e.toExponential(2)}`);
      tf.dispose([...ours.made, ...ref.made, x, y]);
      model.dispose();
    }
    tf.dispose([...new Set(all.map((c) => c.t))]);
  },
);

test(
  'a forward with direct-dispatch edges runs no TF.js kernel (no block op wrapper without a tape)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    const N = 4;
    for (const [label, cfg, iters] of [
      ['DiT', TINY_TRUNK, undefined],
      ['FPDM, c_pp = y_emb', FPDM({ prePostTimestepConditioning: false }), 2],
    ] as const) {
      const model = randomModel(cfg, label);
      const x = randomTensor(`${label}/x`, [N, 3, 8, 8]) as tf.Tensor4D;
      const t = tf.tensor1d([0, 3, 500, 999]);
      const y = tf.tensor1d([1, 5, 4, 1], 'int32');
      const kernels = async (raw: boolean) =>
        withRaw(raw, async () => {
          const warm = model.forward(x, t, y, { iters });
          tf.dispose(tensorsOf(warm));
          const p = await tf.profile(() => tensorsOf(model.forward(x, t, y, { iters })));
          tf.dispose(p.result as tf.Tensor[]);
          return p.kernels.length;
        });
      const [ours, ref] = [await kernels(true), await kernels(false)];
      console.log(`${label}: TF.js kernels per forward ${ours} (direct dispatch) vs ${ref} (TF.js ops)`);
      assert.equal(ours, 0, `${label}: TF.js kernels per forward`);
      assert.ok(ref > model.blockEvaluations(iters), `${label}: the TF.js ops run kernels of their own`);
      tf.dispose([x, t, y]);
      model.dispose();
    }
  },
);

test(
  'under a gradient tape the forward runs its edges as TF.js ops: the same gradients as with rawBlock off',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    for (const [label, cfg] of [
      ['DiT', TINY_TRUNK],
      ['FPDM, c_pp = y_emb', FPDM({ prePostTimestepConditioning: false })],
    ] as const) {
      const model = randomModel(cfg, label);
      const x = randomTensor(`${label}/x`, [4, 3, 8, 8]) as tf.Tensor4D;
      const t = tf.tensor1d([0, 3, 500, 999]);
      const y = tf.tensor1d([1, 5, 4, 1], 'int32');
      const w = randomTensor(`${label}/w`, [4, 6, 8, 8]); // a loss that weighs every output differently
      const grads = (raw: boolean) =>
        withRaw(raw, () =>
          tf.variableGrads(() => {
            const r = model.forward(x, t, y, { iters: 2 });
            if (r.state) r.state.z.dispose();
            return tf.sum(tf.mul(r.out, w)) as tf.Scalar;
          }),
        );
      const ours = await grads(true);
      const ref = await grads(false);
      assert.equal(Object.keys(ours.grads).length, model.params.size, `${label}: a gradient for every parameter`);
      for (const [name, v] of model.params) {
        const vn = (v as tf.Variable).name;
        const e = await tensorRelErr(ours.grads[vn]!, ref.grads[vn]!);
        // the blocks' backward on our kernels vs TF.js's: the bound of the direct training step's test
        assert.ok(e <= 2e-4, `${label}: gradient of ${name} rel. error ${e}`);
      }
      tf.dispose([ours.value, ref.value, ...Object.values(ours.grads), ...Object.values(ref.grads), x, t, y, w]);
      model.dispose();
    }
  },
);

test(
  'sampling with direct-dispatch edges equals sampling on TF.js ops (DDPM, DDIM, CFG, reuse, tolerance)',
  { skip: onGpu ? false : SKIP },
  async () => {
    await useBackend('webgpu');
    // depth 4: an FPDM step (1 pre + 1 post block + iterations) within a DiT step's budget
    const trunk = validateConfig({ ...TINY_TRUNK, depth: 4 });
    const dit = randomModel(trunk, 'sample/dit');
    const fpdm = randomModel(fpdmFrom(trunk, { prePostTimestepConditioning: false }), 'sample/fpdm');
    const runs: Array<[string, AnyModel, Partial<SampleAtBudgetOptions>, Parameters<typeof planModelSampling>[1]]> = [
      ['DiT, DDIM, CFG 4', dit, { sampler: 'ddim', cfgScale: 4 }, { budget: 3, diffusionSteps: 1000 }],
      ['FPDM, DDPM, CFG 4, reuse', fpdm, { cfgScale: 4, reuse: true }, { budget: 3, diffusionSteps: 1000 }],
      [
        'FPDM, DDIM, tolerance allocation',
        fpdm,
        { sampler: 'ddim' },
        { budget: 3, allocation: 'tolerance', tolerance: 1e-2, diffusionSteps: 1000 },
      ],
    ];
    for (const [label, model, o, req] of runs) {
      const plan = planModelSampling(model.config, req);
      const opts: SampleAtBudgetOptions = { model, diffusion: diffusionConfig({}), plan, n: 2, seed: 3, ...o };
      const sample = (raw: boolean) =>
        withRaw(raw, async () => {
          const before = tf.memory().numTensors;
          let r: SampleAtBudgetResult | null = null;
          const p = await tf.profile(async () => {
            r = await sampleAtBudget(opts);
            return [];
          });
          assert.equal(tf.memory().numTensors, before, `${label}: no tensor left`);
          return { r: r!, kernels: p.kernels.length };
        });
      const ours = await sample(true);
      const ref = await sample(false);
      assert.deepEqual(ours.r.account.itersPerStep, ref.r.account.itersPerStep, `${label}: iterations per step`);
      const scale = ref.r.samples.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const e = maxAbsDiff(ours.r.samples, ref.r.samples) / scale;
      console.log(
        `${label}: samples rel. error ${e.toExponential(2)}; TF.js kernels ${ours.kernels} vs ${ref.kernels}`,
      );
      assert.ok(e <= TOL, `${label}: samples rel. error ${e}`);
    }
    dit.dispose();
    fpdm.dispose();
  },
);
