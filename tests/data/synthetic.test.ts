import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSynthetic } from '../../src/data/synthetic.js';
import { UserError } from '../../src/util/errors.js';

test('synthetic data are deterministic per seed and independent of read order', async () => {
  const a = openSynthetic({ size: 16, seed: 3 });
  const b = openSynthetic({ size: 16, seed: 3 });
  const c = openSynthetic({ size: 16, seed: 4 });
  const x1 = await a.batch([5, 2, 9]);
  const x2 = await b.batch([5, 2, 9]);
  assert.deepEqual(x1, x2);
  assert.notDeepEqual((await c.batch([5, 2, 9])).x, x1.x);
  const single = await a.batch([2]);
  assert.deepEqual(single.x, x1.x.subarray(3072, 6144));
  assert.equal(a.fingerprint, b.fingerprint);
  assert.notEqual(a.fingerprint, c.fingerprint);
});

test('synthetic shapes, range and labels i mod K; classes differ in where the blob is', async () => {
  const ds = openSynthetic({ size: 12, numClasses: 4, imageSize: 16, channels: 1 });
  const b = await ds.batch(Int32Array.from({ length: 12 }, (_, i) => i));
  assert.deepEqual(b.shape, [12, 1, 16, 16]);
  assert.deepEqual(Array.from(b.y), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  for (const v of b.x) assert.ok(v >= -1 && v <= 1);
  // brightest pixel of class k lies in the direction 2πk/4 from the centre
  for (let i = 0; i < 4; i++) {
    let best = 0;
    for (let j = 1; j < 256; j++) if (b.x[i * 256 + j]! > b.x[i * 256 + best]!) best = j;
    const dx = (best % 16) + 0.5 - 8;
    const dy = Math.floor(best / 16) + 0.5 - 8;
    const angle = (2 * Math.PI * i) / 4;
    assert.ok(dx * Math.cos(angle) + dy * Math.sin(angle) > 2, `class ${i}: peak at (${dx}, ${dy})`);
  }
});

test('bad synthetic options are UserErrors', () => {
  assert.throws(() => openSynthetic({ size: 0 }), UserError);
  assert.throws(() => openSynthetic({ channels: 2 as never }), UserError);
});

test('openDataset fills synthetic defaults for options left undefined', async () => {
  const { openDataset } = await import('../../src/data/index.js');
  const ds = await openDataset({ kind: 'synthetic', size: undefined, imageSize: 8 });
  assert.equal(ds.size, 512);
  assert.equal(ds.numClasses, 4);
  assert.equal(ds.channels, 3);
});
