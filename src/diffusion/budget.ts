// Compute budgets for sampling at matched compute (FPDM paper §4; ANCHORS.md "Sampling").
//
// Units. A budget of K "DiT-step equivalents" is depth·K transformer-block evaluations of the
// baseline (28·K for DiT-XL). An FPDM sampling step costs pre + iters + post block evaluations
// (pre/post blocks plus one fixed-point block per iteration); the fc1/fc2 projection that every
// iteration also runs is NOT a block evaluation (about 0.48 of a block in FLOPs at 256 tokens: count
// FLOPs separately). A DiT step costs depth block evaluations, so a DiT spends K steps.
//
//   planSampling      THE sampling plan of a model at a budget: (budget, steps, iters, allocation) →
//                     steps, per-step iterations and the block evaluations it spends. The spec planner,
//                     `fpdm-exp sample` and `plan`/`run --dry-run` all get their plans here, and the
//                     sampler executes the plan it is given.
//   exactSplits       every (steps, iters) with steps·(pre + iters + post) = depth·K exactly
//   planSplits        the splits `splits: auto` offers: the exact ones with steps >= K
//   allocateIterations  the reference LinearController: a total of B = steps·iters fixed-point
//                     iterations spread over the steps as fixed / increasing / decreasing
//   ToleranceAllocator  iterate each step to a residual tolerance with a per-step cap, never letting
//                     the total exceed the budget (the runner supplies the solver)
//
// The rule for a split that cannot spend the budget exactly (the same from a spec and from the command
// line): it is REFUSED, with a message naming the nearest exact splits. A plan with a budget therefore
// always spends depth·K block evaluations per image, except the 'tolerance' allocation, whose budget is
// a cap (it stops iterating where the residual is small) and which records what it actually spent. A
// plan without a budget (explicit steps × iterations) carries no budget label, only its true cost.
import { UserError } from '../util/errors.js';

/** Allocation of a pass's fixed-point iterations over its steps (FPDM); the one list of these names. */
export const ALLOCATIONS = ['fixed', 'increasing', 'decreasing', 'tolerance'] as const;
export type Allocation = (typeof ALLOCATIONS)[number];
/** The allocations with a schedule fixed before sampling (the reference LinearController's). */
export type AllocationSchedule = Exclude<Allocation, 'tolerance'>;

/** A sampling pass needs at least two timesteps (the reference's respacing divides by steps − 1). */
export const MIN_SAMPLING_STEPS = 2;
/** Defaults of the 'tolerance' allocation: residual threshold, and the per-step cap as a multiple of the split's iterations. */
export const DEFAULT_TOLERANCE = 1e-3;
export const DEFAULT_MAX_ITERS_FACTOR = 3;

/** What one sampling step of a model costs, in block evaluations: DiT `depth`; FPDM pre + iterations + post. */
export interface StepCost {
  family: 'dit' | 'fpdm';
  /** depth of the DiT (for FPDM: of the DiT it is compared with; the budget unit is depth block evaluations) */
  depth: number;
  /** FPDM pre and post blocks (0 for DiT) */
  pre: number;
  post: number;
}

export interface Split {
  steps: number;
  /** fixed-point iterations per step */
  iters: number;
  /** block evaluations this split spends: steps·(pre + iters + post) */
  blockEvals: number;
}

/** What a user asks for: a budget and optionally the split and the allocation. */
export interface SamplingRequest {
  /** budget K in DiT-step equivalents (depth·K block evaluations per image); null = explicit steps (and iters) */
  budget: number | null;
  /** sampling steps (DiT: K; FPDM: picks the split of the budget with this many steps) */
  steps?: number;
  /** FPDM: iterations per step (picks the split with this many) */
  iters?: number;
  /** FPDM: spread of the split's steps·iters iterations over the steps (default 'fixed') */
  allocation?: Allocation;
  /** FPDM 'tolerance': residual threshold (default 1e-3) and per-step cap (default 3·iters) */
  tolerance?: number;
  maxItersPerStep?: number;
  /** T of the training process: a pass takes at most this many steps */
  diffusionSteps: number;
}

/** A sampling pass, fully determined: the sampler executes exactly this. */
export interface SamplingPlan {
  family: 'dit' | 'fpdm';
  /** the budget it spends (DiT-step equivalents), or null for an explicit steps × iterations pass */
  budget: number | null;
  steps: number;
  /** FPDM: iterations per step of the split (the mean of a non-fixed allocation); null for DiT */
  iters: number | null;
  allocation: Allocation | null;
  /** FPDM fixed/increasing/decreasing: iterations at each step, in sampling order (first = noisiest); else null */
  itersPerStep: number[] | null;
  /** FPDM 'tolerance': residual threshold and per-step cap; else null */
  tolerance: number | null;
  maxItersPerStep: number | null;
  /** block evaluations of one image's pass ('tolerance': the most it may spend) */
  blockEvals: number;
  /** the step cost the plan was made for (the sampler checks the model against it) */
  cost: StepCost;
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new UserError(`${what}: got ${v}, expected an integer >= ${min}`);
}

