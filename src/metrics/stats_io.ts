// Feature statistics on disk: `.npz` with exactly `mu` (float64 [d]) and `sigma` (float64 [d, d]), as
// pytorch-fid (`np.savez(path, mu=mu, sigma=sigma)`) writes and reads them; the ADM evaluator's
// reference batches also hold `mu`/`sigma` (plus spatial `mu_s`/`sigma_s`, ignored here).
// Reference statistics are cached per (dataset fingerprint, preprocessing mode, N) under the XDG
// cache: $XDG_CACHE_HOME/fpdm-exp/stats/<fingerprint[0:16]>-<mode>-n<N>.npz.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { npzNames, readNpzArrays, writeNpz } from '../io/npy.js';
import { f64, toFloat64 } from '../io/tensor.js';
import { UserError } from '../util/errors.js';
import type { FeatureStats } from './statistics.js';
import { cacheDir } from './weights.js';
import type { PreprocessMode } from './preprocess.js';

export interface StatsPair {
  mu: Float64Array;
  sigma: Float64Array;
  dim: number;
}

export function writeStatsNpz(path: string, s: StatsPair | FeatureStats): void {
  writeNpz(path, { mu: f64([s.dim], s.mu), sigma: f64([s.dim, s.dim], s.sigma) });
}

export function readStatsNpz(path: string): StatsPair {
  // only mu and sigma are read: an ADM reference batch also holds arr_0 (its images, up to GBs)
  const arrays = readNpzArrays(path, ['mu', 'sigma']);
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) {
    throw new UserError(
      `'${path}' has no 'mu' and 'sigma' arrays (it has: ${npzNames(path).join(', ')}): pass statistics written by pytorch-fid --save-stats, the ADM evaluator or fpdm-exp fid --save-stats`,
    );
  }
  const d = mu.shape.length === 1 ? mu.shape[0]! : -1;
  if (d < 1 || sigma.shape.length !== 2 || sigma.shape[0] !== d || sigma.shape[1] !== d) {
    throw new UserError(
      `'${path}': mu has shape [${mu.shape.join(', ')}] and sigma [${sigma.shape.join(', ')}]; expected [d] and [d, d]`,
    );
  }
  return { mu: Float64Array.from(toFloat64(mu)), sigma: Float64Array.from(toFloat64(sigma)), dim: d };
}

export interface StatsCacheKey {
  /** content fingerprint of the image set (hex) */
  fingerprint: string;
  mode: PreprocessMode;
  n: number;
}

export function statsCachePath(key: StatsCacheKey): string {
  return join(cacheDir(), 'stats', `${key.fingerprint.slice(0, 16)}-${key.mode}-n${key.n}.npz`);
}

export function loadCachedStats(key: StatsCacheKey): StatsPair | undefined {
  const p = statsCachePath(key);
  return existsSync(p) ? readStatsNpz(p) : undefined;
}

export function saveCachedStats(key: StatsCacheKey, s: StatsPair | FeatureStats): string {
  const p = statsCachePath(key);
  writeStatsNpz(p, s);
  return p;
}

/** SHA-256 fingerprint of an image set from (name, content hash) pairs in order. */
export function imageSetFingerprint(items: Iterable<{ name: string; sha256: string }>): string {
  const h = createHash('sha256');
  h.update('fpdm-exp image set v1\n');
  for (const it of items) h.update(`${it.name}\t${it.sha256}\n`);
  return h.digest('hex');
}
