// Compute budgets for sampling at matched compute (FPDM paper §4; ANCHORS.md "Sampling").
//
// Units. A budget of K "DiT-step equivalents" is depth·K transformer-block evaluations of the
// baseline (28·K for DiT-XL). An FPDM sampling step costs pre + iters + post block evaluations
// (pre/post blocks plus one fixed-point block per iteration); the fc1/fc2 projection that every
// iteration also runs is NOT a block evaluation (about 0.48 of a block in FLOPs at 256 tokens: count
// FLOPs separately). A DiT step costs depth block evaluations, so a DiT spends K steps.
//
//   planSplits        every (steps, iters) that spends exactly depth·K with steps >= K, iters >= 1
//   chooseSplit       checks an explicit --steps / --iters against the budget (UserError with the
//                     nearest feasible choices when it does not fit)
//   allocateIterations  the reference LinearController: a total of B = steps·iters fixed-point
//                     iterations spread over the steps as fixed / increasing / decreasing
//   ToleranceAllocator  iterate each step to a residual tolerance with a per-step cap, never letting
//                     the total exceed the budget (the runner supplies the solver)
//   ComputeMeter      what was actually spent, per step
import { UserError } from '../util/errors.js';

export interface BudgetSpec {
  /** depth of the baseline DiT (28 for XL) */
  baselineDepth: number;
  /** FPDM pre and post blocks */
  pre: number;
  post: number;
  /** budget in DiT-step equivalents */
  K: number;
}

export interface Split {
  steps: number;
  /** fixed-point iterations per step */
  iters: number;
  /** block evaluations this split spends: steps·(pre + iters + post) */
  blockEvals: number;
}

function checkInt(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new UserError(`${what}: got ${v}, expected an integer >= ${min}`);
}

function checkSpec(s: BudgetSpec): void {
  checkInt('baseline depth', s.baselineDepth, 1);
  checkInt('pre blocks', s.pre, 0);
  checkInt('post blocks', s.post, 0);
  checkInt('budget (DiT-step equivalents)', s.K, 1);
  if (s.pre + s.post + 1 > s.baselineDepth) {
    throw new UserError(`budget: an FPDM step with ${s.pre} pre + ${s.post} post blocks and one iteration costs ${s.pre + s.post + 1} block evaluations, more than a DiT step (${s.baselineDepth}); no split spends the budget with at least ${s.K} steps — use fewer pre/post blocks`);
  }
}

/** Block evaluations of a budget: depth · K. */
export function budgetBlockEvals(baselineDepth: number, K: number): number {
  return baselineDepth * K;
}

/** Block evaluations of one FPDM step. */
export function fpdmStepBlockEvals(pre: number, post: number, iters: number): number {
  return pre + iters + post;
}

/** All (steps, iters) with steps·(pre + iters + post) = depth·K, steps >= K, iters >= 1; by steps ascending. */
export function planSplits(spec: BudgetSpec): Split[] {
  checkSpec(spec);
  const B = budgetBlockEvals(spec.baselineDepth, spec.K);
  const out: Split[] = [];
  for (let steps = spec.K; steps <= B; steps++) {
    if (B % steps !== 0) continue;
    const iters = B / steps - spec.pre - spec.post;
    if (iters >= 1) out.push({ steps, iters, blockEvals: B });
  }
  return out;
}

const describe = (s: Split): string => `${s.steps} steps × ${s.iters} iterations`;

/**
 * The split for an explicit choice of steps and/or iterations (neither: the K-step split, the
 * reference's default of as many iterations as fit). A choice that does not spend the budget exactly
 * is a UserError naming the nearest feasible ones.
 */
export function chooseSplit(spec: BudgetSpec & { steps?: number; iters?: number }): Split {
  const all = planSplits(spec);
  const { steps, iters } = spec;
  if (steps !== undefined) checkInt('steps', steps, 1);
  if (iters !== undefined) checkInt('iterations', iters, 1);
  const match = all.find((s) => (steps === undefined || s.steps === steps) && (iters === undefined || s.iters === iters));
  if (match) return match;
  const key = (s: Split) => (steps !== undefined ? Math.abs(s.steps - steps) : Math.abs(s.iters - (iters ?? 0)));
  const nearest = [...all].sort((a, b) => key(a) - key(b) || a.steps - b.steps).slice(0, 2);
  const asked = [steps !== undefined ? `${steps} steps` : '', iters !== undefined ? `${iters} iterations` : ''].filter(Boolean).join(' × ');
  throw new UserError(
    `budget ${spec.K} (${budgetBlockEvals(spec.baselineDepth, spec.K)} block evaluations at depth ${spec.baselineDepth}, ${spec.pre} pre + ${spec.post} post blocks) cannot be spent exactly with ${asked}; ` +
      `nearest: ${nearest.map(describe).join(' or ')} (all: ${all.map((s) => `${s.steps}×${s.iters}`).join(', ')})`,
  );
}

export type AllocationSchedule = 'fixed' | 'increasing' | 'decreasing';
export const ALLOCATION_SCHEDULES: readonly AllocationSchedule[] = ['fixed', 'increasing', 'decreasing'];

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
    if (step !== this.perStep.length) throw new Error(`ToleranceAllocator: asked for step ${step}, expected step ${this.perStep.length}`);
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

/** Block evaluations actually spent, per sampling step (a step may be recorded in several parts). */
export class ComputeMeter {
  readonly blockEvalsPerStep: number[] = [];

  record(step: number, blockEvals: number): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`ComputeMeter: bad step ${step}`);
    while (this.blockEvalsPerStep.length <= step) this.blockEvalsPerStep.push(0);
    this.blockEvalsPerStep[step]! += blockEvals;
  }

  get total(): number {
    return this.blockEvalsPerStep.reduce((s, v) => s + v, 0);
  }

  /** The spend in DiT-step equivalents of a baseline of this depth. */
  ditStepEquivalents(baselineDepth: number): number {
    return this.total / baselineDepth;
  }
}
