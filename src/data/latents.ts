// Latent datasets in the layout the official FPDM / fast-DiT training code reads:
//
//   DIR/<name>_features/<i>.npy   float32 '<f4', C-order, shape (1, E, h, w)   (1, 4, 32, 32) at 256 px
//   DIR/<name>_labels/<i>.npy     int64   '<i8', shape (1,)                     class index
//
// `i` counts 0..N−1 without padding; both folders hold the same file names; `.npy` is version 1.0 with
// the header padded to 64 bytes as np.save writes it (io/npy.ts). The stored value is already
// ×scaling_factor (0.18215). `<name>` is `imagenet256` in the reference; any name is read.
// Reading pairs features and labels by identical file name (the official loader pairs two unsorted
// os.listdir results by position, which only works when both list alike); items are ordered by
// numeric name (0, 1, 2, …, 10), names that are not integers after them by code point. Every label is
// read when the folder is opened (counts, classes); features are read per batch and each is checked.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { encodeNpy, parseNpy } from '../io/npy.js';
import { toFloat32, type HostTensor } from '../io/tensor.js';
import { UserError, isNodeError } from '../util/errors.js';
import { atomicWrite } from '../util/fs.js';
import { checkIndices, type Dataset } from './dataset.js';

export const FEATURES_SUFFIX = '_features';
export const LABELS_SUFFIX = '_labels';
/** The manifest this tool writes beside the two folders (the reference code ignores it). */
export const MANIFEST = 'latents.json';

export function featuresDir(root: string, name: string): string {
  return join(root, `${name}${FEATURES_SUFFIX}`);
}
export function labelsDir(root: string, name: string): string {
  return join(root, `${name}${LABELS_SUFFIX}`);
}

/** The bytes np.save writes for one latent: float32 (1, E, h, w). */
export function encodeFeature(latent: Float32Array, shape: readonly [number, number, number]): Uint8Array {
  return encodeNpy({ dtype: 'F32', shape: [1, ...shape], data: latent });
}

/** The bytes np.save writes for one label: int64 (1,). */
export function encodeLabel(label: number): Uint8Array {
  return encodeNpy({ dtype: 'I64', shape: [1], data: BigInt64Array.of(BigInt(label)) });
}

/** Writes item i (feature first, then label; each atomically): an item is complete iff its label exists. */
export function writeLatentItem(
  root: string,
  name: string,
  i: number,
  latent: Float32Array,
  shape: readonly [number, number, number],
  label: number,
): void {
  atomicWrite(join(featuresDir(root, name), `${i}.npy`), [encodeFeature(latent, shape)]);
  atomicWrite(join(labelsDir(root, name), `${i}.npy`), [encodeLabel(label)]);
}

/** The `<name>` of the single `<name>_features` folder in `root` (with its `<name>_labels`). */
export function detectLatentName(root: string): string {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) throw new UserError(`latent folder '${root}' does not exist: check the path`);
    if (isNodeError(e, 'ENOTDIR'))
      throw new UserError(
        `'${root}' is not a folder: a latent dataset is a folder holding <name>_features/ and <name>_labels/`,
      );
    throw e;
  }
  const names = entries
    .filter((e) => e.endsWith(FEATURES_SUFFIX) && statSync(join(root, e)).isDirectory())
    .map((e) => e.slice(0, -FEATURES_SUFFIX.length))
    .sort();
  if (names.length === 0)
    throw new UserError(
      `latent folder '${root}' has no <name>_features/ folder (expected e.g. imagenet256_features/ and imagenet256_labels/, as the reference's extract_features.py writes)`,
    );
  if (names.length > 1)
    throw new UserError(
      `latent folder '${root}' holds several latent sets (${names.map((n) => n + FEATURES_SUFFIX).join(', ')}): name one (latents name: ${names[0]})`,
    );
  return names[0]!;
}

function byItemName(a: string, b: string): number {
  const ia = /^\d+\.npy$/.test(a) ? Number(a.slice(0, -4)) : NaN;
  const ib = /^\d+\.npy$/.test(b) ? Number(b.slice(0, -4)) : NaN;
  if (!Number.isNaN(ia) && !Number.isNaN(ib)) return ia - ib;
  if (!Number.isNaN(ia)) return -1;
  if (!Number.isNaN(ib)) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function listNpy(dir: string, what: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new UserError(
      `latent dataset: ${what} folder '${dir}' is missing (features and labels come as <name>_features/ and <name>_labels/ side by side)`,
    );
  return readdirSync(dir)
    .filter((f) => f.endsWith('.npy') && !f.startsWith('.'))
    .sort(byItemName);
}

function readNpyFile(path: string): HostTensor {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) throw new UserError(`latent file '${path}' disappeared while reading the dataset`);
    throw e;
  }
  return parseNpy(buf, `latent file '${path}'`);
}

export interface LatentFolder {
  root: string;
  name: string;
  /** file names (`0.npy`, …) in item order */
  files: string[];
  /** label per item (int) */
  labels: Int32Array;
  /** per-item feature shape without the leading 1: [E, h, w] */
  shape: [number, number, number];
  /** SHA-256 over every item's name, label and feature bytes */
  fingerprint: string;
}

