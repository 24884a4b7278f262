// What experiment specs need of the VAE: the `vae:` section, the shape of a latent dataset for the
// model configuration, and decoding (samples and reference latents) to 8-bit images for the metrics
// and sample grids, exactly as the reference's sample.py quantises them.
//
//   vae: { path: sd-vae-ft-mse/, variant: mse }        # config: config.json when the path needs one
//   dataset: { kind: latents, path: features, classes: 1000 }
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { checkIndices, type Dataset } from '../data/dataset.js';
import { fromUint8 } from '../data/images.js';
import { detectLatentName, featuresDir } from '../data/latents.js';
import { parseNpy } from '../io/npy.js';
import { UserError } from '../util/errors.js';
import type { AutoencoderKL } from './autoencoder.js';
import { downFactor, toDiffusersConfig } from './config.js';
import { loadVae, type VaeLoadInfo } from './load.js';
import { decodeToUint8, nhwcToNchw } from './samples.js';

export const VAE_VARIANTS = ['ema', 'mse'] as const;

export const vaeSpecSchema = z
  .object({
    /** a diffusers folder, a diffusers .safetensors (with config) or an ldm .safetensors/.ckpt */
    path: z.string().min(1),
    /** config.json when `path` is a bare diffusers file (default: the folder's, or inferred) */
    config: z.string().min(1).optional(),
    /** which SD VAE fine-tune this is (sd-vae-ft-ema or -mse); recorded with every decoded result */
    variant: z.enum(VAE_VARIANTS).optional(),
    /** latents per decoder pass (memory bound), default 8 */
    batch: z.number().int().positive().default(8),
  })
  .strict();
export type VaeSpec = z.output<typeof vaeSpecSchema>;

/** Latent shape [E, h, w] of a latent folder, read from its first feature file only (cheap, for planning). */
export function latentFolderShape(path: string, name?: string): [number, number, number] {
  const n = name ?? detectLatentName(path);
  const dir = featuresDir(path, n);
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.npy') && !f.startsWith('.'))
      .sort();
  } catch {
    throw new UserError(`latent dataset '${path}': '${dir}' is missing`);
  }
  if (files.length === 0) throw new UserError(`latent dataset '${path}': '${dir}' holds no .npy files`);
  const t = parseNpy(readFileSync(join(dir, files[0]!)), `latent file '${join(dir, files[0]!)}'`);
  const s = t.shape.slice(-3);
  if (s.length !== 3 || (t.shape.length === 4 && t.shape[0] !== 1))
    throw new UserError(
      `latent file '${join(dir, files[0]!)}' has shape (${t.shape.join(', ')}), expected (1, C, h, w)`,
    );
  return s as [number, number, number];
}

export interface LoadedSpecVae {
  vae: AutoencoderKL;
  info: VaeLoadInfo;
  /** SHA-256 of the weights file and the configuration */
  sha256: string;
  variant: string | null;
}

const cache = new Map<string, LoadedSpecVae>();

/** Loads the spec's VAE once per process (decoding is read-only; the weights stay for the next run). */
export function openSpecVae(v: VaeSpec): LoadedSpecVae {
  const id = JSON.stringify([v.path, v.config ?? null]);
  let hit = cache.get(id);
  if (!hit) {
    const { vae, info } = loadVae(v.path, { config: v.config });
    const sha256 = createHash('sha256')
      .update(readFileSync(info.weightsFile))
      .update(JSON.stringify(toDiffusersConfig(info.config)))
      .digest('hex');
    hit = { vae, info, sha256, variant: v.variant ?? null };
    cache.set(id, hit);
  }
  return { ...hit, variant: v.variant ?? null };
}

/** Frees the cached VAEs (end of a run command). */
export function releaseSpecVaes(): void {
  for (const v of cache.values()) v.vae.dispose();
  cache.clear();
}

/**
 * Latents [N, E, h, w] (×scaling_factor) → images [N, C, H, W] in [−1, 1] as an 8-bit file holds them:
 * decode, clamp(127.5x + 128, 0, 255) truncated (sample.py), then p/127.5 − 1, so the metrics' own
 * quantisation gives back exactly these bytes.
 */
export async function decodeForMetrics(
  vae: AutoencoderKL,
  x: Float32Array,
  shape: readonly [number, number, number, number],
  batch = 8,
): Promise<{ x: Float32Array; shape: [number, number, number, number]; pixels: Uint8Array }> {
  const { pixels, shape: s } = await decodeToUint8(vae, x, shape, batch);
  const [n, H, W, C] = s;
  const nchw = nhwcToNchw(pixels, s);
  return { x: fromUint8(nchw), shape: [n, C, H, W], pixels: nchw };
}

/** A latent dataset seen through the decoder: images [N, C, h·f, w·f] (the real images of the metrics when only latents exist). */
export function decodedDataset(ds: Dataset, vae: AutoencoderKL, batch = 8, vaeId = ''): Dataset {
  const f = downFactor(vae.config);
  const out: Dataset = {
    kind: ds.kind,
    name: `${ds.name} (decoded)`,
    size: ds.size,
    numClasses: ds.numClasses,
    labeled: ds.labeled,
    classNames: ds.classNames,
    channels: vae.config.outChannels,
    imageSize: ds.imageSize * f,
    fingerprint: createHash('sha256').update(`${ds.fingerprint}/decoded by ${vaeId}`).digest('hex'),
    batch: async (indices) => {
      checkIndices(out, indices);
      const b = await ds.batch(indices);
      const d = await decodeForMetrics(vae, b.x, b.shape, batch);
      return { x: d.x, y: b.y, shape: d.shape };
    },
  };
  return out;
}
