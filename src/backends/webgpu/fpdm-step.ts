// FPDM's input projection of the fixed-point step (src/models/blockgrad.ts stepForward: u =
// fc2(GELU_tanh(fc1([z, inj])))) and its backward as our own kernels dispatched directly
// (src/backends/webgpu/raw.ts): 2 dispatches forward, 4–6 backward, against ≈ 8 and ≈ 20 TF.js kernels.
// The concat [z, inj] is never materialised: fc1 and its weight gradient read z or inj by column; in a
// solve fc1's inj half is computed once (rawInjectionProjection) and each iteration multiplies z only.
// Legend: n batch, t tokens, d hidden, R = n·t; fc1 [2d, 2d], fc2 [d, 2d] (PyTorch's [out, in]).
import * as tf from '@tensorflow/tfjs-core';
import { u } from './gemm.js';
import { halfWeightsOn, weightOperand } from './half-weights.js';
import { Plan, savedOperand, type Arg } from './plan.js';
import type { RawKernels } from './raw.js';
import { invariant } from '../../util/errors.js';
import type { GBuffer } from './types.js';

/** [z, inj](i, k) for token row i and column k < 2d, as a WGSL expression (indices always in range). */
function concatAt(d: number, i: string, k: string): string {
  return `select(INJ[${i} * ${u(d)} + max(${k}, ${u(d)}) - ${u(d)}], Z[${i} * ${u(d)} + min(${k}, ${u(d - 1)})], ${k} < ${u(d)})`;
}

function plan(rk: RawKernels, z: tf.Tensor3D): Plan {
  const [n, t, d] = z.shape;
  return new Plan(rk, 'fpdmstep', `${n},${t},${d}`);
}

/** q = inj·W1[:, d:]ᵀ + b1 into `out` (rawInjectionProjection), as the dispatches of one plan. */
function injectionPlan(rk: RawKernels, inj: tf.Tensor3D, w: tf.Tensor[], out: GBuffer): Plan {
  const [n, t, d] = inj.shape;
  const p = plan(rk, inj);
  const [W1, B1] = w.map((x) => rk.buffer(x)) as GBuffer[];
  p.matMul(
    'fc1inj',
    [
      ['INJ', rk.buffer(inj)],
      ['W1', W1!],
      ['B1', B1!],
      ['Q', out, true],
    ],
    {
      batch: 1,
      M: n * t,
      N: 2 * d,
      K: d,
      a: `INJ[i * ${u(d)} + k]`,
      b: `W1[j * ${u(2 * d)} + ${u(d)} + k]`,
      store: `Q[i * ${u(2 * d)} + j] = v + B1[j];`,
      aFast: 'k',
      bFast: 'k',
      precision: rk.forwardPrecision,
    },
  );
  return p;
}

/**
 * fc1's inj half and bias, the same for every iteration of a solve: q = inj·W1[:, d:]ᵀ + b1 [n, t, 2d]
 * (w = [W1, b1, …]). With it each iteration's fc1 is z·W1[:, :d]ᵀ + q, half the multiply-adds and a
 * plain operand load (rawProjectionForward). A new tensor owned by the caller.
 */
export function rawInjectionProjection(rk: RawKernels, inj: tf.Tensor3D, w: tf.Tensor[]): tf.Tensor3D {
  const [n, t, d] = inj.shape;
  const q = rk.output([n, t, 2 * d]);
  rk.run(injectionPlan(rk, inj, w, q.buffer).ops, [inj, w[0]!, w[1]!, q.tensor]);
  return q.tensor as tf.Tensor3D;
}

/** Per RawKernels: the injection projection last computed into its scratch buffer, and from what. */
const lastInjection = new WeakMap<RawKernels, { inj: object; w1: object; b1: object; buffer: GBuffer }>();

/**
 * rawInjectionProjection for the iterations of a solve without a tape (sampling, the no-gradient
 * iterations): computed into a scratch buffer the first time an inj tensor (with these W1, b1) comes,
 * and reused while the same one comes back — the caller holds no extra tensor. Weights written in place
 * keep their tensor, so the key is the (inj, W1, b1) tensors' data; inj is a new tensor per forward.
 */
