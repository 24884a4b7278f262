// The metric stages composed for one input (see inputs.ts for what an input may be):
// input → [preprocess → Inception features] → statistics, with the FID network loaded lazily (only
// when an input holds images) and reference statistics cached by (fingerprint of images and weights,
// mode, N).
import { log } from '../util/log.js';
import { UserError } from '../util/errors.js';
import type { FeatureSet } from './features.js';
import { FidInception } from './inception.js';
import { classifyInput, openImageSource, readFeatureFile, readStats, type InputKind } from './inputs.js';
import type { PreprocessMode } from './preprocess.js';
import { featureStats } from './statistics.js';
import { loadCachedStats, saveCachedStats, statsCachePath, type StatsPair } from './stats_io.js';
import { resolveInceptionWeights, sha256File } from './weights.js';
import { createHash } from 'node:crypto';

/** Loads the FID Inception network on first use (after initialising the backend). */
export class LazyInception {
  private net: FidInception | undefined;
  weightsPath: string | undefined;

  constructor(
    private readonly weightsOpt: string | undefined,
    private readonly initBackend: () => Promise<unknown>,
  ) {}

  private weightsSha: string | undefined;

  /** SHA-256 of the weights file (part of the statistics cache key: other weights, other features). */
  async weightsId(): Promise<string> {
    this.weightsPath ??= resolveInceptionWeights(this.weightsOpt);
    this.weightsSha ??= await sha256File(this.weightsPath);
    return this.weightsSha;
  }

  async get(): Promise<FidInception> {
    if (!this.net) {
      this.weightsPath ??= resolveInceptionWeights(this.weightsOpt);
      await this.initBackend();
      log(`loading the FID Inception weights from ${this.weightsPath}`);
      this.net = FidInception.load(this.weightsPath);
    }
    return this.net;
  }

  /** whether the network was loaded (and so a backend initialised) */
  get loaded(): boolean {
    return this.net !== undefined;
  }

  dispose(): void {
    this.net?.dispose();
    this.net = undefined;
  }
}

export interface PipelineOptions {
  mode: PreprocessMode;
  batch: number;
  net: LazyInception;
  /** use and fill the reference-statistics cache for image inputs (default true) */
  cache?: boolean;
}

export interface InputInfo {
  path: string;
  kind: InputKind;
  n?: number;
  /** preprocessing mode the values were computed with; 'unknown' for statistics/features from elsewhere */
  mode: string;
  cached?: boolean;
}

function progress(label: string): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done === total || now - last > 5000) {
      log(`${label}: ${done}/${total} images`);
      last = now;
    }
  };
}

async function extractImages(
  path: string,
  kind: 'folder' | 'images',
  o: PipelineOptions,
  extra: { blocks?: boolean; logits?: boolean } = {},
): Promise<FeatureSet> {
  const src = openImageSource(path, kind);
  const net = await o.net.get();
  return src.extract(net, { mode: o.mode, batch: o.batch, ...extra, onProgress: progress(path) });
}

/** μ, Σ of an input. */
export async function statsOf(path: string, o: PipelineOptions): Promise<{ stats: StatsPair; info: InputInfo }> {
  const kind = classifyInput(path);
  if (kind === 'stats') return { stats: readStats(path), info: { path, kind, mode: 'unknown' } };
  if (kind === 'features') {
    const f = readFeatureFile(path);
    const s = featureStats(f.data, f.n, f.dim);
    return { stats: s, info: { path, kind, n: f.n, mode: f.mode ?? 'unknown' } };
  }
  const src = openImageSource(path, kind);
  // the key covers the images, the weights (their SHA-256), the mode and N
  const fingerprint = createHash('sha256')
    .update(`${src.fingerprint}\n${await o.net.weightsId()}`)
    .digest('hex');
  const key = { fingerprint, mode: o.mode, n: src.n };
  if (o.cache !== false) {
    const hit = loadCachedStats(key);
    if (hit) {
      log(`${path}: using cached statistics ${statsCachePath(key)}`);
      return { stats: hit, info: { path, kind, n: src.n, mode: o.mode, cached: true } };
    }
  }
  const net = await o.net.get();
  const fs = await src.extract(net, { mode: o.mode, batch: o.batch, onProgress: progress(path) });
  const stats = featureStats(fs.features, fs.n, fs.dim);
  if (o.cache !== false) saveCachedStats(key, stats);
  return { stats, info: { path, kind, n: src.n, mode: o.mode, cached: false } };
}

/** Feature rows [N, F] of an input (statistics files cannot give them). */
export async function featuresOf(
  path: string,
  o: PipelineOptions,
  what = 'this metric',
): Promise<{ data: ArrayLike<number>; n: number; dim: number; info: InputInfo }> {
  const kind = classifyInput(path);
  if (kind === 'stats')
    throw new UserError(
      `${what} needs per-sample features, but '${path}' holds only statistics (mu, sigma): pass an image folder or a features .safetensors`,
    );
  if (kind === 'features') {
    const f = readFeatureFile(path);
    return { data: f.data, n: f.n, dim: f.dim, info: { path, kind, n: f.n, mode: f.mode ?? 'unknown' } };
  }
  const fs = await extractImages(path, kind, o);
  return { data: fs.features, n: fs.n, dim: fs.dim, info: { path, kind, n: fs.n, mode: o.mode } };
}

/** fc logits [N, 1008] of an input (images, or a features file written with logits). */
export async function logitsOf(
  path: string,
  o: PipelineOptions,
): Promise<{ data: ArrayLike<number>; n: number; classes: number; info: InputInfo }> {
  const kind = classifyInput(path);
  if (kind === 'stats')
    throw new UserError(
      `the Inception Score needs class logits, but '${path}' holds only statistics: pass an image folder, an images .safetensors or features written with --logits`,
    );
  if (kind === 'features') {
    const f = readFeatureFile(path, 'logits');
    return { data: f.data, n: f.n, classes: f.dim, info: { path, kind, n: f.n, mode: f.mode ?? 'unknown' } };
  }
  const fs = await extractImages(path, kind, o, { logits: true });
  return { data: fs.logits!, n: fs.n, classes: 1008, info: { path, kind, n: fs.n, mode: o.mode } };
}

export { extractImages };
