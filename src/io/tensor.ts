// Host-side tensors: what the file readers produce and the writers take, independent of TF.js.
// Layouts are whatever the file holds (PyTorch checkpoints and fixtures are NCHW / [out, in]).
import { numel, shapeStr, type Shape } from '../util/shapes.js';
import { constants as bufferConstants } from 'node:buffer';
import { totalmem } from 'node:os';
import { UserError } from '../util/errors.js';

/** safetensors dtype names; the readers of other formats map onto these. */
export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type TensorArray =
  | Float64Array
  | Float32Array
  | Uint16Array // F16 and BF16 hold their raw 16-bit patterns
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array; // U8 and BOOL

export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: TensorArray;
}

/** Ordered name → tensor map (insertion order is file order). */
export type TensorMap = Map<string, HostTensor>;

export const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/**
 * The most bytes one tensor read from a file may occupy once materialised: half of this machine's
 * memory, and never more than one JavaScript typed array can hold (buffer.constants.MAX_LENGTH).
 * FPDM_MAX_TENSOR_BYTES sets another limit (still capped by the typed-array size).
 */
export function tensorByteLimit(): { bytes: number; why: string } {
  const arrayMax = bufferConstants.MAX_LENGTH;
  const env = process.env.FPDM_MAX_TENSOR_BYTES;
  if (env !== undefined && /^\d+$/.test(env.trim())) {
    const n = Number(env.trim());
    return n <= arrayMax
      ? { bytes: n, why: 'FPDM_MAX_TENSOR_BYTES' }
      : { bytes: arrayMax, why: 'the largest JavaScript typed array' };
  }
  const half = Math.floor(totalmem() / 2);
  return half <= arrayMax
    ? { bytes: half, why: "half of this machine's memory" }
    : { bytes: arrayMax, why: 'the largest JavaScript typed array' };
}

const gib = (n: number): string =>
  n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`;

/**
 * Refuses (UserError naming the file and the tensor) a tensor whose dense size exceeds
 * tensorByteLimit(); `note` explains where a size that large came from, when known.
 */
export function checkTensorSize(file: string, name: string, dtype: DType, shape: readonly number[], note = ''): void {
  const elements = shape.reduce((a, d) => a * d, 1);
  const bytes = elements * DTYPE_BYTES[dtype];
  const limit = tensorByteLimit();
  if (bytes <= limit.bytes) return;
  throw new UserError(
    `'${file}': tensor '${name}' (${dtype} ${shapeStr([...shape])}) has ${elements.toLocaleString('en-US')} elements, ${gib(bytes)} once read, ` +
      `more than the limit of ${gib(limit.bytes)} (${limit.why})${note ? `; ${note}` : ''}. ` +
      'fpdm-exp reads every tensor densely into memory; set FPDM_MAX_TENSOR_BYTES to raise the limit on a machine with that much memory',
  );
}

/** Views `bytes` (little-endian) as the typed array of `dtype`, copying only when unaligned. */
export function typedFromBytes(dtype: DType, bytes: Uint8Array): TensorArray {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0)
    throw new UserError(`${dtype} data of ${bytes.byteLength} bytes is not a whole number of elements`);
  // (a Node Buffer's slice() is a view, so copy through Uint8Array.prototype.slice)
  const aligned = bytes.byteOffset % size === 0 ? bytes : Uint8Array.prototype.slice.call(bytes);
  const { buffer, byteOffset } = aligned;
  const n = bytes.byteLength / size;
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, n);
    case 'F32':
      return new Float32Array(buffer, byteOffset, n);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer, byteOffset, n);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, n);
    case 'I32':
      return new Int32Array(buffer, byteOffset, n);
    case 'I16':
      return new Int16Array(buffer, byteOffset, n);
    case 'I8':
      return new Int8Array(buffer, byteOffset, n);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, n);
  }
}

export function bytesOf(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Converts any numeric tensor to float32 values (F16/BF16 decoded, integers cast). */
export function toFloat32(t: HostTensor): Float32Array {
  const { dtype, data } = t;
  if (dtype === 'F32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'F16') {
    const u = data as Uint16Array;
    for (let i = 0; i < u.length; i++) out[i] = f16ToF32(u[i]!);
  } else if (dtype === 'BF16') {
    const u = data as Uint16Array;
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < u.length; i++) u32[i] = u[i]! << 16;
  } else if (dtype === 'I64') {
    const b = data as BigInt64Array;
    for (let i = 0; i < b.length; i++) out[i] = Number(b[i]!);
  } else {
    const a = data as Exclude<TensorArray, BigInt64Array>;
    for (let i = 0; i < a.length; i++) out[i] = a[i]!;
  }
  return out;
}

/** Converts any numeric tensor to float64 values. */
export function toFloat64(t: HostTensor): Float64Array {
  if (t.dtype === 'F64') return t.data as Float64Array;
  if (t.dtype === 'I64') return Float64Array.from(t.data as BigInt64Array, (v) => Number(v));
  return Float64Array.from(t.dtype === 'F32' ? (t.data as Float32Array) : toFloat32(t));
}

export function hostTensor(dtype: DType, shape: Shape, data: TensorArray): HostTensor {
  if (numel(shape) !== data.length) {
    throw new Error(`hostTensor: ${data.length} values do not fill shape ${shapeStr(shape)}`);
  }
  return { dtype, shape: [...shape], data };
}

export function f32(shape: Shape, data: Float32Array | number[]): HostTensor {
  return hostTensor('F32', shape, data instanceof Float32Array ? data : Float32Array.from(data));
}

export function f64(shape: Shape, data: Float64Array | number[]): HostTensor {
  return hostTensor('F64', shape, data instanceof Float64Array ? data : Float64Array.from(data));
}

/** Looks a tensor up by name, with an error that lists what the file does have. */
export function getTensor(map: TensorMap, name: string, source = 'the file'): HostTensor {
  const t = map.get(name);
  if (!t) {
    const names = [...map.keys()];
    const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} in all)` : '');
    throw new UserError(`${source} has no tensor named '${name}' (it has: ${shown || 'none'})`);
  }
  return t;
}
