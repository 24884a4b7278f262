// safetensors: 8-byte little-endian header length, a JSON header
// { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {str: str} },
// then the raw little-endian data. Reading opens the file once: the header is read first and
// validated against the file size, then the data region is read in one pass (or tensor by tensor
// through `openSafetensors`), never the whole file twice.
import { closeSync, openSync, readSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { atomicWrite, requireFile } from '../util/fs.js';
import { numel, shapeStr } from '../util/shapes.js';
import {
  DTYPE_BYTES,
  bytesOf,
  checkTensorSize,
  tensorByteLimit,
  typedFromBytes,
  type DType,
  type HostTensor,
  type TensorMap,
} from './tensor.js';

const MAX_HEADER = 100 * 1024 * 1024;
const DTYPES = new Set(Object.keys(DTYPE_BYTES));

export interface SafetensorsEntry {
  name: string;
  dtype: DType;
  shape: number[];
  /** byte range inside the data region */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Reads one tensor's bytes from disk. */
  read(name: string): HostTensor;
  /** Reads every tensor (one read of the data region). */
  readAll(): TensorMap;
  close(): void;
}

function readExactly(fd: number, buf: Uint8Array, position: number, path: string): void {
  let off = 0;
  while (off < buf.byteLength) {
    const n = readSync(fd, buf, off, buf.byteLength - off, position + off);
    if (n === 0)
      throw new UserError(
        `'${path}' is truncated: expected ${buf.byteLength} bytes at offset ${position}, file ended after ${off}`,
      );
    off += n;
  }
}

/** Parses and checks a header; `dataSize` is the number of bytes after it. */
export function parseSafetensorsHeader(
  json: string,
  dataSize: number,
  path: string,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (e) {
    throw new UserError(`'${path}' is not a valid safetensors file: its header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new UserError(`'${path}' is not a valid safetensors file: its header is not a JSON object`);
  }
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (
        v !== null &&
        (typeof v !== 'object' || Array.isArray(v) || Object.values(v as object).some((x) => typeof x !== 'string'))
      )
        throw new UserError(`'${path}' has a corrupt safetensors header: __metadata__ must map strings to strings`);
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bad = (why: string) => new UserError(`'${path}' has a corrupt safetensors header: tensor '${name}' ${why}`);
    if (typeof e !== 'object' || e === null) throw bad('is not an object');
    if (typeof e.dtype !== 'string' || !DTYPES.has(e.dtype))
      throw bad(`has unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${[...DTYPES].join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw bad('has an invalid shape');
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0))
      throw bad('has invalid data_offsets');
    const [begin, end] = offs as [number, number];
    if (end < begin) throw bad(`has data_offsets [${begin}, ${end}] that end before they begin`);
    const dtype = e.dtype as DType;
    const shape = e.shape as number[];
    if (end - begin !== numel(shape) * DTYPE_BYTES[dtype])
      throw bad(
        `spans ${end - begin} bytes but ${dtype} ${shapeStr(shape)} needs ${numel(shape) * DTYPE_BYTES[dtype]}`,
      );
    if (end > dataSize)
      throw new UserError(
        `'${path}' is truncated: tensor '${name}' ends at byte ${end} of the data, which has only ${dataSize} bytes`,
      );
    entries.push({ name, dtype, shape, begin, end });
  }
  // As the safetensors library requires: the tensors tile the data region exactly, back to back in
  // offset order, without overlaps, gaps or trailing bytes (so no byte is read as two tensors and
  // none is hidden between them).
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let prev: SafetensorsEntry | undefined;
  for (const e of entries) {
    if (e.begin !== expected) {
      const how =
        e.begin < expected
          ? `overlaps tensor '${prev!.name}' (bytes ${prev!.begin}–${prev!.end})`
          : `leaves a gap of ${e.begin - expected} bytes after ${prev ? `tensor '${prev.name}'` : 'the header'}`;
      throw new UserError(
        `'${path}' has a corrupt safetensors header: tensor '${e.name}' starts at data byte ${e.begin}, which ${how}; ` +
          'the format stores tensors back to back (the safetensors library refuses such a file): re-save it with a safetensors writer',
      );
    }
    expected = e.end;
    prev = e;
  }
  if (expected !== dataSize)
    throw new UserError(
      `'${path}' is not a valid safetensors file: its tensors cover ${expected} data bytes but ${dataSize} follow the header ` +
        '(the safetensors library refuses trailing bytes): re-save it, or check that the download was not corrupted',
    );
  return { entries, metadata };
}

export function openSafetensors(path: string): SafetensorsFile {
  const size = requireFile(path, 'safetensors file');
  if (size < 8)
    throw new UserError(
      `'${path}' is truncated: a safetensors file starts with an 8-byte header length, it has ${size} bytes`,
    );
  const fd = openSync(path, 'r');
  try {
    const lenBuf = new Uint8Array(8);
    readExactly(fd, lenBuf, 0, path);
    const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (headerLen > MAX_HEADER || headerLen + 8 > size) {
      throw new UserError(
        `'${path}' is not a valid safetensors file: header length ${headerLen} does not fit a file of ${size} bytes (truncated or not safetensors)`,
      );
    }
    const hbuf = new Uint8Array(headerLen);
    readExactly(fd, hbuf, 8, path);
    const dataStart = 8 + headerLen;
    const { entries, metadata } = parseSafetensorsHeader(new TextDecoder().decode(hbuf), size - dataStart, path);
    const byName = new Map(entries.map((e) => [e.name, e]));
    let closed = false;
    const toTensor = (e: SafetensorsEntry, bytes: Uint8Array): HostTensor => ({
      dtype: e.dtype,
      shape: e.shape,
      data: typedFromBytes(e.dtype, bytes),
    });
    return {
      path,
      entries,
      metadata,
      read(name) {
        const e = byName.get(name);
        if (!e) throw new UserError(`'${path}' has no tensor named '${name}'`);
        checkTensorSize(path, e.name, e.dtype, e.shape);
        const buf = new Uint8Array(e.end - e.begin);
        readExactly(fd, buf, dataStart + e.begin, path);
        return toTensor(e, buf);
      },
      readAll() {
        for (const e of entries) checkTensorSize(path, e.name, e.dtype, e.shape);
        const dataEnd = entries.reduce((m, e) => Math.max(m, e.end), 0);
        const limit = tensorByteLimit();
        if (dataEnd > limit.bytes)
          throw new UserError(
            `'${path}': its tensors hold ${dataEnd} bytes together, more than the limit of ${limit.bytes} bytes (${limit.why}) for one read; set FPDM_MAX_TENSOR_BYTES to raise it`,
          );
        const all = new Uint8Array(dataEnd);
        readExactly(fd, all, dataStart, path);
        const map: TensorMap = new Map();
        for (const e of entries) map.set(e.name, toTensor(e, all.subarray(e.begin, e.end)));
        return map;
      },
      close() {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Reads a whole safetensors file. */
export function readSafetensors(path: string): { tensors: TensorMap; metadata: Record<string, string> } {
  const f = openSafetensors(path);
  try {
    return { tensors: f.readAll(), metadata: f.metadata };
  } finally {
    f.close();
  }
}

/** Serialises tensors as safetensors chunks (header, then each tensor's bytes in order). */
export function safetensorsChunks(
  tensors: TensorMap | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const items = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of items) {
    const n = t.data.byteLength;
    if (n !== numel(t.shape) * DTYPE_BYTES[t.dtype])
      throw new Error(`tensor '${name}': ${n} bytes do not match ${t.dtype} ${shapeStr(t.shape)}`);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  // pad the header with spaces so the data region starts 8-byte aligned (as the Rust writer does)
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  return [len, hbytes, ...items.map(([, t]) => bytesOf(t))];
}

/** Writes tensors to `path` atomically (temporary file, fsync, rename). */
export function writeSafetensors(
  path: string,
  tensors: TensorMap | Record<string, HostTensor>,
  metadata?: Record<string, string>,
): void {
  atomicWrite(path, safetensorsChunks(tensors, metadata));
}
