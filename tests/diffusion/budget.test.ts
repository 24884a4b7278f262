import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  allocateIterations,
  exactSplits,
  planSampling,
  planSplits,
  ToleranceAllocator,
  type AllocationSchedule,
} from '../../src/diffusion/budget.js';
import { UserError } from '../../src/util/errors.js';

const XL = { family: 'fpdm' as const, depth: 28, pre: 1, post: 1 };

test('planner: pre=post=1, depth 28, K=20 lists exactly the paper splits', () => {
  const got = planSplits(XL, 20, 1000).map((s) => [s.steps, s.iters]);
  assert.deepEqual(got, [
    [20, 26],
    [28, 18],
    [35, 14],
    [40, 12],
    [56, 8],
    [70, 6],
    [80, 5],
    [112, 3],
    [140, 2],
  ]);
});

test('planner: every split spends the budget exactly, and none is missing (brute force)', () => {
  for (const [depth, pre, post, K] of [
    [28, 1, 1, 20],
    [12, 2, 1, 7],
    [6, 1, 1, 10],
    [4, 0, 0, 3],
  ] as const) {
    const cost = { family: 'fpdm' as const, depth, pre, post };
    const got = exactSplits(cost, K, 1000);
    const want: string[] = [];
    for (let s = 2; s <= depth * K; s++)
      for (let it = 1; it <= depth * K; it++) if (s * (pre + it + post) === depth * K) want.push(`${s}x${it}`);
    assert.deepEqual(
      got.map((s) => `${s.steps}x${s.iters}`),
      want,
    );
    assert.deepEqual(
      planSplits(cost, K, 1000).map((s) => `${s.steps}x${s.iters}`),
      want.filter((w) => Number(w.split('x')[0]) >= K),
    );
    for (const s of got) assert.equal(s.steps * (pre + s.iters + post), s.blockEvals);
  }
});

test('planSampling: explicit choices, and inexact ones are refused naming the nearest exact splits', () => {
  const req = { budget: 20, diffusionSteps: 1000 };
  const split = (p: { steps: number; iters: number | null; blockEvals: number }) => ({
    steps: p.steps,
    iters: p.iters,
    blockEvals: p.blockEvals,
  });
  assert.deepEqual(split(planSampling(XL, { ...req, steps: 40 })), { steps: 40, iters: 12, blockEvals: 560 });
  assert.deepEqual(split(planSampling(XL, { ...req, iters: 26 })), { steps: 20, iters: 26, blockEvals: 560 });
  assert.deepEqual(split(planSampling(XL, req)), { steps: 20, iters: 26, blockEvals: 560 });
  // fewer steps than K with more iterations is a valid split of the budget (5 × (1 + 110 + 1) = 560)
  assert.deepEqual(split(planSampling(XL, { ...req, steps: 5 })), { steps: 5, iters: 110, blockEvals: 560 });
  // the case: 30 steps would spend 30 × 18 = 540 of 560
  assert.throws(
    () => planSampling(XL, { ...req, steps: 30 }),
    (e: Error) =>
      e instanceof UserError &&
      /28 steps × 18/.test(e.message) &&
      /35 steps × 14/.test(e.message) &&
      /540/.test(e.message),
  );
  assert.throws(
    () => planSampling(XL, { ...req, iters: 10 }),
    (e: Error) => e instanceof UserError && /nearest/.test(e.message),
  );
  assert.throws(() => planSampling(XL, { ...req, steps: 40, iters: 13 }), UserError);
  assert.throws(() => planSampling(XL, { ...req, steps: 1 }), /at least 2 steps/);
  assert.throws(() => planSampling(XL, { budget: 20, steps: 40, diffusionSteps: 30 }), /exceed the 30 diffusion steps/);
  assert.throws(() => planSampling({ ...XL, pre: 14, post: 14 }, req), UserError);
  assert.throws(() => planSampling(XL, { ...req, budget: 2.5 }), UserError);
  // DiT: K steps, nothing else
  const dit = { family: 'dit' as const, depth: 28, pre: 0, post: 0 };
  assert.deepEqual(split(planSampling(dit, req)), { steps: 20, iters: null, blockEvals: 560 });
  assert.throws(() => planSampling(dit, { ...req, steps: 21 }), /exactly 20 steps/);
  assert.throws(() => planSampling(dit, { ...req, budget: 1 }), /at least 2 steps/);
  // without a budget: explicit steps × iters at their true cost, no budget label
  const free = planSampling(XL, { budget: null, steps: 7, iters: 3, diffusionSteps: 1000 });
  assert.equal(free.budget, null);
  assert.equal(free.blockEvals, 7 * 5);
  // allocations: every fixed schedule spends steps·iters iterations; tolerance gets its defaults
  for (const allocation of ['fixed', 'increasing', 'decreasing'] as const) {
    const p = planSampling(XL, { ...req, steps: 40, allocation });
    assert.equal(
      p.itersPerStep!.reduce((a, b) => a + b, 0),
      40 * 12,
    );
    assert.equal(p.blockEvals, 560);
  }
  const tol = planSampling(XL, { ...req, steps: 40, allocation: 'tolerance' });
  assert.equal(tol.tolerance, 1e-3);
  assert.equal(tol.maxItersPerStep, 36);
  assert.throws(() => planSampling(XL, { ...req, tolerance: 1e-2 }), /apply to the 'tolerance' allocation/);
});

