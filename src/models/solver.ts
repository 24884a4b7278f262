// Fixed-point solvers for FPDM's iteration z ← f(z).
//
//   fixed      exactly `iters` applications of f (the reference; what training and the paper use)
//   tolerance  plain iteration until the relative residual r_k = ‖f(z_k) − z_k‖ / ‖z_k‖ < tol, at most maxIters
//   anderson   Anderson acceleration (type II, window m, damping β, per sample), same stopping rule
//
// Residuals are over the whole batch (Frobenius norms of [N, T, D]). Iterations count applications of
// f (each costs one fixed-point block plus the fc1/fc2 projection). Every solve reports the residual
// of each iterate, so samplers and reports can show convergence.
//
// Host reads are asynchronous only (the webgpu backend cannot read synchronously under Node):
// solveFixedPointAsync runs every solver; the synchronous solveFixedPoint runs the fixed solver only,
// never reads the device, and returns tracked residuals as a tensor.
//
// Memory: every iteration runs in its own tf.tidy and the previous iterate is disposed, so outside a
// gradient scope memory does not grow with the number of iterations. Inside tf.variableGrads the
// engine keeps what backprop needs by itself (plain iteration is then unrolled for backprop; Anderson's
// mixing weights are computed on the host and act as constants).
import * as tf from '@tensorflow/tfjs-core';
import { relativeResidualKernel, residualVectorKernel, tapeRecording } from '../backends/kernels.js';
import { UserError } from '../util/errors.js';

export type SolverOptions =
  | { kind: 'fixed'; iters: number }
  | { kind: 'tolerance'; tol: number; maxIters: number }
  | {
      kind: 'anderson';
      tol: number;
      maxIters: number;
      /** history window m (default 5) */
      window?: number;
      /** damping β (default 1: no damping) */
      beta?: number;
      /** ridge on the normal equations, relative to their largest diagonal entry (default 1e-6) */
      lambda?: number;
      /** restart from the best iterate's image when a residual exceeds the best one by this factor (default 10) */
      restartFactor?: number;
    };
export type SolverKind = SolverOptions['kind'];

export interface SolveReport {
  solver: SolverKind;
  /** applications of f */
  iterations: number;
  /** residuals[k] = ‖f(z_k) − z_k‖ / ‖z_k‖ of the k-th iterate (empty when not tracked) */
  residuals: number[];
  /** for tolerance/anderson: whether the last residual fell below tol; null for fixed */
  converged: boolean | null;
  /** anderson: how many times the history was dropped because the residual blew up */
  restarts?: number;
}

interface SolveOptions {
  /**
   * compute residuals for the fixed solver: solveFixedPointAsync reads them once at the end (default
   * true); solveFixedPoint returns them as a tensor (default false)
   */
  trackResiduals?: boolean;
}

type StepFn = (z: tf.Tensor3D) => tf.Tensor3D;

export function validateSolver(s: SolverOptions): SolverOptions {
  const intAtLeast = (k: string, v: number, lo: number): void => {
    if (!Number.isInteger(v) || v < lo) throw new UserError(`solver: ${k} is ${v}, expected an integer >= ${lo}`);
  };
  if (s.kind === 'fixed') intAtLeast('iters', s.iters, 0);
  else {
    intAtLeast('maxIters', s.maxIters, 1);
    if (!(s.tol > 0)) throw new UserError(`solver: tol is ${s.tol}, expected a positive number`);
    if (s.kind === 'anderson') {
      if (s.window !== undefined) intAtLeast('window', s.window, 1);
      if (s.beta !== undefined && !(s.beta > 0 && s.beta <= 1))
        throw new UserError(`solver: beta is ${s.beta}, expected 0 < beta <= 1`);
    }
  }
  return s;
}

/**
 * ‖a − b‖ / ‖b‖ as a scalar tensor, as ONE op with a zero gradient that saves nothing: computed inside
 * a gradient scope (training tracks residuals) as plain ops, every iteration's sub/norm/pow/abs saved
 * its [N, T, D] inputs on the tape until the end of the backward, although the residual never reaches
 * the loss (+33 % peak training memory for 6 iterations of a small FPDM, tests/models/blockgrad.test.ts).
 */
const relResidualOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [next, prev] = args as [tf.Tensor, tf.Tensor];
  const [nextShape, prevShape] = [next.shape, prev.shape]; // shapes only: the inputs may be gone by then
  return {
    value: relativeResidual(next, prev),
    gradFunc: () => [tf.zeros(nextShape), tf.zeros(prevShape)],
  };
}) as (next: tf.Tensor, prev: tf.Tensor) => tf.Scalar;

/** ‖a − b‖ / (‖b‖ + 1e-12): direct dispatches where the backend has them, else TF.js ops. */
function relativeResidual(next: tf.Tensor, prev: tf.Tensor): tf.Scalar {
  return (
    relativeResidualKernel(next, prev) ??
    (tf.tidy(() => tf.div(tf.norm(tf.sub(next, prev)), tf.add(tf.norm(prev), 1e-12))) as tf.Scalar)
  );
}

/** The relative residual; as the op above only while a tape records (elsewhere the op would save nothing). */
const relResidual = (next: tf.Tensor, prev: tf.Tensor): tf.Scalar =>
  tapeRecording() ? relResidualOp(next, prev) : relativeResidual(next, prev);

/** What the synchronous fixed solver returns. */
export interface FixedSolveResult {
  z: tf.Tensor3D;
  /** report.residuals is always empty here: the synchronous solver never reads the device */
  report: SolveReport;
  /** [iterations] relative residuals, only with `trackResiduals: true`; owned by the caller (read it with `await .data()`) */
  residuals?: tf.Tensor1D;
}

/**
 * `iters` plain applications of f; with `track`, their residuals as one vector [iters] (owned by the
 * caller). Where no tape records and the backend can, each residual is written straight into that
 * vector on the device (no stack kernel). z0 is never disposed.
 */
function iterateFixed(
  f: StepFn,
  z0: tf.Tensor3D,
  iters: number,
  track: boolean,
): { z: tf.Tensor3D; residuals?: tf.Tensor1D } {
  const direct = track && !tapeRecording() ? residualVectorKernel(iters) : null;
  let z = z0;
  const res: tf.Scalar[] = [];
  try {
    for (let k = 0; k < iters; k++) {
      const prev = z;
      const { next, r } = tf.tidy(() => {
        const next = f(prev);
        if (direct) direct.record(k, next, prev);
        return { next, r: track && !direct ? relResidual(next, prev) : undefined };
      });
      if (prev !== z0) prev.dispose();
      z = next;
      if (r) res.push(r);
    }
  } catch (e) {
    tf.dispose(res);
    direct?.vector.dispose();
    if (z !== z0) z.dispose();
    throw e;
  }
  if (!track) return { z };
  if (direct) return { z, residuals: direct.vector };
  const residuals = res.length > 0 ? (tf.stack(res) as tf.Tensor1D) : tf.tensor1d([]);
  tf.dispose(res);
  return { z, residuals };
}

function needsAsync(kind: SolverKind, where: string, asyncName: string): Error {
  return new Error(
    `${where}: the '${kind}' solver reads residuals on the host every iteration, which cannot be done synchronously (webgpu under Node); call ${asyncName} instead`,
  );
}

/**
 * Solves z = f(z) from z0 with a FIXED number of iterations, without any host read (usable inside
 * tf.variableGrads and on every backend). The tolerance and Anderson solvers need host reads: they
 * throw here (use solveFixedPointAsync). With `trackResiduals: true` (default false here) the
 * residuals come back as a tensor, not as numbers. The caller keeps ownership of z0 (never disposed);
 * the returned z is a new tensor owned by the caller (for 0 iterations, a clone of z0).
 */
export function solveFixedPoint(
  f: StepFn,
  z0: tf.Tensor3D,
  opts: SolverOptions,
  so: SolveOptions = {},
): FixedSolveResult {
  validateSolver(opts);
  if (opts.kind !== 'fixed') throw needsAsync(opts.kind, 'solveFixedPoint', 'solveFixedPointAsync');
  const { z, residuals } = iterateFixed(f, z0, opts.iters, so.trackResiduals === true);
  const report: SolveReport = { solver: 'fixed', iterations: opts.iters, residuals: [], converged: null };
  return { z: z === z0 ? tf.clone(z0) : z, report, ...(residuals ? { residuals } : {}) };
}

