// metrics.json reproduced from metrics.safetensors, plus analytic checks of each stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readSafetensors } from '../../src/io/safetensors.js';
import { toFloat64 } from '../../src/io/tensor.js';
import { featureStats, StatsAccumulator } from '../../src/metrics/statistics.js';
import { frechetDetails, frechetDistance } from '../../src/metrics/fid.js';
import { polynomialMmd2, kernelInceptionDistance } from '../../src/metrics/kid.js';
import { precisionRecall } from '../../src/metrics/prdc.js';
import { inceptionScore, inceptionScoreFromLogits } from '../../src/metrics/inception_score.js';
import { Rng } from '../../src/util/rng.js';
import { fixture, maxAbsDiff } from '../helpers.js';

const { tensors } = readSafetensors(fixture('metrics.safetensors'));
const golden = JSON.parse(readFileSync(fixture('metrics.json'), 'utf8')) as Record<string, number>;
const g = (k: string): Float64Array => toFloat64(tensors.get(k)!);
const A = g('features_a'); // [700, 32]
const B = g('features_b'); // [650, 32]
const S = g('features_small'); // [20, 32]
const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

test('statistics reproduce np.mean / np.cov (N-1), also when streamed in uneven batches', () => {
  const st = featureStats(A, 700, 32);
  assert.ok(maxAbsDiff(st.mu, g('mu_a')) < 1e-13);
  assert.ok(maxAbsDiff(st.sigma, g('sigma_a')) < 1e-12);
  const acc = new StatsAccumulator(32);
  acc.add(B.subarray(0, 32 * 7));
  acc.add(B.subarray(32 * 7, 32 * 400));
  acc.add(B.subarray(32 * 400));
  const sb = acc.finalize();
  assert.equal(sb.n, 650);
  assert.ok(maxAbsDiff(sb.mu, g('mu_b')) < 1e-13);
  assert.ok(maxAbsDiff(sb.sigma, g('sigma_b')) < 1e-12);
});

test('FID a/b, a/a and small/b match pytorch-fid (scipy sqrtm) values', () => {
  const fab = frechetDistance(g('mu_a'), g('sigma_a'), g('mu_b'), g('sigma_b'));
  assert.ok(rel(fab, golden.fid_a_b!) <= 1e-6, `a/b ${fab} vs ${golden.fid_a_b}`);
  const faa = frechetDistance(g('mu_a'), g('sigma_a'), g('mu_a'), g('sigma_a'));
  assert.ok(Math.abs(faa - golden.fid_a_a!) <= 1e-6, `a/a ${faa}`);
  // fewer samples (20) than dimensions (32): singular Σ_small, takes the eigendecomposition path
  const ss = featureStats(S, 20, 32);
  const fsb = frechetDetails(ss.mu, ss.sigma, g('mu_b'), g('sigma_b'));
  assert.ok(rel(fsb.value, golden.fid_small_b!) <= 1e-6, `small/b ${fsb.value} vs ${golden.fid_small_b}`);
  assert.equal(fsb.usedEpsFallback, false);
  // symmetric in its arguments
  const fbs = frechetDistance(g('mu_b'), g('sigma_b'), ss.mu, ss.sigma);
  assert.ok(rel(fbs, golden.fid_small_b!) <= 1e-6, `b/small ${fbs}`);
});

test('closed form: mu 0 vs 1 in 2048-d with identity covariances gives 2048', () => {
  const d = 2048;
  const I = new Float64Array(d * d);
  for (let i = 0; i < d; i++) I[i * d + i] = 1;
  const v = frechetDistance(new Float64Array(d), I, new Float64Array(d).fill(1), I);
  assert.ok(Math.abs(v - golden.fid_closed_form_mu0_mu1_identity_2048!) < 1e-9, String(v));
});