function checkCost(c: StepCost): void {
  checkInt('model depth', c.depth, 1);
  checkInt('pre blocks', c.pre, 0);
  checkInt('post blocks', c.post, 0);
  if (c.family === 'fpdm' && c.pre + c.post + 1 > c.depth) {
    throw new UserError(
      `budget: an FPDM step with ${c.pre} pre + ${c.post} post blocks and one iteration costs ${c.pre + c.post + 1} block evaluations, more than a DiT step (${c.depth}); use fewer pre/post blocks`,
    );
  }
}

/** Block evaluations of a budget: depth · K. */
export function budgetBlockEvals(depth: number, K: number): number {
  return depth * K;
}

/** Block evaluations of one FPDM step. */
export function fpdmStepBlockEvals(pre: number, post: number, iters: number): number {
  return pre + iters + post;
}

/**
 * Every (steps, iters) with steps·(pre + iters + post) = depth·K exactly, iters >= 1 and
 * MIN_SAMPLING_STEPS <= steps <= maxSteps; by steps ascending.
 */
export function exactSplits(cost: StepCost, K: number, maxSteps: number): Split[] {
  checkCost(cost);
  checkInt('budget (DiT-step equivalents)', K, 1);
  const B = budgetBlockEvals(cost.depth, K);
  const out: Split[] = [];
  for (let steps = MIN_SAMPLING_STEPS; steps <= Math.min(B, maxSteps); steps++) {
    if (B % steps !== 0) continue;
    const iters = B / steps - cost.pre - cost.post;
    if (iters >= 1) out.push({ steps, iters, blockEvals: B });
  }
  return out;
}

/** The splits `splits: auto` offers at budget K: the exact ones with at least K steps (as many as the DiT or more). */
export function planSplits(cost: StepCost, K: number, maxSteps: number): Split[] {
  return exactSplits(cost, K, maxSteps).filter((s) => s.steps >= K);
}

const describe = (s: Split): string => `${s.steps} steps × ${s.iters} iterations`;

/** The exact split asked for by steps and/or iterations (neither: the K-step split); else a UserError naming the nearest. */
function chooseSplit(
  cost: StepCost,
  K: number,
  steps: number | undefined,
  iters: number | undefined,
  maxSteps: number,
): Split {
  const all = exactSplits(cost, K, maxSteps);
  const match = all.find(
    (s) =>
      (steps === undefined || s.steps === steps) &&
      (iters === undefined || s.iters === iters) &&
      (steps !== undefined || iters !== undefined || s.steps >= K),
  );
  if (match) return match;
  const B = budgetBlockEvals(cost.depth, K);
  const key = (s: Split) => (steps !== undefined ? Math.abs(s.steps - steps) : Math.abs(s.iters - (iters ?? 0)));
  const nearest = [...all].sort((a, b) => key(a) - key(b) || a.steps - b.steps).slice(0, 2);
  const asked = [steps !== undefined ? `${steps} steps` : '', iters !== undefined ? `${iters} iterations` : '']
    .filter(Boolean)
    .join(' × ');
  const spent =
    steps !== undefined && iters === undefined && Math.floor(B / steps) - cost.pre - cost.post >= 1
      ? ` (${steps} steps × ${Math.floor(B / steps) - cost.pre - cost.post} iterations would spend ${steps * Math.floor(B / steps)} of ${B})`
      : '';
  throw new UserError(
    `budget ${K} (${B} block evaluations at depth ${cost.depth}, ${cost.pre} pre + ${cost.post} post blocks) cannot be spent exactly with ${asked}${spent}; ` +
      (all.length
        ? `nearest exact splits: ${nearest.map(describe).join(' or ')} (all: ${all.map((s) => `${s.steps}×${s.iters}`).join(', ')})`
        : `no split of ${MIN_SAMPLING_STEPS}..${maxSteps} steps spends it`),
  );
}

/**
 * The one function from (model cost, budget, split, allocation) to a sampling plan. Every refusal is a
 * UserError saying what to change. See the header for the rule on splits that do not spend the budget.
 */
