// A restricted unpickler: it understands exactly the pickle opcodes and the few globals that a
// PyTorch state_dict (or a dict of them: `model`/`ema`/`opt`/`args` training checkpoints) needs,
// and refuses every other global (e.g. `os.system`) with a clear error. It never executes code:
// allowed globals map to data constructors written here.
//
// Python values become: None → null, bool, int → number (bigint beyond 2^53), float → number,
// str → string, bytes → Uint8Array, tuple/list → array, dict/OrderedDict → PyDict (a Map, keys kept as
// given: strings or numbers), argparse.Namespace → PyObject, tensors → whatever `persistentLoad` and
// the tensor rebuild hook return.
import { UserError } from '../util/errors.js';

export type PyValue = unknown;
export type PyDict = Map<PyValue, PyValue>;

/** An instance of an allowed class (argparse.Namespace): its attributes. */
export class PyObject {
  constructor(
    readonly className: string,
    public attrs: Record<string, PyValue> = {},
  ) {}
}

/** A storage dtype marker (`torch.FloatStorage` …) as named by the pickle. */
export class StorageType {
  constructor(readonly name: string) {}
}

export interface TensorRebuild {
  storage: PyValue;
  storageOffset: number;
  size: number[];
  stride: number[];
  /** why the call's arguments do not describe a tensor (wrong types, negative sizes, …); the hook
   * reports it once it knows the tensor's name */
  invalid?: string;
}

export interface UnpickleHooks {
  /** Resolves a persistent id (PyTorch's storage references). */
  persistentLoad(pid: PyValue): PyValue;
  /** Builds a tensor from `torch._utils._rebuild_tensor_v2` arguments. */
  rebuildTensor(args: TensorRebuild): PyValue;
}

const STORAGE_TYPES = ['Float', 'Double', 'Half', 'BFloat16', 'Long', 'Int', 'Short', 'Char', 'Byte', 'Bool'].map(
  (s) => `${s}Storage`,
);

/**
 * A Python float with an integral value (1.0), kept apart from ints while unpickling so that
 * arguments PyTorch requires to be ints (tensor sizes, strides, offsets) can refuse it; every one
 * left in the result becomes a plain number when the pickle ends.
 */
class IntegralFloat {
  constructor(readonly value: number) {}
  toString(): string {
    return `${this.value}.0`;
  }
}

const pushFloat = (stack: PyValue[], f: number) => stack.push(Number.isInteger(f) ? new IntegralFloat(f) : f);

/** Replaces IntegralFloat boxes by numbers throughout a result (maps, lists, objects; cycles allowed). */
function unboxFloats(v: PyValue, seen = new Set<unknown>()): PyValue {
  if (v instanceof IntegralFloat) return v.value;
  if (typeof v !== 'object' || v === null || seen.has(v)) return v;
  seen.add(v);
  if (Array.isArray(v)) for (let i = 0; i < v.length; i++) v[i] = unboxFloats(v[i], seen);
  else if (v instanceof Map) {
    for (const [k, x] of [...v]) {
      const k2 = unboxFloats(k, seen);
      if (k2 !== k) v.delete(k);
      v.set(k2, unboxFloats(x, seen));
    }
  } else if (v instanceof PyObject) for (const k of Object.keys(v.attrs)) v.attrs[k] = unboxFloats(v.attrs[k], seen);
  return v;
}

class Mark {}
const MARK = new Mark();

const describeValue = (v: PyValue): string =>
  v === null
    ? 'None'
    : v instanceof IntegralFloat
      ? `the float ${v}`
      : typeof v === 'number' && !Number.isInteger(v)
        ? `the float ${v}`
        : Array.isArray(v)
          ? `a tuple of ${v.length}`
          : v instanceof Map
            ? 'a dict'
            : typeof v === 'bigint'
              ? `the integer ${v}`
              : `${typeof v} ${JSON.stringify(v)?.slice(0, 40) ?? String(v)}`;

/**
 * Checks the arguments of `_rebuild_tensor_v2(storage, storage_offset, size, stride, …)` as PyTorch
 * does: the offset a non-negative integer, size and stride tuples of non-negative integers of one
 * length. Problems are returned in `invalid` (with empty size/stride), not thrown, so the message
 * can name the tensor.
 */
