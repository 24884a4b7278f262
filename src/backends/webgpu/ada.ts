// The adaLN-conditioned pieces that the DiT block (dit-block.ts) and the final layer (edges.ts) share, as
// direct dispatches: the modulation vectors ADA = SiLU(c)·Waᵀ + ba [n, chunks·d], LayerNorm + modulate
// with their saved row statistics, and their backward (the LN + modulate input gradient, the shift and
// scale gradients Σ_t, the adaLN linear's gradients), plus the weight-gradient product over token rows.
// The math is blocks.ts lnModulate / adaLN and blockgrad.ts lnModulateBackward.
//
// Legend: n batch, t tokens, d hidden, R = n·t token rows; ADA's chunk k (a [n, d] column block) is read
// at ADA[(row / t)·chunks·d + k·d + channel].
import { lit, ROW_WG, u } from './gemm.js';
import { addInto, Plan, type Arg } from './plan.js';
import type { RawKernels } from './raw.js';
import type { GBuffer } from './types.js';

export interface AdaDims {
  n: number;
  t: number;
  d: number;
  R: number;
  /** column blocks of ADA: 6 in a DiT block, 2 in the final layer */
  chunks: number;
}

export class AdaPlan extends Plan {
  constructor(
    rk: RawKernels,
    prefix: string,
    shapeKey: string,
    readonly ad: AdaDims,
  ) {
    super(rk, prefix, shapeKey);
    this.defaultRows = ad.R; // weightGrad over the token rows unless told otherwise
  }

  /** ADA's chunk `k` for token row `r` and channel `ch` (WGSL expressions) */
  chunkAt(k: number, r: string, ch: string): string {
    const { t, d, chunks } = this.ad;
    return `ADA[(${r} / ${u(t)}) * ${u(chunks * d)} + ${u(k * d)} + ${ch}]`;
  }

  /**
   * ADA = SiLU(c)·Waᵀ + ba  [n, chunks·d]. Its reduction is split (matMulSplit): with n rows (the batch)
   * its output tiles alone are too few for the GPU (DiT-XL/2 at batch 32: 108 workgroups, 0.11 ms per
   * block call on the H200).
   */
  adaLN(c: GBuffer, wa: GBuffer, ba: GBuffer, ada: GBuffer): void {
    const { n, d, chunks } = this.ad;
    this.matMulSplit(
      'ada',
      [
        ['C', c],
        ['WA', wa],
      ],
      {
        M: n,
        N: chunks * d,
        K: d,
        a: `silu(C[i * ${u(d)} + k])`,
        b: `WA[j * ${u(d)} + k]`,
        aFast: 'k',
        bFast: 'k',
      },
      [
        ['BA', ba],
        ['ADA', ada, true],
      ],
      `ADA[i * ${u(chunks * d)} + j] = v + BA[j];`,
    );
  }

  /**
   * MOD = LN(X)·(1 + ADA[scale]) + ADA[shift] per row, STATS = (mean, 1/σ) per row; shift at chunk `k` of ADA,
   * scale at k + 1. With `half`, MOD is written in f16 (binding MOD16, two values per float of the buffer).
   */
  lnModulate(name: string, x: GBuffer, ada: GBuffer, k: number, mod: GBuffer, stats: GBuffer, half = false): void {
    const { d, R } = this.ad;
    this.rows(
      name,
      [['X', x], ['ADA', ada], half ? ['MOD16', mod, true, 'f16'] : ['MOD', mod, true], ['STATS', stats, true]],
      R,
      `
  let base = row * ${u(d)};
  var s = 0.0;
  for (var c = tid; c < ${u(d)}; c = c + ${u(ROW_WG)}) { s = s + X[base + c]; }
  let mean = rowSum0(s, tid) / ${lit(d)};
  var q = 0.0;
  for (var c = tid; c < ${u(d)}; c = c + ${u(ROW_WG)}) { let dv = X[base + c] - mean; q = q + dv * dv; }
  let r = inverseSqrt(rowSum1(q, tid) / ${lit(d)} + ${lit(1e-6)});
  for (var c = tid; c < ${u(d)}; c = c + ${u(ROW_WG)}) {
    ${half ? 'MOD16' : 'MOD'}[base + c] = ${half ? 'f16(' : ''}((X[base + c] - mean) * r) * (${this.chunkAt(k + 1, 'row', 'c')} + 1.0) + ${this.chunkAt(k, 'row', 'c')}${half ? ')' : ''};
  }
  if (tid == 0u) { STATS[2u * row] = mean; STATS[2u * row + 1u] = r; }`,
    );
  }

