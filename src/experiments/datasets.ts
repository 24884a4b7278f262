// Opens the dataset a spec names (training split, and the held-out split used as the "real" images of
// distribution metrics), applying `limit`. The fingerprint of the result is part of every run key.
import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import type { Batch, Dataset } from '../data/dataset.js';
import { openMnist } from '../data/mnist.js';
import { Rng } from '../util/rng.js';
import { canonicalJson } from '../store/json.js';
import { datasetShape, type DatasetSpec } from './spec.js';

export type DatasetRole = 'train' | 'reference';

/** The dataset of a spec for training (`train`) or as metric reference images (`reference`). */
export function openSpecDataset(d: DatasetSpec, role: DatasetRole = 'train'): Dataset {
  const shape = datasetShape(d);
  let ds: Dataset;
  switch (d.kind) {
    case 'mnist':
      ds = openMnist({ split: role === 'train' ? 'train' : 'heldout', imageSize: shape.imageSize, channels: 1 });
      break;
    case 'synthetic':
      ds = openSynthetic(d.size!, shape.imageSize, shape.channels as 1 | 3, shape.classes, role === 'train' ? 'train' : 'reference');
      break;
    case 'folder':
      throw new UserError(`dataset kind 'folder' (${d.path}) cannot be opened by this version: the image-folder loader is not available yet; use kind: mnist or synthetic`);
  }
  return d.limit !== undefined && d.limit < ds.size && role === 'train' ? limitDataset(ds, d.limit) : ds;
}

/** The first `n` images of a dataset (its documented order), with a fingerprint that says so. */
function limitDataset(ds: Dataset, n: number): Dataset {
  const fingerprint = createHash('sha256').update(canonicalJson({ of: ds.fingerprint, limit: n })).digest('hex');
  return {
    kind: ds.kind, name: `${ds.name}[:${n}]`, size: n, numClasses: ds.numClasses, labeled: ds.labeled, classNames: ds.classNames,
    channels: ds.channels, imageSize: ds.imageSize, fingerprint,
    batch: (indices) => {
      for (let i = 0; i < indices.length; i++) if (indices[i]! >= n) throw new Error(`${ds.name}[:${n}]: index ${indices[i]} out of range`);
      return ds.batch(indices);
    },
  };
}

/**
 * Synthetic images for tests and smoke runs: image i of class c is a smooth blob whose centre,
 * radius and contrast depend on (c, i) through a seeded generator, plus 5% noise; values in [−1, 1].
 * Deterministic: a function of (size, imageSize, channels, classes, split) only.
 */
export function openSynthetic(size: number, imageSize: number, channels: 1 | 3, classes: number, split: 'train' | 'reference'): Dataset {
  const hw = imageSize * imageSize;
  const fingerprint = createHash('sha256').update(canonicalJson({ kind: 'synthetic', version: 1, size, imageSize, channels, classes, split })).digest('hex');
  const render = (k: number): { x: Float32Array; y: number } => {
    const y = k % classes;
    const rng = new Rng(`synthetic/${split}/${k}`);
    const cx = (0.3 + 0.4 * ((y + 0.5) / classes)) * imageSize + (rng.uniform() - 0.5) * 2;
    const cy = (0.5 + 0.2 * (rng.uniform() - 0.5)) * imageSize;
    const r = imageSize * (0.15 + 0.1 * rng.uniform());
    const x = new Float32Array(channels * hw); // [C, H, W]
    for (let c = 0; c < channels; c++) {
      const gain = 0.8 + 0.2 * Math.cos(c + y);
      for (let py = 0; py < imageSize; py++) {
        for (let px = 0; px < imageSize; px++) {
          const d2 = ((px - cx) ** 2 + (py - cy) ** 2) / (r * r);
          const v = 2 * gain * Math.exp(-d2) - 1 + 0.05 * rng.normal();
          x[c * hw + py * imageSize + px] = Math.max(-1, Math.min(1, v));
        }
      }
    }
    return { x, y };
  };
  const ds: Dataset = {
    kind: 'synthetic', name: `synthetic/${split}`, size, numClasses: classes, labeled: classes > 1,
    classNames: Array.from({ length: classes }, (_, i) => String(i)), channels, imageSize, fingerprint,
    batch: (indices): Promise<Batch> => {
      const n = indices.length;
      const x = new Float32Array(n * channels * hw); // [N, C, H, W]
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const k = indices[i]!;
        if (!Number.isInteger(k) || k < 0 || k >= size) throw new Error(`synthetic/${split}: index ${k} out of range [0, ${size})`);
        const img = render(k);
        x.set(img.x, i * channels * hw);
        y[i] = img.y;
      }
      return Promise.resolve({ x, y, shape: [n, channels, imageSize, imageSize] });
    },
  };
  return ds;
}