function rebuildArgs(args: PyValue): TensorRebuild {
  const bad = (why: string): TensorRebuild => ({ storage: null, storageOffset: 0, size: [], stride: [], invalid: why });
  if (!Array.isArray(args) || args.length < 4)
    return bad(`_rebuild_tensor needs (storage, offset, size, stride), got ${describeValue(args)}`);
  const [storage, offset, size, stride] = args as PyValue[];
  const isInt = (v: PyValue) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
  if (!isInt(offset) || Number(offset) < 0)
    return bad(`its storage offset is ${describeValue(offset)}, not a non-negative integer`);
  for (const [what, t] of [
    ['size', size],
    ['stride', stride],
  ] as const) {
    if (!Array.isArray(t)) return bad(`its ${what} is ${describeValue(t)}, not a tuple of integers`);
    const i = t.findIndex((d) => !isInt(d) || Number(d) < 0);
    if (i >= 0) return bad(`its ${what}[${i}] is ${describeValue(t[i])}, not a non-negative integer`);
  }
  if ((size as PyValue[]).length !== (stride as PyValue[]).length)
    return bad(`its size has ${(size as PyValue[]).length} dimensions and its stride ${(stride as PyValue[]).length}`);
  return {
    storage,
    storageOffset: Number(offset),
    size: (size as PyValue[]).map(Number),
    stride: (stride as PyValue[]).map(Number),
  };
}

