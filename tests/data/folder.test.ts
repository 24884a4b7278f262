import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { centerCropArr, openFolder, pyRound } from '../../src/data/folder.js';
import { resizeU8, resizeF32 } from '../../src/data/resample.js';
import { openDataset } from '../../src/data/index.js';
import { UserError } from '../../src/util/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'fpdm-folder-test-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (): string => {
  const d = join(tmp, `d${dirCount++}`);
  mkdirSync(d, { recursive: true });
  return d;
};

/** A solid image of `rgb` (or grey / RGBA) written with sharp. */
async function solid(path: string, w: number, h: number, px: number[], fmt: 'png' | 'webp' = 'png'): Promise<void> {
  const c = px.length;
  const data = Buffer.alloc(w * h * c);
  for (let i = 0; i < w * h; i++) for (let k = 0; k < c; k++) data[i * c + k] = px[k]!;
  const raw = sharp(data, { raw: { width: w, height: h, channels: c as 1 | 3 | 4 } });
  const img = c === 1 ? raw.toColourspace('b-w') : raw;
  await (fmt === 'png' ? img.png() : img.webp({ lossless: true })).toFile(path);
}

const u = (p: number): number => Math.fround(p / 127.5 - 1);

test('class sub-folders: sorted class names, labels, recursive listing, colours preserved through the crop', async () => {
  const root = newDir();
  for (const c of ['dog', 'ant', 'cat', 'cat/sub']) mkdirSync(join(root, c), { recursive: true });
  await solid(join(root, 'cat', 'a.png'), 40, 40, [200, 10, 30]);
  await solid(join(root, 'cat', 'sub', 'b.png'), 70, 90, [0, 255, 128]);
  await solid(join(root, 'dog', 'c.webp'), 50, 30, [5, 6, 250], 'webp');
  await solid(join(root, 'ant', 'd.png'), 33, 33, [100]); // grey PNG
  await solid(join(root, 'ant', 'e.png'), 20, 20, [1, 2, 3, 0]); // RGBA: alpha dropped
  assert.equal((await sharp(join(root, 'ant', 'd.png')).metadata()).channels, 1);
  assert.equal((await sharp(join(root, 'ant', 'e.png')).metadata()).channels, 4);
  writeFileSync(join(root, 'ant', 'notes.txt'), 'not an image');
  writeFileSync(join(root, 'cat', '.hidden.png'), 'ignored');
  const ds = await openFolder({ path: root, imageSize: 16 });
  assert.deepEqual(ds.classNames, ['ant', 'cat', 'dog']);
  assert.equal(ds.numClasses, 3);
  assert.equal(ds.labeled, true);
  assert.equal(ds.size, 5);
  const b = await ds.batch([0, 1, 2, 3, 4]);
  assert.deepEqual(b.shape, [5, 3, 16, 16]);
  assert.deepEqual(Array.from(b.y), [0, 0, 1, 1, 2]);
  const colours = [
    [100, 100, 100],
    [1, 2, 3],
    [200, 10, 30],
    [0, 255, 128],
    [5, 6, 250],
  ];
  colours.forEach((rgb, i) => {
    for (let k = 0; k < 3; k++) {
      const plane = b.x.subarray((i * 3 + k) * 256, (i * 3 + k + 1) * 256);
      assert.ok(
        plane.every((v) => v === u(rgb[k]!)),
        `image ${i} channel ${k}`,
      );
    }
  });
  // grey: Pillow's L of (200, 10, 30)
  const grey = await openFolder({ path: root, imageSize: 16, channels: 1 });
  const g = await grey.batch([2]);
  assert.deepEqual(g.shape, [1, 1, 16, 16]);
  assert.equal(g.x[0], u((200 * 19595 + 10 * 38470 + 30 * 7471 + 0x8000) >>> 16));
});

test('center crop geometry: the middle of a wide image, with column values intact', async () => {
  const root = newDir();
  const w = 96;
  const h = 32;
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set([x, 4 * y, 7], (y * w + x) * 3);
  await sharp(data, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(join(root, 'wide.png'));
  const ds = await openFolder({ path: root, imageSize: 32 });
  const b = await ds.batch([0]);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      assert.equal(b.x[y * 32 + x], u(32 + x)); // R = source column 32 + x
      assert.equal(b.x[1024 + y * 32 + x], u(4 * y));
    }
  }
});

test('center_crop_arr steps: halving by BOX while min side >= 2·size, bicubic to the short side, Python rounding', () => {
  const img = (w: number, h: number): Uint8Array => new Uint8Array(w * h * 3).fill(77);
  // 300×200 → 150×100 → 75×50 (50 < 64 stops) → ×32/50 → 48×32 → crop x offset 8
  let r = centerCropArr(img(300, 200), 200, 300, 3, 32);
  assert.deepEqual(r.resized, [32, 48]);
  assert.deepEqual(r.crop, [0, 8]);
  assert.ok(r.data.every((v) => v === 77));
  // 3×2 to size 3: scale 1.5, width 4.5 rounds half to even → 4
  r = centerCropArr(img(3, 2), 2, 3, 3, 3);
  assert.deepEqual(r.resized, [3, 4]);
  assert.deepEqual(r.crop, [0, 0]);
  // tall: 40×130 to 16 → 20×65 (20 < 32) → ×16/20 → 16×52 → crop y offset 18
  r = centerCropArr(img(40, 130), 130, 40, 3, 16);
  assert.deepEqual(r.resized, [52, 16]);
  assert.deepEqual(r.crop, [18, 0]);
  assert.deepEqual([pyRound(0.5), pyRound(1.5), pyRound(2.5), pyRound(2.4999), pyRound(7.51)], [0, 2, 2, 2, 8]);
});

