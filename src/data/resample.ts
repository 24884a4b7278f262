// Separable image resampling as Pillow's `Image.resize` does it (the reference preprocesses images
// with PIL: ADM's `center_crop_arr` uses BOX and BICUBIC), written from the algorithm's description:
//
//   1. scale = inSize / outSize; filterScale = max(scale, 1) (antialiasing when reducing);
//      support = filter.support · filterScale.
//   2. output pixel xx has centre c = (xx + 0.5) · scale in input coordinates; it reads input pixels
//      x ∈ [trunc(c − support + 0.5), trunc(c + support + 0.5)) ∩ [0, inSize) with weights
//      filter((x − c + 0.5) / filterScale), normalised to sum 1.
//   3. horizontal pass first, then vertical; for 8-bit images each pass rounds to uint8 through
//      fixed-point weights with 22 fractional bits (round half up, clamp to [0, 255]), so results are
//      bit-identical to Pillow's 8-bit path.
//
// Images here are interleaved [H, W, C] (HWC) host arrays: what sharp decodes to and what PIL's
// resize sees. The NCHW conversion happens in the loaders.

export type ResampleFilter = 'box' | 'bilinear' | 'bicubic';

interface FilterDef {
  support: number;
  f: (x: number) => number;
}

const BICUBIC_A = -0.5; // Pillow's (and Keys') bicubic parameter

const FILTERS: Record<ResampleFilter, FilterDef> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: {
    support: 1,
    f: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = Math.abs(x);
      if (a < 1) return ((BICUBIC_A + 2) * a - (BICUBIC_A + 3)) * a * a + 1;
      if (a < 2) return (((a - 5) * a + 8) * a - 4) * BICUBIC_A;
      return 0;
    },
  },
};

/** Per output pixel: first input index, count, and normalised weights (ksize per pixel). */
interface Coefficients {
  xmin: Int32Array; // [outSize]
  count: Int32Array; // [outSize]
  ksize: number;
  weights: Float64Array; // [outSize, ksize]
}

function coefficients(inSize: number, outSize: number, filter: ResampleFilter): Coefficients {
  const { support: baseSupport, f } = FILTERS[filter];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = baseSupport * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const xmin = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let sum = 0;
    for (let x = 0; x < hi - lo; x++) {
      const w = f((x + lo - center + 0.5) * ss);
      weights[xx * ksize + x] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < hi - lo; x++) weights[xx * ksize + x]! /= sum;
    xmin[xx] = lo;
    count[xx] = hi - lo;
  }
  return { xmin, count, ksize, weights };
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

/** Pillow's fixed-point weights: round half away from zero of w · 2^22. */
function fixedPoint(c: Coefficients): Int32Array {
  const out = new Int32Array(c.weights.length);
  for (let i = 0; i < c.weights.length; i++) {
    const w = c.weights[i]! * ONE;
    out[i] = w < 0 ? Math.trunc(-0.5 + w) : Math.trunc(0.5 + w);
  }
  return out;
}

function clip8(acc: number): number {
  if (acc >= ONE * 256) return 255;
  if (acc <= 0) return 0;
  return Math.floor(acc / ONE);
}

/** One 8-bit pass along width (axis 'x') or height (axis 'y') of an [H, W, C] image. */
function passU8(
  src: Uint8Array,
  h: number,
  w: number,
  ch: number,
  out: number,
  axis: 'x' | 'y',
  filter: ResampleFilter,
): Uint8Array {
  const inSize = axis === 'x' ? w : h;
  const c = coefficients(inSize, out, filter);
  const k = fixedPoint(c);
  const oh = axis === 'x' ? h : out;
  const ow = axis === 'x' ? out : w;
  const dst = new Uint8Array(oh * ow * ch);
  const half = 2 ** (PRECISION_BITS - 1);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const o = axis === 'x' ? x : y;
      const lo = c.xmin[o]!;
      const n = c.count[o]!;
      const kb = o * c.ksize;
      for (let z = 0; z < ch; z++) {
        let acc = half;
        for (let i = 0; i < n; i++) {
          const sv = axis === 'x' ? src[(y * w + lo + i) * ch + z]! : src[((lo + i) * w + x) * ch + z]!;
          acc += sv * k[kb + i]!;
        }
        dst[(y * ow + x) * ch + z] = clip8(acc);
      }
    }
  }
  return dst;
}

/**
 * Resizes an 8-bit [H, W, C] image to [outH, outW, C] exactly as Pillow's `Image.resize(…, filter)`
 * on an 8-bit image (horizontal pass, then vertical; passes whose size is unchanged are skipped).
 */
export function resizeU8(
  src: Uint8Array,
  h: number,
  w: number,
  ch: number,
  outH: number,
  outW: number,
  filter: ResampleFilter,
): Uint8Array {
  if (src.length !== h * w * ch) throw new Error(`resizeU8: ${src.length} values do not fill [${h}, ${w}, ${ch}]`);
  let img = src;
  if (outW !== w) img = passU8(img, h, w, ch, outW, 'x', filter);
  if (outH !== h) img = passU8(img, h, outW, ch, outH, 'y', filter);
  return img === src ? src.slice() : img;
}

/** Float version (no rounding between passes) of `resizeU8`, for one-channel [H, W] maps. */
export function resizeF32(
  src: Float32Array,
  h: number,
  w: number,
  outH: number,
  outW: number,
  filter: ResampleFilter,
): Float32Array {
  const cx = coefficients(w, outW, filter);
  const cy = coefficients(h, outH, filter);
  const tmp = new Float64Array(h * outW); // [H, outW]
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < outW; x++) {
      let acc = 0;
      const lo = cx.xmin[x]!;
      for (let i = 0; i < cx.count[x]!; i++) acc += src[y * w + lo + i]! * cx.weights[x * cx.ksize + i]!;
      tmp[y * outW + x] = acc;
    }
  }
  const out = new Float32Array(outH * outW); // [outH, outW]
  for (let y = 0; y < outH; y++) {
    const lo = cy.xmin[y]!;
    for (let x = 0; x < outW; x++) {
      let acc = 0;
      for (let i = 0; i < cy.count[y]!; i++) acc += tmp[(lo + i) * outW + x]! * cy.weights[y * cy.ksize + i]!;
      out[y * outW + x] = acc;
    }
  }
  return out;
}
