// Stage 4: the Fréchet distance between two Gaussians fitted to features (FID when the features are
// the FID Inception network's pool3 features; the same function gives fd_mnist on other features).
//
//   d² = ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1 Σ2)                         (Dowson & Landau 1982)
//
// Tr √(Σ1Σ2) is computed from the eigenvalues of a symmetric PSD matrix M similar to Σ1^½ Σ2 Σ1^½
// (so with the eigenvalues of Σ1Σ2), all float64:
//   1a. Σ1 positive definite: Σ1 = L Lᵀ (Cholesky), M = Lᵀ Σ2 L  (Σ1Σ2 = L (Lᵀ Σ2 L) L⁻¹);
//       else the same with the roles swapped when Σ2 is (Tr √(Σ1Σ2) = Tr √(Σ2Σ1)).
//   1b. both singular (e.g. N ≤ d): rank-revealing Cholesky Σ1 = G Gᵀ with G [d, r], M = Gᵀ Σ2 G
//       [r, r]: the nonzero eigenvalues of Σ1Σ2 = G (Gᵀ Σ2) are those of (Gᵀ Σ2) G.
//   2. Tr √(Σ1Σ2) = Σ_i √λ_i(M), eigenvalues of M by Householder tridiagonalisation + implicit QR.
// M is symmetric PSD in every case (a congruence of Σ2), so no eigenvectors are needed.
// Reference-tool behaviours reproduced on purpose (pytorch-fid `calculate_frechet_distance`, the ADM
// evaluator): when the product is singular enough that its square root is not finite, eps·I is added
// to both covariances and the root recomputed; an imaginary part (here: a negative eigenvalue of M,
// whose root would be imaginary) larger than 1e-3 is an error, smaller ones are dropped (clamped to 0).
import { UserError } from '../util/errors.js';
import { cholesky, gramCongruence, lowerCongruence, pivotedCholesky, symmetricEigen, trace } from './linalg.js';

export interface FrechetDetails {
  /** the distance d² */
  value: number;
  /** ‖μ1 − μ2‖² */
  meanTerm: number;
  /** Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1Σ2) */
  covTerm: number;
  traceSqrt: number;
  /** true when eps·I had to be added to both covariances */
  usedEpsFallback: boolean;
  /** most negative eigenvalue of Σ1^½ Σ2 Σ1^½ that was clamped to 0 (0 when none) */
  clampedNegative: number;
}

export interface FrechetOptions {
  /** offset added to the covariance diagonals in the singular fallback (pytorch-fid: 1e-6) */
  eps?: number;
  /** largest imaginary magnitude √(−λ) tolerated before failing (pytorch-fid: atol 1e-3) */
  imagTol?: number;
}

/** Tr √(Σ1Σ2) through the eigenvalues of Λ^½ (V Σ2 Vᵀ) Λ^½; reports non-finite results as NaN. */
export function traceSqrtProduct(
  sigma1: Float64Array,
  sigma2: Float64Array,
  d: number,
): { traceSqrt: number; minEig: number; negImag: number } {
  let M: Float64Array; // symmetric; its nonzero eigenvalues are those of Σ1^½ Σ2 Σ1^½
  let m: number;
  const L1 = cholesky(sigma1, d);
  const L2 = L1 ? undefined : cholesky(sigma2, d);
  if (L1) {
    M = lowerCongruence(L1, sigma2, d); // Lᵀ Σ2 L
    m = d;
  } else if (L2) {
    M = lowerCongruence(L2, sigma1, d); // Σ1Σ2 and Σ2Σ1 share their eigenvalues
    m = d;
  } else {
    const { G, rank } = pivotedCholesky(sigma1, d); // Σ1 = G Gᵀ, G [d, rank]
    M = gramCongruence(G, sigma2, d, rank); // [rank, rank] Gᵀ Σ2 G
    m = rank;
  }
  const { values } = symmetricEigen(M, m, false);
  let traceSqrt = 0;
  let negImag = 0;
  for (const l of values) {
    if (!Number.isFinite(l)) return { traceSqrt: NaN, minEig: NaN, negImag: 0 };
    if (l >= 0) traceSqrt += Math.sqrt(l);
    else negImag = Math.max(negImag, Math.sqrt(-l));
  }
  return { traceSqrt, minEig: values[0] ?? 0, negImag };
}

function checkStats(what: string, mu: Float64Array, sigma: Float64Array, d: number): void {
  if (sigma.length !== d * d)
    throw new UserError(`${what}: sigma has ${sigma.length} values, expected ${d}×${d} to match mu of size ${d}`);
  for (let i = 0; i < mu.length; i++)
    if (!Number.isFinite(mu[i]!)) throw new UserError(`${what}: mu[${i}] is not finite`);
  for (let i = 0; i < sigma.length; i++)
    if (!Number.isFinite(sigma[i]!)) throw new UserError(`${what}: sigma has a non-finite value at ${i}`);
}

/** The Fréchet distance with its parts. μ: [d], Σ: [d, d] row-major, all float64. */
export function frechetDetails(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  opts: FrechetOptions = {},
): FrechetDetails {
  const d = mu1.length;
  if (mu2.length !== d)
    throw new UserError(
      `Fréchet distance: the two mean vectors differ in size (${d} vs ${mu2.length}): the statistics come from different feature spaces`,
    );
  checkStats('first statistics', mu1, sigma1, d);
  checkStats('second statistics', mu2, sigma2, d);
  const eps = opts.eps ?? 1e-6;
  const imagTol = opts.imagTol ?? 1e-3;
  let meanTerm = 0;
  for (let i = 0; i < d; i++) meanTerm += (mu1[i]! - mu2[i]!) ** 2;

  let { traceSqrt, negImag, minEig } = traceSqrtProduct(sigma1, sigma2, d);
  let usedEpsFallback = false;
  if (!Number.isFinite(traceSqrt)) {
    // pytorch-fid: "fid calculation produces singular product; adding eps to diagonal of cov estimates"
    usedEpsFallback = true;
    const s1 = Float64Array.from(sigma1);
    const s2 = Float64Array.from(sigma2);
    for (let i = 0; i < d; i++) {
      s1[i * d + i]! += eps;
      s2[i * d + i]! += eps;
    }
    ({ traceSqrt, negImag, minEig } = traceSqrtProduct(s1, s2, d));
  }
  if (!Number.isFinite(traceSqrt))
    throw new Error('Fréchet distance: the square root of Σ1Σ2 is not finite even after the eps fallback');
  if (negImag > imagTol) {
    throw new UserError(
      `Fréchet distance: Σ1Σ2 has a negative eigenvalue ${minEig.toExponential(3)} (imaginary component ${negImag.toExponential(3)} > ${imagTol}): the covariances are not valid positive semi-definite matrices`,
    );
  }
  const covTerm = trace(sigma1, d) + trace(sigma2, d) - 2 * traceSqrt;
  return {
    value: meanTerm + covTerm,
    meanTerm,
    covTerm,
    traceSqrt,
    usedEpsFallback,
    clampedNegative: minEig < 0 ? minEig : 0,
  };
}

/** FID / Fréchet distance d² = ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr √(Σ1Σ2), float64. */
export function frechetDistance(
  mu1: Float64Array,
  sigma1: Float64Array,
  mu2: Float64Array,
  sigma2: Float64Array,
  opts?: FrechetOptions,
): number {
  return frechetDetails(mu1, sigma1, mu2, sigma2, opts).value;
}