function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(8 * bytes.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Unpickles one pickle starting at `start` in `buf`. Returns the value and the offset just after
 * its STOP opcode (legacy PyTorch files hold several pickles back to back).
 */
export function unpickle(
  buf: Uint8Array,
  hooks: UnpickleHooks,
  start = 0,
  source = 'checkpoint',
): { value: PyValue; end: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const td = new TextDecoder('utf-8');
  const stack: PyValue[] = [];
  const memo = new Map<number, PyValue>();
  let pos = start;

  const fail = (msg: string): never => {
    throw new UserError(`'${source}' cannot be loaded: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > buf.length) fail(`the pickle ends early at byte ${pos} (file truncated or corrupt)`);
  };
  const u8 = () => (need(1), buf[pos++]!);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const u64 = () => (need(8), (pos += 8), Number(dv.getBigUint64(pos - 8, true)));
  const bytes = (n: number) => (need(n), (pos += n), buf.subarray(pos - n, pos));
  const line = () => {
    const e = buf.indexOf(0x0a, pos);
    if (e < 0) fail('a text opcode has no end of line');
    const s = td.decode(buf.subarray(pos, e));
    pos = e + 1;
    return s;
  };
  const pop = () => (stack.length === 0 ? fail('stack underflow (corrupt pickle)') : stack.pop());
  const popMark = (): PyValue[] => {
    const items: PyValue[] = [];
    for (;;) {
      const v = pop();
      if (v === MARK) return items.reverse();
      items.push(v);
    }
  };
  const top = () => (stack.length === 0 ? fail('stack underflow (corrupt pickle)') : stack[stack.length - 1]);

  const findGlobal = (module: string, name: string): PyValue => {
    const full = `${module}.${name}`;
    if (full === 'collections.OrderedDict') return { kind: 'dict' };
    if (full === 'torch._utils._rebuild_tensor_v2' || full === 'torch._utils._rebuild_tensor')
      return { kind: 'rebuild_tensor' };
    if (full === 'torch._utils._rebuild_parameter') return { kind: 'rebuild_parameter' };
    if (module === 'torch' && STORAGE_TYPES.includes(name)) return new StorageType(name);
    if (full === 'argparse.Namespace') return { kind: 'namespace' };
    if (full === '_codecs.encode') return { kind: 'codecs_encode' };
    if (full === 'builtins.set' || full === 'builtins.frozenset') return { kind: 'set' };
    if (full === 'torch.device') return { kind: 'device' };
    return fail(
      `the pickle names the global '${full}', which a state_dict or training checkpoint never needs; ` +
        'fpdm-exp executes no code from checkpoint files and refuses it. Re-save the weights as a plain ' +
        'state_dict (or as .safetensors) in PyTorch if the file is trusted.',
    );
  };

  const callGlobal = (fn: PyValue, args: PyValue[]): PyValue => {
    const k = (fn as { kind?: string }).kind;
    switch (k) {
      case 'dict':
        return new Map();
      case 'rebuild_tensor':
        return hooks.rebuildTensor(rebuildArgs(args));
      case 'rebuild_parameter':
        return args[0]; // (data, requires_grad, backward_hooks): the data is the tensor
      case 'namespace':
        return new PyObject('argparse.Namespace');
      case 'codecs_encode':
        return Uint8Array.from(String(args[0]), (c) => c.charCodeAt(0) & 0xff);
      case 'set':
        return [...((args[0] as PyValue[]) ?? [])];
      case 'device':
        return `device(${args.map(String).join(', ')})`;
      default:
        return fail(`the pickle calls an object that is not callable here (${JSON.stringify(fn)})`);
    }
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80:
        u8();
        break; // PROTO
      case 0x95:
        u64();
        break; // FRAME (protocol 4): length only
      case 0x2e:
        return { value: unboxFloats(pop()), end: pos }; // STOP
      case 0x28:
        stack.push(MARK);
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(decodeLong(bytes(u8())));
        break; // LONG1
      case 0x8b:
        stack.push(decodeLong(bytes(u32())));
        break; // LONG4
      case 0x49: {
        // INT (text): also True/False as I01/I00
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c:
        stack.push(Number.parseInt(line().replace(/L$/, ''), 10));
        break; // LONG (text)
      case 0x47:
        need(8);
        pushFloat(stack, dv.getFloat64(pos, false));
        pos += 8;
        break; // BINFLOAT (big-endian)
      case 0x46:
        pushFloat(stack, Number.parseFloat(line()));
        break; // FLOAT (text)
      case 0x58:
        stack.push(td.decode(bytes(u32())));
        break; // BINUNICODE
      case 0x8c:
        stack.push(td.decode(bytes(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(td.decode(bytes(u64())));
        break; // BINUNICODE8
      case 0x42:
        stack.push(bytes(u32()).slice());
        break; // BINBYTES
      case 0x43:
        stack.push(bytes(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(bytes(u64()).slice());
        break; // BINBYTES8
      case 0x54:
        stack.push(String.fromCharCode(...bytes(i32())));
        break; // BINSTRING (py2 str)
      case 0x55:
        stack.push(String.fromCharCode(...bytes(u8())));
        break; // SHORT_BINSTRING
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x74:
        stack.push(popMark());
        break; // TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x61: {
        const v = pop();
        (top() as PyValue[]).push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS on a non-list');
        (l as PyValue[]).push(...items);
        break;
      } // APPENDS
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        // DICT
        const items = popMark();
        const d: PyDict = new Map();
        for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        const d = top();
        if (!(d instanceof Map)) fail('SETITEM on a non-dict');
        (d as PyDict).set(k, v);
        break;
      } // SETITEM
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = top();
        if (!(d instanceof Map)) fail('SETITEMS on a non-dict');
        for (let i = 0; i + 1 < items.length; i += 2) (d as PyDict).set(items[i], items[i + 1]);
        break;
      }
      case 0x8f:
        stack.push([]);
        break; // EMPTY_SET (as a list)
      case 0x90: {
        const items = popMark();
        (top() as PyValue[]).push(...items);
        break;
      } // ADDITEMS
      case 0x91:
        stack.push(popMark());
        break; // FROZENSET
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(findGlobal(module, name));
        break;
      }
      case 0x93: {
        const name = pop();
        const module = pop();
        stack.push(findGlobal(String(module), String(name)));
        break;
      } // STACK_GLOBAL
      case 0x52: {
        const args = pop() as PyValue[];
        const fn = pop();
        stack.push(callGlobal(fn, args));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop() as PyValue[];
        const cls = pop();
        stack.push(callGlobal(cls, args));
        break;
      } // NEWOBJ
      case 0x62: {
        // BUILD: set state on the object below
        const state = pop();
        const obj = top();
        if (obj instanceof PyObject) {
          const d = Array.isArray(state) ? state[0] : state; // (dict, slots) or dict
          if (d instanceof Map) for (const [k, v] of d) obj.attrs[String(k)] = v;
        }
        // an OrderedDict's state (e.g. a state_dict's `_metadata`) carries no tensors: dropped
        break;
      }
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x70:
        memo.set(Number.parseInt(line(), 10), top());
        break; // PUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68: {
        const k = u8();
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      } // BINGET
      case 0x6a: {
        const k = u32();
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      } // LONG_BINGET
      case 0x67: {
        const k = Number.parseInt(line(), 10);
        if (!memo.has(k)) fail(`memo key ${k} missing`);
        stack.push(memo.get(k));
        break;
      } // GET
      case 0x51:
        stack.push(hooks.persistentLoad(pop()));
        break; // BINPERSID
      default:
        fail(
          `the pickle uses opcode 0x${op.toString(16).padStart(2, '0')} at byte ${pos - 1}, which a state_dict never needs (or the file is corrupt)`,
        );
    }
  }
}
