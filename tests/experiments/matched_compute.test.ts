// Matched compute is exact by construction: one function (planSampling) makes every sampling plan, the
// sampler executes it, and what the model actually ran equals what the plan (and the budget) says.
//
// The model here is a counting model: it implements the model interface, runs its blocks as a counter
// (pre blocks, then fixed-point iterations until the solver's count, cap or a residual tolerance,
// then post blocks) and returns zeros. Its counter is independent of the sampler's accounting, so the
// test compares three numbers: the plan's, the sampler's account and the model's own count.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { budgetBlockEvals, exactSplits, type Allocation, type SamplingPlan } from '../../src/diffusion/budget.js';
import type { Denoiser } from '../../src/diffusion/denoiser.js';
import { diffusionConfig, type GaussianDiffusion } from '../../src/diffusion/process.js';
import type { SampleOptions, SampleResult } from '../../src/diffusion/samplers.js';
import {
  fpdmFrom,
  validateConfig,
  type DiffusionModel,
  type ForwardOptions,
  type ForwardResult,
  type ModelConfig,
} from '../../src/models/index.js';
import { samplePlan } from '../../src/cli/commands/sample.js';
import { planModelSampling, specSamplingPlans, stepCost } from '../../src/experiments/budget.js';
import { sampleAtBudget } from '../../src/experiments/sampling.js';
import { UserError } from '../../src/util/errors.js';
import { useBackend } from '../helpers.js';

const DIFFUSION = diffusionConfig({ variance: 'fixed-small', loss: 'mse' });

function config(kind: 'dit' | 'fpdm', depth: number, pre: number, post: number): ModelConfig {
  const dit = validateConfig({
    kind: 'dit',
    inputSize: 2,
    patchSize: 1,
    inChannels: 1,
    hiddenSize: 4,
    depth,
    numHeads: 1,
    mlpRatio: 4,
    classDropoutProb: 0,
    numClasses: 1,
    learnSigma: false,
  });
  return kind === 'dit' ? dit : fpdmFrom(dit, { preDepth: pre, postDepth: post });
}

/** A model that counts the blocks it runs; residuals halve every iteration (0.5^k). */
class CountingModel implements DiffusionModel {
  blocks = 0;
  calls = 0;
  readonly params = new Map();
  constructor(readonly config: ModelConfig) {}
  /** the synchronous forward (fixed solver): residuals as a tensor, as FPDM's */
  forward(x: tf.Tensor4D, _t: tf.Tensor1D, _y: tf.Tensor1D, opts: ForwardOptions = {}): ForwardResult {
    const r = this.count(x, opts);
    if (!r.solve) return { out: r.out };
    const residuals = opts.trackResiduals ? tf.tensor1d(r.solve.residuals) : undefined;
    return { out: r.out, solve: { ...r.solve, residuals: [] }, ...(residuals ? { residuals } : {}) };
  }
  async forwardAsync(
    x: tf.Tensor4D,
    _t: tf.Tensor1D,
    _y: tf.Tensor1D,
    opts: ForwardOptions = {},
  ): Promise<ForwardResult> {
    return this.count(x, opts);
  }
  private count(x: tf.Tensor4D, opts: ForwardOptions): ForwardResult {
    this.calls += 1;
    const c = this.config;
    const out = tf.zerosLike(x);
    if (c.kind === 'dit') {
      for (let b = 0; b < c.depth; b++) this.blocks += 1;
      return { out };
    }
    const s = opts.solver!;
    this.blocks += c.preDepth;
    let k = 0;
    const residuals: number[] = [];
    for (;;) {
      if (s.kind === 'fixed' && k >= s.iters) break;
      if (s.kind === 'tolerance' && (k >= s.maxIters || (k > 0 && residuals[k - 1]! < s.tol))) break;
      k += 1;
      this.blocks += 1;
      residuals.push(0.5 ** k);
    }
    this.blocks += c.postDepth;
    return { out, solve: { solver: s.kind, iterations: k, residuals, converged: null } };
  }
  sampleTrainingPlan(): never {
    throw new Error('not a training test');
  }
  noGradState(): never {
    throw new Error('not a training test');
  }
  blockEvaluations(iterations?: number): number {
    const c = this.config;
    return c.kind === 'dit' ? c.depth : c.preDepth + iterations! + c.postDepth;
  }
  dispose(): void {}
}