// The reference rule written independently, in plain floating point with a tiny guard for exact
// integers: n_i = 1 + (B − S)·r_i/Σr, ceil below the split point h, floor from h on, h = S//2
// lowered until Σn <= B; the list is consumed from its end.
function expected(B: number, S: number, kind: AllocationSchedule): number[] {
  const r = Array.from({ length: S }, (_, i) => (kind === 'fixed' || S === 1 ? 1 : 0.5 + i / (S - 1)));
  if (kind === 'decreasing') r.reverse();
  const sum = r.reduce((a, b) => a + b, 0);
  const n = r.map((ri) => 1 + ((B - S) * ri) / sum);
  const up = (v: number) => (Math.abs(v - Math.round(v)) < 1e-9 ? Math.round(v) : Math.ceil(v));
  const down = (v: number) => (Math.abs(v - Math.round(v)) < 1e-9 ? Math.round(v) : Math.floor(v));
  for (let h = Math.floor(S / 2); h >= 0; h--) {
    const list = n.map((v, i) => (i < h ? up(v) : down(v)));
    if (list.reduce((a, b) => a + b, 0) <= B) {
      const consumed: number[] = [];
      let pointer = list.length - 1;
      while (pointer >= 0) consumed.push(list[pointer--]!);
      return consumed;
    }
  }
  throw new Error('unreachable');
}

test('LinearController allocation matches the rounding rule and stays within the budget', () => {
  for (const kind of ['fixed', 'increasing', 'decreasing'] as const) {
    for (const [S, iters] of [
      [20, 26],
      [28, 18],
      [35, 14],
      [40, 12],
      [56, 8],
      [70, 6],
      [80, 5],
      [112, 3],
      [140, 2],
      [1, 7],
      [2, 3],
      [3, 1],
      [7, 4],
    ]) {
      const B = S * iters;
      const got = allocateIterations(B, S, kind);
      assert.equal(got.length, S);
      assert.deepEqual(got, expected(B, S, kind), `${kind} S=${S} B=${B}`);
      const total = got.reduce((a, b) => a + b, 0);
      assert.ok(total <= B, `${kind} S=${S}: ${total} > ${B}`);
      assert.ok(got.every((n) => n >= 1));
      if (kind === 'fixed') assert.ok(got.every((n) => n === iters));
    }
  }
  // 'increasing' gives the first (noisiest) sampling step the most iterations (consumed from the end)
  const inc = allocateIterations(40 * 12, 40, 'increasing');
  assert.ok(inc[0]! > inc[39]!, `${inc}`);
  const dec = allocateIterations(40 * 12, 40, 'decreasing');
  assert.ok(dec[0]! < dec[39]!);
  assert.throws(() => allocateIterations(5, 10, 'fixed'), UserError);
});

test('tolerance allocation: stops at tol, caps per step, never exceeds the budget', () => {
  const alloc = new ToleranceAllocator({ budget: 30, steps: 5, tol: 1e-3, maxPerStep: 12 });
  const used: number[] = [];
  // a solver whose residual halves per iteration from 1: reaches < 1e-3 after 10 iterations
  for (let s = 0; s < 5; s++) used.push(alloc.runStep(s, (k) => 0.5 ** k).iters);
  // caps = min(12, 30 − spent − (later steps)·1): 12, 12, 8, 1, 1 → converged, converged, capped, capped, capped
  assert.deepEqual(used, [10, 10, 8, 1, 1]);
  assert.equal(alloc.spent, 30);
  const loose = new ToleranceAllocator({ budget: 100, steps: 3, tol: 0.1, maxPerStep: 50 });
  assert.deepEqual(
    [0, 1, 2].map((s) => loose.runStep(s, (k) => 0.5 ** k)),
    [0, 1, 2].map(() => ({ iters: 4, residuals: [0.5, 0.25, 0.125, 0.0625], converged: true })),
  );
  assert.throws(() => new ToleranceAllocator({ budget: 4, steps: 5, tol: 1e-3, maxPerStep: 3 }), UserError);
});
