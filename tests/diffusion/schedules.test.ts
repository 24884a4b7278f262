import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cosineBetas,
  enforceZeroTerminalSnr,
  linearBetas,
  linspace,
  scheduleTables,
} from '../../src/diffusion/schedules.js';
import { respaceBetas, roundHalfEven, spaceTimesteps } from '../../src/diffusion/respace.js';
import { UserError } from '../../src/util/errors.js';
import { elemRelErr } from './fixtures.js';

test('linear betas: Ho et al. 1e-4..0.02 at T = 1000, scaled by 1000/T otherwise', () => {
  const b = linearBetas(1000);
  assert.equal(b[0], 1e-4);
  assert.equal(b[999], 0.02);
  assert.ok(Math.abs(b[500]! - (1e-4 + (500 * (0.02 - 1e-4)) / 999)) < 1e-17);
  const b2 = linearBetas(500);
  assert.ok(Math.abs(b2[0]! - 2e-4) < 1e-18 && b2[499] === 0.04);
  assert.deepEqual(Array.from(linspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
});

test('cosine betas: ᾱ_t = cos²((t/T + s)/(1 + s)·π/2) / cos²(s/(1+s)·π/2) wherever β is not capped', () => {
  const T = 100;
  const f = (u: number) => Math.cos(((u + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const tabs = scheduleTables(cosineBetas(T));
  for (let i = 0; i < T; i++) {
    if (tabs.betas[i]! >= 0.999) break;
    const want = f((i + 1) / T) / f(0);
    assert.ok(Math.abs(tabs.alphasCumprod[i]! - want) <= 1e-12 * Math.max(want, 1e-3), `i=${i}`);
  }
  assert.equal(cosineBetas(T)[T - 1], 0.999);
});

test('zero terminal SNR: ᾱ_{T−1} = 0, √ᾱ_0 unchanged, √ᾱ an affine map of the original', () => {
  const b = linearBetas(1000);
  const z = enforceZeroTerminalSnr(b);
  const orig = scheduleTables(b);
  const zt = scheduleTables(z);
  assert.equal(z[999], 1);
  assert.equal(zt.alphasCumprod[999], 0);
  assert.equal(zt.snr[999], 0);
  assert.ok(Math.abs(zt.sqrtAlphasCumprod[0]! - orig.sqrtAlphasCumprod[0]!) < 1e-15);
  const s0 = orig.sqrtAlphasCumprod[0]!;
  const sT = orig.sqrtAlphasCumprod[999]!;
  for (let i = 0; i < 1000; i += 37) {
    const want = ((orig.sqrtAlphasCumprod[i]! - sT) * s0) / (s0 - sT);
    assert.ok(Math.abs(zt.sqrtAlphasCumprod[i]! - want) < 1e-12, `i=${i}`);
  }
  assert.equal(zt.sqrtRecipAlphasCumprod[999], Infinity);
});

test('derived tables satisfy the DDPM identities', () => {
  const t = scheduleTables(linearBetas(1000));
  for (let i = 1; i < 1000; i += 13) {
    // β̃_t = 1 / (1/(1 − ᾱ_{t−1}) + α_t/β_t)
    const alt = 1 / (1 / (1 - t.alphasCumprodPrev[i]!) + t.alphas[i]! / t.betas[i]!);
    assert.ok(Math.abs(t.posteriorVariance[i]! - alt) <= 1e-12 * alt);
    // averaging the posterior mean over x_t ~ q(x_t | x_0): c1·x_0 + c2·√ᾱ_t·x_0 = E[x_{t−1} | x_0] = √ᾱ_{t−1}·x_0
    const meanOfMean = t.posteriorMeanCoef1[i]! + t.posteriorMeanCoef2[i]! * t.sqrtAlphasCumprod[i]!;
    assert.ok(Math.abs(meanOfMean - Math.sqrt(t.alphasCumprodPrev[i]!)) < 1e-12);
    assert.ok(Math.abs(t.posteriorLogVarianceClipped[i]! - Math.log(t.posteriorVariance[i]!)) < 1e-12);
  }
  assert.equal(t.posteriorVariance[0], 0);
  assert.equal(t.posteriorLogVarianceClipped[0], Math.log(t.posteriorVariance[1]!));
  assert.throws(() => scheduleTables(Float64Array.from([0.1, 0])), UserError);
});

test('respacing: Python rounding, section counts, DDIM striding, ᾱ preserved at kept steps', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, 4, 2, 3]);
  // the reference docstring's example: 300 steps, sections [10, 15, 20] over thirds of 100
  const s = spaceTimesteps(300, [10, 15, 20]);
  assert.equal(s.length, 45);
  assert.equal(s.filter((k) => k < 100).length, 10);
  assert.equal(s.filter((k) => k >= 100 && k < 200).length, 15);
  assert.deepEqual([s[0], s[9], s[10], s[24], s[25], s[44]], [0, 99, 100, 199, 200, 299]);
  assert.deepEqual(
    spaceTimesteps(1000, 'ddim20'),
    Array.from({ length: 20 }, (_, i) => 50 * i),
  );
  assert.deepEqual(spaceTimesteps(10, ''), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.throws(() => spaceTimesteps(10, '11'), UserError);
  assert.throws(() => spaceTimesteps(10, '3,x'), UserError);
  const b = linearBetas(1000);
  const keep = spaceTimesteps(1000, '25');
  const r = respaceBetas(b, keep);
  const full = scheduleTables(b).alphasCumprod;
  const spaced = scheduleTables(r.betas).alphasCumprod;
  assert.deepEqual(Array.from(r.timestepMap), keep);
  assert.ok(
    elemRelErr(
      spaced,
      keep.map((k) => full[k]!),
    ) < 1e-12,
  );
});
