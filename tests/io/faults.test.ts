// Malformed tensor files are refused, not read: safetensors whose byte ranges overlap, leave gaps or
// leave trailing bytes (the safetensors library's own rules), PyTorch rebuild calls with arguments of
// the wrong type, and tensors larger than the stated memory limit (a legal but huge expanded
// tensor included). Each is one UserError naming the file and the tensor, and exit 2 from the CLI.
// The files are built here byte by byte, so each breaks exactly one rule.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, openSafetensors } from '../../src/io/safetensors.js';
import { readTorch } from '../../src/io/torch.js';
import { tensorByteLimit, type HostTensor } from '../../src/io/tensor.js';
import { zipChunks } from '../../src/io/zip.js';
import { UserError } from '../../src/util/errors.js';
import { runCli } from '../cli.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fpdm-io-faults-'));
});

/** A safetensors file from a header object and a data region, exactly as given. */
function rawSafetensors(name: string, header: Record<string, unknown>, data: Uint8Array): string {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, json, data]));
  return p;
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

function userError(re: RegExp) {
  return (e: unknown) => e instanceof UserError && re.test(e.message);
}

function exits2(path: string, re: RegExp): void {
  const r = runCli(['inspect', path]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: /);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('safetensors: well-formed back-to-back tensors read; overlap, gap and trailing bytes are refused naming the tensor', () => {
  const data = f32(1, 2, 3, 4);
  const ok = rawSafetensors(
    'ok.safetensors',
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
    data,
  );
  const t = readSafetensors(ok).tensors;
  assert.deepEqual([...(t.get('b')!.data as Float32Array)], [3, 4]);

  // b reads bytes 4..12, inside a's 0..8: two tensors share bytes
  const overlap = rawSafetensors(
    'overlap.safetensors',
    { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
    data.subarray(0, 12),
  );
  assert.throws(() => readSafetensors(overlap), userError(/overlap\.safetensors.*tensor 'b'.*overlaps tensor 'a'/));
  exits2(overlap, /tensor 'b'.*overlaps/);

  // b starts 4 bytes after a ends: hidden bytes between them
  const gap = rawSafetensors(
    'gap.safetensors',
    { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } },
    data,
  );
  assert.throws(() => readSafetensors(gap), userError(/tensor 'b'.*gap of 4 bytes after tensor 'a'/));
  exits2(gap, /gap of 4 bytes/);

  // the first tensor does not start at 0
  const late = rawSafetensors('late.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data);
  assert.throws(() => readSafetensors(late), userError(/tensor 'a'.*gap of 8 bytes after the header/));

  // 4 bytes after the last tensor
  const trailing = rawSafetensors(
    'trailing.safetensors',
    { a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } },
    data,
  );
  assert.throws(() => readSafetensors(trailing), userError(/cover 12 data bytes but 16 follow/));
  exits2(trailing, /trailing/);

  // end before begin
  const backwards = rawSafetensors(
    'backwards.safetensors',
    { a: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } },
    data.subarray(0, 8),
  );
  assert.throws(() => readSafetensors(backwards), userError(/tensor 'a'.*end before they begin/));

  // metadata that is not str → str
  const meta = rawSafetensors(
    'meta.safetensors',
    { __metadata__: { step: 3 }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } },
    data.subarray(0, 4),
  );
  assert.throws(() => readSafetensors(meta), userError(/__metadata__ must map strings to strings/));
});

test('safetensors: a tensor over the stated memory limit is refused before anything is allocated', () => {
  const p = rawSafetensors(
    'limit.safetensors',
    { big: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] } },
    new Uint8Array(64),
  );
  const saved = process.env.FPDM_MAX_TENSOR_BYTES;
  process.env.FPDM_MAX_TENSOR_BYTES = '32';
  try {
    assert.deepEqual(tensorByteLimit(), { bytes: 32, why: 'FPDM_MAX_TENSOR_BYTES' });
    assert.throws(
      () => readSafetensors(p),
      userError(
        /limit\.safetensors': tensor 'big' \(F32 \[4, 4\]\) has 16 elements, 64 bytes once read, more than the limit of 32 bytes \(FPDM_MAX_TENSOR_BYTES\)/,
      ),
    );
    const f = openSafetensors(p);
    try {
      assert.throws(() => f.read('big'), userError(/tensor 'big'/));
    } finally {
      f.close();
    }
  } finally {
    if (saved === undefined) delete process.env.FPDM_MAX_TENSOR_BYTES;
    else process.env.FPDM_MAX_TENSOR_BYTES = saved;
  }
  const r = runCli(['inspect', p], { env: { ...process.env, FPDM_MAX_TENSOR_BYTES: '32' } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /tensor 'big'.*more than the limit/);
  assert.equal(readSafetensors(p).tensors.get('big')!.data.length, 16, 'read under the default limit');
});

// ---- PyTorch zip checkpoints, pickled by hand (protocol 2) ------------------------------------

/** A tiny pickle writer: just the opcodes a torch.save state_dict uses. */
class Pickle {
  private parts: number[] = [0x80, 0x02]; // PROTO 2
  op(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return this.op(0x58, ...len, ...b); // BINUNICODE
  }
  int(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return this.op(0x4a, ...b); // BININT
  }
  long(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(n);
    return this.op(0x8a, 8, ...b); // LONG1
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.op(0x47, ...b); // BINFLOAT
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]); // STOP
  }
}

