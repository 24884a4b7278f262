// The reference numbers agree with the reference's parameter counts (tests/fixtures/param_counts.json) and with our own parameter counter.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { allReferenceValues, PARAM_COUNTS, paramReduction } from '../../src/baselines/reference.js';
import { countParams, ditPreset, fpdmFrom, modelName } from '../../src/models/index.js';
import { fixture } from '../helpers.js';

test('parameter counts equal the reference param_counts.json and the model package count', () => {
  const file = JSON.parse(readFileSync(fixture('param_counts.json'), 'utf8')) as Record<string, Record<string, number>>;
  assert.deepEqual(PARAM_COUNTS, file.param_counts_latent32x32x4_1000cls_learn_sigma);
  for (const [name, n] of Object.entries(PARAM_COUNTS)) {
    const m = /^FPDM\((DiT-[A-Z]+\/\d), pre=(\d), post=(\d)\)$/.exec(name);
    const cfg = m ? fpdmFrom(ditPreset(m[1]!), { preDepth: Number(m[2]), postDepth: Number(m[3]) }) : ditPreset(name);
    assert.equal(modelName(cfg), name);
    assert.equal(countParams(cfg).total, n, name);
  }
});

test("the paper's 87% parameter reduction follows from the exact counts", () => {
  const r = paramReduction('FPDM(DiT-XL/2, pre=1, post=1)', 'DiT-XL/2');
  assert.ok(Math.abs(r - 0.8718) < 1e-4, String(r));
  for (const x of allReferenceValues()) {
    assert.ok(Number.isFinite(x.value) && x.value > 0, x.subject);
    assert.ok(x.citation.cite.length > 10);
  }
});
