// Image folders: PNG, JPEG and WebP files decoded with sharp, preprocessed as the reference does.
//
// Layout: either class sub-folders (`root/<class>/**/*.png`; labels are the sub-folder names sorted
// by code point, as torchvision's ImageFolder, which DiT trains from) or a flat folder of images
// (unlabeled: numClasses 1, every label 0). Files are listed recursively inside each class folder,
// sorted by relative path; other extensions and hidden entries are ignored. Indices follow that
// order (class by class).
//
// Preprocessing = ADM's `center_crop_arr` (used by DiT's train.py):
//   1. decode to 8-bit RGB (alpha dropped, as PIL's convert("RGB"); embedded ICC profiles ignored,
//      as PIL does; 16-bit images reduced to 8 bits by sharp's colour-space conversion),
//   2. while min(W, H) >= 2·size: resize to (⌊W/2⌋, ⌊H/2⌋) with Pillow's BOX filter,
//   3. resize so that the short side is `size` with Pillow's BICUBIC ((W, H)·size/min(W, H) rounded
//      half to even, as Python's round),
//   4. crop the centre size×size (offsets ⌊(H−size)/2⌋, ⌊(W−size)/2⌋),
// and x = p/127.5 − 1. Steps 2–4 reproduce Pillow's 8-bit resampling and the crop bit for bit
// (src/data/resample.ts; checked against Pillow 9.4 output in tests/data/pillow.test.ts).
// Deviation: for `channels: 1` the cropped RGB image is turned grey with Pillow's convert("L")
// weights (0.299, 0.587, 0.114 in 16-bit fixed point); the reference has no grey mode.
//
// Decoded, cropped images are kept in memory (uint8) when the whole set fits `cacheBytes` (default
// 1 GiB); then every image is decoded when the dataset is opened, so an unreadable file is reported
// at once. Otherwise images are decoded on demand for each batch.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import sharp from 'sharp';
import { UserError, ensure, isNodeError } from '../util/errors.js';
import { checkIndices, type Batch, type Dataset } from './dataset.js';
import { resizeU8 } from './resample.js';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

export interface FolderOptions {
  path: string;
  imageSize: number;
  channels?: 1 | 3; // default 3
  /** keep decoded images in memory up to this many bytes (default 1 GiB); 0 disables the cache */
  cacheBytes?: number;
}

interface FileEntry {
  path: string;
  rel: string;
  label: number;
  bytes: number;
}

function isImage(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function listImages(dir: string): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  entries.sort((a, b) => byCodePoint(a.name, b.name));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listImages(p));
    else if ((e.isFile() || e.isSymbolicLink()) && isImage(e.name)) out.push(p);
  }
  return out;
}

