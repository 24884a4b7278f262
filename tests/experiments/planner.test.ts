// Planner: deterministic plans and keys, one train run per (model, seed, training settings) shared by
// every sampling setting, budgets turned into steps × iterations, shards that partition the plan.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { parseShard, planRuns, shardPlan, type Plan, type PlannedSample } from '../../src/experiments/planner.js';
import { parseSpec } from '../../src/experiments/spec.js';
import { TINY_SPEC, edit } from './specs.js';

function plan(text: string, fp = 'fp-a', version = '0.1.0'): Plan {
  const spec = parseSpec(text);
  return planRuns({ spec, fingerprints: spec.variants.map(() => fp), toolVersion: version });
}

/** Canonical JSON written independently of the store's helper: sorted keys, no whitespace. */
function canon(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

test('run keys are the SHA-256 of the canonical resolved config, and plans are deterministic', () => {
  const a = plan(TINY_SPEC);
  const b = plan(TINY_SPEC);
  assert.deepEqual(a, b);
  for (const r of a.runs) assert.equal(r.key, createHash('sha256').update(canon(r.config)).digest('hex'));
  assert.equal(new Set(a.runs.map((r) => r.key)).size, a.runs.length);
});

test('keys ignore YAML key order and comments but change with seed, data fingerprint and tool version', () => {
  const base = plan(TINY_SPEC).runs.map((r) => r.key);
  const reordered = edit(
    TINY_SPEC,
    '  steps: 4\n  batchSize: 4\n  lr: 0.001\n',
    '  lr: 0.001 # same\n  batchSize: 4\n  steps: 4\n',
  );
  assert.deepEqual(
    plan(reordered).runs.map((r) => r.key),
    base,
  );
  const other = [
    plan(TINY_SPEC, 'fp-b'),
    plan(TINY_SPEC, 'fp-a', '0.2.0'),
    plan(edit(TINY_SPEC, 'seeds: [0]', 'seeds: [1]')),
  ];
  for (const p of other) for (const r of p.runs) assert.ok(!base.includes(r.key));
});

test('each model is trained once per seed and shared by all its sampling settings', () => {
  const text = edit(
    edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0, 1]'),
    '  samples: 4',
    '  samples: 4\n  reuse: [false, true]\n  allocation: [fixed, increasing]',
  );
  const p = plan(text);
  const trains = p.runs.filter((r) => r.kind === 'train');
  const samples = p.runs.filter((r): r is PlannedSample => r.kind === 'sample');
  assert.equal(trains.length, 2 * 2); // dit, fpdm × 2 seeds
  // DiT: one run per budget; FPDM: budget 2 → splits [2] (S=4 leaves no iteration), budget 4 → [2, 4]; × 2 allocations × 2 reuse
  assert.equal(samples.length, 2 * (2 + 3 * 2 * 2));
  for (const s of samples) {
    const parent = trains.find((t) => t.key === s.parentKey)!;
    assert.ok(parent, 'sample run without its train run');
    assert.equal(parent.seed, s.seed);
    assert.equal(parent.modelName, s.modelName);
  }
  // a grid over a sampling setting does not retrain
  const g = plan(
    edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0]\ngrid:\n  sampling.eta: [0]\n  sampling.sampler: [ddpm, ddim]'),
  );
  assert.equal(g.runs.filter((r) => r.kind === 'train').length, 2);
});

test('budgets: DiT spends K steps; FPDM S steps of K·depth/S − pre − post iterations, exactly', () => {
  const p = plan(TINY_SPEC);
  const s = p.runs.filter((r): r is PlannedSample => r.kind === 'sample');
  const dit = s.filter((r) => r.family === 'dit').map((r) => [r.config.sampling.budget, r.config.sampling.steps]);
  assert.deepEqual(dit.sort(), [
    [2, 2],
    [4, 4],
  ]);
  const fp = s
    .filter((r) => r.family === 'fpdm')
    .map((r) => [r.config.sampling.budget, r.config.sampling.steps, r.config.sampling.iters]);
  assert.deepEqual(fp.sort(), [
    [2, 2, 1],
    [4, 2, 4],
    [4, 4, 1],
  ]);
  // estimated cost of a sample run = samples × block evaluations per image = samples × depth·K (exact)
  for (const r of s) {
    const per =
      r.family === 'dit' ? r.config.sampling.steps * 3 : r.config.sampling.steps * (2 + r.config.sampling.iters!);
    assert.equal(per, 3 * r.config.sampling.budget);
    assert.equal(r.plan.blockEvals, per);
    assert.equal(r.cost, 4 * per);
  }
});

test('shards partition the plan, keep each train run with its sample runs, and are deterministic', () => {
  const p = plan(edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0, 1, 2]'));
  for (const n of [1, 2, 3, 5]) {
    const parts = Array.from({ length: n }, (_, i) => shardPlan(p, i, n));
    const keys = parts.flatMap((x) => x.runs.map((r) => r.key));
    assert.equal(keys.length, p.runs.length);
    assert.deepEqual(new Set(keys), new Set(p.runs.map((r) => r.key)));
    for (const part of parts) {
      const trainKeys = new Set(part.runs.filter((r) => r.kind === 'train').map((r) => r.key));
      for (const r of part.runs) if (r.kind === 'sample') assert.ok(trainKeys.has(r.parentKey));
    }
    assert.deepEqual(shardPlan(p, 0, n), shardPlan(plan(edit(TINY_SPEC, 'seeds: [0]', 'seeds: [0, 1, 2]')), 0, n));
  }
  assert.deepEqual(parseShard('1/4'), { index: 1, count: 4 });
  for (const bad of ['4/4', '1', '-1/2', 'a/b', '0/0']) assert.equal(parseShard(bad), null);
});