export function injectionProjectionFor(rk: RawKernels, inj: tf.Tensor3D, w: tf.Tensor[]): GBuffer {
  const [n, t, d] = inj.shape;
  const key = { inj: inj.dataId, w1: w[0]!.dataId, b1: w[1]!.dataId };
  const buffer = rk.scratch(`fpdmstep.injp:${n},${t},${d}`, n * t * 2 * d);
  const last = lastInjection.get(rk);
  if (last && last.buffer === buffer && last.inj === key.inj && last.w1 === key.w1 && last.b1 === key.b1) return buffer;
  rk.run(injectionPlan(rk, inj, w, buffer).ops, [inj, w[0]!, w[1]!]);
  lastInjection.set(rk, { ...key, buffer });
  return buffer;
}

/**
 * p1 = [z, inj]·W1ᵀ + b1 [n, t, 2d] and u = GELU(p1)·W2ᵀ + b2 [n, t, d]; w = [W1, b1, W2, b2]. With
 * `injP` (rawInjectionProjection or injectionProjectionFor of inj) p1 = z·W1[:, :d]ᵀ + injP. New tensors
 * owned by the caller; with `save` false (no backward reads p1) p1 lives in a scratch buffer — at mixed
 * precision with injP not even there (fc2 reads fc1z's f16 GELU(p1)) — and only u is new (p1 null). At mixed
 * precision with injP the saved p1 holds its values in f16 ([n, t, d]: two per float32 element).
 */
