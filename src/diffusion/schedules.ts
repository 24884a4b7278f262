// Noise schedules and every table derived from them, as pure float64 functions.
//
// Notation (Ho et al. 2020, "DDPM"; Nichol & Dhariwal 2021, "improved DDPM"):
//   β_t            betas                        noise added at step t (t = 0 … T−1 here, 0 = least noisy)
//   α_t = 1 − β_t  alphas
//   ᾱ_t = Π α_s    alphasCumprod                (s ≤ t)
//   ᾱ_{t−1}        alphasCumprodPrev            (ᾱ_{−1} = 1)
//   ᾱ_{t+1}        alphasCumprodNext            (ᾱ_T = 0)
//   √ᾱ_t, √(1−ᾱ_t) sqrtAlphasCumprod, sqrtOneMinusAlphasCumprod
//   1/√ᾱ_t, √(1/ᾱ_t − 1)  sqrtRecipAlphasCumprod, sqrtRecipm1AlphasCumprod
//   β̃_t            posteriorVariance            = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t)          (DDPM eq. 7)
//   μ̃_t = c1·x_0 + c2·x_t  posteriorMeanCoef1/2  c1 = β_t √ᾱ_{t−1}/(1−ᾱ_t), c2 = (1−ᾱ_{t−1}) √α_t/(1−ᾱ_t)
//   SNR_t = ᾱ_t / (1 − ᾱ_t)  snr
//
// The reference (DiT / FPDM `gaussian_diffusion.py`) keeps these in numpy float64 and casts each
// looked-up coefficient to float32 before it touches a tensor; process.ts does the same.
import { UserError } from '../util/errors.js';

export type ScheduleName = 'linear' | 'cosine';

/** numpy.linspace(start, stop, num) in float64: start + i·step, the last entry set to `stop` exactly. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  out[num - 1] = stop;
  return out;
}

/**
 * Linear schedule of Ho et al., extended to any T as the reference does: β from 1e-4·(1000/T) to
 * 0.02·(1000/T), so that the schedule is (nearly) the same process whatever T is.
 */
export function linearBetas(T: number): Float64Array {
  const scale = 1000 / T;
  return linspace(scale * 0.0001, scale * 0.02, T);
}

/**
 * Cosine schedule (improved DDPM eq. 17, the reference's "squaredcos_cap_v2"):
 * ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), 0.999).
 */
export function cosineBetas(T: number, maxBeta = 0.999): Float64Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float64Array(T);
  for (let i = 0; i < T; i++) out[i] = Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), maxBeta);
  return out;
}

export function namedBetas(name: ScheduleName, T: number): Float64Array {
  if (!Number.isInteger(T) || T < 2)
    throw new UserError(`diffusion steps: got ${T}, expected an integer >= 2 (the reference uses 1000)`);
  switch (name) {
    case 'linear':
      return linearBetas(T);
    case 'cosine':
      return cosineBetas(T);
  }
}

/**
 * Zero terminal SNR (Lin et al. 2024, "Common diffusion noise schedules and sample steps are
 * flawed", Algorithm 1): shift √ᾱ so that its last entry is 0, scale so that its first entry is
 * unchanged, and convert back to betas. The last β becomes exactly 1 (ᾱ_{T−1} = 0, pure noise);
 * the reference therefore requires v-prediction with it (ε-prediction cannot recover x_0 there).
 */
export function enforceZeroTerminalSnr(betas: Float64Array): Float64Array {
  const n = betas.length;
  const s = new Float64Array(n); // √ᾱ
  let prod = 1;
  for (let i = 0; i < n; i++) {
    prod *= 1 - betas[i]!;
    s[i] = Math.sqrt(prod);
  }
  const s0 = s[0]!;
  const sT = s[n - 1]!;
  for (let i = 0; i < n; i++) s[i] = (s[i]! - sT) * (s0 / (s0 - sT));
  const out = new Float64Array(n);
  let prevAlphaBar = 1;
  for (let i = 0; i < n; i++) {
    const alphaBar = s[i]! ** 2;
    out[i] = 1 - (i === 0 ? alphaBar : alphaBar / prevAlphaBar);
    prevAlphaBar = alphaBar;
  }
  return out;
}

