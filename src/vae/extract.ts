// Image folder → latent dataset, as the reference pipeline (fast-DiT extract_features.py, which the
// FPDM code reads) prepares ImageNet:
//   1. ImageFolder order: class sub-folders sorted by name → labels 0..K−1 (a flat folder: label 0);
//   2. ADM center crop to the image size (src/data/folder.ts, Pillow-exact), optional horizontal flip
//      with probability ½ (RandomHorizontalFlip), x = (p/255 − 0.5)/0.5;
//   3. the VAE posterior: one sample mean + std·ε (the reference) or the mean (an option, a deviation);
//   4. latent = value · scaling_factor, written as <name>_features/<i>.npy and <name>_labels/<i>.npy.
// The flip and ε of item i come from a generator keyed by (seed, i), so an extraction killed at any
// moment and re-run continues with exactly the values an uninterrupted run writes. Item i is complete
// once its label file exists (written last, atomically). A manifest (latents.json) records the VAE and
// image fingerprints and the settings; re-running into the same folder with other settings is refused.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { folderFingerprint, loadFolderImage, scanFolder } from '../data/folder.js';
import { MANIFEST, featuresDir, labelsDir, writeLatentItem } from '../data/latents.js';
import { startProgress, type ProgressMode } from '../experiments/progress.js';
import { UserError } from '../util/errors.js';
import { atomicWrite } from '../util/fs.js';
import { Rng } from '../util/rng.js';
import { toolVersion } from '../util/version.js';
import { posterior, samplePosterior } from './autoencoder.js';
import { downFactor, toDiffusersConfig } from './config.js';
import { loadVae, type VaeLoadInfo } from './load.js';

export type PosteriorMode = 'sample' | 'mean';
export type FlipMode = 'random' | 'none';

export interface ExtractOptions {
  vae: string;
  config?: string;
  images: string;
  out: string;
  /** `<name>_features` / `<name>_labels` (default imagenet256, what the reference training reads) */
  name?: string;
  /** crop size (default 256) */
  imageSize?: number;
  /** default 'random' (p = ½ per image, as the reference) */
  hflip?: FlipMode;
  /** default 'sample' (one posterior draw, as the reference) */
  posterior?: PosteriorMode;
  /** seed of the flips and posterior draws (default 0) */
  seed?: number;
  /** images per VAE pass (default 8) */
  batch?: number;
  progress?: ProgressMode;
}

/** What decides the bytes of the output; a resumed extraction must match it exactly. */
export interface ExtractSettings {
  name: string;
  imageSize: number;
  hflip: FlipMode;
  posterior: PosteriorMode;
  seed: number;
  scalingFactor: number;
  /** images per VAE pass: float results may depend on it, so a resumed run keeps it */
  batch: number;
  preprocessing: 'adm-center-crop, x = (p/255 - 0.5)/0.5';
  vaeFingerprint: string;
  imagesFingerprint: string;
}

export interface LatentManifest {
  format: 'fpdm-exp latents v1';
  settings: ExtractSettings;
  vae: {
    path: string;
    naming: VaeLoadInfo['naming'];
    configSource: VaeLoadInfo['configSource'];
    config: Record<string, unknown>;
  };
  images: { path: string; count: number; classNames: string[]; labeled: boolean };
  /** latent shape per item, [1, E, h, w] */
  shape: number[];
  complete: boolean;
  /** backend of each call that wrote items (values can differ in the last bits between backends) */
  backends: string[];
  toolVersion: string;
  started: string;
  finished?: string;
}

export interface ExtractResult {
  out: string;
  name: string;
  count: number;
  /** items written by this call (the others were already complete) */
  written: number;
  resumed: boolean;
  shape: number[];
  seconds: number;
  manifest: string;
}

/** SHA-256 of the weights file's bytes and the configuration used. */
export function vaeFingerprint(info: VaeLoadInfo): string {
  return createHash('sha256')
    .update(readFileSync(info.weightsFile))
    .update(JSON.stringify(toDiffusersConfig(info.config)))
    .digest('hex');
}

function readManifest(path: string): LatentManifest {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LatentManifest;
  } catch (e) {
    throw new UserError(
      `latent manifest '${path}' is unreadable (${(e as Error).message}): remove the output folder's partial contents or choose another --out`,
    );
  }
}

function differences(a: ExtractSettings, b: ExtractSettings): string[] {
  return (Object.keys(a) as (keyof ExtractSettings)[])
    .filter((k) => a[k] !== b[k])
    .map((k) => `${k}: ${String(b[k])} (stored) vs ${String(a[k])} (now)`);
}

