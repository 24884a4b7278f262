import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors, readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { hostTensor, type TensorMap } from '../../src/io/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { fixture } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'st-'));

test('reads the DiT fixture state_dict', () => {
  const { tensors } = readSafetensors(fixture('dit_tiny.safetensors'));
  const w = tensors.get('x_embedder.proj.weight');
  assert.ok(w, 'x_embedder.proj.weight present');
  assert.equal(w.dtype, 'F32');
  assert.deepEqual(w.shape, [64, 4, 2, 2]);
});

test('round trip of every dtype is bit-exact', () => {
  const t: TensorMap = new Map([
    ['f64', hostTensor('F64', [2, 3], Float64Array.from([1, -2.5, Math.PI, 1e-300, -0, Infinity]))],
    ['f32', hostTensor('F32', [3], Float32Array.from([0.1, NaN, -7]))],
    ['f16', hostTensor('F16', [2], Uint16Array.from([0x3c00, 0xc000]))],
    ['bf16', hostTensor('BF16', [2], Uint16Array.from([0x3f80, 0x4049]))],
    ['i64', hostTensor('I64', [2], BigInt64Array.from([-1n, 9007199254740993n]))],
    ['i32', hostTensor('I32', [1], Int32Array.from([-123456]))],
    ['u8', hostTensor('U8', [3], Uint8Array.from([0, 128, 255]))],
    ['bool', hostTensor('BOOL', [2], Uint8Array.from([1, 0]))],
    ['empty', hostTensor('F32', [0, 4], new Float32Array(0))],
  ]);
  const p = join(dir, 'all.safetensors');
  writeSafetensors(p, t, { format: 'pt' });
  const back = readSafetensors(p);
  assert.deepEqual(back.metadata, { format: 'pt' });
  for (const [k, v] of t) {
    const b = back.tensors.get(k)!;
    assert.equal(b.dtype, v.dtype, k);
    assert.deepEqual(b.shape, v.shape, k);
    assert.deepEqual(
      Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
      Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
      k,
    );
  }
  // a re-write of what was read is byte-identical to the first file
  const p2 = join(dir, 'all2.safetensors');
  writeSafetensors(p2, back.tensors, back.metadata);
  assert.deepEqual(readFileSync(p2), readFileSync(p));
});

test('reads one tensor lazily without the rest', () => {
  const f = openSafetensors(fixture('dit_tiny.io.safetensors'));
  try {
    assert.deepEqual(f.entries.map((e) => e.name).sort(), ['out', 't', 'x', 'y']);
    const t = f.read('t');
    assert.equal(t.dtype, 'I64');
    assert.deepEqual([...(t.data as BigInt64Array)].map(Number), [0, 250, 500, 999]);
  } finally {
    f.close();
  }
});

test('a truncated file and a corrupt header each give one UserError', () => {
  const good = readFileSync(fixture('dit_tiny.io.safetensors'));
  const trunc = join(dir, 'trunc.safetensors');
  writeFileSync(trunc, good.subarray(0, good.length - 100));
  assert.throws(
    () => readSafetensors(trunc),
    (e: unknown) => e instanceof UserError && /truncated/.test(e.message),
  );
  const tiny = join(dir, 'tiny.safetensors');
  writeFileSync(tiny, good.subarray(0, 5));
  assert.throws(
    () => readSafetensors(tiny),
    (e: unknown) => e instanceof UserError && /truncated/.test(e.message),
  );
  const corrupt = Buffer.from(good);
  corrupt.write('{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,999]}}', 8);
  const bad = join(dir, 'corrupt.safetensors');
  writeFileSync(bad, corrupt);
  assert.throws(
    () => readSafetensors(bad),
    (e: unknown) => e instanceof UserError && /not JSON|corrupt/.test(e.message),
  );
  assert.throws(
    () => readSafetensors(join(dir, 'missing.safetensors')),
    (e: unknown) => e instanceof UserError && /does not exist/.test(e.message),
  );
});