/** The image files and class names of a folder dataset (see the layout rules above). */
export function scanFolder(root: string): { files: FileEntry[]; classNames: string[]; labeled: boolean } {
  let st;
  try {
    st = statSync(root);
  } catch (e) {
    if (isNodeError(e, 'ENOENT')) throw new UserError(`image folder '${root}' does not exist: check the --data path`);
    throw e;
  }
  if (!st.isDirectory())
    throw new UserError(`'${root}' is not a folder: --data folder expects a directory of PNG/JPEG/WebP images`);
  const entries = readdirSync(root, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const subdirs = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort(byCodePoint);
  const topImages = entries.filter((e) => !e.isDirectory() && isImage(e.name));
  const stat = (p: string, label: number): FileEntry => ({
    path: p,
    rel: relative(root, p).split(sep).join('/'),
    label,
    bytes: statSync(p).size,
  });
  if (subdirs.length > 0 && topImages.length > 0) {
    throw new UserError(
      `image folder '${root}' has both images at its top level (e.g. '${topImages[0]!.name}') and sub-folders (e.g. '${subdirs[0]}'): ` +
        'use class sub-folders only (labeled) or a flat folder of images (unlabeled)',
    );
  }
  if (subdirs.length > 0) {
    const files: FileEntry[] = [];
    subdirs.forEach((name, label) => {
      const imgs = listImages(join(root, name));
      if (imgs.length === 0)
        throw new UserError(`class folder '${join(root, name)}' has no PNG/JPEG/WebP images: remove it or add images`);
      for (const p of imgs) files.push(stat(p, label));
    });
    return { files, classNames: subdirs, labeled: true };
  }
  const imgs = listImages(root);
  if (imgs.length === 0)
    throw new UserError(`image folder '${root}' has no PNG/JPEG/WebP images (${IMAGE_EXTENSIONS.join(', ')})`);
  return { files: imgs.map((p) => stat(p, 0)), classNames: ['all'], labeled: false };
}

/** Python's round(): nearest integer, ties to even. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * ADM's center_crop_arr on an 8-bit [H, W, C] image → [size, size, C] (steps 2–4 above).
 * Returns the intermediate sizes too, for tests and documentation.
 */
export function centerCropArr(
  img: Uint8Array,
  h: number,
  w: number,
  ch: number,
  size: number,
): { data: Uint8Array; resized: [number, number]; crop: [number, number] } {
  let data = img;
  while (Math.min(w, h) >= 2 * size) {
    const nw = Math.floor(w / 2);
    const nh = Math.floor(h / 2);
    data = resizeU8(data, h, w, ch, nh, nw, 'box');
    w = nw;
    h = nh;
  }
  const scale = size / Math.min(w, h);
  const rw = pyRound(w * scale);
  const rh = pyRound(h * scale);
  data = resizeU8(data, h, w, ch, rh, rw, 'bicubic');
  const cy = Math.floor((rh - size) / 2);
  const cx = Math.floor((rw - size) / 2);
  const out = new Uint8Array(size * size * ch); // [size, size, C]
  for (let y = 0; y < size; y++)
    out.set(data.subarray(((cy + y) * rw + cx) * ch, ((cy + y) * rw + cx + size) * ch), y * size * ch);
  return { data: out, resized: [rh, rw], crop: [cy, cx] };
}

/** Decodes one image file to 8-bit RGB [H, W, 3]; an unreadable file is a UserError naming it. */
export async function decodeRgb(path: string): Promise<{ data: Uint8Array; h: number; w: number }> {
  try {
    const { data, info } = await sharp(path, { ignoreIcc: true, failOn: 'error' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), h: info.height, w: info.width };
  } catch (e) {
    throw new UserError(
      `cannot read image '${path}': ${(e as Error).message.split('\n')[0]} (remove or replace the file)`,
      { cause: e },
    );
  }
}

/** [size, size, 3] RGB → [C, size, size] uint8 (grey by Pillow's L = (19595 R + 38470 G + 7471 B + 2^15) >> 16). */
export function toChw(hwc: Uint8Array, size: number, channels: 1 | 3): Uint8Array {
  const hw = size * size;
  const out = new Uint8Array(channels * hw); // [C, H, W]
  for (let j = 0; j < hw; j++) {
    const r = hwc[j * 3]!;
    const g = hwc[j * 3 + 1]!;
    const b = hwc[j * 3 + 2]!;
    if (channels === 1) out[j] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
    else {
      out[j] = r;
      out[hw + j] = g;
      out[2 * hw + j] = b;
    }
  }
  return out;
}

/** Decodes and preprocesses one file to [C, size, size] uint8. */
export async function loadFolderImage(path: string, size: number, channels: 1 | 3): Promise<Uint8Array> {
  const { data, h, w } = await decodeRgb(path);
  return toChw(centerCropArr(data, h, w, 3, size).data, size, channels);
}

/** SHA-256 over the preprocessing and, per file in index order, its relative path, size, label and content hash. */
export function folderFingerprint(files: FileEntry[], imageSize: number, channels: 1 | 3): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ kind: 'folder', preprocessing: 'adm-center-crop-v1', imageSize, channels }) + '\n');
  for (const f of files) {
    const content = createHash('sha256').update(readFileSync(f.path)).digest('hex');
    h.update(`${f.rel}\t${f.bytes}\t${f.label}\t${content}\n`);
  }
  return h.digest('hex');
}

const DECODE_CONCURRENCY = 8;

export async function openFolder(opts: FolderOptions): Promise<Dataset> {
  const channels = opts.channels ?? 3;
  const size = opts.imageSize;
  ensure(Number.isInteger(size) && size >= 1 && size <= 4096, `image size must be a positive integer (got ${size})`);
  ensure(channels === 1 || channels === 3, `channels must be 1 or 3 (got ${channels})`);
  const { files, classNames, labeled } = scanFolder(opts.path);
  const fingerprint = folderFingerprint(files, size, channels);
  const chw = channels * size * size;
  const cacheBytes = opts.cacheBytes ?? 2 ** 30;
  const cache: (Uint8Array | undefined)[] = files.length * chw <= cacheBytes ? new Array(files.length) : [];
  const useCache = cache.length > 0;

  const load = async (k: number): Promise<Uint8Array> => {
    if (useCache && cache[k]) return cache[k]!;
    const img = await loadFolderImage(files[k]!.path, size, channels);
    if (useCache) cache[k] = img;
    return img;
  };
  const ds: Dataset = {
    kind: 'folder',
    name: opts.path,
    size: files.length,
    numClasses: classNames.length,
    labeled,
    classNames,
    channels,
    imageSize: size,
    fingerprint,
    batch: async (indices: ArrayLike<number>): Promise<Batch> => {
      checkIndices(ds, indices);
      const n = indices.length;
      const x = new Float32Array(n * chw); // [N, C, H, W]
      const y = new Int32Array(n);
      for (let s = 0; s < n; s += DECODE_CONCURRENCY) {
        const part = Array.from({ length: Math.min(DECODE_CONCURRENCY, n - s) }, (_, j) => indices[s + j]!);
        const imgs = await Promise.all(part.map(load));
        imgs.forEach((img, j) => {
          const off = (s + j) * chw;
          for (let q = 0; q < chw; q++) x[off + q] = img[q]! / 127.5 - 1;
          y[s + j] = files[part[j]!]!.label;
        });
      }
      return { x, y, shape: [n, channels, size, size] };
    },
  };
  if (useCache) {
    // decode everything now: unreadable files are reported when the dataset is opened
    for (let s = 0; s < files.length; s += DECODE_CONCURRENCY) {
      await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, files.length - s) }, (_, j) => load(s + j)));
    }
  }
  return ds;
}