/**
 * Solves z = f(z) from z0 with any solver, reading residuals asynchronously (`await .data()`):
 * fixed (residuals tracked unless `trackResiduals: false`, one read at the end), tolerance (one read
 * per iteration), Anderson. The caller keeps ownership of z0 (never disposed); the returned z is a new
 * tensor owned by the caller (for 0 fixed iterations, a clone of z0).
 */
export async function solveFixedPointAsync(
  f: StepFn,
  z0: tf.Tensor3D,
  opts: SolverOptions,
  so: SolveOptions = {},
): Promise<{ z: tf.Tensor3D; report: SolveReport }> {
  validateSolver(opts);
  if (opts.kind === 'anderson') return anderson(f, z0, opts);
  if (opts.kind === 'fixed') {
    const { z, residuals: all } = iterateFixed(f, z0, opts.iters, so.trackResiduals !== false);
    const residuals: number[] = [];
    if (all) {
      try {
        if (all.size > 0) residuals.push(...(await all.data()));
      } finally {
        all.dispose();
      }
    }
    return {
      z: z === z0 ? tf.clone(z0) : z,
      report: { solver: 'fixed', iterations: opts.iters, residuals, converged: null },
    };
  }
  let z = z0;
  const residuals: number[] = [];
  let converged = false;
  let k = 0;
  try {
    for (; k < opts.maxIters; k++) {
      const prev = z;
      const { next, r } = tf.tidy(() => {
        const next = f(prev);
        return { next, r: relResidual(next, prev) };
      });
      if (prev !== z0) prev.dispose();
      z = next;
      let v: number;
      try {
        v = (await r.data())[0]!;
      } finally {
        r.dispose();
      }
      residuals.push(v);
      if (v < opts.tol) {
        converged = true;
        k++;
        break;
      }
    }
  } catch (e) {
    if (z !== z0) z.dispose();
    throw e;
  }
  return { z: z === z0 ? tf.clone(z0) : z, report: { solver: opts.kind, iterations: k, residuals, converged } };
}

/** Solves the bordered system [0 1ᵀ; 1 H] [μ; α] = [1; 0] for α (Σα = 1, min ‖Σ α_i G_i‖). */
function andersonWeights(h: Float64Array, n: number): Float64Array {
  const m = n + 1;
  const a = new Float64Array(m * m);
  const b = new Float64Array(m);
  b[0] = 1;
  for (let i = 1; i < m; i++) {
    a[i] = 1;
    a[i * m] = 1;
    for (let j = 1; j < m; j++) a[i * m + j] = h[(i - 1) * n + (j - 1)]!;
  }
  // Gaussian elimination with partial pivoting
  for (let col = 0; col < m; col++) {
    let piv = col;
    for (let r = col + 1; r < m; r++) if (Math.abs(a[r * m + col]!) > Math.abs(a[piv * m + col]!)) piv = r;
    if (piv !== col) {
      for (let j = 0; j < m; j++) [a[col * m + j], a[piv * m + j]] = [a[piv * m + j]!, a[col * m + j]!];
      [b[col], b[piv]] = [b[piv]!, b[col]!];
    }
    const d = a[col * m + col]!;
    if (Math.abs(d) < 1e-300) continue;
    for (let r = col + 1; r < m; r++) {
      const fct = a[r * m + col]! / d;
      if (fct === 0) continue;
      for (let j = col; j < m; j++) a[r * m + j] = a[r * m + j]! - fct * a[col * m + j]!;
      b[r] = b[r]! - fct * b[col]!;
    }
  }
  const x = new Float64Array(m);
  for (let r = m - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let j = r + 1; j < m; j++) s -= a[r * m + j]! * x[j]!;
    const d = a[r * m + r]!;
    x[r] = Math.abs(d) < 1e-300 ? 0 : s / d;
  }
  return x.subarray(1);
}

/**
 * Anderson acceleration (Walker & Ni 2011; the form used for DEQs): keep the last m iterates X_i and
 * their images F_i = f(X_i); per sample, α = argmin ‖Σ α_i (F_i − X_i)‖ subject to Σ α_i = 1 (with a
 * small ridge λ), then X_next = β Σ α_i F_i + (1 − β) Σ α_i X_i. Safeguard: when a residual exceeds
 * `restartFactor` × the best so far, the history is dropped and iteration restarts from the best
 * iterate's image (plain Anderson can diverge on strongly nonlinear maps). Returns the image F of the
 * iterate with the smallest residual.
 */