/** Opens and checks a latent folder: same file names in both folders, labels int (1,), a common feature shape (1, E, h, w). */
export function scanLatentFolder(root: string, name = detectLatentName(root)): LatentFolder {
  const fdir = featuresDir(root, name);
  const ldir = labelsDir(root, name);
  const features = listNpy(fdir, 'features');
  const labelFiles = listNpy(ldir, 'labels');
  const lset = new Set(labelFiles);
  const fset = new Set(features);
  const noLabel = features.find((f) => !lset.has(f));
  if (noLabel)
    throw new UserError(
      `latent dataset '${root}': feature '${join(fdir, noLabel)}' has no label file '${join(ldir, noLabel)}' (${features.length} features, ${labelFiles.length} labels; an interrupted extraction resumes when re-run)`,
    );
  const noFeature = labelFiles.find((f) => !fset.has(f));
  if (noFeature)
    throw new UserError(
      `latent dataset '${root}': label '${join(ldir, noFeature)}' has no feature file '${join(fdir, noFeature)}'`,
    );
  if (features.length === 0) throw new UserError(`latent dataset '${root}': '${fdir}' holds no .npy files`);
  const labels = new Int32Array(features.length);
  const h = createHash('sha256');
  h.update(JSON.stringify({ kind: 'latents', layout: 'npy-per-item-v1' }) + '\n');
  let shape: [number, number, number] | undefined;
  features.forEach((f, i) => {
    const lpath = join(ldir, f);
    const lab = readNpyFile(lpath);
    if (!(lab.dtype === 'I64' || lab.dtype === 'I32') || lab.data.length !== 1) {
      throw new UserError(
        `latent label '${lpath}' is ${lab.dtype} of shape (${lab.shape.join(', ')}), expected int64 of shape (1,)`,
      );
    }
    const v = Number(lab.data[0]!);
    if (!Number.isInteger(v) || v < 0)
      throw new UserError(`latent label '${lpath}' is ${v}, expected a class index >= 0`);
    labels[i] = v;
    const fpath = join(fdir, f);
    const bytes = readFileSync(fpath);
    const t = parseNpy(bytes, `latent file '${fpath}'`);
    const s = checkFeature(t, fpath, shape);
    shape ??= s;
    h.update(`${f}\t${v}\t`).update(bytes).update('\n');
  });
  return { root, name, files: features, labels, shape: shape!, fingerprint: h.digest('hex') };
}

function checkFeature(t: HostTensor, path: string, expected?: [number, number, number]): [number, number, number] {
  const ok = (t.shape.length === 4 && t.shape[0] === 1) || t.shape.length === 3;
  if (!ok)
    throw new UserError(
      `latent file '${path}' has shape (${t.shape.join(', ')}), expected (1, C, h, w) as the reference writes`,
    );
  if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'F64')
    throw new UserError(`latent file '${path}' is ${t.dtype}, expected float32`);
  const s = t.shape.slice(-3) as [number, number, number];
  if (expected && s.join() !== expected.join())
    throw new UserError(
      `latent file '${path}' has shape (1, ${s.join(', ')}), the others have (1, ${expected.join(', ')}): one latent set has one size`,
    );
  return s;
}

/** Features of items `indices` as one [N, E, h, w] float32 array (each file checked against the folder's shape). */
export function readLatentBatch(lf: LatentFolder, indices: ArrayLike<number>): { x: Float32Array; y: Int32Array } {
  const per = lf.shape[0] * lf.shape[1] * lf.shape[2];
  const x = new Float32Array(indices.length * per);
  const y = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    const path = join(featuresDir(lf.root, lf.name), lf.files[i]!);
    const t = readNpyFile(path);
    checkFeature(t, path, lf.shape);
    x.set(toFloat32(t), k * per);
    y[k] = lf.labels[i]!;
  }
  return { x, y };
}

/**
 * A latent folder as a dataset: x = the stored latents [N, E, h, w] (already ×scaling_factor; not
 * images in [−1, 1]), y = the stored labels. Class names come from the manifest this tool writes, else
 * the label numbers. `channels` is E and `imageSize` the latent side h.
 */
export function openLatentDataset(o: { path: string; name?: string }): Dataset {
  const lf = scanLatentFolder(o.path, o.name);
  const [e, h, w] = lf.shape;
  if (h !== w) throw new UserError(`latent dataset '${o.path}': latents are ${h}×${w}; the models take square inputs`);
  const numClasses = lf.labels.reduce((m, v) => Math.max(m, v + 1), 1);
  let classNames = Array.from({ length: numClasses }, (_, i) => String(i));
  const manifest = join(o.path, MANIFEST);
  if (existsSync(manifest)) {
    try {
      const names = (JSON.parse(readFileSync(manifest, 'utf8')) as { images?: { classNames?: unknown } }).images
        ?.classNames;
      if (Array.isArray(names) && names.length === numClasses && names.every((n) => typeof n === 'string'))
        classNames = names as string[];
    } catch {
      // a damaged manifest only loses the class names; the data are checked above
    }
  }
  const ds: Dataset = {
    kind: 'latents',
    name: `${o.path}/${lf.name}`,
    size: lf.files.length,
    numClasses,
    labeled: numClasses > 1,
    classNames,
    channels: e,
    imageSize: h,
    fingerprint: lf.fingerprint,
    batch: async (indices) => {
      checkIndices(ds, indices);
      const { x, y } = readLatentBatch(lf, indices);
      return { x, y, shape: [indices.length, e, h, w] };
    },
  };
  return ds;
}
