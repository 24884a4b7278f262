// Compute budgets in DiT-step equivalents, as the planner and the spec rules use them.
//
// A budget of K DiT steps is K·depth block evaluations, `depth` being the depth of the DiT the model
// is compared with (28 for XL). A DiT spends it as K steps. An FPDM step costs pre + iters + post
// block evaluations, so S steps get iters = ⌊K·depth / S⌋ − pre − post iterations each
// (paper: 20 XL steps = 560 = 20 × (1 + 26 + 1) = 40 × (1 + 12 + 1)).

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
 * The splits `splits: auto` plans at one budget: S ∈ {K/4, K/2, K, 2K, 4K, 8K, …} (rounded up,
 * distinct, at most `maxSteps` diffusion steps), every one that leaves at least one iteration per step.
 * This spans the paper's timestep-smoothing axis (fewer steps with many iterations ↔ many steps
 * with few) without enumerating every divisor of the budget.
 */
export function autoSplits(budget: number, depth: number, pre: number, post: number, maxSteps: number): { steps: number; iters: number }[] {
  const out: { steps: number; iters: number }[] = [];
  const seen = new Set<number>();
  for (let f = 0.25; ; f *= 2) {
    const steps = Math.ceil(budget * f);
    if (steps > maxSteps) break;
    const s = fpdmSplit(budget, depth, pre, post, steps);
    if (s === null) break;
    if (!seen.has(steps)) out.push(s);
    seen.add(steps);
  }
  return out;
}

/** Block evaluations of one image's sampling pass: DiT steps·depth; FPDM Σ over steps of pre + iters + post. */
export function blockEvalsPerImage(family: 'dit' | 'fpdm', steps: number, itersPerStep: number, depth: number, pre: number, post: number): number {
  return family === 'dit' ? steps * depth : steps * (pre + itersPerStep + post);
}
