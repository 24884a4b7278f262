import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeGrid, readImage, toUint8, writeGrid, writePng } from '../../src/data/images.js';
import { Rng } from '../../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 'fpdm-images-test-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

test('toUint8 is ⌊clamp(127.5x + 128, 0, 255)⌋', () => {
  assert.deepEqual(Array.from(toUint8([-1, -0.5, 0, 0.5, 1, 2, -3, NaN, 0.999])), [
    0,
    64,
    128,
    191,
    255,
    255,
    0,
    0,
    Math.floor(127.5 * 0.999 + 128),
  ]);
});

test('makeGrid places cells as torchvision make_grid, with padding around and between', () => {
  const imgs = Uint8Array.from([10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12]); // [3, 1, 2, 2]
  const g = makeGrid(imgs, [3, 1, 2, 2], { nrow: 2, padding: 2, padValue: 5 });
  assert.deepEqual(g.shape, [1, 10, 10]);
  const at = (y: number, x: number): number => g.data[y * 10 + x]!;
  assert.equal(at(2, 2), 10);
  assert.equal(at(3, 3), 10);
  assert.equal(at(2, 6), 11);
  assert.equal(at(6, 2), 12);
  assert.equal(at(6, 6), 5); // the fourth cell is empty
  for (let i = 0; i < 10; i++) for (const j of [0, 1, 4, 5, 8, 9]) assert.equal(at(i, j), 5);
});

test('writeGrid of 64 RGB samples gives an 8×8 grid with a 2-px black border; PNGs round-trip', async () => {
  const n = 64;
  const s = 4;
  const x = new Rng(1).normals(n * 3 * s * s).map((v) => Math.tanh(v));
  const path = join(tmp, 'grid.png');
  await writeGrid(path, x, [n, 3, s, s]);
  const back = await readImage(path);
  const side = 8 * (s + 2) + 2;
  assert.deepEqual(back.shape, [3, side, side]);
  const u8 = toUint8(x);
  // sample 9 sits at row 1, column 1
  for (let k = 0; k < 3; k++) {
    for (let y = 0; y < s; y++) {
      for (let xx = 0; xx < s; xx++)
        assert.equal(back.data[(k * side + 8 + y) * side + 8 + xx], u8[((9 * 3 + k) * s + y) * s + xx]);
    }
    for (let j = 0; j < side; j++) {
      assert.equal(back.data[(k * side + 0) * side + j], 0);
      assert.equal(back.data[(k * side + 1) * side + j], 0);
      assert.equal(back.data[(k * side + j) * side + side - 1], 0);
    }
  }
  const grey = Uint8Array.from({ length: 6 * 5 }, (_, i) => i * 8);
  await writePng(join(tmp, 'grey.png'), grey, [1, 6, 5]);
  const g = await readImage(join(tmp, 'grey.png'));
  assert.deepEqual(g.shape, [1, 6, 5]);
  assert.deepEqual(g.data, grey);
});
