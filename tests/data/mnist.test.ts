import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MNIST_HELDOUT_FRACTION, mnistSplitIndex, openMnist } from '../../src/data/mnist.js';
import { openDataset } from '../../src/data/index.js';
import { UserError } from '../../src/util/errors.js';

// the package's own files, read independently of the loader
const pkgDir = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
const rawDigits = (d: number): number[] =>
  (JSON.parse(readFileSync(join(pkgDir, 'src', 'digits', `${d}.json`), 'utf8')) as { data: number[] }).data;
const counts = Array.from({ length: 10 }, (_, d) => rawDigits(d).length / 784);
const held = counts.map((n) => Math.floor(MNIST_HELDOUT_FRACTION * n));
const sum = (a: number[]): number => a.reduce((s, v) => s + v, 0);

const range = (n: number): Int32Array => Int32Array.from({ length: n }, (_, i) => i);

test('split sizes follow the documented rule and train/held-out are disjoint and cover all digits', () => {
  const train = mnistSplitIndex('train');
  const heldout = mnistSplitIndex('heldout');
  const all = mnistSplitIndex('all');
  assert.equal(sum(counts), 10000);
  assert.equal(all.label.length, sum(counts));
  assert.equal(heldout.label.length, sum(held));
  assert.equal(train.label.length, sum(counts) - sum(held));
  const key = (s: { label: Int32Array; within: Int32Array }, i: number): string => `${s.label[i]}/${s.within[i]}`;
  const trainKeys = new Set(Array.from(train.label, (_, i) => key(train, i)));
  const heldKeys = new Set(Array.from(heldout.label, (_, i) => key(heldout, i)));
  assert.equal(trainKeys.size, train.label.length);
  for (const k of heldKeys) assert.ok(!trainKeys.has(k), `digit ${k} is in both splits`);
  assert.equal(trainKeys.size + heldKeys.size, new Set(Array.from(all.label, (_, i) => key(all, i))).size);
  // held-out digits are the last ones of each class
  for (let i = 0; i < heldout.label.length; i++)
    assert.ok(heldout.within[i]! >= counts[heldout.label[i]!]! - held[heldout.label[i]!]!);
});

test('32×32 images: shape, range, 2-px background border, labels, pixels equal the package data', async () => {
  const ds = openMnist({ split: 'all', imageSize: 32 });
  assert.equal(ds.numClasses, 10);
  assert.equal(ds.channels, 1);
  const b = await ds.batch(range(20));
  assert.deepEqual(b.shape, [20, 1, 32, 32]);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of b.x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  assert.equal(lo, -1);
  assert.ok(hi <= 1 && hi > 0.9, `max ${hi}`);
  for (let i = 0; i < 20; i++) {
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        if (y < 2 || y >= 30 || x < 2 || x >= 30) assert.equal(b.x[i * 1024 + y * 32 + x], -1);
      }
    }
  }
  // round-robin order: the first ten indices are digit 0 of classes 0..9
  assert.deepEqual(Array.from(b.y.subarray(0, 10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // index 3 = the first digit of class 3: pixel = round(255 v)/127.5 − 1
  const raw3 = rawDigits(3).slice(0, 784);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      assert.equal(b.x[3 * 1024 + (y + 2) * 32 + x + 2], Math.fround(Math.round(raw3[y * 28 + x]! * 255) / 127.5 - 1));
    }
  }
});

test('labels: every class present in both splits; 3 channels repeat the grey one; 28 is the 32 crop', async () => {
  const heldout = openMnist({ split: 'heldout', channels: 3, imageSize: 32 });
  const b = await heldout.batch(range(heldout.size));
  assert.deepEqual([...new Set(b.y)].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const hist = new Array(10).fill(0);
  for (const y of b.y) hist[y]++;
  assert.deepEqual(hist, held);
  for (let i = 0; i < 5; i++) {
    const g = b.x.subarray(i * 3072, i * 3072 + 1024);
    assert.deepEqual(b.x.subarray(i * 3072 + 1024, i * 3072 + 2048), g);
    assert.deepEqual(b.x.subarray(i * 3072 + 2048, i * 3072 + 3072), g);
  }
  const d28 = await openMnist({ split: 'heldout', imageSize: 28 }).batch([7]);
  const d32 = await openMnist({ split: 'heldout', imageSize: 32 }).batch([7]);
  for (let y = 0; y < 28; y++)
    assert.deepEqual(d28.x.subarray(y * 28, y * 28 + 28), d32.x.subarray((y + 2) * 32 + 2, (y + 2) * 32 + 30));
});

test('other sizes are resized and stay in [−1, 1]', async () => {
  const b = await openMnist({ imageSize: 16 }).batch([0, 1, 2]);
  assert.deepEqual(b.shape, [3, 1, 16, 16]);
  for (const v of b.x) assert.ok(v >= -1 && v <= 1);
  // corners are background
  assert.equal(b.x[0], -1);
});

test('fingerprints: stable, and different per split, size and channels', async () => {
  const a = openMnist();
  assert.equal(a.fingerprint, openMnist().fingerprint);
  assert.match(a.fingerprint, /^[0-9a-f]{64}$/);
  const others = [openMnist({ split: 'heldout' }), openMnist({ imageSize: 32 }), openMnist({ channels: 3 })].map(
    (d) => d.fingerprint,
  );
  assert.equal(new Set([a.fingerprint, ...others]).size, 4);
  assert.equal((await openDataset({ kind: 'mnist' })).fingerprint, a.fingerprint);
});

test('bad options are UserErrors', async () => {
  assert.throws(() => openMnist({ split: 'test' as never }), UserError);
  assert.throws(() => openMnist({ imageSize: 3 }), UserError);
  assert.throws(() => openMnist({ channels: 2 as never }), UserError);
  await assert.rejects(openDataset({ kind: 'mnist', path: 'x' }), UserError);
  await assert.rejects(openDataset({ kind: 'nope' as never }), UserError);
});
