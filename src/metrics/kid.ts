// Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with the polynomial kernel
//   k(x, y) = (x·y / d + 1)³
// averaged over random subsets (torch-fidelity / the KID paper: 100 subsets of 1000), reported as
// mean ± std (population std, as np.std). Subsets are drawn with the seeded host RNG, without
// replacement within a subset; when a set has fewer samples than the subset size, the subset size
// becomes the smaller set's size (one subset then equals "all samples" when sizes match it).
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

export interface KidOptions {
  /** number of subsets (default 100) */
  subsets?: number;
  /** samples per subset (default 1000, clipped to the smaller set) */
  subsetSize?: number;
  /** seed of the subset draw (default 0) */
  seed?: number | string;
}

export interface KidResult {
  mean: number;
  std: number;
  subsets: number;
  subsetSize: number;
}

function kernelSums(
  x: ArrayLike<number>,
  xi: Int32Array | null,
  m: number,
  y: ArrayLike<number>,
  yi: Int32Array | null,
  n: number,
  d: number,
  sameSet: boolean,
): number {
  // Σ k(x_a, y_b) over all pairs (a ≠ b when sameSet), kernel (x·y/d + 1)³
  let total = 0;
  for (let a = 0; a < m; a++) {
    const oa = (xi ? xi[a]! : a) * d;
    for (let b = sameSet ? a + 1 : 0; b < n; b++) {
      const ob = (yi ? yi[b]! : b) * d;
      let dot = 0;
      for (let k = 0; k < d; k++) dot += x[oa + k]! * y[ob + k]!;
      const t = dot / d + 1;
      total += t * t * t;
    }
  }
  return sameSet ? 2 * total : total;
}

/**
 * Unbiased MMD² between rows of x [m, d] and y [n, d] (optionally restricted to index lists):
 *   Σ_{a≠b} k(x_a,x_b)/(m(m−1)) + Σ_{a≠b} k(y_a,y_b)/(n(n−1)) − 2 Σ k(x_a,y_b)/(m n)
 */
export function polynomialMmd2(
  x: ArrayLike<number>,
  m: number,
  y: ArrayLike<number>,
  n: number,
  d: number,
  xi: Int32Array | null = null,
  yi: Int32Array | null = null,
): number {
  if (m < 2 || n < 2) throw new UserError(`KID needs at least 2 samples in each set (got ${m} and ${n})`);
  const kxx = kernelSums(x, xi, m, x, xi, m, d, true);
  const kyy = kernelSums(y, yi, n, y, yi, n, d, true);
  const kxy = kernelSums(x, xi, m, y, yi, n, d, false);
  return kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - (2 * kxy) / (m * n);
}

/** KID of features x [m, d] (e.g. real) and y [n, d] (e.g. generated): mean ± std of MMD² over subsets. */
export function kernelInceptionDistance(
  x: ArrayLike<number>,
  m: number,
  y: ArrayLike<number>,
  n: number,
  d: number,
  opts: KidOptions = {},
): KidResult {
  if (x.length !== m * d || y.length !== n * d)
    throw new UserError(`KID: feature arrays do not match [${m}, ${d}] and [${n}, ${d}]`);
  const subsets = opts.subsets ?? 100;
  if (!Number.isInteger(subsets) || subsets < 1)
    throw new UserError(`KID: subsets must be a positive integer, got ${subsets}`);
  const size = Math.min(opts.subsetSize ?? 1000, m, n);
  if (size < 2) throw new UserError(`KID needs at least 2 samples in each set (got ${m} and ${n})`);
  const rng = new Rng(opts.seed ?? 0);
  const values: number[] = [];
  for (let s = 0; s < subsets; s++) {
    const xi = rng.permutation(m).slice(0, size);
    const yi = rng.permutation(n).slice(0, size);
    values.push(polynomialMmd2(x, size, y, size, d, xi, yi));
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
  return { mean, std, subsets, subsetSize: size };
}