/** Every per-timestep table of a process with these betas (all float64, length T). */
export interface ScheduleTables {
  T: number;
  betas: Float64Array;
  logBetas: Float64Array;
  alphas: Float64Array;
  alphasCumprod: Float64Array;
  alphasCumprodPrev: Float64Array;
  alphasCumprodNext: Float64Array;
  sqrtAlphasCumprod: Float64Array;
  sqrtOneMinusAlphasCumprod: Float64Array;
  logOneMinusAlphasCumprod: Float64Array;
  /** 1/√ᾱ_t; +Infinity where ᾱ_t = 0 (zero terminal SNR) */
  sqrtRecipAlphasCumprod: Float64Array;
  /** √(1/ᾱ_t − 1); +Infinity where ᾱ_t = 0 */
  sqrtRecipm1AlphasCumprod: Float64Array;
  posteriorVariance: Float64Array;
  /** log β̃_t with the t = 0 entry (β̃_0 = 0) replaced by log β̃_1, as the reference clips it */
  posteriorLogVarianceClipped: Float64Array;
  posteriorMeanCoef1: Float64Array;
  posteriorMeanCoef2: Float64Array;
  /** SNR_t = ᾱ_t / (1 − ᾱ_t), computed as the reference does: ᾱ_t / √(1 − ᾱ_t)² */
  snr: Float64Array;
}

const map = (a: Float64Array, f: (v: number, i: number) => number): Float64Array => {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!, i);
  return out;
};

/** Derives every table from betas (reference: GaussianDiffusion.__init__, float64 throughout). */
export function scheduleTables(betasIn: Float64Array): ScheduleTables {
  const T = betasIn.length;
  if (T < 2) throw new UserError(`a diffusion process needs at least 2 timesteps, got ${T}`);
  for (let i = 0; i < T; i++) {
    const b = betasIn[i]!;
    if (!(b > 0 && b <= 1)) throw new UserError(`beta[${i}] = ${b} is outside (0, 1]`);
  }
  const betas = Float64Array.from(betasIn);
  const alphas = map(betas, (b) => 1 - b);
  const alphasCumprod = new Float64Array(T);
  let prod = 1;
  for (let i = 0; i < T; i++) alphasCumprod[i] = prod *= alphas[i]!;
  const alphasCumprodPrev = map(alphasCumprod, (_, i) => (i === 0 ? 1 : alphasCumprod[i - 1]!));
  const alphasCumprodNext = map(alphasCumprod, (_, i) => (i === T - 1 ? 0 : alphasCumprod[i + 1]!));
  const sqrtOneMinusAlphasCumprod = map(alphasCumprod, (a) => Math.sqrt(1 - a));
  const posteriorVariance = map(betas, (b, i) => (b * (1 - alphasCumprodPrev[i]!)) / (1 - alphasCumprod[i]!));
  return {
    T,
    betas,
    logBetas: map(betas, Math.log),
    alphas,
    alphasCumprod,
    alphasCumprodPrev,
    alphasCumprodNext,
    sqrtAlphasCumprod: map(alphasCumprod, Math.sqrt),
    sqrtOneMinusAlphasCumprod,
    logOneMinusAlphasCumprod: map(alphasCumprod, (a) => Math.log(1 - a)),
    sqrtRecipAlphasCumprod: map(alphasCumprod, (a) => Math.sqrt(1 / a)),
    sqrtRecipm1AlphasCumprod: map(alphasCumprod, (a) => Math.sqrt(1 / a - 1)),
    posteriorVariance,
    // Reference quirk kept on purpose: β̃_0 = 0, so its log is replaced by log β̃_1.
    posteriorLogVarianceClipped: map(posteriorVariance, (v, i) => Math.log(i === 0 ? posteriorVariance[1]! : v)),
    posteriorMeanCoef1: map(betas, (b, i) => (b * Math.sqrt(alphasCumprodPrev[i]!)) / (1 - alphasCumprod[i]!)),
    posteriorMeanCoef2: map(
      betas,
      (_, i) => ((1 - alphasCumprodPrev[i]!) * Math.sqrt(alphas[i]!)) / (1 - alphasCumprod[i]!),
    ),
    snr: map(alphasCumprod, (a, i) => a / sqrtOneMinusAlphasCumprod[i]! ** 2),
  };
}
