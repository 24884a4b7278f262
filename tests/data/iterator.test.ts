import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchIterator,
  sequentialBatches,
  type BatchIteratorState,
  type IteratedBatch,
} from '../../src/data/dataset.js';
import { openSynthetic } from '../../src/data/synthetic.js';
import { UserError } from '../../src/util/errors.js';

const ds = openSynthetic({ size: 10, imageSize: 8, channels: 3 });

async function take(it: BatchIterator, k: number): Promise<IteratedBatch[]> {
  const out: IteratedBatch[] = [];
  for (let i = 0; i < k; i++) out.push(await it.next());
  return out;
}

test('each epoch is a permutation; a short remainder is dropped', async () => {
  const it = new BatchIterator(ds, { batchSize: 3, seed: 1 });
  const batches = await take(it, 9); // 3 batches (9 images) per epoch of 10
  for (let e = 0; e < 3; e++) {
    const seen = batches.slice(3 * e, 3 * e + 3).flatMap((b) => Array.from(b.indices));
    assert.equal(new Set(seen).size, 9);
    assert.ok(batches.slice(3 * e, 3 * e + 3).every((b) => b.epoch === e));
  }
  assert.notDeepEqual(batches[0]!.indices, batches[3]!.indices);
  // the batch holds the dataset's images at those indices
  const direct = await ds.batch(batches[4]!.indices);
  assert.deepEqual(batches[4]!.x, direct.x);
  assert.deepEqual(batches[4]!.y, direct.y);
});

test('resuming from a saved state (through JSON) equals uninterrupted iteration, across epochs, with flips', async () => {
  for (const hflip of [false, true]) {
    const opts = { batchSize: 4, seed: 'run/7', hflip };
    const full = await take(new BatchIterator(ds, opts), 12);
    for (const cut of [1, 2, 3, 5, 8]) {
      const a = new BatchIterator(ds, opts);
      const head = await take(a, cut);
      const saved = JSON.parse(JSON.stringify(a.state())) as BatchIteratorState;
      const tail = await take(new BatchIterator(ds, opts, saved), 12 - cut);
      const resumed = [...head, ...tail];
      for (let i = 0; i < 12; i++) {
        assert.deepEqual(resumed[i]!.indices, full[i]!.indices, `hflip ${hflip}, cut ${cut}, batch ${i}`);
        assert.deepEqual(resumed[i]!.x, full[i]!.x);
        assert.equal(resumed[i]!.epoch, full[i]!.epoch);
      }
    }
  }
});

test('flips mirror images left–right; same seed same batches, another seed others', async () => {
  const plain = await take(new BatchIterator(ds, { batchSize: 5, seed: 2 }), 4);
  const flipped = await take(new BatchIterator(ds, { batchSize: 5, seed: 2, hflip: true }), 4);
  let nFlipped = 0;
  for (let b = 0; b < 4; b++) {
    for (let i = 0; i < 5; i++) {
      const p = plain[b]!.x.subarray(i * 192, (i + 1) * 192);
      const f = flipped[b]!.x.subarray(i * 192, (i + 1) * 192);
      const mirrored = p.map((_, j) => p[Math.floor(j / 8) * 8 + (7 - (j % 8))]!);
      if (f.every((v, j) => v === p[j])) continue;
      assert.deepEqual(f, mirrored);
      nFlipped++;
    }
  }
  assert.ok(nFlipped > 2 && nFlipped < 18, `${nFlipped} of 20 flipped`);
  const again = await take(new BatchIterator(ds, { batchSize: 5, seed: 2 }), 4);
  assert.deepEqual(
    again.map((b) => b.indices),
    plain.map((b) => b.indices),
  );
  const other = await take(new BatchIterator(ds, { batchSize: 5, seed: 3 }), 4);
  assert.notDeepEqual(
    other.map((b) => b.indices),
    plain.map((b) => b.indices),
  );
});

test('bad batch sizes and mismatched resume states are UserErrors', async () => {
  assert.throws(() => new BatchIterator(ds, { batchSize: 11, seed: 0 }), UserError);
  assert.throws(() => new BatchIterator(ds, { batchSize: 0, seed: 0 }), UserError);
  const a = new BatchIterator(ds, { batchSize: 2, seed: 0 });
  await a.next();
  assert.throws(() => new BatchIterator(ds, { batchSize: 3, seed: 0 }, a.state()), UserError);
});

test('sequential batches cover the dataset in order, the last one short', async () => {
  const starts: number[] = [];
  const sizes: number[] = [];
  for await (const b of sequentialBatches(ds, 4)) {
    starts.push(b.start);
    sizes.push(b.shape[0]);
  }
  assert.deepEqual(starts, [0, 4, 8]);
  assert.deepEqual(sizes, [4, 4, 2]);
  const limited: number[] = [];
  for await (const b of sequentialBatches(ds, 4, 6)) limited.push(b.shape[0]);
  assert.deepEqual(limited, [4, 2]);
});
