// What the metric commands accept as an image set, and how each becomes features or statistics:
//   folder            PNG/JPEG/WebP images (grayscale → 3 channels), in file-name order, all of one
//                     size; decoded in batches and run through the FID Inception network
//   images            a .safetensors holding `images_uint8_nchw` [N, 3, H, W] uint8, or an .npz with
//                     `arr_0` [N, H, W, 3] uint8 and no mu/sigma (DiT's sample_ddp.py / `sample --npz`)
//   features          a .safetensors holding `features` [N, F] (e.g. written by `fpdm-exp features`)
//   stats             an .npz with `mu`/`sigma` (pytorch-fid, `fid --save-stats`, and the ADM
//                     evaluator's reference batches, which also hold arr_0: their statistics are used)
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { decodeRgb, scanFolder } from '../data/folder.js';
import { detectFormat } from '../io/index.js';
import { npzNames, readNpzArrays } from '../io/npy.js';
import { openSafetensors } from '../io/safetensors.js';
import { toFloat64, type HostTensor } from '../io/tensor.js';
import { UserError, isNodeError } from '../util/errors.js';
import { extractFeatures, type FeatureSet } from './features.js';
import type { FidInception } from './inception.js';
import type { PreprocessMode } from './preprocess.js';
import { imageSetFingerprint, readStatsNpz, type StatsPair } from './stats_io.js';

export type InputKind = 'folder' | 'images' | 'features' | 'stats';

export function classifyInput(path: string): InputKind {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if (isNodeError(e, 'ENOENT'))
      throw new UserError(
        `'${path}' does not exist: pass an image folder, an .npz of statistics or a .safetensors of features or images`,
      );
    throw e;
  }
  if (st.isDirectory()) return 'folder';
  const format = detectFormat(path);
  if (format === 'npz') {
    const names = npzNames(path);
    if (names.includes('mu') && names.includes('sigma')) return 'stats';
    if (names.includes('arr_0')) return 'images';
    throw new UserError(
      `'${path}' is an .npz with neither 'mu'/'sigma' (statistics) nor 'arr_0' (uint8 images [N, H, W, 3]); it has: ${names.join(', ')}`,
    );
  }
  if (format === 'safetensors') {
    const f = openSafetensors(path);
    try {
      const names = f.entries.map((e) => e.name);
      if (names.includes('features')) return 'features';
      if (names.includes('images_uint8_nchw')) return 'images';
      throw new UserError(
        `'${path}' holds neither 'features' [N, F] nor 'images_uint8_nchw' [N, 3, H, W] (it has: ${names.slice(0, 8).join(', ')})`,
      );
    } finally {
      f.close();
    }
  }
  throw new UserError(
    `'${path}' is a ${format} file: pass an image folder, an .npz of statistics (mu, sigma) or a .safetensors of features or images`,
  );
}

function readSafetensor(path: string, name: string): HostTensor {
  const f = openSafetensors(path);
  try {
    if (!f.entries.some((e) => e.name === name))
      throw new UserError(
        `'${path}' has no tensor '${name}' (it has: ${f.entries
          .map((e) => e.name)
          .slice(0, 8)
          .join(', ')})`,
      );
    return f.read(name);
  } finally {
    f.close();
  }
}

export function readStats(path: string): StatsPair {
  return readStatsNpz(path);
}

/** Features [N, F] (float64) and the preprocessing mode recorded in the file's metadata, if any. */
export function readFeatureFile(
  path: string,
  name = 'features',
): { data: Float64Array; n: number; dim: number; mode?: string } {
  const t = readSafetensor(path, name);
  if (t.shape.length !== 2)
    throw new UserError(`'${path}': '${name}' has shape [${t.shape.join(', ')}], expected [N, F]`);
  const f = openSafetensors(path);
  const mode = f.metadata.mode;
  f.close();
  return { data: toFloat64(t), n: t.shape[0]!, dim: t.shape[1]!, mode };
}

export interface ImageSource {
  kind: 'folder' | 'images';
  n: number;
  /** content fingerprint (SHA-256 hex) for the statistics cache */
  fingerprint: string;
  /** runs the network over the images batch by batch */
  extract(
    net: FidInception,
    opts: {
      mode: PreprocessMode;
      batch: number;
      blocks?: boolean;
      logits?: boolean;
      onProgress?: (done: number, total: number) => void;
    },
  ): Promise<FeatureSet>;
}

