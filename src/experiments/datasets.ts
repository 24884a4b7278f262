// Opens the dataset a spec names (training split, and the held-out split used as the "real" images of
// distribution metrics), applying `limit`. The fingerprint of the result is part of every run key.
import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';
import type { Dataset } from '../data/dataset.js';
import { openDataset } from '../data/index.js';
import { canonicalJson } from '../store/json.js';
import { datasetShape, type DatasetSettings as DatasetSpec } from './settings.js';
import { decodedDataset, openSpecVae, type VaeSpec } from '../vae/spec.js';

export type DatasetRole = 'train' | 'reference';

/**
 * The dataset of a spec for training (`train`) or as the real images of distribution metrics
 * (`reference`): MNIST's held-out split; for synthetic data a second draw of the generator (seed 1);
 * for an image folder the folder itself (as the ADM reference batches are drawn from training data).
 * `limit` applies to training only. For latents, the reference images are the dataset's latents
 * decoded by the spec's VAE (`vae`) and quantised as samples are: with only latents at hand these are
 * the closest to the real images (their reconstructions), a stated deviation from FID against the
 * original images (give those as a folder or .npz to `fpdm-exp fid` for that).
 */
export async function openSpecDataset(d: DatasetSpec, role: DatasetRole = 'train', vae?: VaeSpec): Promise<Dataset> {
  const shape = datasetShape(d);
  let ds: Dataset;
  switch (d.kind) {
    case 'mnist':
      ds = await openDataset({
        kind: 'mnist',
        split: role === 'train' ? 'train' : 'heldout',
        imageSize: shape.imageSize,
        channels: 1,
      });
      break;
    case 'synthetic':
      ds = await openDataset({
        kind: 'synthetic',
        size: d.size,
        classes: shape.classes,
        seed: role === 'train' ? 0 : 1,
        imageSize: shape.imageSize,
        channels: shape.channels as 1 | 3,
      });
      break;
    case 'folder':
      ds = await openDataset({ kind: 'folder', path: d.path, imageSize: shape.imageSize, channels: d.channels });
      if (ds.numClasses !== shape.classes) {
        throw new UserError(
          `dataset.classes is ${shape.classes}${d.classes === undefined ? ' (the default: unconditional)' : ''} but the folder '${d.path}' has ${ds.numClasses} class${ds.numClasses === 1 ? '' : 'es'} (${ds.labeled ? 'one per sub-folder' : 'no sub-folders'}): set dataset.classes (flag --classes) to ${ds.numClasses}, or fix the folder`,
        );
      }
      break;
    case 'latents': {
      ds = await openDataset({ kind: 'latents', path: d.path, name: d.name });
      if (ds.channels !== shape.channels || ds.imageSize !== shape.imageSize) {
        throw new UserError(
          `the latents in '${d.path}' are ${ds.channels}×${ds.imageSize}×${ds.imageSize}, but the spec planned ${shape.channels}×${shape.imageSize}×${shape.imageSize} (dataset.imageSize, or the SD VAE's 4 channels): fix dataset.imageSize`,
        );
      }
      if (shape.classes > 1 && ds.numClasses > shape.classes) {
        throw new UserError(
          `dataset.classes is ${shape.classes} but the latent labels in '${d.path}' go up to ${ds.numClasses - 1}: fix dataset.classes`,
        );
      }
      // classes: 1 trains unconditionally on labelled latents, as the reference's --unsupervised (labels → 0)
      if (shape.classes === 1 && ds.numClasses > 1) ds = unlabeled(ds);
      if (role === 'reference' && vae) {
        const v = openSpecVae(vae);
        ds = decodedDataset(ds, v.vae, vae.batch, v.sha256);
      }
      break;
    }
  }
  return d.limit !== undefined && d.limit < ds.size && role === 'train' ? limitDataset(ds, d.limit) : ds;
}

/** The same data with every label 0 (an unconditional model on a labelled latent set). */
function unlabeled(ds: Dataset): Dataset {
  return {
    ...ds,
    numClasses: 1,
    labeled: false,
    classNames: ['all'],
    fingerprint: createHash('sha256')
      .update(canonicalJson({ of: ds.fingerprint, labels: 'zero' }))
      .digest('hex'),
    batch: async (indices) => {
      const b = await ds.batch(indices);
      return { ...b, y: new Int32Array(b.y.length) };
    },
  };
}

/** The first `n` images of a dataset (its documented order), with a fingerprint that says so. */
function limitDataset(ds: Dataset, n: number): Dataset {
  const fingerprint = createHash('sha256')
    .update(canonicalJson({ of: ds.fingerprint, limit: n }))
    .digest('hex');
  return {
    kind: ds.kind,
    name: `${ds.name}[:${n}]`,
    size: n,
    numClasses: ds.numClasses,
    labeled: ds.labeled,
    classNames: ds.classNames,
    channels: ds.channels,
    imageSize: ds.imageSize,
    fingerprint,
    batch: (indices) => {
      for (let i = 0; i < indices.length; i++)
        if (indices[i]! >= n) throw new Error(`${ds.name}[:${n}]: index ${indices[i]} out of range`);
      return ds.batch(indices);
    },
  };
}
