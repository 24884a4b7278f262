// Dense float64 linear algebra on the host for the metrics: matrix products and a symmetric
// eigensolver (Householder tridiagonalisation + implicit QR with Wilkinson shifts, Golub & Van Loan
// §8.3). Matrices are row-major Float64Array of n·n values. Written for the sizes FID needs (d ≤ 2048).

/** C = A·B for row-major A [n, k], B [k, m] → [n, m]. */
export function matmul(a: Float64Array, b: Float64Array, n: number, k: number, m: number): Float64Array {
  const c = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const ci = i * m;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      const bp = p * m;
      for (let j = 0; j < m; j++) c[ci + j]! += aip * b[bp + j]!;
    }
  }
  return c;
}

/** Aᵀ for row-major A [n, m] → [m, n]. */
export function transpose(a: Float64Array, n: number, m: number): Float64Array {
  const t = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) t[j * n + i] = a[i * m + j]!;
  return t;
}

export function trace(a: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i * n + i]!;
  return s;
}

export interface SymEig {
  /** eigenvalues, ascending */
  values: Float64Array;
  /** row i is the unit eigenvector of values[i] (so A = Vᵀ·diag(values)·V with V these rows); only when asked */
  vectors?: Float64Array;
}

/**
 * Eigen-decomposition of a symmetric matrix `a` [n, n] (only symmetry is assumed; `a` is not modified).
 * Step 1: Householder reflections reduce A to tridiagonal T = Qᵀ A Q.
 * Step 2: implicit symmetric QR steps with a Wilkinson shift chase the bulge until every off-diagonal
 * element is negligible; rotations are accumulated into the rows of Qᵀ when vectors are wanted.
 */
