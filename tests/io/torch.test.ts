import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAny, readWeights, detectFormat } from '../../src/io/index.js';
import { toFloat64, type TensorMap } from '../../src/io/tensor.js';
import { openZip, zipChunks } from '../../src/io/zip.js';
import { UserError } from '../../src/util/errors.js';
import { fixture } from '../helpers.js';
import { runCli } from '../cli.js';

const DATA = join(import.meta.dirname, 'data');
const dir = mkdtempSync(join(tmpdir(), 'torch-'));

function assertSameTensors(a: TensorMap, b: TensorMap, what: string): void {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: names`);
  for (const [k, t] of a) {
    const u = b.get(k)!;
    assert.equal(u.dtype, t.dtype, `${what}: ${k} dtype`);
    assert.deepEqual(u.shape, t.shape, `${what}: ${k} shape`);
    assert.ok(
      Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength).equals(
        Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength),
      ),
      `${what}: ${k} values`,
    );
  }
}

for (const model of ['dit_tiny', 'fpdm_tiny']) {
  test(`${model}: safetensors, torch zip and torch legacy give identical names, shapes and values`, () => {
    const st = readWeights(fixture(`${model}.safetensors`));
    assert.equal(detectFormat(fixture(`${model}.pt`)), 'torch-zip');
    assert.equal(detectFormat(fixture(`${model}.legacy.pt`)), 'torch-legacy');
    assertSameTensors(st, readWeights(fixture(`${model}.pt`)), `${model}.pt`);
    assertSameTensors(st, readWeights(fixture(`${model}.legacy.pt`)), `${model}.legacy.pt`);
    const expected = JSON.parse(readFileSync(fixture('fixtures.json'), 'utf8'))[model].tensors as Record<
      string,
      number[]
    >;
    for (const [k, shape] of Object.entries(expected)) assert.deepEqual(st.get(k)?.shape, shape, k);
  });
}

test('the legacy-format Inception weights load to 566 tensors (23,885,392 float elements + 94 int64 counters)', () => {
  const r = readAny(fixture('inception_fid_ternary.legacy.pt'));
  assert.equal(r.format, 'torch-legacy');
  assert.equal(r.tensors.size, 566);
  let floats = 0;
  let ints = 0;
  for (const t of r.tensors.values()) {
    if (t.dtype === 'I64') ints += t.data.length;
    else {
      assert.equal(t.dtype, 'F32');
      floats += t.data.length;
    }
  }
  assert.equal(floats, 23_885_392);
  assert.equal(ints, 94);
  assert.deepEqual(r.tensors.get('Conv2d_1a_3x3.conv.weight')?.shape, [32, 3, 3, 3]);
  assert.deepEqual(r.tensors.get('fc.weight')?.shape, [1008, 2048]);
  assert.deepEqual(r.tensors.get('Mixed_7c.branch_pool.bn.num_batches_tracked')?.shape, []);
});

test('a training checkpoint (model/ema/opt/args) reads by entry; strided views are materialised', () => {
  const values = JSON.parse(readFileSync(join(DATA, 'values.json'), 'utf8')) as Record<string, unknown>;
  const all = readAny(join(DATA, 'nested_ckpt.pt'));
  assert.deepEqual(all.entries.sort(), ['ema', 'model']);
  assert.deepEqual([...toFloat64(all.tensors.get('model.linear.weight')!)], values['model.linear.weight']);
  assert.deepEqual([...toFloat64(all.tensors.get('model.linear.weight_t')!)], values['model.linear.weight_t']);
  assert.deepEqual(all.tensors.get('model.linear.weight_t')!.shape, [3, 2]);
  assert.deepEqual([...toFloat64(all.tensors.get('opt.state.0.step')!)], values['opt.state.0.step']);
  assert.equal((all.extras.args as Record<string, unknown>).model, values['args.model']);
  const ema = readWeights(join(DATA, 'nested_ckpt.pt'));
  assert.deepEqual([...ema.keys()].sort(), ['linear.bias', 'linear.weight']);
  assert.deepEqual([...toFloat64(ema.get('linear.weight')!)], values['ema.linear.weight']);
  const model = readWeights(join(DATA, 'nested_ckpt.pt'), { entry: 'model' });
  assert.ok(model.has('linear.weight_t'));
  assert.throws(
    () => readWeights(join(DATA, 'nested_ckpt.pt'), { entry: 'teacher' }),
    (e: unknown) => e instanceof UserError && /no 'teacher'/.test(e.message),
  );
});

test('a pickle that names a forbidden global is refused, nothing is executed', () => {
  assert.throws(
    () => readAny(join(DATA, 'evil_global.pt')),
    (e: unknown) => e instanceof UserError && /posix\.system/.test(e.message) && /executes no code/.test(e.message),
  );
  const r = runCli(['inspect', join(DATA, 'evil_global.pt')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: .*posix\.system/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('a zip with a missing record, a truncated zip and a truncated legacy file each give one clear error (exit 2)', () => {
  const src = openZip(fixture('dit_tiny.pt'));
  const files = src.entries
    .filter((e) => !e.name.endsWith('/data/3'))
    .map((e) => ({ name: e.name, data: src.read(e.name) }));
  src.close();
  const missing = join(dir, 'missing_record.pt');
  writeFileSync(missing, Buffer.concat(zipChunks(files)));
  assert.throws(
    () => readWeights(missing),
    (e: unknown) => e instanceof UserError && /missing the zip record '.*data\/3'/.test(e.message),
  );
  const full = readFileSync(fixture('dit_tiny.pt'));
  const truncZip = join(dir, 'trunc.pt');
  writeFileSync(truncZip, full.subarray(0, full.length - 2000));
  const legacy = readFileSync(fixture('dit_tiny.legacy.pt'));
  const truncLegacy = join(dir, 'trunc.legacy.pt');
  writeFileSync(truncLegacy, legacy.subarray(0, legacy.length - 1000));
  for (const p of [missing, truncZip, truncLegacy]) {
    const r = runCli(['inspect', p]);
    assert.equal(r.code, 2, `${p}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  // a flipped data byte fails the CRC check
  const flipped = Buffer.from(full);
  const z = openZip(fixture('dit_tiny.pt'));
  const ent = z.entries.find((e) => e.name.endsWith('/data/3'))!;
  z.close();
  flipped[ent.localHeaderOffset + 200] ^= 0xff;
  const corrupt = join(dir, 'flipped.pt');
  writeFileSync(corrupt, flipped);
  assert.throws(
    () => readWeights(corrupt),
    (e: unknown) => e instanceof UserError && /CRC-32|corrupt/.test(e.message),
  );
});

test('inspect --json lists names, dtypes, shapes, count and total elements', () => {
  const r = runCli(['inspect', '--json', fixture('fpdm_tiny.legacy.pt')]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    format: string;
    count: number;
    totalElements: number;
    tensors: { name: string; shape: number[] }[];
  };
  assert.equal(j.format, 'torch-legacy');
  const expected = JSON.parse(readFileSync(fixture('fixtures.json'), 'utf8')).fpdm_tiny.tensors as Record<
    string,
    number[]
  >;
  assert.equal(j.count, Object.keys(expected).length);
  const total = Object.values(expected).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(j.totalElements, total);
  const plain = runCli(['inspect', fixture('dit_tiny.safetensors')]);
  assert.equal(plain.code, 0);
  assert.match(plain.stdout, /blocks\.0\.attn\.qkv\.weight\s+F32\s+\[192, 64\]/);
  const missingFile = runCli(['inspect', join(dir, 'nope.pt')]);
  assert.equal(missingFile.code, 2);
  assert.match(missingFile.stderr, /does not exist/);
});
