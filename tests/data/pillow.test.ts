import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { centerCropArr, toChw } from '../../src/data/folder.js';
import { resizeU8, type ResampleFilter } from '../../src/data/resample.js';

// Golden values computed by Pillow itself (tests/data/pillow/make_golden.py).
interface Golden {
  pillow: string;
  resize: { w: number; h: number; outW: number; outH: number; filter: ResampleFilter; hwc: number[] }[];
  centerCrop: { w: number; h: number; size: number; hwc: number[] }[];
  grey: { w: number; h: number; L: number[] }[];
}
const golden = JSON.parse(readFileSync(join(import.meta.dirname, 'pillow', 'golden.json'), 'utf8')) as Golden;

/** the generator's pattern: (7x + 13y + 29c + (x·y mod 17)) mod 256, [H, W, 3] */
function pattern(w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = (7 * x + 13 * y + 29 * c + ((x * y) % 17)) % 256;
  return out;
}

test(`resizeU8 equals Pillow ${golden.pillow}'s Image.resize bit for bit (BOX, BILINEAR, BICUBIC; down and up)`, () => {
  for (const g of golden.resize) {
    const out = resizeU8(pattern(g.w, g.h), g.h, g.w, 3, g.outH, g.outW, g.filter);
    assert.deepEqual(Array.from(out), g.hwc, `${g.w}×${g.h} → ${g.outW}×${g.outH} ${g.filter}`);
  }
});

test('centerCropArr equals ADM center_crop_arr run with Pillow bit for bit', () => {
  for (const g of golden.centerCrop) {
    const out = centerCropArr(pattern(g.w, g.h), g.h, g.w, 3, g.size).data;
    assert.deepEqual(Array.from(out), g.hwc, `${g.w}×${g.h} → ${g.size}`);
  }
});

test('grey conversion equals Pillow convert("L")', () => {
  for (const g of golden.grey) {
    // toChw works on square images; convert row by row as 1×W strips
    const rgb = pattern(g.w, g.h);
    const grey: number[] = [];
    for (let i = 0; i < g.w * g.h; i++) grey.push(toChw(rgb.subarray(i * 3, i * 3 + 3), 1, 1)[0]!);
    assert.deepEqual(grey, g.L);
  }
});
