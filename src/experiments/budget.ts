// Compute budgets in DiT-step equivalents, as the planner and the spec rules use them.
//
// A budget of K DiT steps is K·depth block evaluations, `depth` being the depth of the DiT the model
// is compared with (28 for XL). A DiT spends it as K steps. An FPDM step costs pre + iters + post
// block evaluations, so S steps get iters = ⌊K·depth / S⌋ − pre − post iterations each
// (paper: 20 XL steps = 560 = 20 × (1 + 26 + 1) = 40 × (1 + 12 + 1)). Explicit step counts that do not
// divide the budget leave the remainder unspent; `auto` takes only the exact splits.
import { planSplits } from '../diffusion/budget.js';

/** Iterations per step of an FPDM at `steps` steps within the budget, or null when fewer than 1. */
export function fpdmSplit(budget: number, depth: number, pre: number, post: number, steps: number): { steps: number; iters: number } | null {
  const iters = Math.floor((budget * depth) / steps) - pre - post;
  return iters >= 1 ? { steps, iters } : null;
}

/** Iterations a single FPDM step could take within the budget (< 1: the budget is impossible). */
export function maxFpdmIters(budget: number, depth: number, pre: number, post: number): number {
  return budget * depth - pre - post;
}

/**
 * The splits `splits: auto` plans at one budget: every (steps, iters) of the diffusion budget planner
 * (`planSplits`: steps·(pre + iters + post) = K·depth exactly, steps >= K, iters >= 1), at most
 * `maxSteps` diffusion steps.
 */
export function autoSplits(budget: number, depth: number, pre: number, post: number, maxSteps: number): { steps: number; iters: number }[] {
  if (pre + post + 1 > depth) return [];
  return planSplits({ baselineDepth: depth, pre, post, K: budget })
    .filter((s) => s.steps <= maxSteps)
    .map(({ steps, iters }) => ({ steps, iters }));
}

/** Block evaluations of one image's sampling pass: DiT steps·depth; FPDM Σ over steps of pre + iters + post. */
export function blockEvalsPerImage(family: 'dit' | 'fpdm', steps: number, itersPerStep: number, depth: number, pre: number, post: number): number {
  return family === 'dit' ? steps * depth : steps * (pre + itersPerStep + post);
}
