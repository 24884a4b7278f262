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
  // pending centred rows, stored transposed [F, BLOCK] so the outer-product sums are contiguous dot products
  private static readonly BLOCK = 64;
  private readonly pending: Float64Array;
  private filled = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.outer = new Float64Array(dim * dim);
    this.pending = new Float64Array(dim * StatsAccumulator.BLOCK);
  }

  /** adds the pending rows' outer products to the lower triangle of `outer` */
  private flush(): void {
    const F = this.dim;
    const B = StatsAccumulator.BLOCK;
    const m = this.filled;
    const { pending, outer } = this;
    for (let i = 0; i < F; i++) {
      const oi = i * B;
      const row = i * F;
      for (let j = 0; j <= i; j++) {
        const oj = j * B;
        let acc = 0;
        for (let r = 0; r < m; r++) acc += pending[oi + r]! * pending[oj + r]!;
        outer[row + j]! += acc;
      }
    }
    this.filled = 0;
  }

  /** Adds `rows` samples from `data` [rows, F] row-major. */
  add(data: ArrayLike<number>, rows = data.length / this.dim): void {
    const F = this.dim;
    if (!Number.isInteger(rows) || rows * F !== data.length) {
      throw new UserError(`feature statistics: ${data.length} values are not a whole number of ${F}-d feature rows`);
    }
    const { sum, pending } = this;
    const B = StatsAccumulator.BLOCK;
    for (let r = 0; r < rows; r++) {
      const off = r * F;
      if (!this.shift) this.shift = Float64Array.from({ length: F }, (_, j) => Number(data[off + j]));
      const c = this.shift;
      const slot = this.filled;
      for (let j = 0; j < F; j++) {
        const v = Number(data[off + j]);
        if (!Number.isFinite(v))
          throw new UserError(`feature statistics: sample ${this.n} has a non-finite value (${v}) in feature ${j}`);
        const x = v - c[j]!;
        pending[j * B + slot] = x;
        sum[j]! += x;
      }
      this.n++;
      if (++this.filled === B) this.flush();
    }
  }

  get count(): number {
    return this.n;
  }

  finalize(): FeatureStats {
    const F = this.dim;
    const N = this.n;
    if (N < 2) throw new UserError(`feature statistics need at least 2 samples, got ${N}`);
    if (this.filled > 0) this.flush();
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
  if (n * dim !== features.length)
    throw new UserError(`features: ${features.length} values do not form [${n}, ${dim}]`);
  const acc = new StatsAccumulator(dim);
  acc.add(features, n);
  return acc.finalize();
}
