import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { allocateIterations, type SamplingRequest } from '../../src/diffusion/budget.js';
import { planModelSampling } from '../../src/experiments/budget.js';
import { diffusionConfig } from '../../src/diffusion/process.js';
import { createModel, ditPreset, fpdmFrom, modelFlops, validateConfig, type AnyModel } from '../../src/models/index.js';
import { sampleAtBudget, type SampleAtBudgetOptions } from '../../src/experiments/sampling.js';
import { UserError } from '../../src/util/errors.js';
import { useBackend } from '../helpers.js';

// A tiny trunk of depth 4 so that FPDM (1 pre + 1 post) has several splits of a budget.
const BASE = validateConfig({
  ...ditPreset('DiT-S/4', { inputSize: 8, inChannels: 1, numClasses: 3 }),
  hiddenSize: 16,
  numHeads: 2,
  depth: 4,
});
const FP = fpdmFrom(BASE, { preDepth: 1, postDepth: 1 });

/** Untrained weights are zero-initialised in adaLN (identity blocks); perturb them so outputs depend on everything. */
function model(kind: 'dit' | 'fpdm', seed = 1): AnyModel {
  const m = createModel(kind === 'dit' ? BASE : FP, seed);
  let i = 0;
  for (const v of m.params.values())
    tf.tidy(() => v.assign(tf.add(v, tf.mul(0.05, tf.randomNormal(v.shape, 0, 1, 'float32', seed * 1000 + i++)))));
  return m;
}

type Request = Partial<Omit<SamplingRequest, 'diffusionSteps'>>;

/** Sampling options with the plan made by planSampling from the request fields (budget 3 by default). */
function opts(m: AnyModel, extra: Partial<Omit<SampleAtBudgetOptions, 'plan'>> & Request = {}): SampleAtBudgetOptions {
  const { budget = 3, steps, iters, allocation, tolerance, maxItersPerStep, ...rest } = extra;
  const plan = planModelSampling(m.config, {
    budget,
    steps,
    iters,
    allocation,
    tolerance,
    maxItersPerStep,
    diffusionSteps: 1000,
  });
  return { model: m, diffusion: diffusionConfig({}), n: 4, seed: 5, plan, ...rest };
}

test('DiT at budget K takes K steps of depth blocks; same seed same samples, another seed others', async () => {
  await useBackend('cpu');
  const m = model('dit');
  const a = await sampleAtBudget(opts(m));
  const b = await sampleAtBudget(opts(m));
  const c = await sampleAtBudget(opts(m, { seed: 6 }));
  assert.equal(a.account.steps, 3);
  assert.equal(a.account.blockEvaluations, 3 * 4);
  assert.equal(a.account.ditStepEquivalents, 3);
  assert.equal(a.account.flops, 3 * 4 * modelFlops(BASE).forward());
  assert.deepEqual(a.samples, b.samples);
  assert.ok(
    a.samples.some((v, i) => v !== c.samples[i]),
    'another seed gives other samples',
  );
  assert.ok(a.samples.every(Number.isFinite));
  assert.throws(() => opts(m, { steps: 5 }), UserError);
  m.dispose();
});

test('FPDM splits spend exactly depth·K block evaluations; allocations match the LinearController', async () => {
  await useBackend('cpu');
  const m = model('fpdm');
  // K = 3, depth 4: 12 block evaluations; splits (3 steps, 2 iters), (4, 1)
  const fixed = await sampleAtBudget(opts(m));
  assert.equal(fixed.account.steps, 3);
  assert.equal(fixed.account.iters, 2);
  assert.deepEqual(fixed.account.itersPerStep, [2, 2, 2]);
  assert.equal(fixed.account.blockEvaluations, 12);
  assert.equal(fixed.account.flops, 4 * 3 * modelFlops(FP).forward(2));
  assert.equal(fixed.account.residualPerStep!.length, 3);
  assert.ok(fixed.account.residualPerStep!.every((r) => Number.isFinite(r) && r > 0));
  // residuals read once per batch (default) or before each next step: the same numbers and samples
  const live = await sampleAtBudget({ ...opts(m), stepResiduals: true });
  assert.deepEqual(live.account.residualPerStep, fixed.account.residualPerStep);
  assert.deepEqual(live.samples, fixed.samples);
  const four = await sampleAtBudget(opts(m, { steps: 4 }));
  assert.deepEqual(four.account.itersPerStep, [1, 1, 1, 1]);
  assert.equal(four.account.blockEvaluations, 12);
  assert.throws(() => opts(m, { steps: 5 }), /cannot be spent exactly/);
  // explicit steps × iters without a budget, increasing allocation
  const inc = await sampleAtBudget(opts(m, { budget: null, steps: 4, iters: 3, allocation: 'increasing' }));
  assert.deepEqual(inc.account.itersPerStep, allocateIterations(12, 4, 'increasing'));
  assert.ok(inc.account.itersPerStep!.reduce((s, v) => s + v, 0) <= 12);
  assert.equal(inc.account.blockEvaluations, 4 * 2 + inc.account.itersPerStep!.reduce((s, v) => s + v, 0));
  m.dispose();
});

test('tolerance allocation never exceeds the iteration budget; reuse changes the trajectory; CFG doubles FLOPs', async () => {
  await useBackend('cpu');
  const m = model('fpdm');
  for (const tol of [1e-9, 0.5]) {
    const r = await sampleAtBudget(
      opts(m, { budget: null, steps: 4, iters: 2, allocation: 'tolerance', tolerance: tol, maxItersPerStep: 5 }),
    );
    const used = r.account.itersPerStep!.reduce((s, v) => s + v, 0);
    assert.ok(used <= 8, `tol ${tol}: ${used} iterations for a budget of 8`);
    assert.ok(r.account.itersPerStep!.every((v) => v >= 1 && v <= 5));
    if (tol === 1e-9) assert.equal(used, 8, 'an unreachable tolerance spends the whole budget');
  }
  const plain = await sampleAtBudget(opts(m, { budget: null, steps: 4, iters: 1 }));
  const reuse = await sampleAtBudget(opts(m, { budget: null, steps: 4, iters: 1, reuse: true }));
  assert.ok(
    plain.samples.some((v, i) => v !== reuse.samples[i]),
    'reuse starts steps from the previous solution',
  );
  assert.equal(reuse.account.blockEvaluations, plain.account.blockEvaluations);
  const cfg = await sampleAtBudget(opts(m, { budget: null, steps: 4, iters: 1, cfgScale: 3 }));
  assert.equal(cfg.account.flops, 2 * plain.account.flops);
  assert.equal(cfg.account.blockEvaluations, plain.account.blockEvaluations);
  m.dispose();
});

test('batched sampling with reuse repeats exactly and leaves no tensors behind', async () => {
  await useBackend('cpu');
  const m = model('fpdm');
  const before = tf.memory().numTensors;
  const one = await sampleAtBudget(opts(m, { n: 4, batchSize: 2, reuse: true, sampler: 'ddim' }));
  assert.equal(tf.memory().numTensors, before, 'sampling leaves no tensors behind');
  const again = await sampleAtBudget(opts(m, { n: 4, batchSize: 2, reuse: true, sampler: 'ddim' }));
  assert.deepEqual(one.samples, again.samples);
  assert.equal(one.account.blockEvaluations, 12);
  m.dispose();
});