export function symmetricEigen(a: Float64Array, n: number, wantVectors = false): SymEig {
  const A = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(n - 1, 0));
  // Qt: rows are the columns of Q (so Q's accumulation and the later rotations touch whole rows)
  let Qt: Float64Array | undefined;
  if (wantVectors) {
    Qt = new Float64Array(n * n);
    for (let i = 0; i < n; i++) Qt[i * n + i] = 1;
  }
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  const w = new Float64Array(n);
  // Step 1: tridiagonalise. At step k the reflection H = I − β v vᵀ acts on indices k+1..n−1.
  for (let k = 0; k < n - 2; k++) {
    d[k] = A[k * n + k]!;
    const lo = k + 1;
    let sigma2 = 0;
    for (let i = lo; i < n; i++) sigma2 += A[i * n + k]! ** 2; // column k below the diagonal (lower triangle is kept current)
    const x0 = A[lo * n + k]!;
    const tail2 = sigma2 - x0 * x0;
    if (tail2 <= 0 || !(sigma2 > 0)) {
      e[k] = x0; // already tridiagonal in this column
      continue;
    }
    const sigma = Math.sqrt(sigma2);
    const alpha = x0 >= 0 ? -sigma : sigma;
    for (let i = lo; i < n; i++) v[i] = A[i * n + k]!;
    v[lo] = x0 - alpha;
    const beta = 2 / (2 * sigma2 - 2 * alpha * x0); // 2 / vᵀv
    e[k] = alpha;
    // p = β A22 v ; K = β vᵀp / 2 ; w = p − K v ; A22 ← A22 − v wᵀ − w vᵀ
    // Only the lower triangle of A22 is read and updated (row-major, contiguous): the product with
    // the upper part uses symmetry (A_ji = A_ij), accumulated in the same pass.
    for (let i = lo; i < n; i++) p[i] = 0;
    for (let i = lo; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      let s = 0;
      for (let j = lo; j < i; j++) {
        const aij = A[row + j]!;
        s += aij * v[j]!;
        p[j]! += aij * vi;
      }
      p[i]! += s + A[row + i]! * vi;
    }
    let vp = 0;
    for (let i = lo; i < n; i++) {
      p[i]! *= beta;
      vp += v[i]! * p[i]!;
    }
    const K = (beta * vp) / 2;
    for (let i = lo; i < n; i++) w[i] = p[i]! - K * v[i]!;
    for (let i = lo; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      const wi = w[i]!;
      for (let j = lo; j <= i; j++) A[row + j]! -= vi * w[j]! + wi * v[j]!;
    }
    if (Qt) {
      // Qtᵀ accumulates H_k … H_0: Qt ← H_k Qt, a rank-one update of rows lo..n−1
      const u = p; // reuse as the row vector vᵀQt
      u.fill(0);
      for (let i = lo; i < n; i++) {
        const vi = v[i]!;
        const row = i * n;
        for (let j = 0; j < n; j++) u[j]! += vi * Qt[row + j]!;
      }
      for (let i = lo; i < n; i++) {
        const f = beta * v[i]!;
        const row = i * n;
        for (let j = 0; j < n; j++) Qt[row + j]! -= f * u[j]!;
      }
    }
  }
  if (n >= 2) {
    d[n - 2] = A[(n - 2) * n + n - 2]!;
    e[n - 2] = A[(n - 1) * n + n - 2]!;
  }
  if (n >= 1) d[n - 1] = A[(n - 1) * n + n - 1]!;

  // Step 2: implicit QR on (d, e).
  const eps = Number.EPSILON;
  let hi = n - 1;
  let iter = 0;
  const maxIter = 60 * Math.max(n, 1);
  while (hi > 0) {
    if (Math.abs(e[hi - 1]!) <= eps * (Math.abs(d[hi - 1]!) + Math.abs(d[hi]!))) {
      e[hi - 1] = 0;
      hi--;
      continue;
    }
    if (++iter > maxIter) throw new Error(`symmetricEigen: QR iteration did not converge (n=${n})`);
    let lo = hi - 1;
    while (lo > 0 && Math.abs(e[lo - 1]!) > eps * (Math.abs(d[lo - 1]!) + Math.abs(d[lo]!))) lo--;
    // Wilkinson shift: the eigenvalue of the trailing 2×2 block closer to d[hi]
    const dd = (d[hi - 1]! - d[hi]!) / 2;
    const b = e[hi - 1]!;
    const mu = d[hi]! - (b * b) / (dd + (dd >= 0 ? 1 : -1) * Math.hypot(dd, b));
    let x = d[lo]! - mu;
    let z = e[lo]!;
    for (let k = lo; k < hi; k++) {
      const r = Math.hypot(x, z);
      const c = r === 0 ? 1 : x / r;
      const s = r === 0 ? 0 : z / r;
      if (k > lo) e[k - 1] = r;
      // T ← R T Rᵀ on rows/columns k, k+1 with R = [[c, s], [−s, c]]
      const a0 = d[k]!;
      const b0 = e[k]!;
      const a1 = d[k + 1]!;
      d[k] = c * c * a0 + 2 * c * s * b0 + s * s * a1;
      d[k + 1] = s * s * a0 - 2 * c * s * b0 + c * c * a1;
      e[k] = c * s * (a1 - a0) + (c * c - s * s) * b0;
      if (k + 1 < hi) {
        z = s * e[k + 1]!; // the bulge at (k+2, k)
        e[k + 1] = c * e[k + 1]!;
        x = e[k]!;
      }
      if (Qt) {
        const rk = k * n;
        const rk1 = (k + 1) * n;
        for (let j = 0; j < n; j++) {
          const q0 = Qt[rk + j]!;
          const q1 = Qt[rk1 + j]!;
          Qt[rk + j] = c * q0 + s * q1;
          Qt[rk1 + j] = -s * q0 + c * q1;
        }
      }
    }
  }

  // sort ascending
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i]! - d[j]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  if (!Qt) return { values };
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => vectors.set(Qt!.subarray(src * n, src * n + n), dst * n));
  return { values, vectors };
}

/** B = V·S·Vᵀ for row-major V [n, n] and symmetric S [n, n] (only the lower half is computed, then mirrored). */
export function congruence(v: Float64Array, s: Float64Array, n: number): Float64Array {
  const t = matmul(v, s, n, n, n); // [n, n] = V·S
  const b = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ti = i * n;
    for (let j = 0; j <= i; j++) {
      const vj = j * n;
      let acc = 0;
      for (let k = 0; k < n; k++) acc += t[ti + k]! * v[vj + k]!;
      b[ti + j] = acc;
      b[j * n + i] = acc;
    }
  }
  return b;
}