/**
 * The smallest sampler with the samplers' signature: walks the process's timesteps from the noisiest
 * and calls the denoiser once per step, keeping x (the arithmetic of DDPM is tested elsewhere; the real
 * samplers' step count is checked in the last test).
 */
async function walkSampler<S>(
  denoiser: Denoiser<S>,
  xT: tf.Tensor4D,
  process: GaussianDiffusion,
  o: SampleOptions<S>,
): Promise<SampleResult<S>> {
  let state = o.initialState;
  const steps = process.numTimesteps;
  const t = tf.zeros([xT.shape[0]]) as tf.Tensor1D;
  for (let i = 0; i < steps; i++) {
    const r = await denoiser(xT, t, o.y, { step: i, steps, state });
    r.out.dispose();
    state = r.state;
  }
  t.dispose();
  return { x0: tf.clone(xT), state, steps, ms: 0 };
}

async function spend(
  model: CountingModel,
  plan: SamplingPlan,
  sampler: 'ddpm' | 'ddim' | typeof walkSampler = walkSampler,
) {
  model.blocks = 0;
  model.calls = 0;
  const r = await sampleAtBudget({ model, diffusion: DIFFUSION, plan, n: 1, seed: 0, sampler, labels: 'cycle' });
  return { account: r.account, counted: model.blocks, calls: model.calls };
}

/** The FPDM pre/post blocks tried at a depth (depth 2 leaves room for none). */
const prePost = (depth: number): [number, number][] => (depth >= 3 ? [[1, 1]] : [[0, 0]]);

test('for depths 2…28, budgets 2…40 and every split: the counted block evaluations equal the plan and the budget', async () => {
  await useBackend('cpu');
  let cases = 0;
  for (let depth = 2; depth <= 28; depth++) {
    const dit = new CountingModel(config('dit', depth, 0, 0));
    const fpdms = prePost(depth).map(([pre, post]) => new CountingModel(config('fpdm', depth, pre, post)));
    for (let K = 2; K <= 40; K++) {
      const B = budgetBlockEvals(depth, K);
      const d = await spend(dit, planModelSampling(dit.config, { budget: K, diffusionSteps: 1000 }));
      assert.equal(d.counted, B, `DiT depth ${depth} K ${K}`);
      assert.equal(d.account.blockEvaluations, B);
      assert.equal(d.calls, K);
      cases++;
      for (const m of fpdms) {
        const allocations: Allocation[] =
          depth === 4 || depth === 28 ? ['fixed', 'increasing', 'decreasing'] : ['fixed'];
        for (const split of exactSplits(stepCost(m.config), K, 1000)) {
          for (const allocation of allocations) {
            const plan = planModelSampling(m.config, {
              budget: K,
              steps: split.steps,
              allocation,
              diffusionSteps: 1000,
            });
            assert.equal(plan.blockEvals, B);
            const r = await spend(m, plan);
            const at = `FPDM depth ${depth} K ${K} ${split.steps}×${split.iters} ${allocation}`;
            assert.equal(r.counted, B, at);
            assert.equal(r.account.blockEvaluations, B, at);
            assert.equal(r.calls, split.steps, at);
            assert.deepEqual(r.account.itersPerStep, plan.itersPerStep, at);
            cases++;
          }
        }
      }
    }
  }
  assert.ok(cases > 10000, `${cases} cases`);
});