export function rawProjectionForward(
  rk: RawKernels,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  w: tf.Tensor[],
  injP?: tf.Tensor3D | GBuffer,
): { p1: tf.Tensor3D; u: tf.Tensor3D };
export function rawProjectionForward(
  rk: RawKernels,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  w: tf.Tensor[],
  injP: tf.Tensor3D | GBuffer | undefined,
  save: false,
): { p1: null; u: tf.Tensor3D };
export function rawProjectionForward(
  rk: RawKernels,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  w: tf.Tensor[],
  injP?: tf.Tensor3D | GBuffer,
  save = true,
): { p1: tf.Tensor3D | null; u: tf.Tensor3D } {
  const [n, t, d] = z.shape;
  const R = n * t;
  const p = plan(rk, z);
  const [W1, B1, , B2] = w.map((x) => rk.buffer(x)) as GBuffer[]; // fc2's weight: weightOperand
  const out = rk.output([n, t, d]);
  // at mixed precision fc1z's epilogue also writes GELU(p1) in f16 (two values per float of the scratch),
  // which fc2 reads as a plain operand on the tensor cores (GELU in fc2's load kept it on 16-wide k stages)
  const G16 = injP && rk.forwardPrecision === 'mixed' ? p.scratch('g16', Math.ceil((R * 2 * d) / 2)) : null;
  // p1 itself: for the backward (save), or as fc2's operand where there is no G16; else never written. With
  // G16 the backward alone reads it (GELU'(p1), and GELU(p1) for dW2), kept in f16 as the blocks' h
  // (rawProjectionBackward tells the two apart by its size)
  const halfP1 = G16 !== null;
  const p1 =
    save || !G16
      ? save
        ? rk.output([n, t, halfP1 ? d : 2 * d])
        : { tensor: null, buffer: p.scratch('p1', R * 2 * d) }
      : null;
  // without save, optionally the weights as f16 copies (half-weights.ts; the injection is new per forward)
  const half16 = !save && G16 !== null && halfWeightsOn();
  const w1 = weightOperand(rk, p, 'W1', 'W1H', w[0]!, inj.dataId, half16);
  const w2 = weightOperand(rk, p, 'W2', 'W2H', w[2]!, inj.dataId, half16);
  if (injP)
    p.matMul(
      'fc1z',
      [
        ['Z', rk.buffer(z)],
        w1.arg,
        ['INJP', injP instanceof tf.Tensor ? rk.buffer(injP) : injP],
        ...(p1 ? [(halfP1 ? ['P1H', p1.buffer, true, 'f16'] : ['P1', p1.buffer, true]) as Arg] : []),
        ...(G16 ? [['G16', G16, true, 'f16'] as const] : []),
      ],
      {
        batch: 1,
        M: R,
        N: 2 * d,
        K: d,
        a: `Z[i * ${u(d)} + k]`,
        b: w1.at(`j * ${u(2 * d)} + k`),
        epilogueLoads: [`INJP[i * ${u(2 * d)} + j]`],
        store: G16
          ? `let pv = v + w0;
  ${p1 ? `P1H[i * ${u(2 * d)} + j] = f16(pv);` : ''}
  G16[i * ${u(2 * d)} + j] = f16(gelu(pv));`
          : `P1[i * ${u(2 * d)} + j] = v + w0;`,
        aFast: 'k',
        bFast: 'k',
        precision: rk.forwardPrecision,
      },
    );
  else
    p.matMul(
      'fc1',
      [
        ['Z', rk.buffer(z)],
        ['INJ', rk.buffer(inj)],
        ['W1', W1!],
        ['B1', B1!],
        ['P1', p1!.buffer, true],
      ],
      {
        batch: 1,
        M: R,
        N: 2 * d,
        K: 2 * d,
        a: concatAt(d, 'i', 'k'),
        b: `W1[j * ${u(2 * d)} + k]`,
        store: `P1[i * ${u(2 * d)} + j] = v + B1[j];`,
        aFast: 'k',
        bFast: 'k',
        wide: false,
        // fp32 at mixed precision too: its [z, inj] select load ran slower on the tensor cores (NOTES §9)
      },
    );
  p.matMul(
    'fc2',
    [
      G16 ? (['G16', G16, false, 'f16'] as const) : (['P1', p1!.buffer] as const),
      w2.arg,
      ['B2', B2!],
      ['U', out.buffer, true],
    ],
    {
      batch: 1,
      M: R,
      N: d,
      K: 2 * d,
      a: G16 ? `f32(G16[i * ${u(2 * d)} + k])` : `gelu(P1[i * ${u(2 * d)} + k])`,
      b: w2.at(`j * ${u(2 * d)} + k`),
      epilogueLoads: ['B2[j]'],
      store: `U[i * ${u(d)} + j] = v + w0;`,
      aFast: 'k',
      bFast: 'k',
      precision: rk.forwardPrecision,
    },
  );
  const outs = [...(p1?.tensor ? [p1.tensor] : []), out.tensor];
  rk.run(p.ops, [z, inj, ...w, ...(injP instanceof tf.Tensor ? [injP] : []), ...outs]);
  return { p1: (p1?.tensor ?? null) as tf.Tensor3D | null, u: out.tensor as tf.Tensor3D };
}

/**
 * The backward of rawProjectionForward from z, inj, the saved p1 and du [n, t, d] →
 * [dz, dinj, dW1, db1, dW2, db2], new tensors owned by the caller. `precision` 'mixed': dp1, dcat and
 * dW2 on the tensor cores (dW1's [z, inj] load stays fp32) (gradient operands in f16: only with loss scaling, as rawBlockBackward).
 * With `into` ([dW1, db1, dW2, db2] so far) the weight gradients are added into those tensors, which come
 * back in their places (rawBlockBackward's `into`).
 */
