// Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) ‖ p(y))) over contiguous splits.
// As in the original code: the N predictions are cut into `splits` contiguous parts of ⌊N/splits⌋
// rows (a remainder is dropped), p(y) is each part's mean; reported as mean and population std.
import { UserError } from '../util/errors.js';

export interface InceptionScoreResult {
  mean: number;
  std: number;
  splits: number;
}

/** Row-wise softmax of logits [N, C] in float64 (max-subtracted). */
export function softmaxRows(logits: ArrayLike<number>, n: number, c: number): Float64Array {
  const p = new Float64Array(n * c);
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let j = 0; j < c; j++) mx = Math.max(mx, logits[i * c + j]!);
    let s = 0;
    for (let j = 0; j < c; j++) s += p[i * c + j] = Math.exp(logits[i * c + j]! - mx);
    for (let j = 0; j < c; j++) p[i * c + j]! /= s;
  }
  return p;
}

/** IS from class probabilities probs [N, C] (rows sum to 1). */
export function inceptionScore(probs: ArrayLike<number>, n: number, c: number, splits = 10): InceptionScoreResult {
  if (probs.length !== n * c) throw new UserError(`Inception Score: ${probs.length} values do not form [${n}, ${c}]`);
  if (!Number.isInteger(splits) || splits < 1)
    throw new UserError(`Inception Score: splits must be a positive integer, got ${splits}`);
  const part = Math.floor(n / splits);
  if (part < 1)
    throw new UserError(
      `Inception Score: ${n} samples cannot be cut into ${splits} splits; pass fewer splits or more samples`,
    );
  const scores: number[] = [];
  const py = new Float64Array(c);
  for (let s = 0; s < splits; s++) {
    py.fill(0);
    for (let i = s * part; i < (s + 1) * part; i++) for (let j = 0; j < c; j++) py[j]! += probs[i * c + j]! / part;
    let kl = 0;
    for (let i = s * part; i < (s + 1) * part; i++) {
      for (let j = 0; j < c; j++) {
        const p = probs[i * c + j]!;
        if (p > 0) kl += p * (Math.log(p) - Math.log(py[j]!));
      }
    }
    scores.push(Math.exp(kl / part));
  }
  const mean = scores.reduce((a, b) => a + b, 0) / splits;
  const std = Math.sqrt(scores.reduce((a, v) => a + (v - mean) ** 2, 0) / splits);
  return { mean, std, splits };
}

/** IS from logits [N, C]. */
export function inceptionScoreFromLogits(
  logits: ArrayLike<number>,
  n: number,
  c: number,
  splits = 10,
): InceptionScoreResult {
  return inceptionScore(softmaxRows(logits, n, c), n, c, splits);
}