export function planSampling(cost: StepCost, req: SamplingRequest): SamplingPlan {
  checkCost(cost);
  checkInt('diffusion steps', req.diffusionSteps, MIN_SAMPLING_STEPS);
  const K = req.budget;
  if (K !== null) checkInt('budget (DiT-step equivalents)', K, 1);
  if (req.steps !== undefined) checkInt('steps', req.steps, 1);
  if (req.iters !== undefined) checkInt('iterations per step', req.iters, 1);
  const maxSteps = req.diffusionSteps;
  const stepRange = (steps: number): void => {
    if (steps < MIN_SAMPLING_STEPS)
      throw new UserError(
        `a sampling pass needs at least ${MIN_SAMPLING_STEPS} steps (got ${steps}${cost.family === 'dit' && K !== null ? `: a DiT spends a budget of ${K} in ${K} steps` : ''}); use a larger budget or more steps`,
      );
    if (steps > maxSteps)
      throw new UserError(
        `${steps} sampling steps exceed the ${maxSteps} diffusion steps the model was trained with; use at most ${maxSteps}`,
      );
  };
  const none = { iters: null, allocation: null, itersPerStep: null, tolerance: null, maxItersPerStep: null };
  if (cost.family === 'dit') {
    if (req.iters !== undefined || req.allocation !== undefined)
      throw new UserError('iterations and allocation apply to FPDM; this is a DiT (a budget of K means K steps)');
    if (K !== null && req.steps !== undefined && req.steps !== K)
      throw new UserError(
        `a DiT spends its budget of ${K} DiT-step equivalents in exactly ${K} steps; drop the steps or set them to ${K}`,
      );
    const steps = req.steps ?? K;
    if (steps === null) throw new UserError('give a budget or a number of steps');
    stepRange(steps);
    return { family: 'dit', budget: K, steps, ...none, blockEvals: steps * cost.depth, cost };
  }
  let split: Split;
  if (K !== null) {
    if (req.steps !== undefined) stepRange(req.steps);
    split = chooseSplit(cost, K, req.steps, req.iters, maxSteps);
  } else {
    if (req.steps === undefined || req.iters === undefined)
      throw new UserError('without a budget, FPDM needs both steps and iterations per step');
    stepRange(req.steps);
    split = { steps: req.steps, iters: req.iters, blockEvals: req.steps * (cost.pre + req.iters + cost.post) };
  }
  const allocation = req.allocation ?? 'fixed';
  if (!(ALLOCATIONS as readonly string[]).includes(allocation))
    throw new UserError(`allocation '${allocation}' is not one of ${ALLOCATIONS.join(', ')}`);
  const base = { family: 'fpdm' as const, budget: K, steps: split.steps, iters: split.iters, allocation, cost };
  if (allocation !== 'tolerance') {
    if (req.tolerance !== undefined || req.maxItersPerStep !== undefined)
      throw new UserError(`a tolerance and a per-step cap apply to the 'tolerance' allocation, not '${allocation}'`);
    const itersPerStep = allocateIterations(split.steps * split.iters, split.steps, allocation);
    const blockEvals = itersPerStep.reduce((a, n) => a + fpdmStepBlockEvals(cost.pre, cost.post, n), 0);
    return { ...base, itersPerStep, tolerance: null, maxItersPerStep: null, blockEvals };
  }
  const tolerance = req.tolerance ?? DEFAULT_TOLERANCE;
  if (!(tolerance > 0)) throw new UserError(`tolerance must be > 0, got ${tolerance}`);
  const maxItersPerStep = req.maxItersPerStep ?? DEFAULT_MAX_ITERS_FACTOR * split.iters;
  checkInt('maximum iterations per step', maxItersPerStep, 1);
  return { ...base, itersPerStep: null, tolerance, maxItersPerStep, blockEvals: split.blockEvals };
}

/** floor(p / q) for integers p, q > 0 … exact even where p / q is an integer. */
function floorDiv(p: number, q: number): number {
  let f = Math.floor(p / q);
  while (f * q > p) f--;
  while ((f + 1) * q <= p) f++;
  return f;
}

/**
 * The reference LinearController's allocation of `totalIters` (B = steps × iters) fixed-point
 * iterations over `steps` (S) sampling steps, returned in SAMPLING order (index 0 = the first,
 * noisiest step).
 *
 * 1. Ratios r = linspace(0.5, 1.5, S) ('increasing'), reversed ('decreasing'), or ones ('fixed').
 * 2. n_i = 1 + (B − S)·r_i / Σr.
 * 3. Round up for i < h and down for i >= h, starting at h = ⌊S/2⌋ and moving h earlier until
 *    Σn <= B (terminates: all-down sums to at most B).
 * 4. Reference quirk kept on purpose: its controller hands the list out from the END, so the
 *    first sampling step takes n_{S−1}: 'increasing' gives the noisiest steps the MOST iterations.
 * The reference computes step 2 in float32 (torch.linspace, whose result depends on its vectorised
 * kernel); this uses exact rational arithmetic (r_i = a_i/Σa with integers a_i), so the two differ
 * only where some n_i is mathematically an exact integer and float32 rounding lands on the other side
 * of it. Of the paper's K = 20 splits this happens once: 80 steps × 5 'increasing', where n_79 = 7
 * exactly (we give the first step 7, Σ = 400; a float32 evaluation gives 6.9999995 → 6, Σ = 399).
 */