/** `backendName` is recorded in the manifest (the caller has initialised that backend). */
export async function extractLatents(o: ExtractOptions, backendName: string): Promise<ExtractResult> {
  const t0 = Date.now();
  const name = o.name ?? 'imagenet256';
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new UserError(`--name '${name}': use letters, digits, '.', '_' or '-' (it becomes <name>_features/)`);
  const size = o.imageSize ?? 256;
  const batch = o.batch ?? 8;
  const { files, classNames, labeled } = scanFolder(o.images);
  const { vae, info } = loadVae(o.vae, { config: o.config });
  try {
    const f = downFactor(vae.config);
    if (size % f !== 0)
      throw new UserError(`--image-size ${size} is not a multiple of ${f} (the VAE downsamples ${f}×)`);
    const E = vae.config.embedDim;
    const [h, w] = [size / f, size / f];
    const settings: ExtractSettings = {
      name,
      imageSize: size,
      hflip: o.hflip ?? 'random',
      posterior: o.posterior ?? 'sample',
      seed: o.seed ?? 0,
      scalingFactor: vae.config.scalingFactor,
      batch,
      preprocessing: 'adm-center-crop, x = (p/255 - 0.5)/0.5',
      vaeFingerprint: vaeFingerprint(info),
      imagesFingerprint: folderFingerprint(files, size, 3),
    };
    const manifestPath = join(o.out, MANIFEST);
    const fdir = featuresDir(o.out, name);
    const ldir = labelsDir(o.out, name);
    let manifest: LatentManifest;
    const resumed = existsSync(manifestPath);
    if (resumed) {
      manifest = readManifest(manifestPath);
      const diff = differences(settings, manifest.settings);
      if (diff.length > 0)
        throw new UserError(
          `'${o.out}' holds latents extracted with other settings (${diff.join('; ')}): re-run with the same settings to resume, or choose another --out`,
        );
    } else {
      if (existsSync(fdir) && readdirSync(fdir).length > 0)
        throw new UserError(
          `'${fdir}' already holds files but '${manifestPath}' is missing (not made by this command): choose an empty --out`,
        );
      manifest = {
        format: 'fpdm-exp latents v1',
        settings,
        vae: {
          path: o.vae,
          naming: info.naming,
          configSource: info.configSource,
          config: toDiffusersConfig(info.config),
        },
        images: { path: o.images, count: files.length, classNames, labeled },
        shape: [1, E, h, w],
        complete: false,
        backends: [],
        toolVersion: toolVersion(),
        started: new Date().toISOString(),
      };
      atomicWrite(manifestPath, [JSON.stringify(manifest, null, 2) + '\n']);
    }
    // Batches are fixed blocks [k·batch, (k+1)·batch) of the item order, whether resuming or not: a
    // backend's float results can depend on the batch composition, and a resumed run must write the
    // bytes an uninterrupted one writes. A block with any item missing is recomputed whole.
    // a kill can leave `.<i>.npy.tmp-<pid>` files (atomic writes cut short): the reference's loader
    // counts every directory entry, so they are removed before continuing
    for (const d of [fdir, ldir]) {
      if (!existsSync(d)) continue;
      for (const f of readdirSync(d)) if (/^\..*\.tmp-\d+$/.test(f)) rmSync(join(d, f), { force: true });
    }
    const isDone = (i: number) => existsSync(join(ldir, `${i}.npy`));
    const missing = files.map((_, i) => i).filter((i) => !isDone(i));
    const todo = new Set(missing);
    const progress = startProgress(`latents ${name}`, files.length, o.progress ?? 'auto');
    let done = files.length - missing.length;
    progress.update(done);
    const chw = 3 * size * size;
    for (let s = 0; s < files.length; s += batch) {
      const idx = Array.from({ length: Math.min(batch, files.length - s) }, (_, k) => s + k);
      if (!idx.some((i) => todo.has(i))) continue;
      const x = new Float32Array(idx.length * chw); // [B, 3, S, S]
      const eps = new Float32Array(idx.length * E * h * w); // [B, E, h, w]
      const imgs = await Promise.all(idx.map((i) => loadFolderImage(files[i]!.path, size, 3)));
      idx.forEach((i, k) => {
        const rng = new Rng(`${settings.seed}/latents/${i}`);
        const flipDraw = rng.uniform(); // drawn whatever the flip mode, so ε does not depend on it
        const flip = settings.hflip === 'random' && flipDraw < 0.5;
        eps.set(rng.normals(E * h * w), k * E * h * w);
        const img = imgs[k]!; // [3, S, S] uint8
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < size; y++) {
            const row = (c * size + y) * size;
            for (let xx = 0; xx < size; xx++) {
              const p = img[row + (flip ? size - 1 - xx : xx)]!;
              x[k * chw + row + xx] = (p / 255 - 0.5) / 0.5;
            }
          }
        }
      });
      const latents = tf.tidy(() => {
        const post = posterior(vae.encodeMoments(tf.tensor4d(x, [idx.length, 3, size, size])));
        const v =
          settings.posterior === 'mean' ? post.mean : samplePosterior(post, tf.tensor4d(eps, [idx.length, E, h, w]));
        return v.mul(settings.scalingFactor);
      });
      const data = (await latents.data()) as Float32Array;
      latents.dispose();
      idx.forEach((i, k) => {
        if (todo.has(i))
          writeLatentItem(o.out, name, i, data.slice(k * E * h * w, (k + 1) * E * h * w), [E, h, w], files[i]!.label);
      });
      done += idx.filter((i) => todo.has(i)).length;
      progress.update(done);
    }
    progress.stop();
    if (missing.length > 0) manifest.backends = [...new Set([...(manifest.backends ?? []), backendName])];
    manifest.complete = true;
    manifest.finished = new Date().toISOString();
    atomicWrite(manifestPath, [JSON.stringify(manifest, null, 2) + '\n']);
    return {
      out: o.out,
      name,
      count: files.length,
      written: missing.length,
      resumed,
      shape: manifest.shape,
      seconds: (Date.now() - t0) / 1000,
      manifest: manifestPath,
    };
  } finally {
    vae.dispose();
  }
}
