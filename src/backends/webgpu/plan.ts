// A list of direct dispatches under construction (src/backends/webgpu/raw.ts): each kernel is named,
// generated from gemm.ts's WGSL builders for the shapes at hand and compiled once per (name, shapes);
// its buffers are bound in the order given. The op files (dit-block.ts, fpdm-step.ts) write their
// kernels against this.
import {
  ACTIVATIONS,
  colSumGroups,
  colSumWgsl,
  elementGroups,
  elementKernelWgsl,
  matMulGroups,
  matMulWgsl,
  rowGroups,
  rowKernelWgsl,
  splitK,
  splitReduceWgsl,
  u,
  type Binding,
  type ElementType,
  type MatMulSpec,
} from './gemm.js';
import {
  mixedKernel,
  mixedMatMulGroups,
  mixedMatMulWgsl,
  packedRuns,
  rowSumFits,
  tileKey,
  vectorViews,
} from './gemm-mixed.js';
import { mixedDeviceInfo } from './device.js';
import type { Dispatch, RawKernels } from './raw.js';
import type { GBuffer } from './types.js';
import type * as tf from '@tensorflow/tfjs-core';
import { invariant } from '../../util/errors.js';

/** A binding of a dispatch: its WGSL name, its buffer, whether the kernel writes it, its element type (default f32). */
export type Arg = readonly [name: string, buffer: GBuffer, write?: boolean, type?: ElementType];

function bindingsOf(args: Arg[]): Binding[] {
  return args.map(([name, , write, type]) => ({ name, write: write === true, ...(type ? { type } : {}) }));
}

/** The dispatches of one op call; kernels are keyed `${prefix}.${name}:${shapeKey}`. */
export class Plan {
  readonly ops: Dispatch[] = [];
  /** the matmuls' precision where their spec names none ('mixed' needs the mixed-precision device) */
  precision: 'fp32' | 'mixed' = 'fp32';
  /** weightGrad's rows where a call names none (AdaPlan: the token rows) */
  protected defaultRows: number | undefined;

  constructor(
    protected readonly rk: RawKernels,
    private readonly prefix: string,
    private readonly shapeKey: string,
  ) {}

  /** `variant` tells kernels of one name and shape apart (it follows the shape in the key) */
  protected push(
    name: string,
    args: Arg[],
    code: (b: Binding[]) => string,
    groups: [number, number, number],
    variant = '',
  ): void {
    // the bindings are part of the key too: a kernel of one name with another set of buffers is another kernel
    const key = `${this.prefix}.${name}:${this.shapeKey}${variant}|${args.map((a) => a[0]).join(',')}`;
    const kernel = this.rk.kernel(key, () => code(bindingsOf(args)));
    this.ops.push({ kernel, buffers: args.map((a) => a[1]), groups });
  }

  /** A matmul (gemm.ts MatMulSpec); at precision 'mixed', on the tensor cores (gemm-mixed.ts). */
  matMul(name: string, args: Arg[], spec: Omit<MatMulSpec, 'bindings'>): void {
    if ((spec.precision ?? this.precision) === 'mixed') {
      const device = mixedDeviceInfo(this.rk.device);
      if (!device)
        throw new Error(
          `matmul ${name}: precision 'mixed' needs the webgpu backend on the mixed-precision device (initBackend('webgpu', { precision: 'mixed' }))`,
        );
      const k = mixedKernel(device, spec, spec.mixedTile);
      const variant = `:mixed${k.mma.M}x${k.mma.N}x${k.mma.K}/${tileKey(k.tile)}e${k.epilogueCols ?? 1}${k.vector === true ? 'v' : ''}${k.hoistLoads === true && (spec.epilogueLoads ?? []).length > 0 ? 'h' : ''}${packedRuns(k) ? 'k' : ''}`;
      // plain operands read 4 at a time through a vec4 view of their buffer, bound after the spec's own
      const views = vectorViews({ ...spec, bindings: bindingsOf(args) }, k).map((v): Arg => [
        v.binding.name,
        args.find((a) => a[0] === v.of)![1],
        false,
        v.binding.type,
      ]);
      this.push(
        name,
        [...args, ...views],
        (bindings) => mixedMatMulWgsl({ ...spec, bindings, helpers: ACTIVATIONS }, k),
        mixedMatMulGroups(spec, k),
        variant,
      );
      return;
    }
    this.push(name, args, (bindings) => matMulWgsl({ ...spec, bindings, helpers: ACTIVATIONS }), matMulGroups(spec));
  }

