// FLOPs by formula, per sample (one image), for one forward pass.
//
// What is counted: the matrix multiplications only, at 2 FLOPs per multiply-add (linears, the patch
// embedding as a matmul, attention's QKᵀ and AV). Not counted: LayerNorm, softmax, GELU/SiLU,
// modulation, residual adds, biases (together O(T·D) per block, < 1% of a block at DiT sizes).
// With T tokens, D hidden, r = mlpRatio, K heads (attention FLOPs do not depend on K):
//
//   DiT block         = 2·T·D·3D (qkv) + 2·T²·D (QKᵀ) + 2·T²·D (AV) + 2·T·D² (proj)
//                       + 2·2·T·D·rD (MLP) + 2·D·6D (adaLN, once per sample)
//                     = (8 + 4r)·T·D² + 4·T²·D + 12·D²
//   embedders         = 2·T·(C·P²)·D (patch) + 2·(256·D + D²) (timestep MLP); label lookup is free
//   final layer       = 2·D·2D (adaLN) + 2·T·D·(P²·Co)
//   FPDM injection    = 2·T·D² (block_pre_projection), once per forward
//   FPDM iteration    = 2·T·2D·2D (fc1) + 2·T·2D·D (fc2) + one DiT block = 12·T·D² + block
//
// So at T = 256, D = 1152 an FPDM iteration costs ≈ 1.48 DiT blocks (the projection's share).
// The DiT paper's "Gflops" count multiply-adds: DiT-S/2 6.06, DiT-XL/2 118.6 — half of our numbers
// (12.11 and 237.3 GFLOPs here).
import { numTokens, outChannels, type ModelConfig } from './config.js';

export interface FlopCount {
  /** FLOPs of one DiT block (per sample) */
  perBlock: number;
  /** DiT: FLOPs of a whole forward pass. FPDM: the part that does not depend on the iteration count
   * (embedders, pre blocks, injection, post blocks, final layer) */
  fixed: number;
  /** FPDM: FLOPs of one fixed-point iteration (projection fc1/fc2 + the fixed-point block); DiT: 0 */
  perIteration: number;
  /** FPDM: the fc1/fc2 projection's share of perIteration; DiT: 0 */
  projectionPerIteration: number;
  /** total for a forward pass: fixed + iterations · perIteration */
  forward(iterations?: number): number;
}

export function blockFlops(t: number, d: number, mlpRatio: number): number {
  return (8 + 4 * mlpRatio) * t * d * d + 4 * t * t * d + 12 * d * d;
}

export function modelFlops(c: ModelConfig): FlopCount {
  const t = numTokens(c);
  const d = c.hiddenSize;
  const perBlock = blockFlops(t, d, c.mlpRatio);
  const embed = 2 * t * c.inChannels * c.patchSize ** 2 * d + 2 * (256 * d + d * d);
  const final = 2 * d * 2 * d + 2 * t * d * c.patchSize ** 2 * outChannels(c);
  if (c.kind === 'dit') {
    const fixed = embed + c.depth * perBlock + final;
    return { perBlock, fixed, perIteration: 0, projectionPerIteration: 0, forward: () => fixed };
  }
  const projection = 2 * t * (2 * d) * (2 * d) + 2 * t * (2 * d) * d;
  const fixed = embed + (c.preDepth + c.postDepth) * perBlock + 2 * t * d * d + final;
  const perIteration = projection + perBlock;
  return {
    perBlock,
    fixed,
    perIteration,
    projectionPerIteration: projection,
    forward: (iterations = c.noGradIters[1] + c.withGradIters[1]) => fixed + iterations * perIteration,
  };
}
