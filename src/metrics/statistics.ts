// Stage 3 of every Fréchet-type metric: feature statistics μ and Σ (float64, Σ with N−1 as np.cov).
// Features arrive as [N, F] row-major (float32 from the network or float64 from files) and may be
// streamed batch by batch through `StatsAccumulator`, so N is not bounded by memory.
import { UserError } from '../util/errors.js';

export interface FeatureStats {
  /** [F] mean */
  mu: Float64Array;
  /** [F, F] covariance with the N−1 denominator (np.cov default) */
  sigma: Float64Array;
  /** feature size F */
  dim: number;
  /** number of samples N */
  n: number;
}

/**
 * Streaming μ/Σ. Sums are taken about a shift c (the first sample), which avoids the cancellation of
 * the naive Σx xᵀ − N μ μᵀ: Σ = (Σ(x−c)(x−c)ᵀ − N (μ−c)(μ−c)ᵀ) / (N−1).
 */
export class StatsAccumulator {
  private n = 0;
  private shift: Float64Array | undefined;
  private readonly sum: Float64Array; // [F] Σ(x − c)
  private readonly outer: Float64Array; // [F, F] lower triangle of Σ(x − c)(x − c)ᵀ
  private readonly xc: Float64Array; // [F] scratch

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.outer = new Float64Array(dim * dim);
    this.xc = new Float64Array(dim);
  }

  /** Adds `rows` samples from `data` [rows, F] row-major. */
  add(data: ArrayLike<number>, rows = data.length / this.dim): void {
    const F = this.dim;
    if (!Number.isInteger(rows) || rows * F !== data.length) {
      throw new UserError(`feature statistics: ${data.length} values are not a whole number of ${F}-d feature rows`);
    }
    const { sum, outer, xc } = this;
    for (let r = 0; r < rows; r++) {
      const off = r * F;
      if (!this.shift) this.shift = Float64Array.from({ length: F }, (_, j) => Number(data[off + j]));
      const c = this.shift;
      for (let j = 0; j < F; j++) {
        const v = Number(data[off + j]);
        if (!Number.isFinite(v)) throw new UserError(`feature statistics: sample ${this.n} has a non-finite value (${v}) in feature ${j}`);
        xc[j] = v - c[j]!;
        sum[j]! += xc[j]!;
      }
      for (let i = 0; i < F; i++) {
        const xi = xc[i]!;
        if (xi === 0) continue;
        const row = i * F;
        for (let j = 0; j <= i; j++) outer[row + j]! += xi * xc[j]!;
      }
      this.n++;
    }
  }

  get count(): number {
    return this.n;
  }

  finalize(): FeatureStats {
    const F = this.dim;
    const N = this.n;
    if (N < 2) throw new UserError(`feature statistics need at least 2 samples, got ${N}`);
    const c = this.shift!;
    const mu = new Float64Array(F);
    const dm = new Float64Array(F); // μ − c
    for (let j = 0; j < F; j++) {
      dm[j] = this.sum[j]! / N;
      mu[j] = c[j]! + dm[j]!;
    }
    const sigma = new Float64Array(F * F);
    for (let i = 0; i < F; i++) {
      for (let j = 0; j <= i; j++) {
        const v = (this.outer[i * F + j]! - N * dm[i]! * dm[j]!) / (N - 1);
        sigma[i * F + j] = v;
        sigma[j * F + i] = v;
      }
    }
    return { mu, sigma, dim: F, n: N };
  }
}

/** μ and Σ (N−1) of features [N, F] row-major. */
export function featureStats(features: ArrayLike<number>, n: number, dim: number): FeatureStats {
  if (n * dim !== features.length) throw new UserError(`features: ${features.length} values do not form [${n}, ${dim}]`);
  const acc = new StatsAccumulator(dim);
  acc.add(features, n);
  return acc.finalize();
}