test('Pillow resampling: BOX halving is the rounded mean of 2×2 blocks; constant images stay constant', () => {
  const src = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) % 256); // [4, 4, 1]
  const out = resizeU8(src, 4, 4, 1, 2, 2, 'box');
  const half = (a: number, b: number): number => Math.floor((a + b + 1) / 2); // round half up
  for (let y = 0; y < 2; y++) {
    for (let x = 0; x < 2; x++) {
      const at = (yy: number, xx: number): number => src[(2 * y + yy) * 4 + 2 * x + xx]!;
      // horizontal pass first (rounded to 8 bits), then vertical
      assert.equal(out[y * 2 + x], half(half(at(0, 0), at(0, 1)), half(at(1, 0), at(1, 1))));
    }
  }
  for (const [oh, ow] of [
    [7, 5],
    [31, 40],
    [3, 3],
  ] as const) {
    assert.ok(resizeU8(new Uint8Array(13 * 17 * 3).fill(201), 13, 17, 3, oh, ow, 'bicubic').every((v) => v === 201));
    assert.ok(
      resizeF32(new Float32Array(13 * 17).fill(0.25), 13, 17, oh, ow, 'bilinear').every(
        (v) => Math.abs(v - 0.25) < 1e-6,
      ),
    );
  }
});

test('a flat folder is one unlabeled class', async () => {
  const root = newDir();
  await solid(join(root, 'x.png'), 8, 8, [9, 9, 9]);
  await solid(join(root, 'y.png'), 8, 8, [19, 9, 9]);
  const ds = await openDataset({ kind: 'folder', path: root, imageSize: 8 });
  assert.equal(ds.labeled, false);
  assert.equal(ds.numClasses, 1);
  assert.deepEqual(Array.from((await ds.batch([0, 1])).y), [0, 0]);
});

test('unreadable images, missing, empty and mixed folders are UserErrors naming the problem', async () => {
  const root = newDir();
  await solid(join(root, 'good.png'), 8, 8, [1, 2, 3]);
  writeFileSync(join(root, 'broken.png'), Buffer.from('this is not a PNG file at all'));
  await assert.rejects(
    openFolder({ path: root, imageSize: 8 }),
    (e: Error) => e instanceof UserError && e.message.includes('broken.png'),
  );
  // without the cache the error comes when the image is read
  const lazy = await openFolder({ path: root, imageSize: 8, cacheBytes: 0 });
  await assert.rejects(lazy.batch([0]), (e: Error) => e instanceof UserError && e.message.includes('broken.png'));
  await assert.rejects(
    openFolder({ path: join(root, 'nope'), imageSize: 8 }),
    (e: Error) => e instanceof UserError && /does not exist/.test(e.message),
  );
  await assert.rejects(
    openFolder({ path: join(root, 'good.png'), imageSize: 8 }),
    (e: Error) => e instanceof UserError && /not a folder/.test(e.message),
  );
  await assert.rejects(
    openFolder({ path: newDir(), imageSize: 8 }),
    (e: Error) => e instanceof UserError && /no PNG/.test(e.message),
  );
  const mixed = newDir();
  await solid(join(mixed, 'top.png'), 8, 8, [1, 2, 3]);
  mkdirSync(join(mixed, 'cls'));
  await solid(join(mixed, 'cls', 'a.png'), 8, 8, [1, 2, 3]);
  await assert.rejects(openFolder({ path: mixed, imageSize: 8 }), UserError);
  const emptyClass = newDir();
  mkdirSync(join(emptyClass, 'a'));
  mkdirSync(join(emptyClass, 'b'));
  await solid(join(emptyClass, 'a', 'x.png'), 8, 8, [1, 2, 3]);
  await assert.rejects(
    openFolder({ path: emptyClass, imageSize: 8 }),
    (e: Error) => e instanceof UserError && e.message.includes('b'),
  );
  await assert.rejects(openDataset({ kind: 'folder', imageSize: 8 }), UserError);
});

test('the fingerprint is stable and changes when a file, a name or the preprocessing changes', async () => {
  const root = newDir();
  await solid(join(root, 'a.png'), 12, 12, [10, 20, 30]);
  await solid(join(root, 'b.png'), 12, 12, [40, 50, 60]);
  const fp = async (size = 8): Promise<string> => (await openFolder({ path: root, imageSize: size })).fingerprint;
  const f0 = await fp();
  assert.match(f0, /^[0-9a-f]{64}$/);
  assert.equal(await fp(), f0);
  assert.notEqual(await fp(12), f0);
  await solid(join(root, 'b.png'), 12, 12, [40, 50, 61]); // one pixel value changes
  const f1 = await fp();
  assert.notEqual(f1, f0);
  renameSync(join(root, 'b.png'), join(root, 'c.png'));
  const f2 = await fp();
  assert.notEqual(f2, f1);
  await solid(join(root, 'd.png'), 12, 12, [0, 0, 0]);
  assert.notEqual(await fp(), f2);
});