test('the tolerance allocation spends at most the budget and records what it actually ran', async () => {
  await useBackend('cpu');
  for (const depth of [4, 12, 28]) {
    const m = new CountingModel(config('fpdm', depth, 1, 1));
    for (const K of [2, 5, 20]) {
      for (const split of exactSplits(stepCost(m.config), K, 1000)) {
        for (const tolerance of [Number.MIN_VALUE, 0.01]) {
          const plan = planModelSampling(m.config, {
            budget: K,
            steps: split.steps,
            allocation: 'tolerance',
            tolerance,
            diffusionSteps: 1000,
          });
          const r = await spend(m, plan);
          assert.ok(r.counted <= budgetBlockEvals(depth, K));
          assert.equal(r.account.blockEvaluations, r.counted);
          // an unreachable tolerance spends the whole budget; 0.01 stops after 7 iterations (0.5^7 < 0.01)
          if (tolerance === Number.MIN_VALUE) assert.equal(r.counted, budgetBlockEvals(depth, K));
          else if (split.iters >= 7) assert.equal(r.counted, split.steps * (2 + 7), `${depth} ${K} ${split.steps}`);
        }
      }
    }
  }
});

test('the real DDPM and DDIM samplers execute the plan: one denoiser call per planned step', async () => {
  await useBackend('cpu');
  for (const depth of [4, 28]) {
    const m = new CountingModel(config('fpdm', depth, 1, 1));
    const dit = new CountingModel(config('dit', depth, 0, 0));
    for (const K of [2, 5, 20]) {
      for (const sampler of ['ddpm', 'ddim'] as const) {
        const d = await spend(dit, planModelSampling(dit.config, { budget: K, diffusionSteps: 1000 }), sampler);
        assert.equal(d.counted, depth * K);
        for (const split of exactSplits(stepCost(m.config), K, 1000).filter((s) => s.steps <= 60)) {
          const plan = planModelSampling(m.config, {
            budget: K,
            steps: split.steps,
            allocation: 'increasing',
            diffusionSteps: 1000,
          });
          const r = await spend(m, plan, sampler);
          assert.equal(r.calls, split.steps);
          assert.equal(r.counted, depth * K);
          assert.equal(r.account.blockEvaluations, depth * K);
        }
      }
    }
  }
});

test('a spec and the sample command agree on every case: the same plan, or the same refusal', () => {
  for (let depth = 2; depth <= 28; depth++) {
    for (const [pre, post] of prePost(depth)) {
      for (const kind of ['dit', 'fpdm'] as const) {
        const c = config(kind, depth, pre, post);
        const cost = stepCost(c);
        for (let K = 2; K <= 40; K++) {
          const B = budgetBlockEvals(depth, K);
          const stepChoices =
            kind === 'dit' ? [undefined] : Array.from({ length: Math.min(B, 64) - 1 }, (_, i) => i + 2);
          for (const steps of stepChoices) {
            // a spec lists the split; a split that leaves no iteration does not apply at this budget
            if (steps !== undefined && steps * (pre + 1 + post) > B) continue;
            const spec = specSamplingPlans(cost, {
              budgets: [K],
              splits: steps === undefined ? 'auto' : [steps],
              allocations: ['fixed'],
              diffusionSteps: 1000,
            });
            let cli: SamplingPlan | UserError;
            try {
              cli = samplePlan(c, DIFFUSION, { budget: K, steps });
            } catch (e) {
              if (!(e instanceof UserError)) throw e;
              cli = e;
            }
            const at = `${kind} depth ${depth} K ${K} steps ${steps}`;
            if (cli instanceof UserError) {
              assert.equal(spec.plans.length, 0, at);
              assert.equal(spec.issues.length, 1, at);
              assert.equal(spec.issues[0]!.message, cli.message, at);
            } else {
              assert.equal(spec.issues.length, 0, at);
              // auto (no steps) offers every exact split with >= K steps; the command's default is the K-step one
              assert.deepEqual(
                steps === undefined && kind === 'fpdm' ? spec.plans[0] : spec.plans.find((p) => p.steps === cli.steps),
                cli,
                at,
              );
              if (kind === 'fpdm' && steps !== undefined) assert.equal(steps * (pre + cli.iters! + post), B, at);
            }
          }
        }
      }
    }
  }
});
