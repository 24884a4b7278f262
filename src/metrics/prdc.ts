// Improved precision and recall (Kynkäänniemi et al. 2019) with k = 3, plus density and coverage
// (Naeem et al. 2020), on feature rows [N, d]. Distances are squared euclidean; the k-NN radius of a
// point is its distance to the k-th nearest *other* point of its own set; a point counts as covered
// when its distance is <= a radius (the fixtures' convention, also used for density and coverage).
//   precision = fraction of fake points inside some real point's k-NN ball
//   recall    = fraction of real points inside some fake point's k-NN ball
//   density   = (1 / (k M)) Σ_fake #{real balls containing it}
//   coverage  = fraction of real points whose ball contains at least one fake point
import { UserError } from '../util/errors.js';

export interface PrdcResult {
  precision: number;
  recall: number;
  density: number;
  coverage: number;
  k: number;
}

/** Squared euclidean distances between rows of a [m, d] and b [n, d] → [m, n] row-major. */
export function pairwiseSqDist(
  a: ArrayLike<number>,
  m: number,
  b: ArrayLike<number>,
  n: number,
  d: number,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const oi = i * d;
    for (let j = 0; j < n; j++) {
      const oj = j * d;
      let s = 0;
      for (let k = 0; k < d; k++) {
        const t = a[oi + k]! - b[oj + k]!;
        s += t * t;
      }
      out[i * n + j] = s;
    }
  }
  return out;
}

/** Squared distance of every row of x [n, d] to its k-th nearest other row. */
export function kthNeighbourRadii(x: ArrayLike<number>, n: number, d: number, k: number): Float64Array {
  if (n <= k) throw new UserError(`precision/recall with k=${k} needs more than ${k} samples per set, got ${n}`);
  const dist = pairwiseSqDist(x, n, x, n, d);
  const radii = new Float64Array(n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.set(dist.subarray(i * n, i * n + n));
    row[i] = Infinity; // exclude the point itself
    row.sort();
    radii[i] = row[k - 1]!;
  }
  return radii;
}

/** Precision, recall, density and coverage of fake [M, d] against real [N, d]. */
export function precisionRecall(
  real: ArrayLike<number>,
  nReal: number,
  fake: ArrayLike<number>,
  nFake: number,
  d: number,
  k = 3,
): PrdcResult {
  if (real.length !== nReal * d || fake.length !== nFake * d)
    throw new UserError(`precision/recall: feature arrays do not match [${nReal}, ${d}] and [${nFake}, ${d}]`);
  const rReal = kthNeighbourRadii(real, nReal, d, k);
  const rFake = kthNeighbourRadii(fake, nFake, d, k);
  const dRF = pairwiseSqDist(real, nReal, fake, nFake, d); // [N, M]
  let precisionCount = 0;
  let densityCount = 0;
  for (let j = 0; j < nFake; j++) {
    let inside = 0;
    for (let i = 0; i < nReal; i++) if (dRF[i * nFake + j]! <= rReal[i]!) inside++;
    if (inside > 0) precisionCount++;
    densityCount += inside;
  }
  let recallCount = 0;
  let coverageCount = 0;
  for (let i = 0; i < nReal; i++) {
    let recalled = false;
    let nearest = Infinity;
    for (let j = 0; j < nFake; j++) {
      const v = dRF[i * nFake + j]!;
      if (v <= rFake[j]!) recalled = true;
      if (v < nearest) nearest = v;
    }
    if (recalled) recallCount++;
    if (nearest <= rReal[i]!) coverageCount++;
  }
  return {
    precision: precisionCount / nFake,
    recall: recallCount / nReal,
    density: densityCount / (k * nFake),
    coverage: coverageCount / nReal,
    k,
  };
}