export function allocateIterations(totalIters: number, steps: number, schedule: AllocationSchedule): number[] {
  checkInt('sampling steps', steps, 1);
  checkInt('iteration budget', totalIters, steps);
  const S = steps;
  // r_i ∝ a_i: increasing a_i = (S−1) + 2i ∈ [S−1, 3(S−1)] ∝ [0.5, 1.5]; for S = 1 every ratio list is [c].
  const a = Array.from({ length: S }, (_, i) => {
    if (schedule === 'fixed' || S === 1) return 1;
    return schedule === 'increasing' ? S - 1 + 2 * i : 3 * (S - 1) - 2 * i;
  });
  const sumA = a.reduce((s, v) => s + v, 0);
  const extra = totalIters - S; // B − S >= 0
  const ceilN = a.map((ai) => 1 + floorDiv(extra * ai + sumA - 1, sumA));
  const floorN = a.map((ai) => 1 + floorDiv(extra * ai, sumA));
  let h = Math.floor(S / 2);
  let list: number[];
  for (;;) {
    list = a.map((_, i) => (i < h ? ceilN[i]! : floorN[i]!));
    if (list.reduce((s, v) => s + v, 0) <= totalIters || h === 0) break;
    h--;
  }
  return list.reverse(); // consumed from the end: sampling order
}

/**
 * Residual-tolerance allocation: each step iterates until the solver's residual falls below `tol`
 * or it reaches the step's cap; the cap keeps at least `minPerStep` iterations for every later step
 * and never lets the total exceed `budget` iterations.
 */
export class ToleranceAllocator {
  readonly budget: number;
  readonly steps: number;
  readonly maxPerStep: number;
  readonly minPerStep: number;
  readonly tol: number;
  readonly perStep: number[] = [];

  constructor(opts: { budget: number; steps: number; tol: number; maxPerStep: number; minPerStep?: number }) {
    checkInt('sampling steps', opts.steps, 1);
    const minPerStep = opts.minPerStep ?? 1;
    checkInt('minimum iterations per step', minPerStep, 1);
    checkInt('maximum iterations per step', opts.maxPerStep, minPerStep);
    checkInt('iteration budget', opts.budget, opts.steps * minPerStep);
    if (!(opts.tol > 0)) throw new UserError(`tolerance must be > 0, got ${opts.tol}`);
    this.budget = opts.budget;
    this.steps = opts.steps;
    this.maxPerStep = opts.maxPerStep;
    this.minPerStep = minPerStep;
    this.tol = opts.tol;
  }

  get spent(): number {
    return this.perStep.reduce((s, v) => s + v, 0);
  }

  /** The most iterations step `step` (sampling order) may use. */
  capFor(step: number): number {
    if (step !== this.perStep.length)
      throw new Error(`ToleranceAllocator: asked for step ${step}, expected step ${this.perStep.length}`);
    const later = this.steps - step - 1;
    return Math.min(this.maxPerStep, this.budget - this.spent - later * this.minPerStep);
  }

  /** Records what step `step` used (must be within its cap). */
  record(step: number, used: number): void {
    const cap = this.capFor(step);
    if (!Number.isInteger(used) || used < this.minPerStep || used > cap) {
      throw new Error(`ToleranceAllocator: step ${step} used ${used} iterations, allowed ${this.minPerStep}..${cap}`);
    }
    this.perStep.push(used);
  }

  /**
   * Runs one step: calls `iterate(k)` for k = 1, 2, … (it performs iteration k and returns the
   * residual ‖z_k − z_{k−1}‖/‖z_{k−1}‖) until residual < tol (after at least minPerStep) or the cap.
   */
  runStep(step: number, iterate: (k: number) => number): { iters: number; residuals: number[]; converged: boolean } {
    const cap = this.capFor(step);
    const residuals: number[] = [];
    let converged = false;
    let k = 0;
    while (k < cap) {
      k++;
      const r = iterate(k);
      residuals.push(r);
      if (k >= this.minPerStep && r < this.tol) {
        converged = true;
        break;
      }
    }
    this.record(step, k);
    return { iters: k, residuals, converged };
  }
}