  /**
   * A matmul whose reduction is split (gemm.ts splitK) into partial sums, then added up by a second
   * kernel that runs `store` (u32 i, j and f32 v = C(i, j) in scope) with `storeArgs` bound; unsplit,
   * `store` is the matmul's own epilogue.
   */
  matMulSplit(
    name: string,
    args: Arg[],
    spec: Omit<MatMulSpec, 'bindings' | 'batch' | 'store' | 'kTotal'>,
    storeArgs: Arg[],
    store: string,
  ): void {
    const { splits, chunk } = splitK(spec.M, spec.N, spec.K);
    if (splits === 1) {
      this.matMul(name, [...args, ...storeArgs], { ...spec, batch: 1, store });
      return;
    }
    const part = this.scratch(`${name}.part`, splits * spec.M * spec.N);
    this.matMul(name, [...args, ['PART', part, true]], {
      ...spec,
      batch: splits,
      K: chunk,
      kTotal: spec.K,
      store: `PART[(b * ${u(spec.M)} + i) * ${u(spec.N)} + j] = v;`,
    });
    this.push(
      `${name}.sum`,
      [['PART', part], ...storeArgs],
      (b) => splitReduceWgsl(b, spec.M, spec.N, splits, store, ACTIVATIONS),
      elementGroups(spec.M * spec.N),
    );
  }

  /**
   * dW = dYᵀ·Xin over `rows` rows, as [out, in], and the bias gradient db = Σ_rows dY in the same product;
   * the reduction split to fill the GPU. In fp32 Xin gets a column of ones appended (C(i, in) = Σ_k
   * dY(k, i)); on the tensor cores the bias gradient is summed from dY's f32 values as they are staged
   * (MatMulSpec.aRowSum: no extra column of output tiles, B a plain load) where the tile allows.
   * `a` reads dY(k, i), `b` reads Xin(k, j). `rows` default: the plan's defaultRows; `precision` as
   * MatMulSpec's (default: the plan's). With `accumulate` dW and db are added into (dw += …, db += …: a
   * weight-tied block's iterations; the same sums as a separate add after, in the same order).
   */
  weightGrad(
    name: string,
    args: Arg[],
    outDim: number,
    inDim: number,
    a: string,
    b: string,
    dw: GBuffer,
    db: GBuffer,
    rows = this.defaultRows,
    precision?: 'fp32' | 'mixed',
    accumulate = false,
  ): void {
    invariant(rows !== undefined, () => `weightGrad ${name}: no rows given and the plan has no default`);
    const put = addInto(accumulate);
    // a kernel's key holds its name, not its code: the adding kernels are named apart
    const kname = accumulate ? `${name}.acc` : name;
    if (
      (precision ?? this.precision) === 'mixed' &&
      this.mixedRowSum(kname, args, outDim, inDim, rows, a, b, dw, db, put)
    )
      return;
    this.matMulSplit(
      kname,
      args,
      {
        M: outDim,
        N: inDim + 1,
        K: rows,
        a,
        b: `select(1.0, ${b}, j < ${u(inDim)})`,
        aFast: 'i',
        bFast: 'j',
        ...(precision ? { precision } : {}),
      },
      [
        ['DW', dw, true],
        ['DB', db, true],
      ],
      `if (j < ${u(inDim)}) { ${put(`DW[i * ${u(inDim)} + j]`, 'v')} } else { ${put('DB[i]', 'v')} }`,
    );
  }

