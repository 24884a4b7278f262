// Diffusion latents → 8-bit images, exactly as the reference samplers turn them into files:
//   x = vae.decode(latent / scaling_factor)                     (FPDM sample.py L231, DiT sample_ddp.py L131)
//   u8 = clamp(127.5·x + 128, 0, 255) cast to uint8, NHWC       (L232 / L132: the cast truncates)
// and written as PNGs named as the reference names them, and/or an .npz with `arr_0` uint8 [N, H, W, 3]
// (DiT's create_npz_from_sample_folder), which the ADM evaluator and `fpdm-exp fid` read.
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writePng } from '../data/images.js';
import { writeNpz } from '../io/npy.js';
import { hostTensor } from '../io/tensor.js';
import { quantizeToUint8, type AutoencoderKL } from './autoencoder.js';

/** How sample files are named: FPDM's sample.py `{idx:05d}--{y:03d}--{label}.png`, or DiT's sample_ddp.py `{index:06d}.png`. */
export type PngNaming = 'fpdm' | 'dit';

/** A class name as sample.py turns imagenet-labels.json entries into file-name parts: lower case, ' ' → '-', no apostrophes. */
export function labelSlug(name: string): string {
  return name.toLowerCase().replaceAll(' ', '-').replaceAll("'", '');
}

export function samplePngName(naming: PngNaming, index: number, label: number, labelName: string): string {
  if (naming === 'dit') return `${String(index).padStart(6, '0')}.png`;
  return `${String(index).padStart(5, '0')}--${String(label).padStart(3, '0')}--${labelName}.png`;
}

/**
 * Latents [N, E, h, w] (as the diffusion model produces them, ×scaling_factor) → uint8 images
 * [N, H, W, C], decoded `batch` at a time.
 */
export async function decodeToUint8(
  vae: AutoencoderKL,
  latents: Float32Array,
  shape: readonly [number, number, number, number],
  batch = 8,
): Promise<{ pixels: Uint8Array; shape: [number, number, number, number] }> {
  const [n, e, h, w] = shape;
  const per = e * h * w;
  let out: Uint8Array | undefined;
  let outShape: [number, number, number, number] = [n, 0, 0, 0];
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const u8 = tf.tidy(() =>
      quantizeToUint8(vae.decodeLatents(tf.tensor4d(latents.subarray(s * per, (s + b) * per), [b, e, h, w]))),
    ); // [b, H, W, C]
    const data = await u8.data();
    const [, H, W, C] = u8.shape;
    u8.dispose();
    out ??= new Uint8Array(n * H * W * C);
    outShape = [n, H, W, C];
    out.set(data, s * H * W * C);
  }
  return { pixels: out ?? new Uint8Array(0), shape: outShape };
}

/** uint8 [N, H, W, C] → [N, C, H, W] (the layout of the tool's image writers and metrics). */
export function nhwcToNchw(pixels: Uint8Array, shape: readonly [number, number, number, number]): Uint8Array {
  const [n, h, w, c] = shape;
  const out = new Uint8Array(pixels.length);
  const hw = h * w;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < hw; j++) for (let k = 0; k < c; k++) out[(i * c + k) * hw + j] = pixels[(i * hw + j) * c + k]!;
  return out;
}

/** Writes images [N, H, W, C] as PNGs in `dir` named as the reference does; returns the file names. */
export async function writeSamplePngs(
  dir: string,
  pixels: Uint8Array,
  shape: readonly [number, number, number, number],
  labels: ArrayLike<number>,
  opts: { naming: PngNaming; labelNames?: readonly string[]; startIndex?: number },
): Promise<string[]> {
  const [n, h, w, c] = shape;
  const chw = nhwcToNchw(pixels, shape);
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const y = labels[i] ?? 0;
    const name = samplePngName(
      opts.naming,
      (opts.startIndex ?? 0) + i,
      y,
      labelSlug(opts.labelNames?.[y] ?? String(y)),
    );
    await writePng(join(dir, name), chw.subarray(i * c * h * w, (i + 1) * c * h * w), [c, h, w]);
    names.push(name);
  }
  return names;
}

/** Writes images [N, H, W, C] as an .npz with `arr_0` uint8 (DiT's layout, read by the ADM evaluator). */
export function writeSampleNpz(
  path: string,
  pixels: Uint8Array,
  shape: readonly [number, number, number, number],
): void {
  writeNpz(path, { arr_0: hostTensor('U8', shape, pixels) });
}
