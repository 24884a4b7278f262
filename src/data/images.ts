// Generated samples → 8-bit images → PNG files (single images and sample grids), with sharp.
//
// Quantisation follows the reference: DiT's sample_ddp.py stores clamp(127.5·x + 128, 0, 255)
// truncated to uint8, which is also what torchvision's save_image(normalize=True,
// value_range=(−1, 1)) computes ((x+1)/2·255 + 0.5, clamped, truncated).
// Grids follow torchvision's make_grid: `nrow` images per row, `padding` px of `padValue` around
// and between the cells (so the outer border is `padding` px too).
import sharp from 'sharp';
import { UserError } from '../util/errors.js';
import { atomicWrite } from '../util/fs.js';
import { assertShape } from '../util/shapes.js';

/** [any shape] floats in [−1, 1] → uint8 via ⌊clamp(127.5·x + 128, 0, 255)⌋ (NaN → 0). */
export function toUint8(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = 127.5 * x[i]! + 128;
    out[i] = v >= 255 ? 255 : v > 0 ? Math.floor(v) : 0;
  }
  return out;
}

/** uint8 pixels → floats in [−1, 1] via p/127.5 − 1 (the datasets' mapping; inverse of toUint8 up to its rounding). */
export function fromUint8(p: ArrayLike<number>): Float32Array {
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = p[i]! / 127.5 - 1;
  return out;
}

/** [C, H, W] → [H, W, C] interleaved. */
function chwToHwc(img: Uint8Array, c: number, h: number, w: number): Uint8Array {
  if (c === 1) return img;
  const out = new Uint8Array(img.length);
  for (let k = 0; k < c; k++) for (let j = 0; j < h * w; j++) out[j * c + k] = img[k * h * w + j]!;
  return out;
}

/** PNG bytes of one uint8 image [C, H, W] (C = 1 grey, 3 RGB, 4 RGBA). Deterministic. */
export async function encodePng(img: Uint8Array, shape: readonly [number, number, number]): Promise<Buffer> {
  const [c, h, w] = shape;
  if (c !== 1 && c !== 3 && c !== 4) throw new UserError(`cannot write a PNG with ${c} channels: expected 1, 3 or 4`);
  assertShape('image', [img.length], [c * h * w]);
  const raw = sharp(chwToHwc(img, c, h, w), { raw: { width: w, height: h, channels: c } });
  // one channel is written as a grey PNG (sharp would otherwise store it as RGB)
  return (c === 1 ? raw.toColourspace('b-w') : raw).png({ compressionLevel: 9, adaptiveFiltering: false }).toBuffer();
}

/** Writes one uint8 image [C, H, W] as a PNG (atomically). */
export async function writePng(path: string, img: Uint8Array, shape: readonly [number, number, number]): Promise<void> {
  atomicWrite(path, [await encodePng(img, shape)]);
}

export interface GridOptions {
  /** images per row (default 8) */
  nrow?: number;
  /** border between and around cells in px (default 2) */
  padding?: number;
  /** border value 0–255 (default 0, black) */
  padValue?: number;
}

/** Lays out uint8 images [N, C, H, W] as one image [C, GH, GW] as torchvision's make_grid. */
export function makeGrid(
  images: Uint8Array,
  shape: readonly number[],
  opts: GridOptions = {},
): { data: Uint8Array; shape: [number, number, number] } {
  assertShape('grid images', shape, [-1, -1, -1, -1]);
  const [n, c, h, w] = shape as [number, number, number, number];
  assertShape('grid images data', [images.length], [n * c * h * w]);
  if (n < 1) throw new UserError('cannot make a grid of 0 images');
  const nrow = opts.nrow ?? 8;
  const pad = opts.padding ?? 2;
  const xmaps = Math.min(nrow, n);
  const ymaps = Math.ceil(n / xmaps);
  const gh = ymaps * (h + pad) + pad;
  const gw = xmaps * (w + pad) + pad;
  const out = new Uint8Array(c * gh * gw).fill(opts.padValue ?? 0); // [C, GH, GW]
  for (let i = 0; i < n; i++) {
    const oy = Math.floor(i / xmaps) * (h + pad) + pad;
    const ox = (i % xmaps) * (w + pad) + pad;
    for (let k = 0; k < c; k++) {
      for (let y = 0; y < h; y++) {
        const src = ((i * c + k) * h + y) * w;
        out.set(images.subarray(src, src + w), (k * gh + oy + y) * gw + ox);
      }
    }
  }
  return { data: out, shape: [c, gh, gw] };
}

/**
 * Writes samples [N, C, H, W] as one PNG grid (default 8 per row, 2 px black border). Float samples
 * are taken to be in [−1, 1] and quantised with `toUint8`; uint8 samples are used as they are.
 */
export async function writeGrid(
  path: string,
  samples: Float32Array | Uint8Array,
  shape: readonly number[],
  opts: GridOptions = {},
): Promise<void> {
  const u8 = samples instanceof Uint8Array ? samples : toUint8(samples);
  const grid = makeGrid(u8, shape, opts);
  await writePng(path, grid.data, grid.shape);
}

/** Reads a PNG (or any image sharp decodes) back as uint8 [C, H, W] (for tests and reports). */
export async function readImage(path: string): Promise<{ data: Uint8Array; shape: [number, number, number] }> {
  const meta = await sharp(path).metadata();
  const grey = meta.space === 'b-w' || meta.space === 'grey16' || (meta.channels ?? 3) <= 2;
  // sharp's raw output defaults to sRGB; keep grey images one channel
  const pipeline = grey ? sharp(path).toColourspace('b-w') : sharp(path);
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const c = info.channels;
  const h = info.height;
  const w = info.width;
  const out = new Uint8Array(c * h * w); // [C, H, W]
  for (let k = 0; k < c; k++) for (let j = 0; j < h * w; j++) out[k * h * w + j] = data[j * c + k]!;
  return { data: out, shape: [c, h, w] };
}
