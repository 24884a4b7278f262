import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { readNpy, readNpz, writeNpy, writeNpz, parseNpy } from '../../src/io/npy.js';
import { f64, hostTensor } from '../../src/io/tensor.js';
import { readAny } from '../../src/io/index.js';
import { UserError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'npy-'));
const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('npz of float64 mu/sigma round-trips with exact keys, dtypes, shapes and values', () => {
  const mu = f64([4], [0.1, -2, 3e-300, 1e300]);
  const sigma = f64(
    [4, 4],
    Array.from({ length: 16 }, (_, i) => i / 7),
  );
  const p = join(dir, 'stats.npz');
  writeNpz(p, { mu, sigma });
  const back = readNpz(p);
  assert.deepEqual([...back.keys()], ['mu', 'sigma']);
  assert.equal(back.get('mu')!.dtype, 'F64');
  assert.deepEqual(back.get('sigma')!.shape, [4, 4]);
  assert.deepEqual(back.get('mu')!.data, mu.data);
  assert.deepEqual(back.get('sigma')!.data, sigma.data);
  assert.equal(readAny(p).format, 'npz');
});

test('npy round trip of several dtypes; header is 64-byte aligned', () => {
  for (const t of [
    hostTensor('F32', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6])),
    hostTensor('I64', [2], BigInt64Array.from([-5n, 7n])),
    hostTensor('U8', [3], Uint8Array.from([0, 1, 255])),
  ]) {
    const p = join(dir, `a_${t.dtype}.npy`);
    writeNpy(p, t);
    const back = readNpy(p);
    assert.equal(back.dtype, t.dtype);
    assert.deepEqual(back.shape, t.shape);
    assert.deepEqual(back.data, t.data);
  }
});

test('fortran-order and big-endian arrays are converted; a bad header is a UserError', () => {
  const header = "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }";
  const pad = ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const h = Buffer.from(header + pad, 'latin1');
  const data = Buffer.alloc(48);
  // column-major values of [[1,2,3],[4,5,6]] → 1,4,2,5,3,6 (big-endian)
  [1, 4, 2, 5, 3, 6].forEach((v, i) => data.writeDoubleBE(v, i * 8));
  const buf = Buffer.concat([
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]),
    Buffer.from([h.length & 0xff, h.length >> 8]),
    h,
    data,
  ]);
  const t = parseNpy(buf);
  assert.deepEqual([...(t.data as Float64Array)], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseNpy(Buffer.from('not numpy at all')), UserError);
});

test(
  'numpy itself reads what we write and we read what numpy writes',
  { skip: hasNumpy ? false : 'python3 with numpy is not installed here' },
  () => {
    const ours = join(dir, 'ours.npz');
    writeNpz(ours, { mu: f64([3], [1, 2, 3]), sigma: f64([3, 3], [1, 0, 0, 0, 2, 0, 0, 0, 3]) });
    const theirs = join(dir, 'theirs.npz');
    const py = `import numpy as np\nd=np.load(${JSON.stringify(ours)})\nassert d['mu'].dtype==np.float64 and d['sigma'].shape==(3,3)\nnp.savez_compressed(${JSON.stringify(theirs)}, mu=d['mu']*2, sigma=d['sigma'].T.copy(order='F'))\nprint('ok')`;
    const script = join(dir, 'rt.py');
    writeFileSync(script, py);
    const r = spawnSync('python3', [script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const back = readNpz(theirs);
    assert.deepEqual([...(back.get('mu')!.data as Float64Array)], [2, 4, 6]);
    assert.deepEqual([...(back.get('sigma')!.data as Float64Array)], [1, 0, 0, 0, 2, 0, 0, 0, 3]);
  },
);
