// PyTorch `torch.save` files, read without Python and without executing anything:
//  - zip format (PyTorch >= 1.6): `<archive>/data.pkl` (protocol-2 pickle) + `<archive>/data/<key>`
//    raw little-endian storages;
//  - legacy format (< 1.6; e.g. pytorch-fid's Inception weights): magic number, protocol version and
//    sys_info pickles, the main pickle, a pickle of storage keys, then each storage as an int64
//    element count followed by its raw bytes.
// Tensors are rebuilt from (storage, offset, size, stride) into contiguous HostTensors.
import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { readHead } from '../util/fs.js';
import { numel } from '../util/shapes.js';
import {
  DTYPE_BYTES,
  checkTensorSize,
  typedFromBytes,
  type DType,
  type HostTensor,
  type TensorArray,
} from './tensor.js';
import { PyObject, StorageType, unpickle, type PyValue, type TensorRebuild } from './pickle.js';
import { isZip, openZip } from './zip.js';

const STORAGE_DTYPE: Record<string, DType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** element offset of a legacy view into its root storage */
    readonly viewOffset: number,
    readonly viewSize?: number,
  ) {}
}

/** A tensor whose storage bytes are not read yet (legacy files store them after the pickle). */
class PendingTensor {
  constructor(
    readonly ref: StorageRef,
    readonly rebuild: TensorRebuild,
  ) {}
}

export type TorchFormat = 'torch-zip' | 'torch-legacy';

function parsePid(pid: PyValue, path: string): StorageRef {
  const t = pid as PyValue[];
  if (!Array.isArray(t) || t[0] !== 'storage' || !(t[1] instanceof StorageType)) {
    throw new UserError(`'${path}' cannot be loaded: it references a persistent object that is not a tensor storage`);
  }
  const dtype = STORAGE_DTYPE[t[1].name];
  if (!dtype) throw new UserError(`'${path}': unsupported storage type torch.${t[1].name}`);
  const view = t[5] as PyValue[] | null | undefined; // legacy: (view_key, offset, size) or None
  if (Array.isArray(view)) {
    const [offset, size] = [Number(view[1]), Number(view[2])];
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(size) || size < 0)
      throw new UserError(
        `'${path}' is corrupt: a storage view of '${String(view[0])}' has offset ${String(view[1])} and size ${String(view[2])}, not non-negative integers`,
      );
    return new StorageRef(String(view[0]), dtype, offset, size);
  }
  return new StorageRef(String(t[2]), dtype, 0);
}

/** Copies the strided view (offset, size, stride) of `storage` into a contiguous array. */
function materialize(
  storage: TensorArray,
  offset: number,
  size: number[],
  stride: number[],
  path: string,
  dtype: DType,
  name: string,
): TensorArray {
  const n = numel(size);
  const Ctor = storage.constructor as new (n: number) => TensorArray;
  if (n === 0) return new Ctor(0);
  let maxIndex = offset;
  for (let i = 0; i < size.length; i++) maxIndex += (size[i]! - 1) * stride[i]!;
  if (maxIndex >= storage.length)
    throw new UserError(
      `'${path}' is corrupt: tensor '${name}' (${dtype} of size [${size}], stride [${stride}], offset ${offset}) reads element ${maxIndex} of a storage of ${storage.length}`,
    );
  let contiguous = true;
  for (let i = size.length - 1, s = 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== s) contiguous = false;
    s *= size[i]!;
  }
  if (contiguous) return (storage as Float32Array).slice(offset, offset + n) as TensorArray;
  const out = new Ctor(n) as Float32Array;
  const src = storage as Float32Array;
  const idx = new Array<number>(size.length).fill(0);
  for (let k = 0; k < n; k++) {
    let p = offset;
    for (let d = 0; d < size.length; d++) p += idx[d]! * stride[d]!;
    out[k] = src[p]!;
    for (let d = size.length - 1; d >= 0; d--) {
      if (++idx[d]! < size[d]!) break;
      idx[d] = 0;
    }
  }
  return out as TensorArray;
}

/**
 * Checks what a rebuild call describes before any memory is allocated: valid arguments (see
 * pickle.ts), a storage reference as the first one, and a dense size within tensorByteLimit().
 */
function checkRebuild(t: PendingTensor, path: string, name: string): void {
  const r = t.rebuild;
  if (r.invalid) throw new UserError(`'${path}' is corrupt: tensor '${name}' cannot be rebuilt: ${r.invalid}`);
  if (!(t.ref instanceof StorageRef))
    throw new UserError(
      `'${path}' is corrupt: tensor '${name}' is rebuilt from something that is not a tensor storage`,
    );
  const expanded = r.size.map((d, i) => (d > 1 && r.stride[i] === 0 ? i : -1)).filter((i) => i >= 0);
  const stored = r.size.reduce((a, d, i) => a * (r.stride[i] === 0 ? 1 : d), 1);
  checkTensorSize(
    path,
    name,
    t.ref.dtype,
    r.size,
    expanded.length
      ? `it is an expanded view (stride 0 in dimension${expanded.length > 1 ? 's' : ''} ${expanded.join(', ')}) of only ${stored.toLocaleString('en-US')} stored elements, ` +
          'which PyTorch keeps small but a dense copy does not: save the tensor before .expand() (or .clone() what is needed) and expand it after loading'
      : '',
  );
}

