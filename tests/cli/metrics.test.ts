// `fpdm-exp kid`, `prdc` and `is` on feature files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f64, toFloat64 } from '../../src/io/tensor.js';
import { writeStatsNpz } from '../../src/metrics/stats_io.js';
import { polynomialMmd2 } from '../../src/metrics/kid.js';
import { runCli } from '../cli.js';
import { fixture } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-cli-metrics-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const t = readSafetensors(fixture('metrics.safetensors')).tensors;
const golden = JSON.parse(readFileSync(fixture('metrics.json'), 'utf8')) as Record<string, number>;
const A = toFloat64(t.get('features_a')!);
const B = toFloat64(t.get('features_b')!);
const env = { ...process.env, XDG_CACHE_HOME: join(dir, 'cache') };

test('prdc on a[:300] (real) and b[:250] (fake) gives the golden precision and recall', () => {
  const real = join(dir, 'real.safetensors');
  const fake = join(dir, 'fake.safetensors');
  writeSafetensors(real, { features: f64([300, 32], A.slice(0, 300 * 32)) });
  writeSafetensors(fake, { features: f64([250, 32], B.slice(0, 250 * 32)) });
  const r = runCli(['prdc', real, fake, '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { precision: number; recall: number; k: number };
  assert.equal(j.k, 3);
  assert.ok(Math.abs(j.precision - golden.precision_k3_real_a300_fake_b250!) < 1e-12);
  assert.ok(Math.abs(j.recall - golden.recall_k3_real_a300_fake_b250!) < 1e-12);
});

test('kid with one subset covering both sets equals the full unbiased MMD²; seeds make subsets reproducible', () => {
  const a = join(dir, 'a650.safetensors');
  const b = join(dir, 'b.safetensors');
  writeSafetensors(a, { features: f64([650, 32], A.slice(0, 650 * 32)) });
  writeSafetensors(b, { features: t.get('features_b')! });
  const r = runCli(['kid', a, b, '--subsets', '1', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { mean: number; std: number; subsetSize: number };
  assert.equal(j.subsetSize, 650);
  const full = polynomialMmd2(A.subarray(0, 650 * 32), 650, B, 650, 32);
  assert.ok(Math.abs(j.mean - full) <= 1e-12 * Math.abs(full), `${j.mean} vs ${full}`);
  assert.equal(j.std, 0);
  const s1 = runCli(['kid', a, b, '--subsets', '3', '--subset-size', '50', '--seed', '7', '--json'], { env });
  const s2 = runCli(['kid', a, b, '--subsets', '3', '--subset-size', '50', '--seed', '7', '--json'], { env });
  assert.equal(s1.stdout, s2.stdout);
  const bad = runCli(['kid', a, b, '--subsets', 'x'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--subsets: 'x' is not a positive integer/);
  const npz = join(dir, 's.npz');
  writeStatsNpz(npz, { mu: toFloat64(t.get('mu_a')!), sigma: toFloat64(t.get('sigma_a')!), dim: 32 });
  const st = runCli(['kid', npz, b], { env });
  assert.equal(st.code, 2);
  assert.match(st.stderr, /needs per-sample features/);
});

test('is on a features file with logits gives the golden Inception Score', () => {
  const p = join(dir, 'logits.safetensors');
  writeSafetensors(p, { features: f64([200, 1], new Float64Array(200)), logits: t.get('logits')! });
  const r = runCli(['is', p, '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { mean: number; std: number; splits: number };
  assert.equal(j.splits, 10);
  assert.ok(Math.abs(j.mean - golden.inception_score_splits10_mean!) <= 1e-9 * golden.inception_score_splits10_mean!);
  assert.ok(Math.abs(j.std - golden.inception_score_splits10_std!) <= 1e-9 * golden.inception_score_splits10_std!);
  const noLogits = join(dir, 'nologits.safetensors');
  writeSafetensors(noLogits, { features: f64([2, 1], [0, 0]) });
  const bad = runCli(['is', noLogits], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no tensor 'logits'/);
});