  /**
   * The LN + modulate backward from the saved STATS and the output gradient DMOD (scale at chunk k + 1):
   * DXO = RES + r·((dln − mean dln) − ln·mean(dln ⊙ ln)), dln = DMOD ⊙ (1 + scale); without `res`, no RES term.
   */
  lnBackward(
    name: string,
    bufs: { x: GBuffer; stats: GBuffer; ada: GBuffer; dmod: GBuffer },
    k: number,
    res: GBuffer | null,
    out: GBuffer,
  ): void {
    const { d, R } = this.ad;
    this.rows(
      name,
      [
        ['X', bufs.x],
        ['STATS', bufs.stats],
        ['ADA', bufs.ada],
        ['DMOD', bufs.dmod],
        ...(res ? ([['RES', res]] as Arg[]) : []),
        ['DXO', out, true],
      ],
      R,
      `
  let base = row * ${u(d)};
  let mean = STATS[2u * row];
  let r = STATS[2u * row + 1u];
  var sa = 0.0;
  var sb = 0.0;
  for (var c = tid; c < ${u(d)}; c = c + ${u(ROW_WG)}) {
    let ln = (X[base + c] - mean) * r;
    let dln = DMOD[base + c] * (${this.chunkAt(k + 1, 'row', 'c')} + 1.0);
    sa = sa + dln;
    sb = sb + dln * ln;
  }
  let ma = rowSum0(sa, tid) / ${lit(d)};
  let mb = rowSum1(sb, tid) / ${lit(d)};
  for (var c = tid; c < ${u(d)}; c = c + ${u(ROW_WG)}) {
    let ln = (X[base + c] - mean) * r;
    let dln = DMOD[base + c] * (${this.chunkAt(k + 1, 'row', 'c')} + 1.0);
    DXO[base + c] = ${res ? 'RES[base + c] + ' : ''}r * ((dln - ma) - ln * mb);
  }`,
    );
  }

  /** DADA[:, k] = Σ_t DMOD (shift), DADA[:, k + 1] = Σ_t DMOD ⊙ LN(x) (scale) */
  lnSums(name: string, bufs: { x: GBuffer; stats: GBuffer; dmod: GBuffer; dada: GBuffer }, k: number): void {
    const { n, t, d, chunks } = this.ad;
    const cd = u(chunks * d);
    this.elements(
      name,
      [
        ['X', bufs.x],
        ['STATS', bufs.stats],
        ['DMOD', bufs.dmod],
        ['DADA', bufs.dada, true],
      ],
      n * d,
      `
  let nn = idx / ${u(d)};
  let j = idx % ${u(d)};
  var s0 = 0.0;
  var s1 = 0.0;
  for (var tt = 0u; tt < ${u(t)}; tt = tt + 1u) {
    let row = nn * ${u(t)} + tt;
    let e = row * ${u(d)} + j;
    let dm = DMOD[e];
    s0 = s0 + dm;
    s1 = s1 + dm * ((X[e] - STATS[2u * row]) * STATS[2u * row + 1u]);
  }
  DADA[nn * ${cd} + ${u(k * d)} + j] = s0;
  DADA[nn * ${cd} + ${u((k + 1) * d)} + j] = s1;`,
    );
  }

  /**
   * The adaLN linear's backward, ADA = SiLU(c)·Waᵀ + ba: dc = (dada·Wa) ⊙ SiLU'(c); dWa = dadaᵀ·SiLU(c);
   * dba = Σ_n dada. With `accumulate` dWa and dba are added into (Plan.weightGrad's accumulate).
   */
  adaBackward(
    dada: GBuffer,
    c: GBuffer,
    wa: GBuffer,
    dc: GBuffer,
    dwa: GBuffer,
    dba: GBuffer,
    accumulate = false,
  ): void {
    const { n, d, chunks } = this.ad;
    const put = addInto(accumulate);
    const cd = u(chunks * d);
    this.matMulSplit(
      'dc',
      [
        ['DADA', dada],
        ['WA', wa],
      ],
      { M: n, N: d, K: chunks * d, a: `DADA[i * ${cd} + k]`, b: `WA[k * ${u(d)} + j]`, aFast: 'k', bFast: 'j' },
      [
        ['C', c],
        ['DC', dc, true],
      ],
      `DC[i * ${u(d)} + j] = v * siluGrad(C[i * ${u(d)} + j]);`,
    );
    this.matMul(
      accumulate ? 'dwa.acc' : 'dwa',
      [
        ['DADA', dada],
        ['C', c],
        ['DW', dwa, true],
      ],
      {
        batch: 1,
        M: chunks * d,
        N: d,
        K: n,
        a: `DADA[k * ${cd} + i]`,
        b: `silu(C[k * ${u(d)} + j])`,
        store: put(`DW[i * ${u(d)} + j]`, 'v'),
        aFast: 'i',
        bFast: 'j',
      },
    );
    this.colSum(
      accumulate ? 'dba.acc' : 'dba',
      [
        ['DADA', dada],
        ['DB', dba, true],
      ],
      n,
      chunks * d,
      `DADA[r * ${cd} + j]`,
      put('DB[j]', 'v'),
    );
  }
}