export function rawProjectionBackward(
  rk: RawKernels,
  z: tf.Tensor3D,
  inj: tf.Tensor3D,
  p1: tf.Tensor3D,
  du: tf.Tensor3D,
  w: tf.Tensor[],
  precision: 'fp32' | 'mixed' = 'fp32',
  into?: tf.Tensor[],
): tf.Tensor[] {
  const [n, t, d] = z.shape;
  const R = n * t;
  invariant(
    !into || (into.length === w.length && into.every((g, i) => g.size === w[i]!.size)),
    'rawProjectionBackward: `into` holds one gradient per weight, of its size',
  );
  const acc = into !== undefined;
  const d2 = 2 * d;
  const p = plan(rk, z);
  const [W1, , W2] = w.map((x) => rk.buffer(x)) as GBuffer[];
  const [Z, INJ, P1, DU] = [z, inj, p1, du].map((x) => rk.buffer(x)) as GBuffer[];
  const dz = rk.output([n, t, d]);
  const dinj = rk.output([n, t, d]);
  const dW = into ? into.map((g) => ({ tensor: g, buffer: rk.buffer(g) })) : w.map((x) => rk.output(x.shape));
  const [dW1, dB1, dW2, dB2] = dW as Array<{ tensor: tf.Tensor; buffer: GBuffer }>;
  // p1 as the forward kept it: in f16 where fc2 read GELU(p1) in f16 (mixed precision), else f32
  const sp1 = savedOperand(p1, P1!, R, d2, 'P1', 'P1H');
  const DP1 = p.scratch('dp1', R * d2);
  // u = GELU(p1)·W2ᵀ + b2: dp1 = (du·W2) ⊙ GELU'(p1); dW2 = duᵀ·GELU(p1), db2 = Σ du (a column of ones)
  p.geluInputGrad('dp1', ['DU', DU!], W2!, sp1, ['DP1', DP1, true], R, d2, d, precision);
  p.weightGrad(
    'dw2',
    [['DU', DU!], sp1.arg],
    d,
    d2,
    `DU[k * ${u(d)} + i]`,
    `gelu(${sp1.at(`k * ${u(d2)} + min(j, ${u(d2 - 1)})`)})`,
    dW2!.buffer,
    dB2!.buffer,
    R,
    precision,
    acc,
  );
  // p1 = [z, inj]·W1ᵀ + b1: [dz, dinj] = dp1·W1; dW1 = dp1ᵀ·[z, inj], db1 = Σ dp1
  p.matMul(
    'dcat',
    [
      ['DP1', DP1],
      ['W1', W1!],
      ['DZ', dz.buffer, true],
      ['DINJ', dinj.buffer, true],
    ],
    {
      batch: 1,
      M: R,
      N: d2,
      K: d2,
      a: `DP1[i * ${u(d2)} + k]`,
      b: `W1[k * ${u(d2)} + j]`,
      store: `if (j < ${u(d)}) { DZ[i * ${u(d)} + j] = v; } else { DINJ[i * ${u(d)} + j - ${u(d)}] = v; }`,
      aFast: 'k',
      bFast: 'j',
      wide: 'rows', // two outputs (perThread)
      precision,
    },
  );
  if (precision === 'mixed') {
    // on the tensor cores from [z, inj] written out once (a plain operand: staged 4 values at a time); with
    // the select in its load it ran slower there than in fp32 (4.5 against 3.2 ms per FPDM-S/2 step, NOTES §10)
    const ZI = p.scratch('zi', R * d2);
    p.elements(
      'zi',
      [
        ['Z', Z!],
        ['INJ', INJ!],
        ['ZI', ZI, true],
      ],
      R * d2,
      `let r = idx / ${u(d2)}; let c = idx % ${u(d2)}; ZI[idx] = ${concatAt(d, 'r', 'c')};`,
    );
    p.weightGrad(
      'dw1',
      [
        ['DP1', DP1],
        ['ZI', ZI],
      ],
      d2,
      d2,
      `DP1[k * ${u(d2)} + i]`,
      `ZI[k * ${u(d2)} + min(j, ${u(d2 - 1)})]`,
      dW1!.buffer,
      dB1!.buffer,
      R,
      'mixed',
      acc,
    );
  } else
    p.weightGrad(
      'dw1',
      [
        ['DP1', DP1],
        ['Z', Z!],
        ['INJ', INJ!],
      ],
      d2,
      d2,
      `DP1[k * ${u(d2)} + i]`,
      concatAt(d, 'k', `min(j, ${u(d2 - 1)})`),
      dW1!.buffer,
      dB1!.buffer,
      R,
      'fp32',
      acc,
    );
  const outs = [dz.tensor, dinj.tensor, ...dW.map((e) => e.tensor)];
  rk.run(p.ops, [z, inj, p1, du, ...w, ...outs]);
  return outs;
}