/**
 * Cholesky factor L (lower, row-major) of a symmetric positive definite matrix, or undefined when a
 * pivot is not clearly positive (≤ n·ε·max diag), i.e. the matrix is singular to working precision.
 */
export function cholesky(a: Float64Array, n: number): Float64Array | undefined {
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, Math.abs(a[i * n + i]!));
  const tol = n * Number.EPSILON * maxDiag;
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j]!;
    for (let k = 0; k < j; k++) s -= L[rj + k]! ** 2;
    if (!(s > tol)) return undefined;
    const ljj = Math.sqrt(s);
    L[rj + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j]!;
      for (let k = 0; k < j; k++) t -= L[ri + k]! * L[rj + k]!;
      L[ri + j] = t / ljj;
    }
  }
  return L;
}

/** M = Lᵀ S L for lower-triangular L [n, n] and symmetric S [n, n]; symmetric result, row-major. */
export function lowerCongruence(L: Float64Array, s: Float64Array, n: number): Float64Array {
  // T = S·L: T[i, j] = Σ_{k ≥ j} S[i, k] L[k, j]
  const T = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ti = i * n;
    for (let k = 0; k < n; k++) {
      const sik = s[ti + k]!;
      if (sik === 0) continue;
      const lk = k * n;
      for (let j = 0; j <= k; j++) T[ti + j]! += sik * L[lk + j]!;
    }
  }
  // M = Lᵀ·T: M[i, j] = Σ_{k ≥ i} L[k, i] T[k, j]; only j ≤ i, then mirrored
  const M = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const lk = k * n;
    for (let i = 0; i <= k; i++) {
      const lki = L[lk + i]!;
      if (lki === 0) continue;
      const mi = i * n;
      for (let j = 0; j <= i; j++) M[mi + j]! += lki * T[lk + j]!;
    }
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) M[j * n + i] = M[i * n + j]!;
  return M;
}

/**
 * Pivoted (rank-revealing) Cholesky of a symmetric positive semi-definite matrix: Σ ≈ G Gᵀ with
 * G [n, r] (row-major, rows in the original order), r the numerical rank. Pivoting picks the largest
 * remaining diagonal; it stops when that is ≤ n·ε·max diag (the rest is zero to working precision).
 */
export function pivotedCholesky(a: Float64Array, n: number): { G: Float64Array; rank: number } {
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, a[i * n + i]!);
  const tol = n * Number.EPSILON * maxDiag;
  const diag = Float64Array.from({ length: n }, (_, i) => a[i * n + i]!);
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  const L = new Float64Array(n * n); // row q holds G[q, 0..k)
  let k = 0;
  for (; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (diag[perm[i]!]! > diag[perm[p]!]!) p = i;
    const piv = perm[p]!;
    if (!(diag[piv]! > tol)) break;
    perm[p] = perm[k]!;
    perm[k] = piv;
    const lkk = Math.sqrt(diag[piv]!);
    const rp = piv * n;
    L[rp + k] = lkk;
    for (let i = k + 1; i < n; i++) {
      const q = perm[i]!;
      const rq = q * n;
      let t = a[rq + piv]!;
      for (let j = 0; j < k; j++) t -= L[rq + j]! * L[rp + j]!;
      const lqk = t / lkk;
      L[rq + k] = lqk;
      diag[q]! -= lqk * lqk;
    }
  }
  const r = k;
  const G = new Float64Array(n * r);
  for (let q = 0; q < n; q++) G.set(L.subarray(q * n, q * n + r), q * r);
  return { G, rank: r };
}

/** M = Gᵀ S G for G [n, r] and symmetric S [n, n] → [r, r] symmetric. */
export function gramCongruence(G: Float64Array, s: Float64Array, n: number, r: number): Float64Array {
  const T = matmul(s, G, n, n, r); // [n, r] S·G
  const Gt = transpose(G, n, r); // [r, n]
  const Tt = transpose(T, n, r); // [r, n]
  const M = new Float64Array(r * r);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      const gi = i * n;
      const tj = j * n;
      for (let k = 0; k < n; k++) acc += Gt[gi + k]! * Tt[tj + k]!;
      M[i * r + j] = acc;
      M[j * r + i] = acc;
    }
  }
  return M;
}