async function anderson(
  f: StepFn,
  z0: tf.Tensor3D,
  o: Extract<SolverOptions, { kind: 'anderson' }>,
): Promise<{ z: tf.Tensor3D; report: SolveReport }> {
  const m = o.window ?? 5;
  const beta = o.beta ?? 1.0;
  const lambda = o.lambda ?? 1e-6;
  const restartFactor = o.restartFactor ?? 10;
  const shape = z0.shape;
  const [n] = shape;
  const X: tf.Tensor2D[] = []; // iterates, flattened per sample [N, L]
  const F: tf.Tensor2D[] = []; // their images [N, L]
  const residuals: number[] = [];
  let converged = false;
  let restarts = 0;
  let best: { f: tf.Tensor2D; r: number } | undefined; // a kept copy of the best image
  let x: tf.Tensor2D = tf.reshape(z0, [n, -1]); // [N, L]: a new handle on z0's data; disposing it leaves z0 alive
  let iterations = 0;
  const clearHistory = (): void => {
    tf.dispose([...X, ...F]);
    X.length = 0;
    F.length = 0;
  };
  while (iterations < o.maxIters) {
    const xi = x;
    const { fx, r } = tf.tidy(() => {
      const fx = tf.reshape(f(tf.reshape(xi, shape) as tf.Tensor3D), [n, -1]) as tf.Tensor2D;
      return { fx, r: relResidual(fx, xi) };
    });
    iterations++;
    let rv: number;
    try {
      rv = (await r.data())[0]!;
    } finally {
      r.dispose();
    }
    residuals.push(rv);
    if (!best || rv < best.r) {
      best?.f.dispose();
      best = { f: tf.clone(fx), r: rv };
    }
    if (rv < o.tol) {
      converged = true;
      tf.dispose([xi, fx]);
      break;
    }
    if (iterations >= o.maxIters) {
      tf.dispose([xi, fx]);
      break;
    }
    if (!Number.isFinite(rv) || rv > restartFactor * best.r) {
      // blow-up: forget the history and restart from the best image
      tf.dispose([xi, fx]);
      clearHistory();
      restarts++;
      x = tf.clone(best.f);
      continue;
    }
    X.push(xi);
    F.push(fx);
    if (X.length > m) {
      X.shift()!.dispose();
      F.shift()!.dispose();
    }
    const k = X.length;
    const H = tf.tidy(() => {
      const G = tf.stack(
        F.map((fi, i) => tf.sub(fi, X[i]!)),
        1,
      ); // [N, k, L]
      return tf.matMul(G, G, false, true); // [N, k, k]
    });
    let hv: Float32Array;
    try {
      hv = (await H.data()) as Float32Array;
    } finally {
      H.dispose();
    }
    const alpha = new Float32Array(n * k);
    for (let s = 0; s < n; s++) {
      const h = new Float64Array(k * k);
      let scale = 0;
      for (let i = 0; i < k; i++) scale = Math.max(scale, hv[s * k * k + i * k + i]!);
      for (let i = 0; i < k * k; i++) h[i] = hv[s * k * k + i]!;
      for (let i = 0; i < k; i++) h[i * k + i] = h[i * k + i]! + lambda * Math.max(scale, 1e-30);
      alpha.set(andersonWeights(h, k), s * k);
    }
    x = tf.tidy(() => {
      const a = tf.tensor3d(alpha, [n, k, 1]); // [N, k, 1]
      const fMix = tf.sum(tf.mul(a, tf.stack(F, 1)), 1); // [N, L]
      if (beta === 1) return fMix as tf.Tensor2D;
      const xMix = tf.sum(tf.mul(a, tf.stack(X, 1)), 1);
      return tf.add(tf.mul(fMix, beta), tf.mul(xMix, 1 - beta)) as tf.Tensor2D;
    });
  }
  clearHistory();
  const z = tf.reshape(best!.f, shape) as tf.Tensor3D;
  best!.f.dispose(); // z holds its own handle on the data
  return { z, report: { solver: 'anderson', iterations, residuals, converged, restarts } };
}
