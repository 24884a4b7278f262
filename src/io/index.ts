// One entry point for every weights/checkpoint/array file this tool reads: the format is detected
// from the file's first bytes, not its name.
//   safetensors | torch-zip | torch-legacy | npy | npz
import { UserError } from '../util/errors.js';
import { readHead } from '../util/fs.js';
import { PyObject, type PyValue } from './pickle.js';
import { openSafetensors, readSafetensors } from './safetensors.js';
import type { HostTensor, TensorMap } from './tensor.js';
import { isLegacyTorch, readTorch } from './torch.js';
import { isNpy, readNpy, readNpz } from './npy.js';
import { isZip, openZip } from './zip.js';

export type WeightsFormat = 'safetensors' | 'torch-zip' | 'torch-legacy' | 'npy' | 'npz';

export function detectFormat(path: string): WeightsFormat {
  const head = readHead(path, 16);
  if (isNpy(head)) return 'npy';
  if (isZip(head)) {
    const z = openZip(path);
    try {
      return z.entries.some((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl')) ? 'torch-zip' : 'npz';
    } finally {
      z.close();
    }
  }
  if (isLegacyTorch(head)) return 'torch-legacy';
  if (head.length >= 9) {
    const hlen = Number(Buffer.from(head).readBigUInt64LE(0));
    if (hlen > 1 && hlen < 100 * 1024 * 1024 && head[8] === 0x7b /* '{' */) return 'safetensors';
  }
  throw new UserError(
    `'${path}' is not a recognised weights file: expected .safetensors, a PyTorch torch.save file (zip or legacy), .npy or .npz`,
  );
}

export function isHostTensor(v: unknown): v is HostTensor {
  return (
    typeof v === 'object' &&
    v !== null &&
    'dtype' in v &&
    'shape' in v &&
    'data' in v &&
    ArrayBuffer.isView((v as HostTensor).data)
  );
}

/** Every tensor anywhere in a checkpoint tree, named by its dotted path (`ema.blocks.0.attn.qkv.weight`). */
export function flattenTensors(root: PyValue, prefix = '', out: TensorMap = new Map()): TensorMap {
  if (isHostTensor(root)) {
    out.set(prefix || 'tensor', root);
  } else if (root instanceof Map) {
    for (const [k, v] of root) flattenTensors(v, prefix ? `${prefix}.${String(k)}` : String(k), out);
  } else if (Array.isArray(root)) {
    root.forEach((v, i) => flattenTensors(v, prefix ? `${prefix}.${i}` : String(i), out));
  } else if (root instanceof PyObject) {
    for (const [k, v] of Object.entries(root.attrs)) flattenTensors(v, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

export interface ReadResult {
  format: WeightsFormat;
  /** every tensor in the file, dotted names for nested checkpoints */
  tensors: TensorMap;
  /** top-level entries of a training checkpoint (`model`, `ema`, `opt`, `args`), if it is one */
  entries: string[];
  /** non-tensor values at the top level (e.g. `args` of a training checkpoint), as plain JSON */
  extras: Record<string, unknown>;
}

function toPlain(v: PyValue): unknown {
  if (v instanceof Map)
    return Object.fromEntries([...v].filter(([, x]) => !isHostTensor(x)).map(([k, x]) => [String(k), toPlain(x)]));
  if (v instanceof PyObject) return Object.fromEntries(Object.entries(v.attrs).map(([k, x]) => [k, toPlain(x)]));
  if (Array.isArray(v)) return v.map(toPlain);
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (isHostTensor(v)) return `<tensor ${v.dtype} [${v.shape.join(', ')}]>`;
  return v;
}

/** Reads any supported file: all its tensors, flattened, plus what the top level holds. */
export function readAny(path: string): ReadResult {
  const format = detectFormat(path);
  switch (format) {
    case 'safetensors': {
      const { tensors, metadata } = readSafetensors(path);
      return { format, tensors, entries: [], extras: Object.keys(metadata).length ? { __metadata__: metadata } : {} };
    }
    case 'npy':
      return { format, tensors: new Map([['array', readNpy(path)]]), entries: [], extras: {} };
    case 'npz':
      return { format, tensors: readNpz(path), entries: [], extras: {} };
    case 'torch-zip':
    case 'torch-legacy': {
      const { root } = readTorch(path);
      const entries: string[] = [];
      const extras: Record<string, unknown> = {};
      if (root instanceof Map) {
        for (const [k, v] of root) {
          if (v instanceof Map && [...v.values()].some(isHostTensor)) entries.push(String(k));
          else if (!isHostTensor(v)) extras[String(k)] = toPlain(v);
        }
      }
      return { format, tensors: flattenTensors(root), entries, extras };
    }
  }
}

export interface ReadWeightsOptions {
  /** which state_dict of a training checkpoint: `ema` (default when present, as DiT's sampler does) or `model` */
  entry?: string;
}

/**
 * Reads a flat state_dict from any supported file. For a training checkpoint (a dict of state_dicts
 * with `model`/`ema`/`opt`/`args`), picks `entry` (default `ema` if present, else `model`). A uniform
 * `module.` prefix (DistributedDataParallel) is removed.
 */
export function readWeights(path: string, opts: ReadWeightsOptions = {}): TensorMap {
  const format = detectFormat(path);
  let tensors: TensorMap;
  if (format === 'safetensors') {
    const f = openSafetensors(path);
    try {
      const all = f.readAll();
      tensors = pickEntry(all, path, opts.entry, (e) => [...all.keys()].some((k) => k.startsWith(`${e}.`)));
    } finally {
      f.close();
    }
  } else {
    const all = readAny(path);
    tensors = pickEntry(all.tensors, path, opts.entry, (e) => all.entries.includes(e));
  }
  const keys = [...tensors.keys()];
  if (keys.length > 0 && keys.every((k) => k.startsWith('module.'))) {
    tensors = new Map([...tensors].map(([k, v]) => [k.slice('module.'.length), v]));
  }
  return tensors;
}

function pickEntry(all: TensorMap, path: string, entry: string | undefined, has: (e: string) => boolean): TensorMap {
  const nested = ['ema', 'model'].filter(has);
  if (entry === undefined && nested.length === 0) return all;
  const chosen = entry ?? nested[0]!;
  if (!has(chosen)) {
    throw new UserError(
      `'${path}' has no '${chosen}' state_dict${nested.length ? ` (it has: ${nested.join(', ')})` : ' (it is a plain state_dict: drop the entry option)'}`,
    );
  }
  const prefix = `${chosen}.`;
  return new Map([...all].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}
