// A tiny deterministic synthetic dataset for tests and smoke runs: class-dependent Gaussian blobs.
//
// Image i has label i mod K. Its blob sits on a circle around the image centre at angle 2π·label/K
// (radius imageSize/4), jittered by up to ±1 px, with σ = imageSize/8; channel c of a 3-channel
// image has the class colour 0.5 + 0.5·cos(2π·label/K + 2π·c/3). Pixel = −1 + 2·colour·blob +
// 0.05·noise, clamped to [−1, 1]. All randomness comes from Rng(`${seed}/${i}`), so image i does not
// depend on which other images are read, or in what order.
import { createHash } from 'node:crypto';
import { ensure } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { checkIndices, type Batch, type Dataset } from './dataset.js';

export interface SyntheticOptions {
  size?: number; // default 512
  numClasses?: number; // default 4
  imageSize?: number; // default 32
  channels?: 1 | 3; // default 3
  seed?: number; // default 0
}

/** Image i, [C, H, W] in [−1, 1], and its label. */
export function syntheticImage(i: number, o: Required<SyntheticOptions>): { x: Float32Array; label: number } {
  const { numClasses: k, imageSize: s, channels: c, seed } = o;
  const rng = new Rng(`${seed}/${i}`);
  const label = i % k;
  const angle = (2 * Math.PI * label) / k;
  const cx = s / 2 + (s / 4) * Math.cos(angle) + rng.int(-1, 1);
  const cy = s / 2 + (s / 4) * Math.sin(angle) + rng.int(-1, 1);
  const sigma = s / 8;
  const noise = rng.normals(c * s * s);
  const x = new Float32Array(c * s * s); // [C, H, W]
  for (let ch = 0; ch < c; ch++) {
    const colour = c === 1 ? 1 : 0.5 + 0.5 * Math.cos(angle + (2 * Math.PI * ch) / 3);
    for (let yy = 0; yy < s; yy++) {
      for (let xx = 0; xx < s; xx++) {
        const blob = Math.exp(-((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) / (2 * sigma * sigma));
        const j = (ch * s + yy) * s + xx;
        x[j] = Math.min(1, Math.max(-1, -1 + 2 * colour * blob + 0.05 * noise[j]!));
      }
    }
  }
  return { x, label };
}

export function openSynthetic(opts: SyntheticOptions = {}): Dataset {
  const o: Required<SyntheticOptions> = {
    size: opts.size ?? 512,
    numClasses: opts.numClasses ?? 4,
    imageSize: opts.imageSize ?? 32,
    channels: opts.channels ?? 3,
    seed: opts.seed ?? 0,
  };
  ensure(Number.isInteger(o.size) && o.size >= 1, `synthetic size must be a positive integer (got ${o.size})`);
  ensure(
    Number.isInteger(o.numClasses) && o.numClasses >= 1,
    `synthetic numClasses must be a positive integer (got ${o.numClasses})`,
  );
  ensure(
    Number.isInteger(o.imageSize) && o.imageSize >= 4 && o.imageSize <= 512,
    `synthetic image size must be an integer in [4, 512] (got ${o.imageSize})`,
  );
  ensure(o.channels === 1 || o.channels === 3, `synthetic channels must be 1 or 3 (got ${o.channels})`);
  ensure(Number.isInteger(o.seed), `synthetic seed must be an integer (got ${o.seed})`);
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ kind: 'synthetic', generator: 'blobs-v1', ...o }))
    .digest('hex');
  const chw = o.channels * o.imageSize * o.imageSize;
  const ds: Dataset = {
    kind: 'synthetic',
    name: `synthetic/blobs-${o.numClasses}x${o.size}-seed${o.seed}`,
    size: o.size,
    numClasses: o.numClasses,
    labeled: true,
    classNames: Array.from({ length: o.numClasses }, (_, k) => `blob${k}`),
    channels: o.channels,
    imageSize: o.imageSize,
    fingerprint,
    batch: (indices: ArrayLike<number>): Promise<Batch> => {
      checkIndices(ds, indices);
      const n = indices.length;
      const x = new Float32Array(n * chw); // [N, C, H, W]
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const img = syntheticImage(indices[i]!, o);
        x.set(img.x, i * chw);
        y[i] = img.label;
      }
      return Promise.resolve({ x, y, shape: [n, o.channels, o.imageSize, o.imageSize] });
    },
  };
  return ds;
}