test('analytic Fréchet cases: equal covariances give ‖Δμ‖²; commuting diagonal covariances give Σ(√a−√b)²', () => {
  const rng = new Rng('fid-analytic');
  const d = 24;
  // random SPD Σ = X Xᵀ/d + 0.1 I
  const X = Float64Array.from(rng.normals(d * d));
  const sig = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += X[i * d + k]! * X[j * d + k]!;
      sig[i * d + j] = s / d + (i === j ? 0.1 : 0);
    }
  const m1 = Float64Array.from(rng.normals(d));
  const m2 = Float64Array.from(rng.normals(d));
  let dm = 0;
  for (let i = 0; i < d; i++) dm += (m1[i]! - m2[i]!) ** 2;
  assert.ok(Math.abs(frechetDistance(m1, sig, m2, sig) - dm) < 1e-9 * dm);
  const a = Float64Array.from({ length: d }, () => rng.uniform() * 3);
  const a0 = Float64Array.from(a, (v, i) => (i % 7 === 3 ? 0 : v)); // singular too: the rank-revealing path
  const b = Float64Array.from({ length: d }, (_, i) => (i % 5 === 0 ? 0 : rng.uniform() * 3)); // some zero variances
  const Da = new Float64Array(d * d);
  const Db = new Float64Array(d * d);
  let expect = 0;
  for (let i = 0; i < d; i++) {
    Da[i * d + i] = a[i]!;
    Db[i * d + i] = b[i]!;
    expect += (Math.sqrt(a[i]!) - Math.sqrt(b[i]!)) ** 2;
  }
  const z = new Float64Array(d);
  assert.ok(Math.abs(frechetDistance(z, Da, z, Db) - expect) < 1e-10, 'diagonal case');
  assert.ok(Math.abs(frechetDistance(z, Db, z, Da) - expect) < 1e-10, 'diagonal case, singular first');
  const Da0 = new Float64Array(d * d);
  let expect0 = 0;
  for (let i = 0; i < d; i++) {
    Da0[i * d + i] = a0[i]!;
    expect0 += (Math.sqrt(a0[i]!) - Math.sqrt(b[i]!)) ** 2;
  }
  assert.ok(Math.abs(frechetDistance(z, Da0, z, Db) - expect0) < 1e-10, 'diagonal case, both singular');
  // both singular and not diagonal: 3 samples in 40-d; a set against itself gives ~0, and the value is symmetric
  const X3 = Float64Array.from(rng.normals(3 * 40));
  const Y3 = Float64Array.from(rng.normals(3 * 40));
  const s3 = featureStats(X3, 3, 40);
  const t3 = featureStats(Y3, 3, 40);
  assert.ok(Math.abs(frechetDistance(s3.mu, s3.sigma, s3.mu, s3.sigma)) < 1e-9);
  const f12 = frechetDistance(s3.mu, s3.sigma, t3.mu, t3.sigma);
  const f21 = frechetDistance(t3.mu, t3.sigma, s3.mu, s3.sigma);
  assert.ok(Math.abs(f12 - f21) < 1e-9 * f12, `${f12} vs ${f21}`);
});

test('FID rejects a non-PSD covariance (large imaginary part) and mismatched sizes', () => {
  const d = 3;
  const I = Float64Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]);
  const bad = Float64Array.from([1, 0, 0, 0, -4, 0, 0, 0, 1]);
  assert.throws(() => frechetDistance(new Float64Array(d), I, new Float64Array(d), bad), /imaginary component/);
  assert.throws(
    () => frechetDistance(new Float64Array(d), I, new Float64Array(2), Float64Array.from([1, 0, 0, 1])),
    /differ in size/,
  );
});

test('KID on the full sets (one subset = all samples) matches; subsets are seeded', () => {
  const full = polynomialMmd2(A, 700, B, 650, 32);
  assert.ok(rel(full, golden.kid_full_a_b!) <= 1e-9, `${full} vs ${golden.kid_full_a_b}`);
  const k1 = kernelInceptionDistance(A, 700, B, 650, 32, { subsets: 5, subsetSize: 100, seed: 3 });
  const k2 = kernelInceptionDistance(A, 700, B, 650, 32, { subsets: 5, subsetSize: 100, seed: 3 });
  assert.deepEqual(k1, k2);
  assert.equal(k1.subsetSize, 100);
  assert.ok(k1.std > 0);
  // subset size is clipped to the smaller set
  assert.equal(kernelInceptionDistance(A, 700, B, 650, 32, { subsets: 1 }).subsetSize, 650);
  assert.notEqual(kernelInceptionDistance(A, 700, B, 650, 32, { subsets: 5, subsetSize: 100, seed: 4 }).mean, k1.mean);
  // two samples from one distribution: KID is small against a/b
  const half = kernelInceptionDistance(A.subarray(0, 350 * 32), 350, A.subarray(350 * 32), 350, 32, { subsets: 1 });
  assert.ok(Math.abs(half.mean) < 0.05 * full, `a/a halves ${half.mean}`);
});

test('precision and recall with k=3 (real = a[:300], fake = b[:250]) match', () => {
  const r = precisionRecall(A.subarray(0, 300 * 32), 300, B.subarray(0, 250 * 32), 250, 32, 3);
  assert.ok(Math.abs(r.precision - golden.precision_k3_real_a300_fake_b250!) < 1e-12, `precision ${r.precision}`);
  assert.ok(Math.abs(r.recall - golden.recall_k3_real_a300_fake_b250!) < 1e-12, `recall ${r.recall}`);
  // identical sets: everything is covered
  const same = precisionRecall(A.subarray(0, 50 * 32), 50, A.subarray(0, 50 * 32), 50, 32, 3);
  assert.equal(same.precision, 1);
  assert.equal(same.recall, 1);
  assert.equal(same.coverage, 1);
});

test('Inception Score over 10 contiguous splits (mean, population std) matches; analytic bounds', () => {
  const is = inceptionScoreFromLogits(g('logits'), 200, 10, 10);
  assert.ok(rel(is.mean, golden.inception_score_splits10_mean!) <= 1e-9, `mean ${is.mean}`);
  assert.ok(rel(is.std, golden.inception_score_splits10_std!) <= 1e-9, `std ${is.std}`);
  // one-hot predictions spread evenly over C classes give IS = C; uniform predictions give 1
  const C = 4;
  const oneHot = new Float64Array(40 * C);
  for (let i = 0; i < 40; i++) oneHot[i * C + (i % C)] = 1;
  assert.ok(Math.abs(inceptionScore(oneHot, 40, C, 2).mean - C) < 1e-12);
  assert.ok(Math.abs(inceptionScore(new Float64Array(40 * C).fill(1 / C), 40, C, 2).mean - 1) < 1e-12);
});
