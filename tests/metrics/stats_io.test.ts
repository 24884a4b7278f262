import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpz, writeNpz } from '../../src/io/npy.js';
import { f32, f64 } from '../../src/io/tensor.js';
import { openZip } from '../../src/io/zip.js';
import { featureStats } from '../../src/metrics/statistics.js';
import {
  imageSetFingerprint,
  loadCachedStats,
  readStatsNpz,
  saveCachedStats,
  statsCachePath,
  writeStatsNpz,
} from '../../src/metrics/stats_io.js';
import { Rng } from '../../src/util/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'fpdm-stats-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const rng = new Rng('stats-io');
const st = featureStats(Float64Array.from(rng.normals(40 * 6)), 40, 6);

test('.npz stats have exactly mu <f8 [d] and sigma <f8 [d, d] (numpy savez layout) and read back bit-exactly', () => {
  const p = join(dir, 's.npz');
  writeStatsNpz(p, st);
  const z = openZip(p);
  try {
    assert.deepEqual(z.entries.map((e) => e.name).sort(), ['mu.npy', 'sigma.npy']);
    const header = Buffer.from(z.read('sigma.npy').subarray(0, 128)).toString('latin1');
    assert.match(header, /^\x93NUMPY/);
    assert.match(header, /'descr': '<f8', 'fortran_order': False, 'shape': \(6, 6\)/);
    assert.match(Buffer.from(z.read('mu.npy').subarray(0, 128)).toString('latin1'), /'shape': \(6,\)/);
  } finally {
    z.close();
  }
  const arrays = readNpz(p);
  assert.equal(arrays.get('mu')!.dtype, 'F64');
  assert.deepEqual(arrays.get('sigma')!.shape, [6, 6]);
  const back = readStatsNpz(p);
  assert.equal(back.dim, 6);
  assert.deepEqual(back.mu, st.mu);
  assert.deepEqual(back.sigma, st.sigma);
});

test('stats with float32 arrays and extra keys (ADM reference batches) load; wrong ones are clear errors', () => {
  const p = join(dir, 'adm.npz');
  writeNpz(p, { mu: f32([2], [1, 2]), sigma: f32([2, 2], [1, 0, 0, 1]), mu_s: f64([1], [0]) });
  assert.deepEqual([...readStatsNpz(p).mu], [1, 2]);
  const q = join(dir, 'bad.npz');
  writeNpz(q, { arr_0: f64([1], [0]) });
  assert.throws(() => readStatsNpz(q), /no 'mu' and 'sigma'.*arr_0/);
  const r = join(dir, 'shape.npz');
  writeNpz(r, { mu: f64([3], [0, 0, 0]), sigma: f64([2, 2], [1, 0, 0, 1]) });
  assert.throws(() => readStatsNpz(r), /expected \[d\] and \[d, d\]/);
});

test('reference statistics are cached by (fingerprint, mode, N) under XDG_CACHE_HOME', () => {
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  try {
    const fp = imageSetFingerprint([
      { name: 'a.png', sha256: 'aa' },
      { name: 'b.png', sha256: 'bb' },
    ]);
    assert.notEqual(
      fp,
      imageSetFingerprint([
        { name: 'b.png', sha256: 'bb' },
        { name: 'a.png', sha256: 'aa' },
      ]),
    );
    const key = { fingerprint: fp, mode: 'tf' as const, n: 40 };
    assert.equal(loadCachedStats(key), undefined);
    const path = saveCachedStats(key, st);
    assert.equal(path, statsCachePath(key));
    assert.ok(path.startsWith(join(dir, 'cache', 'fpdm-exp', 'stats')));
    assert.match(path, /-tf-n40\.npz$/);
    assert.deepEqual(loadCachedStats(key)!.sigma, st.sigma);
    assert.equal(loadCachedStats({ ...key, mode: 'pytorch-fid' }), undefined);
    assert.equal(loadCachedStats({ ...key, n: 41 }), undefined);
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});