  /**
   * weightGrad on the tensor cores with the bias gradient from A's staging (aRowSum); false, recording
   * nothing, where the device's tiles cannot sum A's rows (then the column of ones).
   */
  private mixedRowSum(
    name: string,
    args: Arg[],
    M: number,
    N: number,
    rows: number,
    a: string,
    b: string,
    dw: GBuffer,
    db: GBuffer,
    put: Put,
  ): boolean {
    const device = mixedDeviceInfo(this.rk.device);
    const { splits, chunk } = splitK(M, N, rows);
    const spec = { M, N, a, b, aFast: 'i', bFast: 'j', precision: 'mixed' } as const;
    if (!device || !rowSumFits(mixedKernel(device, { ...spec, batch: splits, aRowSum: '' }))) return false;
    if (splits === 1) {
      this.matMul(name, [...args, ['DW', dw, true], ['DB', db, true]], {
        ...spec,
        batch: 1,
        K: rows,
        store: put(`DW[i * ${u(N)} + j]`, 'v'),
        aRowSum: put('DB[i]', 'v'),
      });
      return true;
    }
    const part = this.scratch(`${name}.part`, splits * M * N);
    const partB = this.scratch(`${name}.partb`, splits * M);
    this.matMul(name, [...args, ['PART', part, true], ['PARTB', partB, true]], {
      ...spec,
      batch: splits,
      K: chunk,
      kTotal: rows,
      store: `PART[(b * ${u(M)} + i) * ${u(N)} + j] = v;`,
      aRowSum: `PARTB[b * ${u(M)} + i] = v;`,
    });
    // dW as matMulSplit's sum; db, in split order, by the threads of column 0
    const store = `${put(`DW[i * ${u(N)} + j]`, 'v')}
  if (j == 0u) {
    var sb = 0.0;
    for (var s = 0u; s < ${u(splits)}; s = s + 1u) { sb = sb + PARTB[s * ${u(M)} + i]; }
    ${put('DB[i]', 'sb')}
  }`;
    this.push(
      `${name}.sum`,
      [
        ['PART', part],
        ['PARTB', partB],
        ['DW', dw, true],
        ['DB', db, true],
      ],
      (bb) => splitReduceWgsl(bb, M, N, splits, store, ACTIVATIONS),
      elementGroups(M * N),
    );
    return true;
  }

  /**
   * An MLP's gradient at its hidden pre-activation: for y = GELU(pre)·W2ᵀ, dPre = (dY·W2) ⊙ GELU′(pre) over
   * `rows` rows of `hidden` values, dY [rows, outDim], W2 [outDim, hidden]; `pre` as savedOperand reads it.
   */
  geluInputGrad(
    name: string,
    dy: Arg,
    w2: GBuffer,
    pre: { arg: Arg; at: (idx: string) => string },
    out: Arg,
    rows: number,
    hidden: number,
    outDim: number,
    precision: 'fp32' | 'mixed',
  ): void {
    this.matMul(name, [dy, ['W2', w2], pre.arg, out], {
      batch: 1,
      M: rows,
      N: hidden,
      K: outDim,
      a: `${dy[0]}[i * ${u(outDim)} + k]`,
      b: `W2[k * ${u(hidden)} + j]`,
      epilogueLoads: [pre.at(`i * ${u(hidden)} + j`)],
      store: `${out[0]}[i * ${u(hidden)} + j] = geluGrad(w0, v);`,
      aFast: 'k',
      bFast: 'j',
      precision,
    });
  }

  rows(name: string, args: Arg[], rows: number, body: string): void {
    this.push(name, args, (b) => rowKernelWgsl(b, rows, body, ACTIVATIONS), rowGroups(rows));
  }

  elements(name: string, args: Arg[], count: number, body: string): void {
    this.push(name, args, (b) => elementKernelWgsl(b, count, body), elementGroups(count));
  }

  colSum(name: string, args: Arg[], rows: number, cols: number, expr: string, store: string): void {
    this.push(name, args, (b) => colSumWgsl(b, rows, cols, expr, store), colSumGroups(cols));
  }

  scratch(name: string, floats: number): GBuffer {
    return this.rk.scratch(`${this.prefix}.${name}`, floats);
  }
}

/**
 * A saved intermediate of `rows` × `cols` values as a backward reads it: kept in f32, or in f16 (two per
 * float32 element, ⌈cols / 2⌉ elements per row, as the mixed-precision forwards keep P, h and p1), told apart
 * by the tensor's size. `arg` binds it as `name` (f32) or `half` (f16); `at(idx)` reads value idx as f32.
 */
export function savedOperand(
  x: tf.Tensor,
  buffer: GBuffer,
  rows: number,
  cols: number,
  name: string,
  half: string,
): { half: boolean; arg: Arg; at: (idx: string) => string } {
  const halfSize = rows * Math.ceil(cols / 2);
  invariant(
    x.size === rows * cols || x.size === halfSize,
    () => `saved ${name} holds ${x.size} values, neither ${rows * cols} (f32) nor ${halfSize} (f16)`,
  );
  return x.size === rows * cols
    ? { half: false, arg: [name, buffer], at: (idx) => `${name}[${idx}]` }
    : { half: true, arg: [half, buffer, false, 'f16'], at: (idx) => `f32(${half}[${idx}])` };
}

/** A WGSL statement storing `value` at `target` (an array element), or adding it into what is there. */
type Put = (target: string, value: string) => string;

/** Put for a store (accumulate false) or an add into the target (true). */
export function addInto(accumulate: boolean): Put {
  return (target, value) => (accumulate ? `${target} = ${target} + ${value};` : `${target} = ${value};`);
}
