import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';

test('models --json equals every count in reference/param_counts.json to the unit', () => {
  const r = runCli(['models', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as {
    name: string;
    params: number;
    kind: string;
    flopsPerIteration: number;
    flopsPerForward: number;
  }[];
  const ref = JSON.parse(readFileSync(fixture('param_counts.json'), 'utf8'))
    .param_counts_latent32x32x4_1000cls_learn_sigma as Record<string, number>;
  const byName = new Map(rows.map((x) => [x.name, x]));
  for (const [name, count] of Object.entries(ref)) assert.equal(byName.get(name)?.params, count, name);
  assert.equal(rows.length, 12 * 4, '12 presets, each with FPDM pre/post 1, 2, 4');
  for (const x of rows) {
    assert.ok(x.flopsPerForward > 0);
    assert.equal(x.kind === 'fpdm', x.flopsPerIteration > 0);
  }
});

test('models prints a table; bad option values exit 2', () => {
  const r = runCli(['models']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /DiT-XL\/2\s+674,834,720/);
  assert.match(r.stdout, /FPDM\(DiT-XL\/2, pre=1, post=1\)\s+86,500,256/);
  const bad = runCli(['models', '--input-size', 'big']);
  assert.equal(bad.code, 2);
});
