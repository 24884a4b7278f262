// numpy .npy and .npz, as numpy, pytorch-fid (`mu`, `sigma` float64 .npz) and the ADM evaluator
// write them. .npy: magic "\x93NUMPY", version, header length (2 bytes in v1, 4 in v2/v3), a Python
// dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (2048,), } padded with spaces and a
// newline, then the raw data. .npz: a zip of `<name>.npy` entries (stored, or deflated by savez_compressed).
import { UserError } from '../util/errors.js';
import { atomicWrite, readHead } from '../util/fs.js';
import { numel } from '../util/shapes.js';
import { readFileSync } from 'node:fs';
import {
  DTYPE_BYTES,
  bytesOf,
  tensorByteLimit,
  typedFromBytes,
  type DType,
  type HostTensor,
  type TensorArray,
  type TensorMap,
} from './tensor.js';
import { openZip, zipChunks } from './zip.js';

const DESCR_TO_DTYPE: Record<string, DType> = {
  f8: 'F64',
  f4: 'F32',
  f2: 'F16',
  i8: 'I64',
  i4: 'I32',
  i2: 'I16',
  i1: 'I8',
  u1: 'U8',
  b1: 'BOOL',
};
const DTYPE_TO_DESCR: Partial<Record<DType, string>> = {
  F64: '<f8',
  F32: '<f4',
  F16: '<f2',
  I64: '<i8',
  I32: '<i4',
  I16: '<i2',
  I8: '|i1',
  U8: '|u1',
  BOOL: '|b1',
};

export function isNpy(head: Uint8Array): boolean {
  return head.length >= 6 && head[0] === 0x93 && String.fromCharCode(...head.subarray(1, 6)) === 'NUMPY';
}

/** Parses one .npy byte buffer. */
export function parseNpy(buf: Uint8Array, source = 'npy data'): HostTensor {
  if (!isNpy(buf)) throw new UserError(`${source} is not a .npy array (bad magic)`);
  if (buf.length < 10) throw new UserError(`${source} is truncated`);
  const major = buf[6]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > buf.length) throw new UserError(`${source} is truncated in its header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([<>|=])([a-z])(\d+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeM = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM)
    throw new UserError(`${source} has a .npy header this reader does not understand: ${header.trim()}`);
  const dtype = DESCR_TO_DTYPE[`${descr[2]}${descr[3]}`];
  if (!dtype)
    throw new UserError(
      `${source}: numpy dtype '${descr[1]}${descr[2]}${descr[3]}' is not supported (use float64/float32/float16/int64/int32/int16/int8/uint8/bool)`,
    );
  const shape = shapeM[1]!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((d) => (/^\d+$/.test(d) ? Number(d) : NaN));
  if (!shape.every((d) => Number.isSafeInteger(d)))
    throw new UserError(`${source} has a .npy shape that is not a tuple of non-negative integers: (${shapeM[1]})`);
  const n = numel(shape);
  const limit = tensorByteLimit();
  if (n * DTYPE_BYTES[dtype] > limit.bytes)
    throw new UserError(
      `${source}: an array of shape (${shape.join(', ')}) needs ${n * DTYPE_BYTES[dtype]} bytes, more than the limit of ${limit.bytes} (${limit.why}); set FPDM_MAX_TENSOR_BYTES to raise it`,
    );
  const start = hstart + hlen;
  const nbytes = n * DTYPE_BYTES[dtype];
  if (start + nbytes > buf.length)
    throw new UserError(`${source} is truncated: ${nbytes} data bytes expected, ${buf.length - start} present`);
  let bytes: Uint8Array = buf.slice(start, start + nbytes);
  if (descr[1] === '>' && DTYPE_BYTES[dtype] > 1) bytes = swapBytes(bytes, DTYPE_BYTES[dtype]);
  let data = typedFromBytes(dtype, bytes);
  if (fortran[1] === 'True' && shape.length > 1) data = fortranToC(data, shape);
  return { dtype, shape, data };
}

function swapBytes(b: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i += size) for (let j = 0; j < size; j++) out[i + j] = b[i + size - 1 - j]!;
  return out;
}

/** Reorders column-major data into row-major. */
function fortranToC(data: TensorArray, shape: number[]): TensorArray {
  const n = data.length;
  const out = new (data.constructor as new (n: number) => TensorArray)(n) as Float64Array;
  const src = data as Float64Array;
  const idx = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    // k is the C-order index of idx; find its F-order position
    let p = 0;
    for (let d = shape.length - 1; d >= 0; d--) p = p * shape[d]! + idx[d]!;
    out[k] = src[p]!;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
  return out as TensorArray;
}

/** Serialises a tensor as .npy (version 1.0, header padded to a multiple of 64 bytes like numpy). */
export function encodeNpy(t: HostTensor): Uint8Array {
  const descr = DTYPE_TO_DESCR[t.dtype];
  if (!descr) throw new UserError(`.npy cannot hold dtype ${t.dtype}`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length + t.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(bytesOf(t), 10 + header.length);
  return out;
}

export function readNpy(path: string): HostTensor {
  readHead(path, 6, '.npy file');
  return parseNpy(readFileSync(path), `'${path}'`);
}

export function writeNpy(path: string, t: HostTensor): void {
  atomicWrite(path, [encodeNpy(t)]);
}

/** Reads every array of an .npz (keys without the `.npy` suffix). */
export function readNpz(path: string): TensorMap {
  const zip = openZip(path);
  try {
    const out: TensorMap = new Map();
    for (const e of zip.entries) {
      if (!e.name.endsWith('.npy')) continue;
      out.set(e.name.slice(0, -4), parseNpy(zip.read(e.name), `'${path}' entry '${e.name}'`));
    }
    if (out.size === 0) throw new UserError(`'${path}' is a zip archive without .npy entries (not an .npz)`);
    return out;
  } finally {
    zip.close();
  }
}

/** Names of an .npz's arrays (entries without `.npy`), without reading any data. */
export function npzNames(path: string): string[] {
  const zip = openZip(path);
  try {
    return zip.entries.filter((e) => e.name.endsWith('.npy')).map((e) => e.name.slice(0, -4));
  } finally {
    zip.close();
  }
}

/**
 * Reads only the named arrays of an .npz (absent names are left out), so a 2 GB `arr_0` beside the
 * statistics of an ADM reference batch is never read.
 */
export function readNpzArrays(path: string, names: readonly string[]): TensorMap {
  const zip = openZip(path);
  try {
    const out: TensorMap = new Map();
    for (const name of names) {
      const e = zip.entries.find((x) => x.name === `${name}.npy`);
      if (e) out.set(name, parseNpy(zip.read(e.name), `'${path}' entry '${e.name}'`));
    }
    return out;
  } finally {
    zip.close();
  }
}

/** Writes an .npz as numpy's `savez` does (stored entries `<name>.npy`). */
export function writeNpz(path: string, arrays: TensorMap | Record<string, HostTensor>): void {
  const items = arrays instanceof Map ? [...arrays.entries()] : Object.entries(arrays);
  atomicWrite(path, zipChunks(items.map(([name, t]) => ({ name: `${name}.npy`, data: encodeNpy(t) }))));
}