function concatSets(parts: FeatureSet[], n: number, mode: PreprocessMode): FeatureSet {
  const cat = (k: 'features' | 'block0' | 'block1' | 'block2' | 'logits', per: number): Float32Array | undefined => {
    if (!parts[0]?.[k]) return undefined;
    const out = new Float32Array(n * per);
    let off = 0;
    for (const p of parts) {
      out.set(p[k]!, off);
      off += p[k]!.length;
    }
    return out;
  };
  const r: FeatureSet = { features: cat('features', 2048)!, n, dim: 2048, mode };
  const b0 = cat('block0', 64);
  if (b0) Object.assign(r, { block0: b0, block1: cat('block1', 192), block2: cat('block2', 768) });
  const lg = cat('logits', 1008);
  if (lg) r.logits = lg;
  return r;
}

/** An image folder or an images safetensors as a source of uint8 batches. */
export function openImageSource(path: string, kind: 'folder' | 'images'): ImageSource {
  if (kind === 'images' && detectFormat(path) === 'npz') {
    // arr_0 [N, H, W, 3] uint8, as DiT's create_npz_from_sample_folder writes it → NCHW
    const t = readNpzArrays(path, ['arr_0']).get('arr_0')!;
    if (t.dtype !== 'U8' || t.shape.length !== 4 || t.shape[3] !== 3) {
      throw new UserError(`'${path}': arr_0 is ${t.dtype} [${t.shape.join(', ')}], expected uint8 [N, H, W, 3]`);
    }
    const [n, h, w] = t.shape as [number, number, number, number];
    const nhwc = t.data as Uint8Array;
    const pixels = new Uint8Array(nhwc.length); // [N, 3, H, W]
    const hw = h * w;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < hw; j++)
        for (let c = 0; c < 3; c++) pixels[(i * 3 + c) * hw + j] = nhwc[(i * hw + j) * 3 + c]!;
    const shape: [number, number, number, number] = [n, 3, h, w];
    return {
      kind,
      n,
      // same fingerprint as the same pixels given as images_uint8_nchw
      fingerprint: createHash('sha256')
        .update(`images_uint8_nchw ${shape.join('x')}\n`)
        .update(pixels)
        .digest('hex'),
      extract: (net, o) => extractFeatures(net, pixels, shape, o),
    };
  }
  if (kind === 'images') {
    const t = readSafetensor(path, 'images_uint8_nchw');
    if (t.dtype !== 'U8' || t.shape.length !== 4 || t.shape[1] !== 3) {
      throw new UserError(
        `'${path}': images_uint8_nchw is ${t.dtype} [${t.shape.join(', ')}], expected U8 [N, 3, H, W]`,
      );
    }
    const pixels = t.data as Uint8Array;
    const shape = t.shape as [number, number, number, number];
    return {
      kind,
      n: shape[0],
      fingerprint: createHash('sha256')
        .update(`images_uint8_nchw ${shape.join('x')}\n`)
        .update(pixels)
        .digest('hex'),
      extract: (net, o) => extractFeatures(net, pixels, shape, o),
    };
  }
  const { files } = scanFolder(path);
  const fingerprint = imageSetFingerprint(
    files.map((f) => ({ name: f.rel, sha256: createHash('sha256').update(readFileSync(f.path)).digest('hex') })),
  );
  return {
    kind,
    n: files.length,
    fingerprint,
    async extract(net, o) {
      const parts: FeatureSet[] = [];
      let size: [number, number] | undefined;
      for (let s = 0; s < files.length; s += o.batch) {
        const chunk = files.slice(s, s + o.batch);
        const decoded = await Promise.all(chunk.map((f) => decodeRgb(f.path)));
        const { h, w } = decoded[0]!;
        size ??= [h, w];
        decoded.forEach((d, i) => {
          if (d.h !== size![0] || d.w !== size![1]) {
            throw new UserError(
              `images in '${path}' differ in size ('${files[0]!.rel}' is ${size![1]}x${size![0]}, '${chunk[i]!.rel}' is ${d.w}x${d.h}): resize them to one size first`,
            );
          }
        });
        const hw = h * w;
        const pixels = new Uint8Array(chunk.length * 3 * hw); // [B, 3, H, W]
        decoded.forEach((d, i) => {
          for (let j = 0; j < hw; j++) for (let c = 0; c < 3; c++) pixels[(i * 3 + c) * hw + j] = d.data[j * 3 + c]!;
        });
        parts.push(await extractFeatures(net, pixels, [chunk.length, 3, h, w], { ...o, onProgress: undefined }));
        o.onProgress?.(s + chunk.length, files.length);
      }
      return concatSets(parts, files.length, o.mode);
    },
  };
}
