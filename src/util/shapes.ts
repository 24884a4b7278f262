// Shape legend for the whole repository (comments like `// [N, T, D]` use it):
//   N batch, C channels, H/W height/width, P patch size, T tokens (= H·W/P²), D hidden size,
//   K attention heads, Dh head size (D/K), F feature size, S sampling steps.
// Images and latents are NCHW everywhere in this tool, as in PyTorch (files, fixtures, models,
// diffusion, data loaders); transformer activations are tokens [N, T, D]. Only code that calls TF.js
// convolutions (the Inception network) works in NHWC internally and converts at its entry.
import { UserError } from './errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Cheap shape check at public entry points. `expected` may hold -1 (any size) for a dimension.
 * Throws a UserError naming `what` so a caller with a wrong input learns which one.
 */
export function assertShape(what: string, actual: Shape, expected: Shape): void {
  const ok = actual.length === expected.length && expected.every((d, i) => d === -1 || d === actual[i]);
  if (!ok) {
    throw new UserError(`${what}: has shape ${shapeStr(actual)}, expected ${shapeStr(expected.map((d) => (d === -1 ? '*' : d)) as never)}`);
  }
}