type Arg = (p: Pickle) => void;
const ints =
  (...v: (number | bigint)[]): Arg =>
  (p) => {
    p.mark();
    for (const x of v) typeof x === 'bigint' ? p.long(x) : p.int(x);
    p.tuple();
  };

/**
 * `{name: _rebuild_tensor_v2(storage('0', FloatStorage, numel), offset, size, stride, False, OrderedDict())}`
 * in a zip with the storage's bytes, as torch.save writes it.
 */
function torchZip(file: string, name: string, storage: Float32Array, offset: Arg, size: Arg, stride: Arg): string {
  const p = new Pickle().op(0x7d).str(name); // EMPTY_DICT, key
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(storage.length).tuple().op(0x51); // BINPERSID
  offset(p);
  size(p);
  stride(p);
  p.op(0x89).global('collections', 'OrderedDict').op(0x29, 0x52); // False, OrderedDict()
  p.tuple().op(0x52).op(0x73); // REDUCE, SETITEM
  const path = join(dir, file);
  const files = [
    { name: 'archive/data.pkl', data: p.bytes() },
    { name: 'archive/data/0', data: new Uint8Array(storage.buffer) },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ];
  writeFileSync(path, Buffer.concat(zipChunks(files)));
  return path;
}

const tensorAt = (path: string, name: string): HostTensor =>
  (readTorch(path).root as Map<string, HostTensor>).get(name)!;

test('PyTorch zip: a hand-pickled strided and a small expanded (stride-0) tensor read with the values PyTorch gives', () => {
  const s = Float32Array.from([10, 11, 12, 13, 14, 15]);
  // transpose view: size (3, 2), stride (1, 3) of [[10, 11, 12], [13, 14, 15]] → [[10, 13], [11, 14], [12, 15]]
  const t = tensorAt(
    torchZip('t.pt', 'w', s, (p) => p.int(0), ints(3, 2), ints(1, 3)),
    'w',
  );
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual([...(t.data as Float32Array)], [10, 13, 11, 14, 12, 15]);
  // torch.tensor([11., 12.]).expand(3, 2): size (3, 2), stride (0, 1), offset 1
  const e = tensorAt(
    torchZip('e.pt', 'b', s, (p) => p.int(1), ints(3, 2), ints(0, 1)),
    'b',
  );
  assert.deepEqual([...(e.data as Float32Array)], [11, 12, 11, 12, 11, 12]);
});

test('PyTorch zip: rebuild arguments of the wrong type or sign are refused naming the file and the tensor', () => {
  const s = Float32Array.from([1, 2, 3, 4]);
  const cases: [string, Arg, Arg, Arg, RegExp][] = [
    ['offset_str.pt', (p) => p.str('0'), ints(2, 2), ints(2, 1), /storage offset is string "0"/],
    ['offset_neg.pt', (p) => p.int(-1), ints(2, 2), ints(2, 1), /storage offset is number -1/],
    ['size_int.pt', (p) => p.int(0), (p) => p.int(4), ints(1), /size is number 4, not a tuple/],
    ['size_str.pt', (p) => p.int(0), (p) => p.mark().int(2).str('2').tuple(), ints(2, 1), /size\[1\] is string "2"/],
    [
      'stride_float.pt',
      (p) => p.int(0),
      ints(2, 2),
      (p) => p.mark().float(2).float(1).tuple(),
      /stride\[0\] is the float 2\.0, not a non-negative integer/,
    ],
    ['offset_float.pt', (p) => p.float(0.5), ints(2, 2), ints(2, 1), /storage offset is the float 0\.5/],
    ['stride_neg.pt', (p) => p.int(0), ints(2, 2), ints(-2, 1), /stride\[0\] is number -2/],
    ['rank.pt', (p) => p.int(0), ints(2, 2), ints(1), /size has 2 dimensions and its stride 1/],
    ['past_end.pt', (p) => p.int(0), ints(3, 2), ints(2, 1), /reads element 5 of a storage of 4/],
  ];
  for (const [file, offset, size, stride, re] of cases) {
    const path = torchZip(file, 'blocks.0.weight', s, offset, size, stride);
    assert.throws(
      () => readTorch(path),
      (e: unknown) =>
        e instanceof UserError &&
        e.message.includes(file) &&
        /tensor 'blocks\.0\.weight'/.test(e.message) &&
        re.test(e.message),
      file,
    );
  }
  exits2(join(dir, 'size_str.pt'), /size_str\.pt.*tensor 'blocks\.0\.weight'/);
});

test('PyTorch zip: a legal expanded tensor of 2^33 elements is refused with the reason, not allocated', () => {
  // torch.zeros(1).expand(2**33): one stored float, 2^33 elements (32 GiB) once made dense
  const path = torchZip('huge.pt', 'pos_embed', Float32Array.from([0]), (p) => p.int(0), ints(2n ** 33n), ints(0));
  assert.throws(
    () => readTorch(path),
    userError(
      /huge\.pt': tensor 'pos_embed' \(F32 \[8589934592\]\) has 8,589,934,592 elements, 32\.0 GiB once read, more than the limit .*expanded view \(stride 0 in dimension 0\) of only 1 stored elements/,
    ),
  );
  exits2(path, /tensor 'pos_embed'.*expanded view/);
});