/** Replaces every PendingTensor in the tree by a HostTensor built from its storage; `name` is the key path. */
function resolveTree(v: PyValue, storage: (ref: StorageRef) => TensorArray, path: string, name = ''): PyValue {
  const child = (k: PyValue) => (name ? `${name}.${String(k)}` : String(k));
  if (v instanceof PendingTensor) {
    checkRebuild(v, path, name || '(root)');
    const s = storage(v.ref);
    const { storageOffset, size, stride } = v.rebuild;
    const data = materialize(s, v.ref.viewOffset + storageOffset, size, stride, path, v.ref.dtype, name || '(root)');
    return { dtype: v.ref.dtype, shape: size, data } satisfies HostTensor;
  }
  if (v instanceof Map) {
    for (const [k, x] of v) v.set(k, resolveTree(x, storage, path, child(k)));
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => resolveTree(x, storage, path, child(i)));
  if (v instanceof PyObject) {
    for (const k of Object.keys(v.attrs)) v.attrs[k] = resolveTree(v.attrs[k], storage, path, child(k));
    return v;
  }
  return v;
}

function hooksFor(path: string) {
  return {
    persistentLoad: (pid: PyValue) => parsePid(pid, path),
    rebuildTensor: (args: TensorRebuild) => new PendingTensor(args.storage as StorageRef, args), // checked in resolveTree
  };
}

function readTorchZip(path: string): PyValue {
  const zip = openZip(path);
  try {
    const pkl = zip.entries.find((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
    if (!pkl) throw new UserError(`'${path}' is a zip archive but not a PyTorch checkpoint (no data.pkl record)`);
    const prefix = pkl.name.slice(0, pkl.name.length - 'data.pkl'.length);
    const { value } = unpickle(zip.read(pkl.name), hooksFor(path), 0, path);
    const cache = new Map<string, TensorArray>();
    return resolveTree(
      value,
      (ref) => {
        let s = cache.get(ref.key);
        if (!s) {
          s = typedFromBytes(ref.dtype, zip.read(`${prefix}data/${ref.key}`));
          cache.set(ref.key, s);
        }
        return s;
      },
      path,
    );
  } finally {
    zip.close();
  }
}

function readTorchLegacy(path: string, buf: Uint8Array): PyValue {
  const hooks = hooksFor(path);
  let pos = 0;
  const next = () => {
    const r = unpickle(buf, hooks, pos, path);
    pos = r.end;
    return r.value;
  };
  const magic = next();
  if (typeof magic !== 'bigint' || magic !== LEGACY_MAGIC)
    throw new UserError(`'${path}' is not a PyTorch checkpoint (bad magic number)`);
  const protocol = next();
  if (protocol !== 1001) throw new UserError(`'${path}': unsupported legacy protocol version ${String(protocol)}`);
  const sysInfo = next() as Map<string, PyValue>;
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false)
    throw new UserError(`'${path}' was written on a big-endian machine; not supported`);
  const root = next();
  const keys = next() as PyValue[];
  if (!Array.isArray(keys)) throw new UserError(`'${path}' is corrupt: the storage key list is missing`);
  // dtype of each root storage, from the references in the tree
  const dtypes = new Map<string, DType>();
  const collect = (v: PyValue): void => {
    if (v instanceof PendingTensor) dtypes.set(v.ref.key, v.ref.dtype);
    else if (v instanceof Map) v.forEach(collect);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v instanceof PyObject) Object.values(v.attrs).forEach(collect);
  };
  collect(root);
  const storages = new Map<string, TensorArray>();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const k of keys.map(String)) {
    if (pos + 8 > buf.length) throw new UserError(`'${path}' is truncated: storage '${k}' is missing`);
    const n = Number(dv.getBigInt64(pos, true));
    pos += 8;
    if (n < 0) throw new UserError(`'${path}' is corrupt: storage '${k}' has a negative element count (${n})`);
    const dtype = dtypes.get(k) ?? 'U8';
    const nbytes = n * DTYPE_BYTES[dtype];
    if (pos + nbytes > buf.length)
      throw new UserError(`'${path}' is truncated: storage '${k}' needs ${nbytes} bytes, ${buf.length - pos} remain`);
    storages.set(k, typedFromBytes(dtype, buf.subarray(pos, pos + nbytes)));
    pos += nbytes;
  }
  return resolveTree(
    root,
    (ref) => {
      const s = storages.get(ref.key);
      if (!s) throw new UserError(`'${path}' is corrupt: storage '${ref.key}' is referenced but not stored`);
      return s;
    },
    path,
  );
}

/** True when the first bytes look like a legacy torch.save file (a protocol-2 pickle of a LONG1). */
export function isLegacyTorch(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a;
}

/** Reads a torch.save file (either format) into a tree of Python values with HostTensor leaves. */
export function readTorch(path: string): { format: TorchFormat; root: PyValue } {
  const head = readHead(path, 4);
  if (isZip(head)) return { format: 'torch-zip', root: readTorchZip(path) };
  if (!isLegacyTorch(head)) throw new UserError(`'${path}' is neither a zip-format nor a legacy PyTorch checkpoint`);
  return { format: 'torch-legacy', root: readTorchLegacy(path, readFileSync(path)) };
}
