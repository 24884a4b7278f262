// Model configs → the budget arithmetic of diffusion/budget.ts (which never names a model).
//
// A budget of K DiT steps is K·depth block evaluations, `depth` being the depth of the DiT the model
// is compared with (28 for XL). A DiT spends it as K steps; an FPDM step costs pre + iters + post
// block evaluations (paper: 20 XL steps = 560 = 20 × (1 + 26 + 1) = 40 × (1 + 12 + 1)).
import {
  budgetBlockEvals,
  planSampling,
  planSplits,
  type Allocation,
  type SamplingPlan,
  type SamplingRequest,
  type StepCost,
} from '../diffusion/budget.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from '../models/config.js';

/** The per-step cost of a model: DiT depth; FPDM its pre/post blocks and the compared depth. */
export function stepCost(c: ModelConfig): StepCost {
  return c.kind === 'fpdm'
    ? { family: 'fpdm', depth: c.depth, pre: c.preDepth, post: c.postDepth }
    : { family: 'dit', depth: c.depth, pre: 0, post: 0 };
}

/** planSampling for a model config. */
export function planModelSampling(c: ModelConfig, req: SamplingRequest): SamplingPlan {
  return planSampling(stepCost(c), req);
}

/** A spec's sampling choices for one model (validated by the schema). */
export interface SamplingChoices {
  budgets: number[];
  /** FPDM steps at each budget, or 'auto' (planSplits: every exact split with at least K steps) */
  splits: 'auto' | number[];
  allocations: Allocation[];
  tolerance?: number;
  maxItersPerStep?: number;
  diffusionSteps: number;
}

export interface SpecPlans {
  plans: SamplingPlan[];
  /** problems, with the spec path they concern (empty when every plan could be made) */
  issues: { path: (string | number)[]; message: string }[];
}

/**
 * Every plan a spec asks of one model: DiT one per budget; FPDM budgets × splits × allocations. A
 * listed split that leaves no fixed-point iteration at a budget (steps·(pre + 1 + post) > depth·K)
 * does not apply at that budget and is skipped there (a split that applies at no budget is an issue);
 * a split that applies but cannot spend the budget exactly is an issue naming the nearest exact splits,
 * exactly as `fpdm-exp sample --budget K --steps S` refuses it.
 */
export function specSamplingPlans(cost: StepCost, ch: SamplingChoices): SpecPlans {
  const plans: SamplingPlan[] = [];
  const issues: SpecPlans['issues'] = [];
  const attempt = (path: (string | number)[], req: SamplingRequest): void => {
    try {
      plans.push(planSampling(cost, req));
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      if (!issues.some((i) => i.message === e.message)) issues.push({ path, message: e.message });
    }
  };
  const common = { diffusionSteps: ch.diffusionSteps };
  ch.budgets.forEach((budget, bi) => {
    if (cost.family === 'dit') return attempt(['sampling', 'budgets', bi], { ...common, budget });
    const fpdmReq = (allocation: Allocation) => ({
      ...common,
      budget,
      allocation,
      ...(allocation === 'tolerance' ? { tolerance: ch.tolerance, maxItersPerStep: ch.maxItersPerStep } : {}),
    });
    if (ch.splits === 'auto') {
      let splits: number[] = [];
      try {
        splits = planSplits(cost, budget, ch.diffusionSteps).map((s) => s.steps);
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        issues.push({ path: ['sampling', 'budgets', bi], message: e.message });
      }
      for (const steps of splits)
        for (const a of ch.allocations) attempt(['sampling', 'budgets', bi], { ...fpdmReq(a), steps });
      return;
    }
    ch.splits.forEach((steps, si) => {
      if (steps * (cost.pre + 1 + cost.post) > budgetBlockEvals(cost.depth, budget)) return; // no iteration left: not at this budget
      for (const a of ch.allocations) attempt(['sampling', 'splits', si], { ...fpdmReq(a), steps });
    });
  });
  if (cost.family === 'fpdm' && ch.splits !== 'auto') {
    ch.splits.forEach((steps, si) => {
      if (!ch.budgets.some((b) => steps * (cost.pre + 1 + cost.post) <= budgetBlockEvals(cost.depth, b))) {
        issues.push({
          path: ['sampling', 'splits', si],
          message: `received ${steps} steps: no budget in [${ch.budgets.join(', ')}] leaves at least one fixed-point iteration per step (each step costs ${cost.pre} pre + ${cost.post} post blocks + iterations of ${cost.depth}·budget block evaluations); fix: fewer steps or larger budgets`,
        });
      }
    });
  }
  return { plans, issues };
}
